package amocrm_test

import (
	"context"
	"crypto/rand"
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
	"github.com/svyazka/svyazka/backend/sealer"
	"github.com/svyazka/svyazka/backend/store"
	"github.com/svyazka/svyazka/backend/store/storetest"
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

// TestRefreshRotation: two Clients (two processes) share Postgres and Redis,
// and several workers in each find the access token expired at once.
// Exactly one refresh reaches amoCRM; everyone uses the rotated token.
func TestRefreshRotation(t *testing.T) {
	t.Parallel()
	db := storetest.New(t)
	acc, _, err := db.InstallAccount(context.Background(), store.InstallInput{AmoAccountID: 901, Subdomain: "clinic",
		BaseDomain: "amocrm.ru", TrialDays: 14, Now: testNow})
	require.NoError(t, err)
	key := make([]byte, sealer.KeySize)
	_, _ = rand.Read(key)
	s, err := sealer.New(key)
	require.NoError(t, err)

	var mu sync.Mutex
	access, refresh := testAccess, testRefresh
	refreshes := 0
	srv, rec := fakeServer(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if r.URL.Path == "/oauth2/access_token" {
			var body map[string]string
			_ = json.NewDecoder(r.Body).Decode(&body)
			if body["grant_type"] != "refresh_token" || body["refresh_token"] != refresh {
				writeJSON(w, 400, "application/problem+json", map[string]any{"hint": "Invalid refresh token", "status": 400})
				return
			}
			refreshes++
			time.Sleep(100 * time.Millisecond) // widen the window for a racing refresh
			access, refresh = fmt.Sprintf("access-%d", refreshes), fmt.Sprintf("refresh-%d", refreshes)
			writeJSON(w, 200, "application/json", map[string]any{"token_type": "Bearer", "expires_in": 86400,
				"access_token": access, "refresh_token": refresh})
			return
		}
		if r.Header.Get("Authorization") != "Bearer "+access {
			writeJSON(w, 401, "application/problem+json", problem(401, "Unauthorized", ""))
			return
		}
		okAccount(w)
	})

	opts, rdb := redisClient(t)
	var clients []*amocrm.Client
	for i := range 2 {
		tokens, err := store.NewAmoTokens(db, s)
		require.NoError(t, err)
		if i == 0 {
			require.NoError(t, tokens.SaveTokens(context.Background(), acc.ID,
				amocrm.Token{AccessToken: testAccess, RefreshToken: testRefresh, ExpiresAt: testNow.Add(30 * time.Second)}))
		}
		rc := rdb
		if i == 1 {
			rc = secondRedis(t, opts)
		}
		clients = append(clients, newClient(t, testConfig(srv.URL, rc, tokens)))
	}

	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for i := range 4 { // the test database allows 5 connections
		wg.Go(func() {
			_, err := clients[i%2].Account(amocrm.AccountRef{ID: acc.ID}).GetAccount(context.Background())
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Equal(t, 1, rec.count("POST /oauth2/access_token"))
	require.Equal(t, 4, rec.count("GET "+accountPath), "no call was refused with the old token")

	tokens, err := store.NewAmoTokens(db, s)
	require.NoError(t, err)
	got, err := tokens.Tokens(context.Background(), acc.ID)
	require.NoError(t, err)
	require.Equal(t, "access-1", got.AccessToken)
	require.Equal(t, "refresh-1", got.RefreshToken)
}

func ioNopCloser(s string) *nopBody { return &nopBody{strings.NewReader(s)} }

type nopBody struct{ *strings.Reader }

func (nopBody) Close() error { return nil }
