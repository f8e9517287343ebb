package amocrm_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/svyazka/svyazka/amocrm"
	"github.com/svyazka/svyazka/amocrm/sandbox"
)

type sandboxEnv struct {
	sb     *sandbox.Sandbox
	opts   *redis.Options
	rdb    *redis.Client
	url    string
	info   sandbox.AccountInfo
	tokens *memTokens
	ref    amocrm.AccountRef
}

// newSandboxEnv starts an emulator with one account and exchanges its code.
func newSandboxEnv(t *testing.T, cfg sandbox.Config, users int) (*sandboxEnv, amocrm.Token) {
	t.Helper()
	cfg.ClientID, cfg.ClientSecret, cfg.RedirectURI = "client-id", "client-secret-VALUE", "https://svyazka.test/oauth"
	cfg.HTTPClient = &http.Client{Timeout: time.Second}
	sb, err := sandbox.New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = sb.Close() })
	srv := httptest.NewServer(sb.Handler())
	t.Cleanup(srv.Close)
	info, err := sb.CreateAccount(sandbox.AccountOptions{Subdomain: "clinic", Users: users})
	require.NoError(t, err)
	opts, rdb := redisClient(t)
	env := &sandboxEnv{sb: sb, opts: opts, rdb: rdb, url: srv.URL, info: info, tokens: newMemTokens(0, amocrm.Token{}), ref: amocrm.AccountRef{ID: 21, Subdomain: "clinic"}}
	c := newClient(t, env.config(rdb))
	tok, err := c.Exchange(context.Background(), env.ref, info.Code)
	require.NoError(t, err)
	require.NoError(t, env.tokens.SaveTokens(context.Background(), env.ref.ID, tok))
	return env, tok
}

func (e *sandboxEnv) config(rdb redis.UniversalClient) amocrm.Config {
	cfg := testConfig(e.url, rdb, e.tokens)
	cfg.Now = time.Now
	cfg.RateLimit = 0 // the default 7 rps, which the sandbox enforces
	return cfg
}

// TestContractErrorClasses drives each error class out of the emulator and
// checks the client reports it as the documented type.
func TestContractErrorClasses(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("RateLimited", func(t *testing.T) {
		env, _ := newSandboxEnv(t, sandbox.Config{}, 1)
		env.sb.SetFaults(sandbox.Faults{Rate429: 1, Seed: 1})
		cfg := env.config(env.rdb)
		cfg.MaxRetries = 1
		_, err := newClient(t, cfg).Account(env.ref).GetAccount(ctx)
		require.ErrorIs(t, err, amocrm.ErrRateLimited)
		require.Equal(t, 2, env.sb.Stats().Count("GET /api/v4/account", http.StatusTooManyRequests), "one retry after the 429")
	})
	t.Run("Transient", func(t *testing.T) {
		env, _ := newSandboxEnv(t, sandbox.Config{}, 1)
		env.sb.SetFaults(sandbox.Faults{Rate5xx: 1, Seed: 2})
		cfg := env.config(env.rdb)
		cfg.MaxRetries = 2
		_, err := newClient(t, cfg).Account(env.ref).Pipelines(ctx)
		require.ErrorIs(t, err, amocrm.ErrTransient)
		var ae *amocrm.Error
		require.ErrorAs(t, err, &ae)
		require.Equal(t, 3, ae.Attempts)
	})
	t.Run("Forbidden", func(t *testing.T) {
		env, _ := newSandboxEnv(t, sandbox.Config{}, 1)
		user, err := env.sb.AddUser(env.info.AccountID, sandbox.UserOptions{Name: "Менеджер", IsActive: true})
		require.NoError(t, err)
		access, err := env.sb.AccessTokenForUser(env.info.AccountID, user.ID)
		require.NoError(t, err)
		manager := amocrm.AccountRef{ID: 22, Subdomain: "clinic"}
		require.NoError(t, env.tokens.SaveTokens(ctx, manager.ID, amocrm.Token{AccessToken: access, RefreshToken: "unused", ExpiresAt: time.Now().Add(time.Hour)}))
		_, err = newClient(t, env.config(env.rdb)).Account(manager).AllUsers(ctx)
		require.ErrorIs(t, err, amocrm.ErrForbidden, "users are admin-only")
		require.NotErrorIs(t, err, amocrm.ErrBlocked)
	})
	t.Run("BlockedAfterViolations", func(t *testing.T) {
		// A sandbox that allows 2 rps and blocks after 2 violations, against a
		// client that believes 7 rps is fine: 429s, then amoCRM's sticky 403.
		env, _ := newSandboxEnv(t, sandbox.Config{RateLimitPerSecond: 2, BlockAfterViolations: 2}, 1)
		cfg := env.config(env.rdb)
		cfg.MaxRetries = 0
		blocked := make(chan int64, 1)
		cfg.OnBlocked = func(id int64, _ error) { blocked <- id }
		c := newClient(t, cfg)
		var err error
		for i := 0; i < 20; i++ {
			if _, err = c.Account(env.ref).GetAccount(ctx); err != nil && !isRateLimited(err) {
				break
			}
		}
		require.ErrorIs(t, err, amocrm.ErrBlocked)
		require.Equal(t, env.ref.ID, <-blocked)
		before := env.sb.Stats().Count("GET /api/v4/account", http.StatusForbidden)
		_, err = c.Account(env.ref).GetAccount(ctx)
		require.ErrorIs(t, err, amocrm.ErrBlocked)
		require.Equal(t, before, env.sb.Stats().Count("GET /api/v4/account", http.StatusForbidden), "a blocked account is not hammered")
	})
}

func isRateLimited(err error) bool { return errors.Is(err, amocrm.ErrRateLimited) }

// TestContractBatchSplitting checks batches against the emulator's own count
// of requests: 25 contacts at a batch size of 10 make three POSTs.
func TestContractBatchSplitting(t *testing.T) {
	t.Parallel()
	env, _ := newSandboxEnv(t, sandbox.Config{}, 1)
	cfg := env.config(env.rdb)
	cfg.BatchSize = 10
	api := newClient(t, cfg).Account(env.ref)
	var contacts []amocrm.Contact
	for i := range 25 {
		contacts = append(contacts, amocrm.Contact{Name: fmt.Sprintf("Пациент %02d", i)})
	}
	saved, err := api.CreateContacts(context.Background(), contacts)
	require.NoError(t, err)
	require.Len(t, saved, 25)
	require.Equal(t, 3, env.sb.Stats().Count("POST /api/v4/contacts", http.StatusOK))
	all, err := api.AllContacts(context.Background(), amocrm.ListParams{Limit: 10})
	require.NoError(t, err)
	require.Len(t, all, 25, "paging over three pages")
	for i, c := range all {
		require.Equal(t, saved[i].ID, c.ID, "ids in input order")
	}
}

// TestContractSharedLimiter runs two clients (as two worker processes would)
// on one Redis against one account: the emulator, which enforces 7 rps,
// records no violation.
func TestContractSharedLimiter(t *testing.T) {
	t.Parallel()
	env, _ := newSandboxEnv(t, sandbox.Config{}, 1)
	first := newClient(t, env.config(env.rdb))
	second := newClient(t, env.config(secondRedis(t, env.opts)))
	var wg sync.WaitGroup
	errs := make(chan error, 30)
	for _, c := range []*amocrm.Client{first, second} {
		for range 3 {
			wg.Go(func() {
				for range 5 {
					_, err := c.Account(env.ref).GetAccount(context.Background())
					errs <- err
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	st := env.sb.Stats()
	require.Equal(t, 30, st.Count("GET /api/v4/account", http.StatusOK))
	require.Zero(t, st.RateLimited, "the emulator saw no rate-limit violation")
	require.Zero(t, st.Count("GET /api/v4/account", http.StatusTooManyRequests))
}
