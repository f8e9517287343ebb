package httpapi_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/svyazka/svyazka/backend/httpapi"
	"github.com/svyazka/svyazka/backend/metrics"
	"github.com/svyazka/svyazka/backend/store"
)

// raw sends a request with a body exactly as given; path is relative to
// the server or a full URL.
func (e *widgetEnv) raw(method, path string, headers map[string]string, body io.Reader) reply {
	e.t.Helper()
	u := path
	if !strings.HasPrefix(path, "http") {
		u = e.ts.URL + path
	}
	req, err := http.NewRequest(method, u, body)
	require.NoError(e.t, err)
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(e.t, err)
	return reply{resp.StatusCode, resp.Header, b}
}

func outboxCount(t *testing.T, db *store.DB, taskType string) int {
	t.Helper()
	var n int
	require.NoError(t, db.SQL().QueryRow(`SELECT count(*) FROM outbox WHERE task_type = $1`, taskType).Scan(&n))
	return n
}

func TestCallbackRefusesForeignHosts(t *testing.T) {
	t.Parallel()
	env := newWidgetEnv(t)
	for _, ref := range []string{"127.0.0.1", "169.254.169.254", "evil.example.com", "clinic.amocrm.ru.evil.com",
		"a.b.amocrm.ru", "clinic.amocrm.ru:8443", "user@clinic.amocrm.ru", "localhost", "[::1]", "clinic.amocrm.ru/x"} {
		r := env.do(http.MethodGet, "/oauth/amocrm/callback?"+url.Values{"code": {"abc"}, "referer": {ref}}.Encode(), nil, nil)
		require.Equal(t, http.StatusBadRequest, r.status, ref)
		require.Equal(t, "invalid", errCode(t, r), ref)
	}
	require.Zero(t, outboxCount(t, env.db, "install:complete"), "no install task, so no token exchange with our secret")
	for _, ref := range []string{"clinic.amocrm.ru", "Clinic.AmoCRM.ru", "clinic.kommo.com", "clinic.amocrm.com"} {
		r := env.do(http.MethodGet, "/oauth/amocrm/callback?"+url.Values{"code": {"abc"}, "referer": {ref}}.Encode(), nil, nil)
		require.Equal(t, http.StatusOK, r.status, ref)
	}
}

func TestCallbackRateLimited(t *testing.T) {
	t.Parallel()
	env := newWidgetEnv(t)
	accepted, limited := 0, 0
	for i := range 300 {
		// A forged X-Forwarded-For must not buy a fresh per-IP budget.
		r := env.do(http.MethodGet, "/oauth/amocrm/callback?code=c&referer=smile.amocrm.ru", map[string]string{"X-Forwarded-For": "10.0.0." + string(rune('0'+i%10))}, nil)
		switch r.status {
		case http.StatusOK:
			accepted++
		case http.StatusTooManyRequests:
			limited++
			require.Equal(t, "rate_limited", errCode(t, r))
			require.NotEmpty(t, r.header.Get("Retry-After"))
		default:
			t.Fatalf("unexpected status %d: %s", r.status, r.body)
		}
	}
	require.Equal(t, httpapi.CallbackPerIP.Burst, accepted, "one IP gets its burst, whatever X-Forwarded-For says")
	require.Equal(t, 300-accepted, limited)
	require.Equal(t, accepted, outboxCount(t, env.db, "install:complete"), "refused calls cost no exchange")
}

func TestSessionVoidAfterReinstall(t *testing.T) {
	t.Parallel()
	env := newWidgetEnv(t)
	env.install(5151, "delta")
	_, old := env.open(5151, "delta", 3)
	require.Equal(t, http.StatusOK, env.do(http.MethodGet, "/api/app/v1/state", bearer(old), nil).status)

	env.install(5151, "delta") // reinstall: a new generation
	r := env.do(http.MethodGet, "/api/app/v1/state", bearer(old), nil)
	require.Equal(t, http.StatusUnauthorized, r.status, "a session from before the reinstall is void")
	require.Equal(t, "unauthorized", errCode(t, r))
	_, fresh := env.open(5151, "delta", 3)
	require.Equal(t, http.StatusOK, env.do(http.MethodGet, "/api/app/v1/state", bearer(fresh), nil).status)
}

func TestDatabasesNeedAdminAndAreCapped(t *testing.T) {
	t.Parallel()
	env := newWidgetEnv(t)
	env.install(6161, "eps")
	_, admin := env.open(6161, "eps", 1)
	require.Equal(t, http.StatusOK, env.do(http.MethodPost, "/api/app/v1/install-form", bearer(admin), map[string]any{"name": "Ева", "phone": "+79160000001", "consent": true}).status)

	// An ordinary user's session, through the real widget path.
	r := env.do(http.MethodPost, "/api/widget/v1/session", map[string]string{"X-Auth-Token": env.amoTokenAs(6161, "eps", 2, false)}, nil)
	require.Equal(t, http.StatusOK, r.status)
	page := env.do(http.MethodGet, r.json(t)["iframe_url"].(string), nil, nil)
	user := string(sessionMeta.FindSubmatch(page.body)[1])

	r = env.do(http.MethodPost, "/api/app/v1/databases/token", bearer(user), map[string]any{})
	require.Equal(t, http.StatusForbidden, r.status)
	require.Equal(t, "forbidden", errCode(t, r))
	st := env.do(http.MethodGet, "/api/app/v1/state", bearer(user), nil)
	require.Equal(t, http.StatusOK, st.status, "users may still look")
	require.Equal(t, false, st.json(t)["user"].(map[string]any)["is_admin"])

	for range 2 {
		require.Equal(t, http.StatusOK, env.do(http.MethodPost, "/api/app/v1/databases/token", bearer(admin), map[string]any{}).status)
	}
	r = env.do(http.MethodPost, "/api/app/v1/databases/token", bearer(admin), map[string]any{})
	require.Equal(t, http.StatusConflict, r.status, "the third database is over the cap of 2")
	require.Contains(t, string(r.body), "максимальное число баз (2)")
	dbs, err := env.db.ListDatabases(context.Background(), mustAccount(t, env, 6161).ID)
	require.NoError(t, err)
	require.Len(t, dbs, 2)
	// Rotating an existing database's token is still allowed at the cap.
	r = env.do(http.MethodPost, "/api/app/v1/databases/token", bearer(admin), map[string]any{"database_id": dbs[0].ID})
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	r = env.do(http.MethodPost, "/api/app/v1/databases/token", bearer(user), map[string]any{"database_id": dbs[0].ID})
	require.Equal(t, http.StatusForbidden, r.status, "a user cannot disconnect the live connector")
}

func mustAccount(t *testing.T, env *widgetEnv, amoID int64) store.Account {
	t.Helper()
	acc, err := env.db.AccountByAmoID(context.Background(), amoID)
	require.NoError(t, err)
	return acc
}

func TestBadInputGetsClearErrors(t *testing.T) {
	t.Parallel()
	env := newWidgetEnv(t)
	env.install(7171, "zeta")
	_, s := env.open(7171, "zeta", 1)
	jsonHeaders := map[string]string{"Authorization": "Bearer " + s, "Content-Type": "application/json"}
	for name, tc := range map[string]struct {
		body   string
		status int
		code   string
		want   string
	}{
		"NULInName":       {`{"name":"Ан\u0000на","phone":"+79161234567","consent":true}`, 400, "invalid", "имя"},
		"InvalidUTF8":     {"{\"name\":\"\xff\xfe\",\"phone\":\"+79161234567\",\"consent\":true}", 400, "invalid", "имя"},
		"NULInPhone":      {`{"name":"Анна","phone":"+7916\u00001234567","consent":true}`, 400, "invalid", "телефон"},
		"WrongType":       {`{"name":"Анна","phone":"+79161234567","consent":"yes"}`, 400, "invalid", "Поле «consent»: ожидается true или false"},
		"TrailingGarbage": {`{"name":"Анна","phone":"+79161234567","consent":true}}`, 400, "invalid", "лишние данные"},
		"SecondObject":    {`{"name":"Анна","phone":"+79161234567","consent":true} {}`, 400, "invalid", "лишние данные"},
		"Truncated":       {`{"name":"Анна"`, 400, "invalid", "оборваны"},
		"Empty":           {``, 400, "invalid", "Пустое тело"},
		"NotObject":       {`[1,2]`, 400, "invalid", "ожидается объект"},
	} {
		t.Run(name, func(t *testing.T) {
			r := env.raw(http.MethodPost, "/api/app/v1/install-form", jsonHeaders, strings.NewReader(tc.body))
			require.Equal(t, tc.status, r.status, string(r.body))
			require.Equal(t, tc.code, errCode(t, r))
			msg := r.json(t)["error"].(map[string]any)["message"].(string)
			require.Contains(t, msg, tc.want)
			for _, leak := range []string{"Go ", "struct", "httpapi", "json:", "installFormRequest"} {
				require.NotContains(t, msg, leak, "no Go internals in messages")
			}
		})
	}
	t.Run("ChunkedBodyOverLimitIs413", func(t *testing.T) {
		// io.MultiReader has no length: the client streams it chunked.
		body := io.MultiReader(strings.NewReader(`{"name":"`), strings.NewReader(strings.Repeat("а", 10<<20)), strings.NewReader(`"}`))
		r := env.raw(http.MethodPost, "/api/app/v1/install-form", jsonHeaders, body)
		require.Equal(t, http.StatusRequestEntityTooLarge, r.status)
		require.Equal(t, "too_large", errCode(t, r))
		require.NotContains(t, string(r.body), "413")
	})
	t.Run("DeclaredBodyOverLimitIs413", func(t *testing.T) {
		r := env.raw(http.MethodPost, "/api/app/v1/install-form", jsonHeaders, strings.NewReader(strings.Repeat(" ", 11<<20)))
		require.Equal(t, http.StatusRequestEntityTooLarge, r.status)
		require.Equal(t, "too_large", errCode(t, r))
	})
	t.Run("RequestIDBounded", func(t *testing.T) {
		long := strings.Repeat("x", 5000)
		r := env.raw(http.MethodGet, "/healthz", map[string]string{"X-Request-ID": long}, nil)
		require.NotEqual(t, long, r.header.Get("X-Request-ID"))
		require.LessOrEqual(t, len(r.header.Get("X-Request-ID")), 64)
		r = env.raw(http.MethodGet, "/healthz", map[string]string{"X-Request-ID": "evil\"id<script>"}, nil)
		require.NotContains(t, r.header.Get("X-Request-ID"), "<")
		r = env.raw(http.MethodGet, "/healthz", map[string]string{"X-Request-ID": "lb-7f3a.9"}, nil)
		require.Equal(t, "lb-7f3a.9", r.header.Get("X-Request-ID"), "a sane id from the load balancer is kept")
	})
}

type failingPinger struct{ err error }

func (f failingPinger) Ping(context.Context) error { return f.err }

func TestReadyzHidesDependencyErrors(t *testing.T) {
	t.Parallel()
	srv, err := httpapi.New(httpapi.Deps{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: metrics.New(),
		Checks: map[string]httpapi.Pinger{"postgres": failingPinger{errors.New(`dial tcp 10.1.2.3:5432: password authentication failed for user "svz_prod"`)}}}, httpapi.Options{})
	require.NoError(t, err)
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	resp, err := http.Get(ts.URL + "/readyz")
	require.NoError(t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	require.Contains(t, string(body), `"postgres"`)
	for _, leak := range []string{"10.1.2.3", "svz_prod", "password", "dial"} {
		require.NotContains(t, string(body), leak)
	}
}
