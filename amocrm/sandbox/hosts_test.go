package sandbox_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/svyazka/svyazka/amocrm"
	"github.com/svyazka/svyazka/amocrm/sandbox"
)

// TestHostUsesSharedDomains: a Host header names an account exactly when
// amocrm.ParseAccountHost accepts it, so the sandbox and the client agree
// on amoCRM's domains. A host that names alpha refuses beta's token.
func TestHostUsesSharedDomains(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.account(sandbox.AccountOptions{Subdomain: "alpha"})
	_, beta := e.account(sandbox.AccountOptions{Subdomain: "beta"})
	status := func(host string) int {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, e.srv.URL+"/api/v4/account", nil)
		require.NoError(t, err)
		req.Host = host
		req.Header.Set("Authorization", "Bearer "+beta.Access)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, domain := range amocrm.Domains {
		require.Equal(t, http.StatusUnauthorized, status("alpha."+domain), domain)
	}
	require.Equal(t, http.StatusUnauthorized, status("ALPHA.amocrm.ru:443"), "case and port do not matter")
	for _, host := range []string{"alpha.evil.com", "x.alpha.amocrm.ru", "alpha.amocrm.ru.evil.com", "amocrm.ru"} {
		require.Equal(t, http.StatusOK, status(host), "%s names no account; the token decides", host)
	}
}
