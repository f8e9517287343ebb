package sandbox_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/svyazka/svyazka/amocrm/sandbox"
)

func TestControlAPI(t *testing.T) {
	t.Parallel()
	e := newEnv(t)

	resp := e.do(http.MethodPost, "/_sandbox/accounts", "", map[string]any{"subdomain": "ctl", "users": 3})
	require.Equal(t, http.StatusCreated, resp.status, string(resp.body))
	m := resp.json(t)
	require.Equal(t, "ctl", m["subdomain"])
	require.NotEmpty(t, m["code"])
	require.NotZero(t, m["admin_user_id"])
	accountID := num(m["account_id"])
	require.Equal(t, http.StatusBadRequest, e.do(http.MethodPost, "/_sandbox/accounts", "", map[string]any{"subdomain": "ctl"}).status, "taken subdomain")

	user := e.do(http.MethodPost, fmt.Sprintf("/_sandbox/accounts/%d/users", accountID), "", map[string]any{"name": "Inactive", "is_active": false})
	require.Equal(t, http.StatusCreated, user.status)
	require.Equal(t, http.StatusNotFound, e.do(http.MethodPost, "/_sandbox/accounts/1/users", "", map[string]any{"name": "x"}).status)

	adv := e.do(http.MethodPost, "/_sandbox/clock/advance", "", map[string]any{"seconds": 3600})
	require.Equal(t, http.StatusOK, adv.status)
	require.Equal(t, "2025-03-01T13:00:00Z", adv.json(t)["now"])

	exchange := e.do(http.MethodPost, "/oauth2/access_token", "", map[string]string{
		"client_id": testClientID, "client_secret": testClientSecret, "grant_type": "authorization_code",
		"code": m["code"].(string), "redirect_uri": testRedirect,
	})
	require.Equal(t, http.StatusBadRequest, exchange.status, "the control code lives 20 minutes")

	require.Equal(t, http.StatusNotFound, e.do(http.MethodGet, "/_sandbox/nope", "", nil).status)
}

func TestAdvanceNeedsManualClock(t *testing.T) {
	t.Parallel()
	sb, err := sandbox.New(sandbox.Config{ClientID: "id", ClientSecret: "s", RedirectURI: "https://x.example/"})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, sb.Close()) })
	srv := httptest.NewServer(sb.Handler())
	t.Cleanup(srv.Close)
	resp, err := http.Post(srv.URL+"/_sandbox/clock/advance", "application/json", nil)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusConflict, resp.StatusCode)

	_, err = sandbox.New(sandbox.Config{ClientID: "id"})
	require.ErrorIs(t, err, sandbox.ErrInvalid)
}

func TestWebView(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	info, tk := e.account(sandbox.AccountOptions{Subdomain: "view"})
	require.Equal(t, http.StatusOK, e.do(http.MethodPost, "/api/v4/leads/complex", tk.Access, []map[string]any{{"name": "Карточка <b>", "_embedded": map[string]any{"contacts": []map[string]any{{"name": "Анна"}}}}}).status)

	index := get(t, e.srv.URL+"/")
	require.Contains(t, index, "view")
	page := get(t, fmt.Sprintf("%s/accounts/%d", e.srv.URL, info.AccountID))
	require.Contains(t, page, "Карточка &lt;b&gt;")
	require.Contains(t, page, "Анна")
	require.Contains(t, page, "Неразобранное")
	require.NotContains(t, page, "cdn")
}

func get(t *testing.T, target string) string {
	t.Helper()
	resp, err := http.Get(target)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(body)
}

func TestSnapshotSurvivesRestart(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "sandbox.json")
	clock := sandbox.NewManualClock(e0)
	cfg := sandbox.Config{ClientID: testClientID, ClientSecret: testClientSecret, RedirectURI: testRedirect, SnapshotPath: path, Clock: clock, RateLimitPerSecond: -1}

	first, err := sandbox.New(cfg)
	require.NoError(t, err)
	info, err := first.CreateAccount(sandbox.AccountOptions{Subdomain: "persist"})
	require.NoError(t, err)
	token, err := first.AccessTokenForUser(info.AccountID, info.AdminUserID)
	require.NoError(t, err)
	srv := httptest.NewServer(first.Handler())
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/api/v4/contacts", stringsReader(`[{"name":"Saved"}]`))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	srv.Close()
	require.NoError(t, first.Close())

	second, err := sandbox.New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, second.Close()) })
	srv2 := httptest.NewServer(second.Handler())
	t.Cleanup(srv2.Close)
	req, _ = http.NewRequest(http.MethodGet, srv2.URL+"/api/v4/contacts?query=Saved", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
}
