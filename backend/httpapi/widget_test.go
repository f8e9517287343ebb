package httpapi_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/svyazka/svyazka/backend/eventlog"
	"github.com/svyazka/svyazka/backend/httpapi"
	"github.com/svyazka/svyazka/backend/install"
	"github.com/svyazka/svyazka/backend/metrics"
	"github.com/svyazka/svyazka/backend/ratelimit"
	"github.com/svyazka/svyazka/backend/redistest"
	"github.com/svyazka/svyazka/backend/sealer"
	"github.com/svyazka/svyazka/backend/store"
	"github.com/svyazka/svyazka/backend/store/storetest"
	"github.com/svyazka/svyazka/backend/widgetauth"
	"github.com/svyazka/svyazka/jobs"
	"github.com/svyazka/svyazka/widget"
)

const (
	testClientID = "0b0832f6-9a0b-4b1e-8a11-3f3f7b1d2c55"
	testSecret   = "integration-secret"
)

type widgetEnv struct {
	t      *testing.T
	ts     *httptest.Server
	db     *store.DB
	now    atomic.Int64
	origin string
}

func (e *widgetEnv) clock() time.Time { return time.Unix(0, e.now.Load()) }

func newWidgetEnv(t *testing.T) *widgetEnv {
	t.Helper()
	env := &widgetEnv{t: t, db: storetest.New(t)}
	env.now.Store(time.Now().UnixNano())
	redis := redistest.Client(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	auth, err := widgetauth.New(widgetauth.Config{
		ClientID: testClientID, ClientSecret: testSecret,
		RedirectURI: "https://api.svyazka.test/oauth/amocrm/callback",
		SessionKey:  []byte("0123456789abcdef0123456789abcdef"),
		Replay:      widgetauth.RedisReplayGuard{Client: redis, Now: env.clock},
		Now:         env.clock,
	})
	require.NoError(t, err)
	key := make([]byte, 32)
	seal, err := sealer.New(key)
	require.NoError(t, err)
	srv, err := httpapi.New(httpapi.Deps{Logger: log, Metrics: metrics.New(), Checks: map[string]httpapi.Pinger{}}, httpapi.Options{})
	require.NoError(t, err)
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	env.ts = ts
	installer := &install.Service{Store: env.db, Sealer: seal, TrialDays: 14, TimeZone: "Europe/Moscow", Now: env.clock, Log: log,
		Relay: &jobs.OutboxRelay{Store: env.db, Client: newQueueClient(t), Log: log}, IsRevoked: install.IsRevoked}
	limiter, err := ratelimit.New(redis, "test")
	require.NoError(t, err)
	require.NoError(t, srv.RegisterWidget(httpapi.WidgetConfig{
		PublicURL: ts.URL, ClientID: testClientID, ClientSecret: testSecret,
		ExtraOrigins: []string{"http://sandbox.local:8090"},
		Auth:         auth, Installer: installer, App: env.db, Now: env.clock,
		Page: widget.Pages{}, Assets: widget.Assets(),
		Limiter: limiter, MaxDatabases: 2,
	}))
	return env
}

// newAppEnv is a widget env at now whose widget routes take the
// configuration the test completes in with (PublicURL, Auth, Installer, App,
// Now, pages and an open limiter are filled in before).
func newAppEnv(t *testing.T, now time.Time, with func(cfg *httpapi.WidgetConfig)) *widgetEnv {
	t.Helper()
	env := &widgetEnv{t: t, db: storetest.New(t)}
	env.now.Store(now.UnixNano())
	redis := redistest.Client(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	auth, err := widgetauth.New(widgetauth.Config{ClientID: testClientID, ClientSecret: testSecret,
		RedirectURI: "https://api.svyazka.test/oauth/amocrm/callback", SessionKey: []byte("0123456789abcdef0123456789abcdef"),
		Replay: widgetauth.RedisReplayGuard{Client: redis, Now: env.clock}, Now: env.clock})
	require.NoError(t, err)
	seal, err := sealer.New(make([]byte, 32))
	require.NoError(t, err)
	srv, err := httpapi.New(httpapi.Deps{Logger: log, Metrics: metrics.New(), Checks: map[string]httpapi.Pinger{}}, httpapi.Options{})
	require.NoError(t, err)
	env.ts = httptest.NewServer(srv)
	t.Cleanup(env.ts.Close)
	installer := &install.Service{Store: env.db, Sealer: seal, TrialDays: 14, Now: env.clock, Log: log,
		Relay: &jobs.OutboxRelay{Store: env.db, Client: newQueueClient(t)}}
	cfg := httpapi.WidgetConfig{PublicURL: env.ts.URL, ClientID: testClientID, ClientSecret: testSecret,
		Auth: auth, Installer: installer, App: env.db, Now: env.clock, Page: widget.Pages{}, Assets: widget.Assets(),
		Limiter: allowAll{}, MaxDatabases: 2}
	with(&cfg)
	require.NoError(t, srv.RegisterWidget(cfg))
	return env
}

func (e *widgetEnv) install(amoID int64, sub string) store.Account {
	acc, _, err := e.db.InstallAccount(context.Background(), store.InstallInput{
		AmoAccountID: amoID, Subdomain: sub, BaseDomain: "amocrm.ru", TrialDays: 14, Now: e.clock().UTC()})
	require.NoError(e.t, err)
	return acc
}

func (e *widgetEnv) amoToken(amoID int64, sub string, userID int64) string {
	return e.amoTokenAs(amoID, sub, userID, true)
}

// amoTokenAs is amoToken for an admin or an ordinary amoCRM user.
func (e *widgetEnv) amoTokenAs(amoID int64, sub string, userID int64, admin bool) string {
	now := e.clock()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"iss": "https://" + sub + ".amocrm.ru", "aud": "https://api.svyazka.test", "jti": uuid.NewString(),
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(30 * time.Minute).Unix(),
		"account_id": amoID, "user_id": userID, "subdomain": sub, "client_uuid": testClientID, "is_admin": admin,
	}).SignedString([]byte(testSecret))
	require.NoError(e.t, err)
	return tok
}

type reply struct {
	status int
	header http.Header
	body   []byte
}

func (r reply) json(t *testing.T) map[string]any {
	var m map[string]any
	require.NoError(t, json.Unmarshal(r.body, &m), string(r.body))
	return m
}

func (e *widgetEnv) do(method, path string, headers map[string]string, body any) reply {
	e.t.Helper()
	var rd io.Reader
	all := map[string]string{}
	if body != nil {
		b, _ := json.Marshal(body)
		rd = strings.NewReader(string(b))
		all["Content-Type"] = "application/json"
	}
	for k, v := range headers {
		all[k] = v
	}
	return e.raw(method, path, all, rd)
}

var sessionMeta = regexp.MustCompile(`<meta name="svyazka-session" content="([^"]+)">`)

// open walks the widget's path: disposable token → iframe URL → page → session.
func (e *widgetEnv) open(amoID int64, sub string, userID int64) (iframeURL, session string) {
	e.t.Helper()
	r := e.do(http.MethodPost, "/api/widget/v1/session", map[string]string{"X-Auth-Token": e.amoToken(amoID, sub, userID)}, nil)
	require.Equal(e.t, http.StatusOK, r.status, string(r.body))
	iframeURL = r.json(e.t)["iframe_url"].(string)
	page := e.do(http.MethodGet, iframeURL, nil, nil)
	require.Equal(e.t, http.StatusOK, page.status, string(page.body))
	m := sessionMeta.FindSubmatch(page.body)
	require.NotNil(e.t, m, "page carries a session")
	return iframeURL, string(m[1])
}

func bearer(s string) map[string]string { return map[string]string{"Authorization": "Bearer " + s} }

func errCode(t *testing.T, r reply) string {
	t.Helper()
	return r.json(t)["error"].(map[string]any)["code"].(string)
}

func TestWidgetSessionFlow(t *testing.T) {
	t.Parallel()
	env := newWidgetEnv(t)
	env.install(1001, "smile")

	iframeURL, session := env.open(1001, "smile", 55)
	require.True(t, strings.HasPrefix(iframeURL, env.ts.URL+"/widget/app?ticket="))

	t.Run("IframeURLIsSingleUse", func(t *testing.T) {
		r := env.do(http.MethodGet, iframeURL, nil, nil)
		require.Equal(t, http.StatusUnauthorized, r.status)
		require.Contains(t, string(r.body), "уже использована")
	})
	t.Run("IframeURLPastExpiry", func(t *testing.T) {
		r := env.do(http.MethodPost, "/api/widget/v1/session", map[string]string{"X-Auth-Token": env.amoToken(1001, "smile", 55)}, nil)
		require.Equal(t, http.StatusOK, r.status)
		late := r.json(t)["iframe_url"].(string)
		env.now.Add(int64(widgetauth.TicketTTL + time.Minute))
		page := env.do(http.MethodGet, late, nil, nil)
		require.Equal(t, http.StatusUnauthorized, page.status)
		require.Contains(t, string(page.body), "устарела")
	})
	t.Run("FrameableByAmoCRMOnly", func(t *testing.T) {
		_, _ = env.open(1001, "smile", 55)
		r := env.do(http.MethodGet, "/widget/app?ticket=x", nil, nil)
		csp := r.header.Get("Content-Security-Policy")
		require.Contains(t, csp, "frame-ancestors https://*.amocrm.ru https://*.amocrm.com https://*.kommo.com http://sandbox.local:8090")
	})
	t.Run("SessionWorks", func(t *testing.T) {
		r := env.do(http.MethodGet, "/api/app/v1/state", bearer(session), nil)
		require.Equal(t, http.StatusOK, r.status, string(r.body))
		st := r.json(t)
		require.Equal(t, "smile", st["account"].(map[string]any)["subdomain"])
		require.Equal(t, "trial", st["subscription"].(map[string]any)["status"])
		require.Contains(t, st["problems"].(map[string]any)["integration"], "Заполните данные установки")
	})
	t.Run("ErrNoSession", func(t *testing.T) {
		r := env.do(http.MethodGet, "/api/app/v1/state", nil, nil)
		require.Equal(t, http.StatusUnauthorized, r.status)
		require.Equal(t, "unauthorized", errCode(t, r))
	})
	t.Run("ErrUnknownAccount", func(t *testing.T) {
		r := env.do(http.MethodPost, "/api/widget/v1/session", map[string]string{"X-Auth-Token": env.amoToken(999, "ghost", 1)}, nil)
		require.Equal(t, http.StatusUnauthorized, r.status)
		require.Equal(t, "unauthorized", errCode(t, r))
	})
	t.Run("ErrReplayedToken", func(t *testing.T) {
		tok := env.amoToken(1001, "smile", 55)
		first := env.do(http.MethodPost, "/api/widget/v1/session", map[string]string{"X-Auth-Token": tok}, nil)
		require.Equal(t, http.StatusOK, first.status)
		again := env.do(http.MethodPost, "/api/widget/v1/session", map[string]string{"X-Auth-Token": tok}, nil)
		require.Equal(t, http.StatusUnauthorized, again.status)
	})
}

func TestWidgetCORS(t *testing.T) {
	t.Parallel()
	env := newWidgetEnv(t)
	for origin, allowed := range map[string]bool{
		"https://smile.amocrm.ru":    true,
		"https://smile.kommo.com":    true,
		"http://sandbox.local:8090":  true,
		"https://evil.com":           false,
		"http://smile.amocrm.ru":     false,
		"https://a.b.amocrm.ru":      false,
		"https://amocrm.ru.evil.com": false,
	} {
		r := env.do(http.MethodOptions, "/api/widget/v1/session", map[string]string{
			"Origin": origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "X-Auth-Token"}, nil)
		if allowed {
			require.Equal(t, origin, r.header.Get("Access-Control-Allow-Origin"), origin)
			require.Contains(t, r.header.Get("Access-Control-Allow-Headers"), "X-Auth-Token")
		} else {
			require.Empty(t, r.header.Get("Access-Control-Allow-Origin"), origin)
		}
	}
}

func TestWidgetAppAPI(t *testing.T) {
	t.Parallel()
	env := newWidgetEnv(t)
	a := env.install(1, "alpha")
	b := env.install(2, "beta")
	_, sa := env.open(1, "alpha", 11)
	_, sb := env.open(2, "beta", 22)

	t.Run("InstallFormValidation", func(t *testing.T) {
		for name, body := range map[string]map[string]any{
			"NoName":       {"name": " ", "phone": "+79161234567", "consent": true},
			"BadPhone":     {"name": "Анна", "phone": "12-34", "consent": true},
			"NoConsent":    {"name": "Анна", "phone": "+79161234567", "consent": false},
			"UnknownField": {"name": "Анна", "phone": "+79161234567", "consent": true, "admin": true},
		} {
			r := env.do(http.MethodPost, "/api/app/v1/install-form", bearer(sa), body)
			require.Equal(t, http.StatusBadRequest, r.status, name)
			require.Equal(t, "invalid", errCode(t, r), name)
		}
		r := env.do(http.MethodPost, "/api/app/v1/databases/token", bearer(sa), map[string]any{})
		require.Equal(t, http.StatusConflict, r.status, "no token before the install form")
	})
	t.Run("InstallFormSaved", func(t *testing.T) {
		r := env.do(http.MethodPost, "/api/app/v1/install-form", bearer(sa), map[string]any{"name": "  Анна   Петрова ", "phone": "8 (916) 123-45-67", "consent": true})
		require.Equal(t, http.StatusOK, r.status, string(r.body))
		acc, err := env.db.AccountByID(context.Background(), a.ID)
		require.NoError(t, err)
		require.Equal(t, "Анна Петрова", acc.ContactName)
		require.Equal(t, "+79161234567", acc.ContactPhone)
		require.EqualValues(t, 11, *acc.ConsentUserID, "consent is recorded with the user who gave it")
		require.NotNil(t, acc.ConsentAt)
	})
	var dbID float64
	t.Run("TokenShownOnce", func(t *testing.T) {
		r := env.do(http.MethodPost, "/api/app/v1/databases/token", bearer(sa), map[string]any{})
		require.Equal(t, http.StatusOK, r.status, string(r.body))
		body := r.json(t)
		require.Regexp(t, `^svz_[A-Za-z0-9_-]{43}$`, body["token"])
		dbID = body["database"].(map[string]any)["id"].(float64)
		st := env.do(http.MethodGet, "/api/app/v1/state", bearer(sa), nil)
		require.NotContains(t, string(st.body), body["token"].(string), "the token is never shown again")
		dbs := st.json(t)["databases"].([]any)
		require.Len(t, dbs, 1)
		require.Equal(t, "Подключение не выполнено", dbs[0].(map[string]any)["connector"].(map[string]any)["label"])
	})
	t.Run("ErrOtherAccountsDatabase", func(t *testing.T) {
		require.Equal(t, http.StatusOK, env.do(http.MethodPost, "/api/app/v1/install-form", bearer(sb), map[string]any{"name": "Борис", "phone": "+79160000000", "consent": true}).status)
		r := env.do(http.MethodPost, "/api/app/v1/databases/token", bearer(sb), map[string]any{"database_id": dbID})
		require.Equal(t, http.StatusNotFound, r.status, "account B cannot rotate account A's token")
		st := env.do(http.MethodGet, "/api/app/v1/state", bearer(sb), nil).json(t)
		require.Empty(t, st["databases"])
	})
	t.Run("EventsScopedAndFiltered", func(t *testing.T) {
		require.NoError(t, env.db.Record(context.Background(), eventlog.Event{AccountID: b.ID, Type: eventlog.TypeError, Severity: eventlog.Error, Message: "секрет бета"}))
		r := env.do(http.MethodGet, "/api/app/v1/events?per_page=100", bearer(sa), nil)
		require.Equal(t, http.StatusOK, r.status)
		require.NotContains(t, string(r.body), "секрет бета")
		body := r.json(t)
		require.EqualValues(t, 3, body["total"]) // install, install form, token

		r = env.do(http.MethodGet, "/api/app/v1/events?type=token_issued", bearer(sa), nil)
		items := r.json(t)["items"].([]any)
		require.Len(t, items, 1)
		require.Equal(t, "Выдан токен", items[0].(map[string]any)["type_label"])
		require.Equal(t, "База 1", items[0].(map[string]any)["database_name"])

		r = env.do(http.MethodGet, "/api/app/v1/events?sort=sideways", bearer(sa), nil)
		require.Equal(t, http.StatusBadRequest, r.status)
		require.Contains(t, string(r.body), "sort")

		st := env.do(http.MethodGet, "/api/app/v1/state", bearer(sb), nil).json(t)
		require.Contains(t, st["problems"].(map[string]any)["events"], "ошибок: 1")
	})
	t.Run("CSV", func(t *testing.T) {
		r := env.do(http.MethodGet, "/api/app/v1/events.csv?sort=asc", bearer(sa), nil)
		require.Equal(t, http.StatusOK, r.status)
		require.Equal(t, "text/csv; charset=utf-8", r.header.Get("Content-Type"))
		lines := strings.Split(strings.TrimSpace(strings.TrimPrefix(string(r.body), "\ufeff")), "\n")
		require.Len(t, lines, 5, "three events and the final line")
		require.Equal(t, "Выгрузка завершена, файл полный. Событий: 3.", lines[4])
		require.Equal(t, "Дата;Тип;Важность;База;Сообщение", lines[0])
		require.Contains(t, lines[1], "Установка виджета")
		require.Contains(t, lines[3], "Выдан токен;Информация;База 1;")
	})
}

func TestDisableHook(t *testing.T) {
	t.Parallel()
	env := newWidgetEnv(t)
	acc := env.install(4242, "gamma")
	_, session := env.open(4242, "gamma", 1)
	sign := func(accountID string) string {
		mac := hmac.New(sha256.New, []byte(testSecret))
		mac.Write([]byte(testClientID + "|" + accountID))
		return hex.EncodeToString(mac.Sum(nil))
	}
	hook := func(accountID, clientUUID, signature string) reply {
		q := url.Values{"account_id": {accountID}, "client_uuid": {clientUUID}, "signature": {signature}}
		return env.do(http.MethodGet, "/oauth/amocrm/disable?"+q.Encode(), nil, nil)
	}
	require.Equal(t, http.StatusForbidden, hook("4242", testClientID, sign("4243")).status, "signature for another account")
	require.Equal(t, http.StatusForbidden, hook("4242", testClientID, "zz").status)
	require.Equal(t, http.StatusForbidden, hook("4242", "other-client", sign("4242")).status)
	require.Equal(t, http.StatusBadRequest, hook("abc", testClientID, sign("abc")).status)
	got, err := env.db.AccountByID(context.Background(), acc.ID)
	require.NoError(t, err)
	require.Equal(t, store.AccountActive, got.Status, "rejected hooks change nothing")

	// A valid signature proves only that amoCRM once sent it (it never
	// changes): the hook queues a confirmation with amoCRM and uninstalls
	// nothing by itself (backend/install tests the confirmation).
	require.Equal(t, http.StatusOK, hook("4242", testClientID, sign("4242")).status)
	got, err = env.db.AccountByID(context.Background(), acc.ID)
	require.NoError(t, err)
	require.Equal(t, store.AccountActive, got.Status)
	var confirmations int
	require.NoError(t, env.db.SQL().QueryRow(`SELECT count(*) FROM outbox WHERE task_type = 'install:confirm-disable'`).Scan(&confirmations))
	require.Equal(t, 1, confirmations)
	require.Equal(t, http.StatusOK, hook("4242", testClientID, sign("4242")).status, "a repeat within the minute")
	require.NoError(t, env.db.SQL().QueryRow(`SELECT count(*) FROM outbox WHERE task_type = 'install:confirm-disable'`).Scan(&confirmations))
	require.Equal(t, 1, confirmations, "is the same confirmation")
	r := env.do(http.MethodGet, "/api/app/v1/state", bearer(session), nil)
	require.Equal(t, http.StatusOK, r.status, "the session still works until amoCRM confirms")
}

func TestOAuthCallbackValidation(t *testing.T) {
	t.Parallel()
	env := newWidgetEnv(t)
	for name, q := range map[string]string{
		"NoCode":         "referer=smile.amocrm.ru",
		"NoReferer":      "code=abc",
		"RefererWithURL": "code=abc&referer=https://smile.amocrm.ru/x",
		"RefererOneDot":  "code=abc&referer=amocrm.ru",
	} {
		r := env.do(http.MethodGet, "/oauth/amocrm/callback?"+q, nil, nil)
		require.Equal(t, http.StatusBadRequest, r.status, name)
		require.Equal(t, "invalid", errCode(t, r), name)
	}
	r := env.do(http.MethodGet, "/oauth/amocrm/callback?error=access_denied", nil, nil)
	require.Equal(t, http.StatusBadRequest, r.status)
	require.Contains(t, string(r.body), "Доступ к amoCRM не предоставлен")
	r = env.do(http.MethodGet, "/oauth/amocrm/callback?code=abc&referer=smile.amocrm.ru&from_widget=1&platform=1", nil, nil)
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	var pending int
	require.NoError(t, env.db.SQL().QueryRow(`SELECT count(*) FROM outbox WHERE task_type = 'install:complete'`).Scan(&pending))
	require.Equal(t, 1, pending, "the install is recorded for the task")
	var payload string
	require.NoError(t, env.db.SQL().QueryRow(`SELECT payload::text FROM outbox WHERE task_type = 'install:complete'`).Scan(&payload))
	require.NotContains(t, payload, `"abc"`, "the code is sealed at rest")

}

func newQueueClient(t *testing.T) *asynq.Client {
	o := redistest.New(t)
	c := asynq.NewClient(asynq.RedisClientOpt{Addr: o.Addr, DB: o.DB})
	t.Cleanup(func() { _ = c.Close() })
	return c
}
