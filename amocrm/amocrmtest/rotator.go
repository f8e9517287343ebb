package amocrmtest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/svyazka/svyazka/amocrm"
)

// Rotator is a fake amoCRM for refresh races. Its /oauth2/access_token
// takes only the current refresh token, answers slowly (to widen the window
// for a racing refresh) and rotates the pair to access-N/refresh-N; its
// GET /api/v4/account answers only to the current access token.
type Rotator struct {
	// URL is the server's base URL, for amocrm.Config.BaseURL.
	URL string

	mu              sync.Mutex
	access, refresh string
	refreshes       int
	accountCalls    int // every GET /api/v4/account, refused or not
}

// NewRotator starts a Rotator that accepts the given pair until its first
// refresh; it stops when the test ends.
func NewRotator(t testing.TB, access, refresh string) *Rotator {
	t.Helper()
	r := &Rotator{access: access, refresh: refresh}
	srv := httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(srv.Close)
	r.URL = srv.URL
	return r
}

func (r *Rotator) serve(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	defer r.mu.Unlock()
	reply := func(status int, contentType string, body any) {
		w.Header().Set("Content-Type", contentType)
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(body)
	}
	switch {
	case req.Method == http.MethodPost && req.URL.Path == "/oauth2/access_token":
		var body map[string]string
		_ = json.NewDecoder(req.Body).Decode(&body)
		if body["grant_type"] != "refresh_token" || body["refresh_token"] != r.refresh {
			reply(http.StatusBadRequest, "application/problem+json", map[string]any{"hint": "Invalid refresh token", "status": 400})
			return
		}
		r.refreshes++
		time.Sleep(100 * time.Millisecond)
		r.access, r.refresh = fmt.Sprintf("access-%d", r.refreshes), fmt.Sprintf("refresh-%d", r.refreshes)
		reply(http.StatusOK, "application/json", map[string]any{"token_type": "Bearer", "expires_in": 86400,
			"access_token": r.access, "refresh_token": r.refresh})
	case req.Method == http.MethodGet && req.URL.Path == "/api/v4/account":
		r.accountCalls++
		if req.Header.Get("Authorization") != "Bearer "+r.access {
			reply(http.StatusUnauthorized, "application/problem+json", map[string]any{"title": "Unauthorized", "status": 401})
			return
		}
		reply(http.StatusOK, "application/hal+json", map[string]any{"id": 321, "name": "Клиника", "subdomain": "clinic"})
	default:
		http.NotFound(w, req)
	}
}

// Race has workers goroutines, spread over clients, call GetAccount for ref
// at once, and requires that all succeed, that exactly one refresh reached
// the server and that no call was refused with the old token.
func (r *Rotator) Race(t testing.TB, clients []*amocrm.Client, ref amocrm.AccountRef, workers int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for i := range workers {
		wg.Go(func() {
			_, err := clients[i%len(clients)].Account(ref).GetAccount(context.Background())
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	require.Equal(t, 1, r.refreshes, "refreshes that reached amoCRM")
	require.Equal(t, workers, r.accountCalls, "no call was refused with the old token")
}
