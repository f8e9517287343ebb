// Package pairing serves the connector's local setup page, where the clinic's
// IT person pastes the token from amoCRM («Подключить») and enters the IDENT
// database parameters («Проверить»).
//
// Checks it makes:
//   - Listen binds only to 127.0.0.1 and refuses any other address, so the page
//     is reachable from this computer only.
//   - Every request's Host header must be 127.0.0.1 or localhost with the port
//     the page listens on (DNS rebinding: a foreign site whose name resolves
//     to 127.0.0.1 sends its own name and is refused with 421).
//   - Every POST must be same-origin (Origin, or else Referer, equal to the
//     page's own origin; Sec-Fetch-Site same-origin when sent) and carry the
//     page's CSRF token, random per process; otherwise 403.
//   - The database password goes only into the DSN saved as a secret in the
//     state directory and to the injected OpenSource; it is never sent to the
//     backend and never rendered back into the page.
package pairing

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/svyazka/svyazka/connector/agent"
	"github.com/svyazka/svyazka/connector/config"
	"github.com/svyazka/svyazka/connector/protocol"
)

// OpenSource opens the clinic database at dsn (sqlserver://…).
type OpenSource func(ctx context.Context, dsn string) (agent.Source, error)

// Database defaults from the IDENT manual.
const (
	DefaultHost     = "127.0.0.1"
	DefaultPort     = "15000"
	DefaultDatabase = "PZ"
	DefaultUser     = "readonly_user"
)

// Options are the page's dependencies.
type Options struct {
	StateDir string
	// BackendURL is used when the state dir has none saved yet.
	BackendURL string
	Version    string
	Hostname   string
	HTTPClient *http.Client
	OpenSource OpenSource
	Logger     *slog.Logger
}

// Server is the pairing page.
type Server struct {
	opts Options
	csrf string
	// mu serializes read-modify-write of the saved configuration.
	mu sync.Mutex
}

// New returns the page. It fails on a missing state dir, HTTP client,
// OpenSource or logger.
func New(opts Options) (*Server, error) {
	switch {
	case opts.StateDir == "":
		return nil, errors.New("pairing: state dir is required")
	case opts.HTTPClient == nil:
		return nil, errors.New("pairing: http client is required")
	case opts.OpenSource == nil:
		return nil, errors.New("pairing: OpenSource is required")
	case opts.Logger == nil:
		return nil, errors.New("pairing: logger is required")
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	return &Server{opts: opts, csrf: base64.RawURLEncoding.EncodeToString(b)}, nil
}

// ErrNotLoopback is returned by Listen for any address but 127.0.0.1.
var ErrNotLoopback = errors.New("pairing: the setup page listens on 127.0.0.1 only")

// Listen binds addr, which must be 127.0.0.1:PORT.
func Listen(addr string) (net.Listener, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("pairing: listen address %q: %w", addr, err)
	}
	if host != "127.0.0.1" {
		return nil, fmt.Errorf("%w (got %q)", ErrNotLoopback, addr)
	}
	ln, err := net.Listen("tcp4", addr)
	if err != nil {
		return nil, fmt.Errorf("pairing: listen %s: %w", addr, err)
	}
	return ln, nil
}

// Serve serves the page on ln until ctx is done.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Handler returns the page's routes with the Host and same-origin checks.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", s.index)
	mux.HandleFunc("POST /pair", s.pair)
	mux.HandleFunc("POST /check", s.check)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'")
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("Cache-Control", "no-store")
		if !hostAllowed(r) {
			http.Error(w, "Неверный адрес страницы. Откройте http://127.0.0.1 с портом коннектора.", http.StatusMisdirectedRequest)
			return
		}
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
			if !sameOrigin(r) || !s.csrfOK(r) {
				http.Error(w, "Запрос отклонён: отправьте форму со страницы настройки коннектора.", http.StatusForbidden)
				return
			}
		}
		mux.ServeHTTP(w, r)
	})
}

// hostAllowed accepts 127.0.0.1 or localhost with the port the request came in on.
func hostAllowed(r *http.Request) bool {
	host, port, err := net.SplitHostPort(r.Host)
	if err != nil || (host != "127.0.0.1" && host != "localhost") {
		return false
	}
	if la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		_, lport, err := net.SplitHostPort(la.String())
		return err == nil && lport == port
	}
	return true
}

func sameOrigin(r *http.Request) bool {
	self := "http://" + r.Host
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" {
		return false
	}
	if o := r.Header.Get("Origin"); o != "" {
		return o == self
	}
	ref := r.Header.Get("Referer")
	return ref == self || strings.HasPrefix(ref, self+"/")
}

func (s *Server) csrfOK(r *http.Request) bool {
	got := r.PostFormValue("csrf")
	return subtle.ConstantTimeCompare([]byte(got), []byte(s.csrf)) == 1
}

// view is what the template shows.
type view struct {
	CSRF     string
	Paired   bool
	PairOK   string
	PairErr  string
	DBOK     string
	DBErr    string
	DSNSaved bool
	Host     string
	Port     string
	Database string
	User     string
	Instance string
}

func (s *Server) baseView() (view, error) {
	c, err := config.Load(s.opts.StateDir)
	if err != nil {
		return view{}, err
	}
	return view{
		CSRF: s.csrf, Paired: c.Token != "", DSNSaved: c.SourceDSN != "",
		Host: DefaultHost, Port: DefaultPort, Database: DefaultDatabase, User: DefaultUser,
	}, nil
}

func (s *Server) render(w http.ResponseWriter, status int, v view) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := pageTemplate.Execute(w, v); err != nil {
		s.opts.Logger.Error("render pairing page", "err", err)
	}
}

func (s *Server) fail(w http.ResponseWriter, err error) {
	s.opts.Logger.Error("pairing page", "err", err)
	http.Error(w, "Не удалось прочитать настройки коннектора: "+err.Error(), http.StatusInternalServerError)
}

func (s *Server) index(w http.ResponseWriter, r *http.Request) {
	v, err := s.baseView()
	if err != nil {
		s.fail(w, err)
		return
	}
	if v.Paired {
		v.PairOK = "Подключение выполнено"
	}
	s.render(w, http.StatusOK, v)
}

func (s *Server) pair(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, err := s.baseView()
	if err != nil {
		s.fail(w, err)
		return
	}
	token := strings.Join(strings.Fields(r.PostFormValue("token")), "")
	if token == "" {
		v.PairErr = "Подключение не выполнено: вставьте токен из amoCRM («Управление интеграцией» → «Получить токен»)."
		s.render(w, http.StatusUnprocessableEntity, v)
		return
	}
	c, err := config.LoadOrInit(s.opts.StateDir)
	if err != nil {
		s.fail(w, err)
		return
	}
	backendURL := c.BackendURL
	if backendURL == "" {
		backendURL = s.opts.BackendURL
	}
	if backendURL == "" {
		v.PairErr = "Подключение не выполнено: не задан адрес сервера Связки (запустите «svyazka-connector pair --backend URL»)."
		s.render(w, http.StatusUnprocessableEntity, v)
		return
	}
	client, err := agent.NewClient(backendURL, token, s.opts.HTTPClient)
	if err != nil {
		s.fail(w, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	res, err := client.Pair(ctx, protocol.Pair{InstanceID: c.InstanceID, Hostname: s.opts.Hostname, ConnectorVersion: s.opts.Version})
	if err != nil {
		s.opts.Logger.Warn("pairing refused", "err", err)
		v.PairErr = pairFailure(err, backendURL)
		s.render(w, http.StatusOK, v)
		return
	}
	c.BackendURL, c.Token = backendURL, token
	if err := config.Save(s.opts.StateDir, c); err != nil {
		s.fail(w, err)
		return
	}
	s.opts.Logger.Info("connector paired", "account", res.AccountName, "database", res.DatabaseName, "instance_id", c.InstanceID)
	v.Paired = true
	v.PairOK = "Подключение выполнено"
	if res.AccountName != "" {
		v.PairOK += ": " + res.AccountName
		if res.DatabaseName != "" {
			v.PairOK += ", база «" + res.DatabaseName + "»"
		}
	}
	s.render(w, http.StatusOK, v)
}

// pairFailure explains a refused pairing in the IT person's terms.
func pairFailure(err error, backendURL string) string {
	const prefix = "Подключение не выполнено: "
	newToken := " Получите новый токен в amoCRM: «Настройки» → «Связка IDENT & amoCRM» → «Управление интеграцией» → «Получить токен»."
	var he *agent.HTTPError
	var ue *url.Error
	switch {
	case errors.As(err, &he) && he.Status == http.StatusUnauthorized:
		if he.Message != "" {
			return prefix + strings.TrimSuffix(he.Message, ".") + "." + newToken
		}
		return prefix + "токен не найден." + newToken
	case errors.As(err, &he) && he.Status == http.StatusConflict:
		return prefix + "этот токен уже используется коннектором на другом сервере. Чтобы подключить этот сервер, получите новый токен в amoCRM («Управление интеграцией» → «Получить токен»)."
	case errors.As(err, &he):
		msg := prefix + "сервер Связки ответил ошибкой " + strconv.Itoa(he.Status)
		if he.Message != "" {
			msg += ": " + he.Message
		}
		return msg + ". Попробуйте ещё раз через несколько минут."
	case errors.As(err, &ue):
		host := backendURL
		if u, perr := url.Parse(backendURL); perr == nil && u.Host != "" {
			host = u.Host
		}
		return prefix + "нет связи с сервером Связки (" + host + "). Проверьте, что с этого компьютера открывается интернет, и настройки прокси или брандмауэра."
	default:
		return prefix + "сервер Связки ответил непонятно. Попробуйте ещё раз через несколько минут."
	}
}

func (s *Server) check(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, err := s.baseView()
	if err != nil {
		s.fail(w, err)
		return
	}
	if v.Paired {
		v.PairOK = "Подключение выполнено"
	}
	field := func(name, def string) string {
		if val := strings.TrimSpace(r.PostFormValue(name)); val != "" {
			return val
		}
		return def
	}
	v.Host = field("host", DefaultHost)
	v.Port = field("port", DefaultPort)
	v.Database = field("database", DefaultDatabase)
	v.User = field("user", DefaultUser)
	v.Instance = field("instance", "")
	password := r.PostFormValue("password")
	if !v.Paired {
		v.DBErr = "Подключение не выполнено: сначала подключите коннектор токеном из amoCRM."
		s.render(w, http.StatusUnprocessableEntity, v)
		return
	}
	dsn, err := DSN(v.Host, v.Port, v.Database, v.User, password, v.Instance)
	if err != nil {
		v.DBErr = "Подключение не выполнено: " + err.Error()
		s.render(w, http.StatusUnprocessableEntity, v)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	version, err := s.checkSource(ctx, dsn)
	if err != nil {
		s.opts.Logger.Warn("database check failed", "host", v.Host, "port", v.Port, "database", v.Database, "err", err)
		v.DBErr = "Подключение не выполнено: " + agent.UserMessage(err)
		s.render(w, http.StatusOK, v)
		return
	}
	c, err := config.Load(s.opts.StateDir)
	if err != nil {
		s.fail(w, err)
		return
	}
	c.SourceDSN = dsn
	if err := config.Save(s.opts.StateDir, c); err != nil {
		s.fail(w, err)
		return
	}
	s.opts.Logger.Info("database connected", "host", v.Host, "port", v.Port, "database", v.Database, "version", version)
	v.DSNSaved = true
	v.DBOK = "Подключение выполнено"
	if version != "" {
		v.DBOK += " (" + version + ")"
	}
	s.render(w, http.StatusOK, v)
}

func (s *Server) checkSource(ctx context.Context, dsn string) (string, error) {
	src, err := s.opts.OpenSource(ctx, dsn)
	if err != nil {
		return "", err
	}
	defer src.Close()
	return src.Check(ctx)
}

// DSN builds the sqlserver:// address of the IDENT database. instance, when
// given, names a SQL Server named instance. It fails with a Russian message
// on an empty host, database or user, or a bad port.
func DSN(host, port, database, user, password, instance string) (string, error) {
	switch {
	case host == "":
		return "", errors.New("укажите хост сервера базы данных")
	case database == "":
		return "", errors.New("укажите имя базы данных")
	case user == "":
		return "", errors.New("укажите имя пользователя")
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return "", fmt.Errorf("порт «%s» должен быть числом от 1 до 65535", port)
	}
	u := &url.URL{Scheme: "sqlserver", User: url.UserPassword(user, password), Host: net.JoinHostPort(host, port)}
	if instance != "" {
		u.Path = "/" + instance
	}
	u.RawQuery = url.Values{"database": {database}}.Encode()
	return u.String(), nil
}
