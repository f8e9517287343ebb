package sandbox_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"

	"github.com/svyazka/svyazka/amocrm/sandbox"
)

func (e *env) postForm(path string, form url.Values) response {
	e.t.Helper()
	resp, err := http.Post(e.srv.URL+path, "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
	require.NoError(e.t, err)
	defer resp.Body.Close()
	var body []byte
	body, err = readAll(resp)
	require.NoError(e.t, err)
	return response{status: resp.StatusCode, header: resp.Header, body: body}
}

func readAll(resp *http.Response) ([]byte, error) { return io.ReadAll(resp.Body) }

func TestAccessTokenExchange(t *testing.T) {
	t.Parallel()
	grant := func(code string) map[string]string {
		return map[string]string{"client_id": testClientID, "client_secret": testClientSecret, "grant_type": "authorization_code", "code": code, "redirect_uri": testRedirect}
	}
	tests := []struct {
		name     string
		prepare  func(e *env, code string) // runs before the exchange
		mutate   func(body map[string]string)
		form     bool
		status   int
		wantHint string
	}{
		{name: "JSON", status: http.StatusOK},
		{name: "FormEncoded", form: true, status: http.StatusOK},
		{name: "BadCode", mutate: func(b map[string]string) { b["code"] = "nope" }, status: http.StatusBadRequest, wantHint: "Cannot decrypt the authorization code"},
		{name: "ReusedCode", prepare: func(e *env, code string) {
			require.Equal(t, http.StatusOK, e.do(http.MethodPost, "/oauth2/access_token", "", grant(code)).status)
		}, status: http.StatusBadRequest, wantHint: "Authorization code has been revoked"},
		{name: "ExpiredCode", prepare: func(e *env, _ string) { e.clock.Advance(sandbox.CodeTTL + time.Second) }, status: http.StatusBadRequest, wantHint: "Authorization code has expired"},
		{name: "RedirectNotExact", mutate: func(b map[string]string) { b["redirect_uri"] = testRedirect + "/" }, status: http.StatusBadRequest, wantHint: "Invalid redirect uri"},
		{name: "WrongSecret", mutate: func(b map[string]string) { b["client_secret"] = "x" }, status: http.StatusBadRequest, wantHint: "Client authentication failed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			info, err := e.sb.CreateAccount(sandbox.AccountOptions{Subdomain: "clinic"})
			require.NoError(t, err)
			if tc.prepare != nil {
				tc.prepare(e, info.Code)
			}
			body := grant(info.Code)
			if tc.mutate != nil {
				tc.mutate(body)
			}
			var resp response
			if tc.form {
				form := url.Values{}
				for k, v := range body {
					form.Set(k, v)
				}
				resp = e.postForm("/oauth2/access_token", form)
			} else {
				resp = e.do(http.MethodPost, "/oauth2/access_token", "", body)
			}
			require.Equal(t, tc.status, resp.status, string(resp.body))
			m := resp.json(t)
			if tc.status != http.StatusOK {
				require.Equal(t, "application/problem+json", resp.header.Get("Content-Type"))
				require.Equal(t, tc.wantHint, m["hint"])
				require.Equal(t, "https://developers.amocrm.ru/v3/errors/OAuthProblemJson", m["type"])
				require.EqualValues(t, 400, m["status"])
				return
			}
			require.Equal(t, "Bearer", m["token_type"])
			require.EqualValues(t, 86400, m["expires_in"])
			require.EqualValues(t, e.clock.Now().Unix(), m["server_time"])
			require.NotEmpty(t, m["refresh_token"])
			claims := jwt.MapClaims{}
			_, _, err = jwt.NewParser().ParseUnverified(m["access_token"].(string), claims)
			require.NoError(t, err)
			require.Equal(t, "api-b.amocrm.ru", claims["api_domain"])
			require.EqualValues(t, info.AccountID, claims["account_id"])
			require.EqualValues(t, e.clock.Now().Add(sandbox.AccessTokenTTL).Unix(), claims["exp"])
		})
	}
}

func TestRefreshRotation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	info, first := e.account(sandbox.AccountOptions{Subdomain: "rotate"})
	refresh := func(token string) response {
		return e.do(http.MethodPost, "/oauth2/access_token", "", map[string]string{
			"client_id": testClientID, "client_secret": testClientSecret, "grant_type": "refresh_token",
			"refresh_token": token, "redirect_uri": testRedirect,
		})
	}

	resp := refresh(first.Refresh)
	require.Equal(t, http.StatusOK, resp.status, string(resp.body))
	var second tokens
	require.NoError(t, json.Unmarshal(resp.body, &second))
	require.NotEqual(t, first.Refresh, second.Refresh)

	reused := refresh(first.Refresh)
	require.Equal(t, http.StatusBadRequest, reused.status)
	require.Equal(t, "Token has been revoked", reused.json(t)["hint"])

	sub := e.doHeader(http.MethodGet, "/oauth2/account/current/subdomain", map[string]string{"X-Refresh-Token": second.Refresh})
	require.Equal(t, http.StatusOK, sub.status)
	require.Empty(t, cmp.Diff(map[string]any{"id": float64(info.AccountID), "subdomain": "rotate", "domain": "amocrm.ru", "top_level_domain": "ru"}, sub.json(t)))

	require.Equal(t, http.StatusOK, e.do(http.MethodGet, "/api/v4/account", second.Access, nil).status)
	e.clock.Advance(sandbox.AccessTokenTTL)
	expired := e.do(http.MethodGet, "/api/v4/account", second.Access, nil)
	require.Equal(t, http.StatusUnauthorized, expired.status)
	require.Equal(t, "application/problem+json", expired.header.Get("Content-Type"))
	require.Equal(t, "Unauthorized", expired.json(t)["title"])

	e.clock.Advance(sandbox.RefreshTokenTTL)
	late := refresh(second.Refresh)
	require.Equal(t, http.StatusBadRequest, late.status)
	require.Equal(t, "Token has expired", late.json(t)["hint"])
}

func (e *env) doHeader(method, path string, header map[string]string) response {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, nil)
	require.NoError(e.t, err)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	body, err := readAll(resp)
	require.NoError(e.t, err)
	return response{status: resp.StatusCode, header: resp.Header, body: body}
}

func TestInstallCallsRedirectURI(t *testing.T) {
	t.Parallel()
	got := make(chan url.Values, 1)
	widget := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		require.Equal(t, http.MethodGet, r.Method)
		got <- r.URL.Query()
		w.WriteHeader(http.StatusTeapot)
	}))
	t.Cleanup(widget.Close)
	e := newEnv(t, func(c *sandbox.Config) { c.RedirectURI = widget.URL + "/install" })
	info, err := e.sb.CreateAccount(sandbox.AccountOptions{Subdomain: "dental"})
	require.NoError(t, err)

	resp := e.do(http.MethodPost, "/_sandbox/accounts/"+strconv.FormatInt(info.AccountID, 10)+"/install", "", nil)
	require.Equal(t, http.StatusOK, resp.status)
	require.EqualValues(t, http.StatusTeapot, resp.json(t)["status"])

	q := <-got
	require.Equal(t, "dental.amocrm.ru", q.Get("referer"))
	require.Equal(t, "1", q.Get("platform"))
	require.True(t, q.Has("from_widget"))
	exchange := e.do(http.MethodPost, "/oauth2/access_token", "", map[string]string{
		"client_id": testClientID, "client_secret": testClientSecret, "grant_type": "authorization_code",
		"code": q.Get("code"), "redirect_uri": widget.URL + "/install",
	})
	require.Equal(t, http.StatusOK, exchange.status, string(exchange.body))
}

func TestInstallUnreachableReportsError(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *sandbox.Config) { c.RedirectURI = "http://127.0.0.1:1/install" })
	info, err := e.sb.CreateAccount(sandbox.AccountOptions{})
	require.NoError(t, err)
	res, err := e.sb.Install(context.Background(), info.AccountID)
	require.NoError(t, err)
	require.Zero(t, res.Status)
	require.NotEmpty(t, res.Error)
}

func TestUninstallRevokesAndCallsHook(t *testing.T) {
	t.Parallel()
	got := make(chan url.Values, 1)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got <- r.URL.Query() }))
	t.Cleanup(hook.Close)
	e := newEnv(t, func(c *sandbox.Config) { c.DisableHookURL = hook.URL + "/amocrm/disabled" })
	info, tk := e.account(sandbox.AccountOptions{})
	require.Equal(t, http.StatusOK, e.do(http.MethodGet, "/api/v4/account", tk.Access, nil).status)

	resp := e.do(http.MethodPost, "/_sandbox/accounts/"+strconv.FormatInt(info.AccountID, 10)+"/uninstall", "", nil)
	require.Equal(t, http.StatusOK, resp.status)

	require.Equal(t, http.StatusUnauthorized, e.do(http.MethodGet, "/api/v4/account", tk.Access, nil).status)
	refresh := e.do(http.MethodPost, "/oauth2/access_token", "", map[string]string{
		"client_id": testClientID, "client_secret": testClientSecret, "grant_type": "refresh_token",
		"refresh_token": tk.Refresh, "redirect_uri": testRedirect,
	})
	require.Equal(t, http.StatusBadRequest, refresh.status)

	q := <-got
	id := strconv.FormatInt(info.AccountID, 10)
	require.Equal(t, id, q.Get("account_id"))
	require.Equal(t, testClientID, q.Get("client_uuid"))
	require.Equal(t, sandbox.DisableHookSignature(testClientID, testClientSecret, id), q.Get("signature"))
	require.Len(t, q.Get("signature"), 64)
}

func TestWidgetToken(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	info, err := e.sb.CreateAccount(sandbox.AccountOptions{Subdomain: "widgets"})
	require.NoError(t, err)
	tests := []struct {
		name    string
		opts    map[string]any
		wantErr error
	}{
		{name: "OK", opts: map[string]any{}},
		{name: "Expired", opts: map[string]any{"expired": true}, wantErr: jwt.ErrTokenExpired},
		{name: "WrongAud", opts: map[string]any{"wrong_aud": true}, wantErr: jwt.ErrTokenInvalidAudience},
		{name: "BadSignature", opts: map[string]any{"bad_signature": true}, wantErr: jwt.ErrTokenSignatureInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			resp := e.do(http.MethodPost, "/_sandbox/accounts/"+strconv.FormatInt(info.AccountID, 10)+"/widget-token", "", tc.opts)
			require.Equal(t, http.StatusOK, resp.status, string(resp.body))
			raw := resp.json(t)["token"].(string)
			claims := jwt.MapClaims{}
			_, err := jwt.ParseWithClaims(raw, claims, func(*jwt.Token) (any, error) { return []byte(testClientSecret), nil },
				jwt.WithValidMethods([]string{"HS256"}),
				jwt.WithAudience("https://widget.svyazka.example"),
				jwt.WithTimeFunc(e.clock.Now),
				jwt.WithIssuedAt(),
			)
			if tc.wantErr != nil {
				require.ErrorIs(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, "https://widgets.amocrm.ru", claims["iss"])
			require.Equal(t, testClientID, claims["client_uuid"])
			require.Equal(t, "widgets", claims["subdomain"])
			require.EqualValues(t, info.AccountID, claims["account_id"])
			require.EqualValues(t, info.AdminUserID, claims["user_id"])
			require.Equal(t, true, claims["is_admin"])
			require.EqualValues(t, 1800, num(claims["exp"])-num(claims["iat"]))
			require.Equal(t, claims["iat"], claims["nbf"])
			require.Len(t, claims["jti"], 36)
		})
	}
}
