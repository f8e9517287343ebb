package sandbox_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/svyazka/svyazka/amocrm/sandbox"
)

const (
	testClientID     = "0b0832f6-1111-4222-8333-444455556666"
	testClientSecret = "test-secret"
	testRedirect     = "https://widget.svyazka.example/amocrm/install"
)

type env struct {
	t     *testing.T
	sb    *sandbox.Sandbox
	srv   *httptest.Server
	clock *sandbox.ManualClock
}

type envOption func(*sandbox.Config)

// newEnv starts a sandbox on a manual clock with the rate limit off unless
// an option turns it on.
func newEnv(t *testing.T, opts ...envOption) *env {
	t.Helper()
	clock := sandbox.NewManualClock(time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC))
	cfg := sandbox.Config{
		ClientID: testClientID, ClientSecret: testClientSecret, RedirectURI: testRedirect,
		Clock: clock, RateLimitPerSecond: -1,
	}
	for _, o := range opts {
		o(&cfg)
	}
	sb, err := sandbox.New(cfg)
	require.NoError(t, err)
	srv := httptest.NewServer(sb.Handler())
	t.Cleanup(func() {
		srv.Close()
		require.NoError(t, sb.Close())
	})
	return &env{t: t, sb: sb, srv: srv, clock: clock}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(r.body, &m), string(r.body))
	return m
}

// do sends a request; body may be nil, a string (sent as is) or a value
// marshalled to JSON.
func (e *env) do(method, path, token string, body any) response {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		data, err := json.Marshal(b)
		require.NoError(e.t, err)
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rd)
	require.NoError(e.t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(e.t, err)
	return response{status: resp.StatusCode, header: resp.Header, body: data}
}

type tokens struct {
	Access  string `json:"access_token"`
	Refresh string `json:"refresh_token"`
}

// account creates an account and exchanges its code for tokens.
func (e *env) account(opts sandbox.AccountOptions) (sandbox.AccountInfo, tokens) {
	e.t.Helper()
	info, err := e.sb.CreateAccount(opts)
	require.NoError(e.t, err)
	resp := e.do(http.MethodPost, "/oauth2/access_token", "", map[string]string{
		"client_id": testClientID, "client_secret": testClientSecret, "grant_type": "authorization_code",
		"code": info.Code, "redirect_uri": testRedirect,
	})
	require.Equal(e.t, http.StatusOK, resp.status, string(resp.body))
	var tk tokens
	require.NoError(e.t, json.Unmarshal(resp.body, &tk))
	return info, tk
}

// tokenFor issues a token pair for an arbitrary user of the account.
func (e *env) userToken(accountID, userID int64) string {
	e.t.Helper()
	tok, err := e.sb.AccessTokenForUser(accountID, userID)
	require.NoError(e.t, err)
	return tok
}

func dig(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, _ := v.(map[string]any)
			v = m[k]
		case int:
			a, _ := v.([]any)
			if k >= len(a) {
				return nil
			}
			v = a[k]
		}
	}
	return v
}

func num(v any) int64 {
	f, _ := v.(float64)
	return int64(f)
}

func jsonUnmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }

var e0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func stringsReader(s string) io.Reader { return strings.NewReader(s) }
