package amocrm_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"

	"github.com/svyazka/svyazka/amocrm"
	"github.com/svyazka/svyazka/amocrm/amocrmtest"
)

func TestExchange(t *testing.T) {
	t.Parallel()
	srv, rec := fakeServer(t, func(w http.ResponseWriter, r *http.Request) {
		var body map[string]string
		if r.URL.Path != "/oauth2/access_token" || json.NewDecoder(r.Body).Decode(&body) != nil {
			http.Error(w, "bad", 500)
			return
		}
		want := map[string]string{"client_id": "client-id", "client_secret": "client-secret-VALUE", "grant_type": "authorization_code",
			"code": "good-code", "redirect_uri": "https://svyazka.test/oauth"}
		if body["code"] != "good-code" {
			writeJSON(w, 400, "application/problem+json", map[string]any{"hint": "Authorization code has expired",
				"title": "Некорректный запрос", "status": 400, "detail": "The authorization code is invalid"})
			return
		}
		if diff := cmp.Diff(want, body); diff != "" {
			http.Error(w, diff, 500)
			return
		}
		okToken(w, testAccess)
	})
	_, rdb := redisClient(t)
	c := newClient(t, testConfig(srv.URL, rdb, newMemTokens(1, amocrm.Token{})))
	ref := amocrm.AccountRef{Subdomain: "clinic"}
	ctx := context.Background()

	t.Run("OK", func(t *testing.T) {
		tok, err := c.Exchange(ctx, ref, "good-code")
		require.NoError(t, err)
		require.Equal(t, amocrm.Token{AccessToken: testAccess, RefreshToken: "rotated-" + testAccess, ExpiresAt: testNow.Add(24 * time.Hour)}, tok)
		require.NotContains(t, fmt.Sprint(tok), testAccess, "a printed token hides its secrets")
		require.NotContains(t, fmt.Sprintf("%#v", tok), testAccess)
	})
	t.Run("ErrInvalidGrant", func(t *testing.T) {
		_, err := c.Exchange(ctx, ref, "expired-code")
		require.ErrorIs(t, err, amocrm.ErrInvalidGrant)
		require.Contains(t, err.Error(), "The authorization code is invalid")
		noToken(t, err)
		require.NotContains(t, err.Error(), "expired-code")
	})
	require.Equal(t, 2, rec.total())
}

// hostRecorder answers every request with an account and records its URL.
type hostRecorder struct {
	mu   sync.Mutex
	urls []string
}

func (h *hostRecorder) RoundTrip(r *http.Request) (*http.Response, error) {
	h.mu.Lock()
	h.urls = append(h.urls, r.URL.Scheme+"://"+r.URL.Host+r.URL.Path)
	h.mu.Unlock()
	return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/hal+json"}},
		Body: ioNopCloser(`{"id":1}`), Request: r}, nil
}

func TestAccountHost(t *testing.T) {
	t.Parallel()
	_, rdb := redisClient(t)
	tokens := newMemTokens(1, freshToken())
	rt := &hostRecorder{}
	cfg := testConfig("", rdb, tokens)
	cfg.HTTPClient = &http.Client{Transport: rt}
	c := newClient(t, cfg)
	ctx := context.Background()

	_, err := c.Account(amocrm.AccountRef{ID: 1, Subdomain: "clinic", Domain: "kommo.com"}).GetAccount(ctx)
	require.NoError(t, err)
	_, err = c.Account(amocrm.AccountRef{ID: 1, Subdomain: "clinic"}).GetAccount(ctx)
	require.NoError(t, err)
	_, err = c.Account(amocrm.AccountRef{ID: 1, Subdomain: "clinic", Domain: "evil.com"}).GetAccount(ctx)
	require.Error(t, err)
	_, err = c.Account(amocrm.AccountRef{ID: 1, Subdomain: "a.b", Domain: "amocrm.ru"}).GetAccount(ctx)
	require.Error(t, err)
	require.Equal(t, []string{"https://clinic.kommo.com/api/v4/account", "https://clinic.amocrm.ru/api/v4/account"}, rt.urls)
}

// TestRefreshRotation: two Clients (two processes) share the token store,
// each with its own Redis connection, and several workers in each find the
// access token expired at once. Exactly one refresh reaches amoCRM;
// everyone uses the rotated token. backend/store runs the same race over
// the Postgres store.
func TestRefreshRotation(t *testing.T) {
	t.Parallel()
	rot := amocrmtest.NewRotator(t, testAccess, testRefresh)
	tokens := newMemTokens(901, amocrm.Token{AccessToken: testAccess, RefreshToken: testRefresh, ExpiresAt: testNow.Add(30 * time.Second)})
	opts, rdb := redisClient(t)
	clients := []*amocrm.Client{
		newClient(t, testConfig(rot.URL, rdb, tokens)),
		newClient(t, testConfig(rot.URL, secondRedis(t, opts), tokens)),
	}
	rot.Race(t, clients, amocrm.AccountRef{ID: 901}, 8)

	got, err := tokens.Tokens(context.Background(), 901)
	require.NoError(t, err)
	require.Equal(t, "access-1", got.AccessToken)
	require.Equal(t, "refresh-1", got.RefreshToken)
}

func ioNopCloser(s string) *nopBody { return &nopBody{strings.NewReader(s)} }

type nopBody struct{ *strings.Reader }

func (nopBody) Close() error { return nil }
