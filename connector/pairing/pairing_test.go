package pairing_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/svyazka/svyazka/connector/agent"
	"github.com/svyazka/svyazka/connector/agent/agenttest"
	"github.com/svyazka/svyazka/connector/config"
	"github.com/svyazka/svyazka/connector/pairing"
	"github.com/svyazka/svyazka/connector/protocol"
)

const token = "svz_pairing-test-token"

type fakeDB struct {
	checkErr error
}

func (f fakeDB) Check(context.Context) (string, error) { return "IDENT 23.4", f.checkErr }
func (fakeDB) Read(context.Context, []byte) ([]protocol.Record, []byte, bool, error) {
	return nil, nil, false, nil
}
func (fakeDB) Close() error { return nil }

type page struct {
	t       *testing.T
	srv     *httptest.Server
	dir     string
	backend *agenttest.Backend
	mu      sync.Mutex
	opened  []string
	dbErr   error
}

func newPage(t *testing.T, backendURL string) *page {
	t.Helper()
	p := &page{t: t, dir: t.TempDir()}
	if backendURL == "" {
		p.backend = agenttest.NewBackend(token)
		t.Cleanup(p.backend.Close)
		backendURL = p.backend.URL()
	}
	s, err := pairing.New(pairing.Options{
		StateDir: p.dir, BackendURL: backendURL, Version: "test", Hostname: "clinic-srv",
		HTTPClient: &http.Client{}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		OpenSource: func(ctx context.Context, dsn string) (agent.Source, error) {
			p.mu.Lock()
			defer p.mu.Unlock()
			p.opened = append(p.opened, dsn)
			return fakeDB{checkErr: p.dbErr}, nil
		},
	})
	require.NoError(t, err)
	p.srv = httptest.NewServer(s.Handler())
	t.Cleanup(p.srv.Close)
	return p
}

var csrfRe = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func (p *page) get() (int, string) {
	p.t.Helper()
	resp, err := http.Get(p.srv.URL + "/")
	require.NoError(p.t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func (p *page) csrf() string {
	_, body := p.get()
	m := csrfRe.FindStringSubmatch(body)
	require.NotNil(p.t, m, body)
	return m[1]
}

// post submits a form the way a browser on the page does.
func (p *page) post(path string, form url.Values, origin string) (int, string) {
	p.t.Helper()
	req, err := http.NewRequest(http.MethodPost, p.srv.URL+path, strings.NewReader(form.Encode()))
	require.NoError(p.t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(p.t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func (p *page) pair(tok string) (int, string) {
	return p.post("/pair", url.Values{"csrf": {p.csrf()}, "token": {tok}}, p.srv.URL)
}

func TestPairOK(t *testing.T) {
	t.Parallel()
	p := newPage(t, "")
	status, body := p.pair("  " + token + "\n")
	require.Equal(t, http.StatusOK, status)
	require.Contains(t, body, "Подключение выполнено: Клиника Улыбка")
	require.Contains(t, body, `value="15000"`)
	require.Contains(t, body, `value="PZ"`)
	require.Contains(t, body, `value="readonly_user"`)
	require.Contains(t, body, `value="127.0.0.1"`)
	c, err := config.Load(p.dir)
	require.NoError(t, err)
	require.Equal(t, token, c.Token)
	require.Equal(t, p.backend.URL(), c.BackendURL)
	require.Len(t, c.InstanceID, 36)
	// Pairing again from the same installation is fine.
	status, body = p.pair(token)
	require.Equal(t, http.StatusOK, status)
	require.Contains(t, body, "Подключение выполнено")
}

func TestPairFailures(t *testing.T) {
	t.Parallel()
	t.Run("UnknownToken", func(t *testing.T) {
		t.Parallel()
		p := newPage(t, "")
		_, body := p.pair("svz_unknown")
		require.Contains(t, body, "Подключение не выполнено: Токен не найден.")
		require.Contains(t, body, "Получить токен")
		c, err := config.Load(p.dir)
		require.NoError(t, err)
		require.Empty(t, c.Token)
	})
	t.Run("Revoked", func(t *testing.T) {
		t.Parallel()
		p := newPage(t, "")
		p.backend.Revoke(token, "Токен отозван 12.03.2025")
		_, body := p.pair(token)
		require.Contains(t, body, "Подключение не выполнено: Токен отозван 12.03.2025.")
	})
	t.Run("UsedByAnotherServer", func(t *testing.T) {
		t.Parallel()
		p := newPage(t, "")
		p.backend.AddToken(token, "other-instance")
		_, body := p.pair(token)
		require.Contains(t, body, "уже используется коннектором на другом сервере")
	})
	t.Run("NoNetwork", func(t *testing.T) {
		t.Parallel()
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		require.NoError(t, err)
		addr := ln.Addr().String()
		require.NoError(t, ln.Close())
		p := newPage(t, "http://"+addr)
		_, body := p.pair(token)
		require.Contains(t, body, "нет связи с сервером Связки ("+addr+")")
	})
	t.Run("Empty", func(t *testing.T) {
		t.Parallel()
		p := newPage(t, "")
		status, body := p.pair("   ")
		require.Equal(t, http.StatusUnprocessableEntity, status)
		require.Contains(t, body, "вставьте токен")
	})
}

func dbForm(csrf string) url.Values {
	return url.Values{"csrf": {csrf}, "host": {"127.0.0.1"}, "port": {"15000"}, "database": {"PZ"},
		"user": {"readonly_user"}, "password": {"p@ss:w/rd"}}
}

func TestCheckDatabase(t *testing.T) {
	t.Parallel()
	t.Run("OK", func(t *testing.T) {
		t.Parallel()
		p := newPage(t, "")
		p.pair(token)
		before := p.backend.Requests(protocol.PathPair)
		status, body := p.post("/check", dbForm(p.csrf()), p.srv.URL)
		require.Equal(t, http.StatusOK, status)
		require.Contains(t, body, "Подключение выполнено (IDENT 23.4)")
		require.NotContains(t, body, "p@ss:w/rd", "the password is never rendered back")
		c, err := config.Load(p.dir)
		require.NoError(t, err)
		require.Equal(t, "sqlserver://readonly_user:p%40ss%3Aw%2Frd@127.0.0.1:15000?database=PZ", c.SourceDSN)
		require.Equal(t, []string{c.SourceDSN}, p.opened)
		// Nothing about the database went to the backend.
		require.Equal(t, before, p.backend.Requests(protocol.PathPair))
		require.Zero(t, p.backend.Requests(protocol.PathHeartbeat)+p.backend.Requests(protocol.PathBatches))
	})
	t.Run("WrongPassword", func(t *testing.T) {
		t.Parallel()
		p := newPage(t, "")
		p.pair(token)
		p.dbErr = errors.New("неверное имя пользователя или пароль")
		_, body := p.post("/check", dbForm(p.csrf()), p.srv.URL)
		require.Contains(t, body, "Подключение не выполнено: неверное имя пользователя или пароль")
		c, err := config.Load(p.dir)
		require.NoError(t, err)
		require.Empty(t, c.SourceDSN)
	})
	t.Run("BadPort", func(t *testing.T) {
		t.Parallel()
		p := newPage(t, "")
		p.pair(token)
		f := dbForm(p.csrf())
		f.Set("port", "15ooo")
		status, body := p.post("/check", f, p.srv.URL)
		require.Equal(t, http.StatusUnprocessableEntity, status)
		require.Contains(t, body, "должен быть числом")
		require.Empty(t, p.opened)
	})
	t.Run("NotPaired", func(t *testing.T) {
		t.Parallel()
		p := newPage(t, "")
		status, body := p.post("/check", dbForm(p.csrf()), p.srv.URL)
		require.Equal(t, http.StatusUnprocessableEntity, status)
		require.Contains(t, body, "сначала подключите коннектор")
	})
}

func TestRequestChecks(t *testing.T) {
	t.Parallel()
	p := newPage(t, "")
	t.Run("NoCSRF", func(t *testing.T) {
		status, _ := p.post("/pair", url.Values{"token": {token}}, p.srv.URL)
		require.Equal(t, http.StatusForbidden, status)
	})
	t.Run("WrongCSRF", func(t *testing.T) {
		status, _ := p.post("/pair", url.Values{"token": {token}, "csrf": {"guess"}}, p.srv.URL)
		require.Equal(t, http.StatusForbidden, status)
	})
	t.Run("CrossOrigin", func(t *testing.T) {
		status, _ := p.post("/pair", url.Values{"token": {token}, "csrf": {p.csrf()}}, "http://evil.example")
		require.Equal(t, http.StatusForbidden, status)
	})
	t.Run("NoOriginNoReferer", func(t *testing.T) {
		status, _ := p.post("/pair", url.Values{"token": {token}, "csrf": {p.csrf()}}, "")
		require.Equal(t, http.StatusForbidden, status)
	})
	t.Run("DNSRebinding", func(t *testing.T) {
		req, err := http.NewRequest(http.MethodGet, p.srv.URL+"/", nil)
		require.NoError(t, err)
		req.Host = "evil.example:" + p.srv.Listener.Addr().(*net.TCPAddr).AddrPort().String()[len("127.0.0.1:"):]
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusMisdirectedRequest, resp.StatusCode)
	})
	t.Run("WrongPort", func(t *testing.T) {
		req, err := http.NewRequest(http.MethodGet, p.srv.URL+"/", nil)
		require.NoError(t, err)
		req.Host = "127.0.0.1:1"
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusMisdirectedRequest, resp.StatusCode)
	})
	t.Run("PageHasNoExternalAssets", func(t *testing.T) {
		status, body := p.get()
		require.Equal(t, http.StatusOK, status)
		require.Contains(t, body, "Подключить")
		require.NotRegexp(t, `(src|href)="https?://`, body)
	})
}

func TestListenRefusesAnythingButLoopback(t *testing.T) {
	t.Parallel()
	for _, addr := range []string{":8765", "0.0.0.0:8765", "192.168.1.10:8765", "[::]:8765", "localhost:8765", "example.com:80"} {
		_, err := pairing.Listen(addr)
		require.ErrorIs(t, err, pairing.ErrNotLoopback, addr)
	}
	ln, err := pairing.Listen("127.0.0.1:0")
	require.NoError(t, err)
	require.NoError(t, ln.Close())
}

func TestDSN(t *testing.T) {
	t.Parallel()
	dsn, err := pairing.DSN("192.168.0.5", "15000", "PZ", "readonly_user", "a b&c", "IDENT")
	require.NoError(t, err)
	require.Equal(t, "sqlserver://readonly_user:a%20b&c@192.168.0.5:15000/IDENT?database=PZ", dsn)
	u, err := url.Parse(dsn)
	require.NoError(t, err)
	pw, _ := u.User.Password()
	require.Equal(t, "a b&c", pw)
	_, err = pairing.DSN("", "15000", "PZ", "u", "p", "")
	require.Error(t, err)
}
