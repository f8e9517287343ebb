package amocrm_test

import (
	"context"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/svyazka/svyazka/amocrm"
)

// TestSharedLimiter: two Clients (two processes) with two workers each make
// 28 calls for one account. amoCRM must never see more than 7 of them in
// any one second, measured at the server; meanwhile another account's calls
// go through without waiting for the first account's budget.
func TestSharedLimiter(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	seen := map[string][]time.Time{}
	srv, _ := fakeServer(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen[r.Header.Get("Authorization")] = append(seen[r.Header.Get("Authorization")], time.Now())
		mu.Unlock()
		okAccount(w)
	})
	count := func(token string) int {
		mu.Lock()
		defer mu.Unlock()
		return len(seen["Bearer "+token])
	}
	opts, rdb := redisClient(t)
	tokens := newMemTokens(1, freshToken())
	require.NoError(t, tokens.SaveTokens(context.Background(), 2,
		amocrm.Token{AccessToken: "second-account", RefreshToken: "r", ExpiresAt: testNow.Add(time.Hour)}))
	var clients []*amocrm.Client
	for i := range 2 {
		cfg := testConfig(srv.URL, rdb, tokens)
		if i == 1 {
			cfg.Redis = secondRedis(t, opts)
		}
		cfg.RateLimit = 7
		clients = append(clients, newClient(t, cfg))
	}
	ctx := context.Background()

	const calls, workers = 28, 4
	var wg sync.WaitGroup
	errs := make(chan error, calls)
	for w := range workers {
		wg.Go(func() {
			api := clients[w%2].Account(amocrm.AccountRef{ID: 1})
			for range calls / workers {
				_, err := api.GetAccount(ctx)
				errs <- err
			}
		})
	}

	require.Eventually(t, func() bool { return count(testAccess) >= 2 }, 5*time.Second, time.Millisecond)
	other := clients[1].Account(amocrm.AccountRef{ID: 2})
	for range 3 {
		_, err := other.GetAccount(ctx)
		require.NoError(t, err)
	}
	require.Less(t, count(testAccess), calls/2, "the other account did not queue behind the first one's 28 calls")

	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	mu.Lock()
	defer mu.Unlock()
	times := seen["Bearer "+testAccess]
	require.Len(t, times, calls)
	slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })
	for i := 0; i+7 < len(times); i++ {
		require.GreaterOrEqual(t, times[i+7].Sub(times[i]), time.Second,
			"requests %d–%d fall within one second", i, i+7)
	}
}

func TestLimiterWaitRespectsContext(t *testing.T) {
	t.Parallel()
	srv, rec := fakeServer(t, func(w http.ResponseWriter, _ *http.Request) { okAccount(w) })
	_, rdb := redisClient(t)
	cfg := testConfig(srv.URL, rdb, newMemTokens(1, freshToken()))
	cfg.RateLimit = 1
	api := newClient(t, cfg).Account(amocrm.AccountRef{ID: 1})
	_, err := api.GetAccount(context.Background())
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err = api.GetAccount(ctx)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Equal(t, 1, rec.total(), "the call waiting for its turn never reached amoCRM")
}
