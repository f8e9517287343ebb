package sandbox_test

import (
	"fmt"
	"math"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/svyazka/svyazka/amocrm/sandbox"
)

// TestControlBounds: the control API refuses absurd sizes with a 400 in
// its {"error": …} shape instead of allocating or hanging.
func TestControlBounds(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	refused := func(t *testing.T, method, path string, body any, want string) {
		t.Helper()
		resp := e.do(method, path, "", body)
		require.Equal(t, http.StatusBadRequest, resp.status, string(resp.body))
		require.Contains(t, resp.json(t)["error"], want)
	}
	long := strings.Repeat("я", sandbox.MaxNameLength)

	t.Run("UsersPerCall", func(t *testing.T) {
		refused(t, http.MethodPost, "/_sandbox/accounts", map[string]any{"users": sandbox.MaxUsersPerAccount + 1}, "users must be between 0 and 1000")
		refused(t, http.MethodPost, "/_sandbox/accounts", map[string]any{"users": 1_000_000}, "users must be between 0 and 1000")
		refused(t, http.MethodPost, "/_sandbox/accounts", map[string]any{"users": -1}, "users must be between 0 and 1000")
	})
	t.Run("UsersPerAccount", func(t *testing.T) {
		resp := e.do(http.MethodPost, "/_sandbox/accounts", "", map[string]any{"subdomain": "full", "users": sandbox.MaxUsersPerAccount})
		require.Equal(t, http.StatusCreated, resp.status, string(resp.body))
		path := fmt.Sprintf("/_sandbox/accounts/%d/users", num(resp.json(t)["account_id"]))
		refused(t, http.MethodPost, path, map[string]any{"name": "One too many"}, "1000 users already")
	})
	t.Run("NameLength", func(t *testing.T) {
		refused(t, http.MethodPost, "/_sandbox/accounts", map[string]any{"name": long}, "account name")
		resp := e.do(http.MethodPost, "/_sandbox/accounts", "", map[string]any{"subdomain": "names"})
		require.Equal(t, http.StatusCreated, resp.status, string(resp.body))
		path := fmt.Sprintf("/_sandbox/accounts/%d/users", num(resp.json(t)["account_id"]))
		refused(t, http.MethodPost, path, map[string]any{"name": long}, "user name")
		refused(t, http.MethodPost, path, map[string]any{"email": long + "@x.example"}, "user e-mail")
	})
	t.Run("BodySize", func(t *testing.T) {
		refused(t, http.MethodPost, "/_sandbox/accounts", `{"name":"`+strings.Repeat("a", 1<<20)+`"}`, "request body too large")
	})
	t.Run("Faults", func(t *testing.T) {
		refused(t, http.MethodPost, "/_sandbox/faults", map[string]any{"rate_5xx": 1.5}, "rate_5xx must be between 0 and 1")
		refused(t, http.MethodPost, "/_sandbox/faults", map[string]any{"rate_429": -0.1}, "rate_429 must be between 0 and 1")
		refused(t, http.MethodPost, "/_sandbox/faults", map[string]any{"latency_ms": math.MaxInt64}, "latency_ms must be between 0 and 30000")
		refused(t, http.MethodPost, "/_sandbox/faults", map[string]any{"latency_ms": -1}, "latency_ms must be between 0 and 30000")
		require.Equal(t, http.StatusOK, e.do(http.MethodPost, "/_sandbox/faults", "", map[string]any{"latency_ms": 0}).status)
	})
	t.Run("ClockAdvance", func(t *testing.T) {
		refused(t, http.MethodPost, "/_sandbox/clock/advance", map[string]any{"seconds": -1}, "seconds must be between 0 and")
		refused(t, http.MethodPost, "/_sandbox/clock/advance", map[string]any{"seconds": 1e300}, "seconds must be between 0 and")
	})
}

// TestAPIBounds: the API emulation refuses oversized bodies and pages in
// amoCRM's problem+json shape (the OAuth endpoint in its OAuth one).
func TestAPIBounds(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, tk := e.account(sandbox.AccountOptions{Subdomain: "bounds"})

	t.Run("BodySize", func(t *testing.T) {
		resp := e.do(http.MethodPost, "/api/v4/contacts", tk.Access, `[{"name":"`+strings.Repeat("a", 8<<20)+`"}]`)
		require.Equal(t, http.StatusBadRequest, resp.status)
		require.Equal(t, "application/problem+json", resp.header.Get("Content-Type"))
		require.Equal(t, "Request body exceeds 8388608 bytes", resp.json(t)["detail"])
	})
	t.Run("OAuthBodySize", func(t *testing.T) {
		resp := e.do(http.MethodPost, "/oauth2/access_token", "", `{"client_id":"`+strings.Repeat("a", 64<<10)+`"}`)
		require.Equal(t, http.StatusBadRequest, resp.status)
		require.Equal(t, "Request body too large", resp.json(t)["hint"])
	})
	t.Run("PageLimit", func(t *testing.T) {
		for _, path := range []string{"/api/v4/contacts?limit=251", "/api/v4/leads?limit=251", "/api/v4/users?limit=251"} {
			resp := e.do(http.MethodGet, path, tk.Access, nil)
			require.Equal(t, http.StatusUnprocessableEntity, resp.status, path)
			require.Equal(t, "Limit 250 per page", resp.json(t)["detail"], path)
		}
		require.Equal(t, http.StatusNoContent, e.do(http.MethodGet, "/api/v4/contacts?limit=250", tk.Access, nil).status, "250 is allowed: an empty page")
	})
	t.Run("HugePage", func(t *testing.T) {
		require.Equal(t, http.StatusOK, e.do(http.MethodPost, "/api/v4/leads", tk.Access, []map[string]any{{"name": "x"}}).status)
		path := fmt.Sprintf("/api/v4/leads?limit=250&page=%d", math.MaxInt64)
		require.Equal(t, http.StatusNoContent, e.do(http.MethodGet, path, tk.Access, nil).status)
	})
}
