package httpapi

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/svyazka/svyazka/amocrm"
	"github.com/svyazka/svyazka/backend/apperr"
	"github.com/svyazka/svyazka/backend/engine"
	"github.com/svyazka/svyazka/backend/ratelimit"
	"github.com/svyazka/svyazka/backend/store"
	"github.com/svyazka/svyazka/backend/widgetauth"
)

// WidgetAuth is what the widget routes need from widgetauth.
type WidgetAuth interface {
	VerifyAmoToken(ctx context.Context, raw string) (widgetauth.AmoClaims, error)
	IssueTicket(s widgetauth.Session) (string, time.Time, error)
	RedeemTicket(ctx context.Context, raw string) (widgetauth.Session, error)
	IssueSession(s widgetauth.Session) (string, time.Time, error)
	CheckSession(raw string) (widgetauth.Session, error)
}

// Installer completes an amoCRM install from the OAuth redirect.
type Installer interface {
	// BeginInstall records the install and answers at once; the code exchange
	// runs in a task, because amoCRM waits only 3 seconds for the redirect.
	BeginInstall(ctx context.Context, code, referer string, fromWidget bool) error
	// BeginDisable records a signed disable hook; the account is uninstalled
	// once amoCRM confirms that our access is revoked.
	BeginDisable(ctx context.Context, amoAccountID int64) error
}

// RateLimiter admits one more event under a key (see backend/ratelimit).
type RateLimiter interface {
	Allow(ctx context.Context, key string, r ratelimit.Rate) (bool, time.Duration, error)
}

// Limits of the OAuth callback: each call costs a token exchange that
// carries our client secret, so it is bounded per IP and in total.
var (
	CallbackPerIP  = ratelimit.PerMinute(10)
	CallbackGlobal = ratelimit.PerMinute(120)
)

// WidgetConfig configures the widget routes.
type WidgetConfig struct {
	PublicURL    string
	ClientID     string
	ClientSecret string
	// ExtraOrigins are allowed besides amoCRM's own hosts (the sandbox in development).
	ExtraOrigins []string
	Auth         WidgetAuth
	Installer    Installer
	App          AppStore
	// Setup serves the «Настройки» tab (autosetup, mapping); nil leaves its
	// routes out.
	Setup SetupService
	// Sync starts and stops the sync (POST /sync/start, /sync/stop); nil
	// leaves those routes out.
	Sync *engine.Control
	Now  func() time.Time
	// Page renders the settings page for a session (HTML), or an error page.
	Page PageRenderer
	// WidgetFiles serves the widget archive's files (script.js, manifest.json,
	// i18n/, images/) as amoCRM hosts them, for the sandbox to load.
	WidgetFiles http.Handler
	// Assets serves the settings page's static files.
	Assets http.Handler
	// Limiter bounds the OAuth callback (per IP and in total).
	Limiter RateLimiter
	// MaxDatabases caps the clinic databases one account may add.
	MaxDatabases int
}

// PageRenderer renders the settings page HTML.
type PageRenderer interface {
	RenderApp(w http.ResponseWriter, sessionToken string, expiresAt time.Time) error
	RenderMessage(w http.ResponseWriter, status int, message string) error
}

// RegisterWidget adds the amoCRM-facing routes: the OAuth redirect and
// disable hook, the widget session exchange, the settings page and its API.
func (s *Server) RegisterWidget(cfg WidgetConfig) error {
	if cfg.Auth == nil || cfg.Installer == nil || cfg.App == nil || cfg.Page == nil || cfg.Now == nil || cfg.Limiter == nil || cfg.MaxDatabases < 1 {
		return errors.New("httpapi: widget routes need Auth, Installer, App, Page, Now, Limiter and MaxDatabases")
	}
	w := &widgetRoutes{cfg: cfg, log: s.log}
	e := s.echo
	e.GET("/oauth/amocrm/callback", w.callback)
	e.GET("/oauth/amocrm/disable", w.disableHook)
	e.POST("/api/widget/v1/session", w.session, w.cors)
	e.OPTIONS("/api/widget/v1/session", func(c echo.Context) error { return c.NoContent(http.StatusNoContent) }, w.cors)
	e.GET("/widget/app", w.page)
	if cfg.WidgetFiles != nil {
		e.GET("/widget/amo/*", echo.WrapHandler(http.StripPrefix("/widget/amo/", cfg.WidgetFiles)), w.cors)
	}
	if cfg.Assets != nil {
		e.GET("/widget/assets/*", echo.WrapHandler(http.StripPrefix("/widget/assets/", cfg.Assets)))
	}
	registerApp(e.Group("/api/app/v1", w.requireSession), cfg, s.log)
	return nil
}

type widgetRoutes struct {
	cfg WidgetConfig
	log *slog.Logger
}

// allowedOrigin accepts https://{account host} (amocrm.Domains) and the configured extras.
func (w *widgetRoutes) allowedOrigin(origin string) bool {
	for _, o := range w.cfg.ExtraOrigins {
		if origin == o {
			return true
		}
	}
	u, err := url.Parse(origin)
	if err != nil || u.Scheme != "https" || u.Path != "" || u.Port() != "" || u.User != nil || u.RawQuery != "" {
		return false
	}
	return amocrm.IsAccountHost(u.Host)
}

// cors answers amoCRM account origins only; preflights for others get no
// CORS headers, so the browser refuses the call.
func (w *widgetRoutes) cors(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Response().Header()
		h.Add("Vary", "Origin")
		origin := c.Request().Header.Get("Origin")
		if origin != "" && w.allowedOrigin(origin) {
			h.Set("Access-Control-Allow-Origin", origin)
			h.Set("Access-Control-Allow-Methods", "POST, GET, OPTIONS")
			h.Set("Access-Control-Allow-Headers", "X-Auth-Token, Content-Type, X-Requested-With")
			h.Set("Access-Control-Max-Age", "600")
		}
		return next(c)
	}
}

type sessionResponse struct {
	IframeURL string    `json:"iframe_url"`
	ExpiresAt time.Time `json:"expires_at"`
}

// session exchanges amoCRM's disposable token for a short-lived iframe URL.
func (w *widgetRoutes) session(c echo.Context) error {
	ctx := c.Request().Context()
	claims, err := w.cfg.Auth.VerifyAmoToken(ctx, c.Request().Header.Get("X-Auth-Token"))
	if err != nil {
		return err
	}
	acc, err := w.cfg.App.AccountByAmoID(ctx, claims.AccountID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && acc.Status != store.AccountActive) {
		return apperr.New(apperr.Unauthorized, "Виджет не установлен в этом аккаунте amoCRM. Установите его заново.")
	}
	if err != nil {
		return err
	}
	if !strings.EqualFold(acc.Subdomain, claims.Subdomain) {
		// The account was renamed in amoCRM: the signed token is the fresher truth.
		w.log.InfoContext(ctx, "account subdomain differs from token issuer", "account_id", acc.ID, "stored", acc.Subdomain, "token", claims.Subdomain)
	}
	ticket, exp, err := w.cfg.Auth.IssueTicket(widgetauth.Session{AccountID: acc.ID, InstallSeq: acc.InstallSeq, UserID: claims.UserID, IsAdmin: claims.IsAdmin})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, sessionResponse{
		IframeURL: w.cfg.PublicURL + "/widget/app?ticket=" + url.QueryEscape(ticket),
		ExpiresAt: exp.UTC(),
	})
}

// frameAncestors lets amoCRM (and the sandbox) frame the settings page, nobody else.
func (w *widgetRoutes) frameAncestors() string {
	list := append(amocrm.OriginPatterns(), w.cfg.ExtraOrigins...)
	return "frame-ancestors " + strings.Join(list, " ")
}

// page redeems an iframe ticket and renders the settings page with a session.
func (w *widgetRoutes) page(c echo.Context) error {
	h := c.Response().Header()
	h.Set("Content-Security-Policy", w.frameAncestors()+"; default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'")
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer")
	sess, err := w.cfg.Auth.RedeemTicket(c.Request().Context(), c.QueryParam("ticket"))
	if err != nil {
		return w.cfg.Page.RenderMessage(c.Response(), http.StatusUnauthorized, apperr.MessageOf(err))
	}
	token, exp, err := w.cfg.Auth.IssueSession(sess)
	if err != nil {
		return err
	}
	return w.cfg.Page.RenderApp(c.Response(), token, exp)
}

// requireSession admits only requests with a valid session and pins them to
// the session's account: handlers read the account id from here, never from
// the request.
func (w *widgetRoutes) requireSession(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		sess, err := w.cfg.Auth.CheckSession(c.Request().Header.Get("Authorization"))
		if err != nil {
			return err
		}
		c.Set("session", sess)
		return next(c)
	}
}

func sessionOf(c echo.Context) widgetauth.Session {
	s, _ := c.Get("session").(widgetauth.Session)
	return s
}

// callback is the OAuth redirect amoCRM calls once on install, with a 3-second
// timeout and no retry: check it, record it, answer at once, finish in a task.
// The referer must be an amoCRM account host (amocrm.Domains): the task sends
// the code and our client secret there. Calls are rate-limited per IP and in
// total, since each one costs a token exchange.
func (w *widgetRoutes) callback(c echo.Context) error {
	q := c.QueryParams()
	if e := q.Get("error"); e != "" {
		return w.cfg.Page.RenderMessage(c.Response(), http.StatusBadRequest, "Доступ к amoCRM не предоставлен. Установите виджет заново и подтвердите доступ.")
	}
	code, referer := strings.TrimSpace(q.Get("code")), strings.TrimSpace(q.Get("referer"))
	if code == "" || len(code) > 4096 || !printableASCII(code) {
		return apperr.New(apperr.Invalid, "Нет кода авторизации amoCRM (code).")
	}
	if !amocrm.IsAccountHost(referer) {
		return apperr.New(apperr.Invalid, "Параметр referer должен быть адресом аккаунта amoCRM, например clinic.amocrm.ru.")
	}
	ctx := c.Request().Context()
	for _, l := range []struct {
		key  string
		rate ratelimit.Rate
	}{{"callback:ip:" + c.RealIP(), CallbackPerIP}, {"callback:all", CallbackGlobal}} {
		ok, retry, err := w.cfg.Limiter.Allow(ctx, l.key, l.rate)
		if err != nil {
			return apperr.Wrap(err, apperr.Unavailable, "Сервис временно недоступен, попробуйте установить виджет ещё раз через минуту.")
		}
		if !ok {
			c.Response().Header().Set("Retry-After", strconv.Itoa(int(retry.Seconds())+1))
			return apperr.New(apperr.RateLimited, "Слишком много попыток установки. Повторите через минуту.")
		}
	}
	_, fromWidget := q["from_widget"]
	if err := w.cfg.Installer.BeginInstall(ctx, code, referer, fromWidget); err != nil {
		return err
	}
	return w.cfg.Page.RenderMessage(c.Response(), http.StatusOK, "Виджет «Связка» установлен. Вернитесь в amoCRM и откройте его настройки.")
}

// printableASCII reports whether s has only visible ASCII characters, as
// OAuth codes do.
func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

// disableHook is called by amoCRM when the integration is disabled:
// signature = hex(HMAC-SHA256(client_secret, client_id + "|" + account_id)).
// The signature never changes for an account, so a valid one proves only
// that amoCRM once sent it: the hook queues a confirmation against amoCRM
// and the account is uninstalled only if amoCRM refuses our token.
func (w *widgetRoutes) disableHook(c echo.Context) error {
	q := c.QueryParams()
	accountID, err := strconv.ParseInt(q.Get("account_id"), 10, 64)
	if err != nil || accountID <= 0 {
		return apperr.New(apperr.Invalid, "Параметр account_id должен быть номером аккаунта.")
	}
	clientUUID := q.Get("client_uuid")
	if clientUUID == "" {
		clientUUID = q.Get("client_id")
	}
	if clientUUID != w.cfg.ClientID {
		return apperr.New(apperr.Forbidden, "Хук отключения адресован другой интеграции.")
	}
	mac := hmac.New(sha256.New, []byte(w.cfg.ClientSecret))
	mac.Write([]byte(w.cfg.ClientID + "|" + strconv.FormatInt(accountID, 10)))
	got, err := hex.DecodeString(q.Get("signature"))
	if err != nil || !hmac.Equal(got, mac.Sum(nil)) {
		return apperr.New(apperr.Forbidden, "Неверная подпись хука отключения.")
	}
	if err := w.cfg.Installer.BeginDisable(c.Request().Context(), accountID); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}
