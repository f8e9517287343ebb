// Package amocrmtest holds what amocrm's own tests need without importing
// the backend: an in-memory TokenStore that keeps the real store's contract,
// and a Redis database leased per test.
//
// The Redis lease protocol is backend/redistest's, with the same lease keys
// in database 0, so the two helpers never hand out one database number to
// two tests at once.
package amocrmtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/svyazka/svyazka/amocrm"
)

// ErrNoTokens is what Tokens returns for an account it holds no token for
// (the real store's ErrNotFound).
var ErrNoTokens = errors.New("amocrmtest: account has no tokens")

// Tokens is an in-memory amocrm.TokenStore shared by every Client given it,
// as several processes share one database. It keeps the real store's
// contract: UpdateTokens serialises its callers per account (the row lock),
// each one seeing its predecessor's result, while Tokens reads without
// waiting for the lock; a stored change clears the revocation; MarkRevoked
// keeps an earlier mark. Safe for concurrent use.
type Tokens struct {
	mu     sync.Mutex
	tokens map[int64]amocrm.Token
	locks  map[int64]chan struct{}
}

var _ amocrm.TokenStore = (*Tokens)(nil)

// NewTokens returns an empty store.
func NewTokens() *Tokens {
	return &Tokens{tokens: map[int64]amocrm.Token{}, locks: map[int64]chan struct{}{}}
}

// Tokens returns the account's token, revoked or not; ErrNoTokens when there is none.
func (s *Tokens) Tokens(_ context.Context, accountID int64) (amocrm.Token, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tokens[accountID]
	if !ok {
		return amocrm.Token{}, fmt.Errorf("amocrmtest: tokens of account %d: %w", accountID, ErrNoTokens)
	}
	return t, nil
}

// SaveTokens stores a new pair for the account, clearing any revocation.
func (s *Tokens) SaveTokens(_ context.Context, accountID int64, t amocrm.Token) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	t.RevokedAt = time.Time{}
	s.tokens[accountID] = t
	return nil
}

// UpdateTokens holds the account's lock while fn runs on the current token,
// then stores what fn returns unless it is unchanged. fn's error stores
// nothing and is returned wrapped; ErrNoTokens when there is no token; the
// context's error when it ends while waiting for the lock.
func (s *Tokens) UpdateTokens(ctx context.Context, accountID int64, fn func(cur amocrm.Token) (amocrm.Token, error)) (amocrm.Token, error) {
	lock := s.lock(accountID)
	select {
	case lock <- struct{}{}:
	case <-ctx.Done():
		return amocrm.Token{}, fmt.Errorf("amocrmtest: update tokens of account %d: %w", accountID, ctx.Err())
	}
	defer func() { <-lock }()

	cur, err := s.Tokens(ctx, accountID)
	if err != nil {
		return amocrm.Token{}, fmt.Errorf("amocrmtest: update tokens of account %d: %w", accountID, ErrNoTokens)
	}
	next, err := fn(cur)
	if err != nil {
		return amocrm.Token{}, fmt.Errorf("amocrmtest: update tokens of account %d: %w", accountID, err)
	}
	if next.AccessToken == cur.AccessToken && next.RefreshToken == cur.RefreshToken && next.ExpiresAt.Equal(cur.ExpiresAt) {
		return next, nil
	}
	next.RevokedAt = time.Time{}
	s.mu.Lock()
	s.tokens[accountID] = next
	s.mu.Unlock()
	return next, nil
}

// MarkRevoked records the revocation at at, keeping an earlier mark;
// ErrNoTokens when the account has no token.
func (s *Tokens) MarkRevoked(_ context.Context, accountID int64, at time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tokens[accountID]
	if !ok {
		return fmt.Errorf("amocrmtest: mark tokens of account %d revoked: %w", accountID, ErrNoTokens)
	}
	if t.RevokedAt.IsZero() {
		t.RevokedAt = at.UTC()
	}
	s.tokens[accountID] = t
	return nil
}

// lock returns the account's one-slot semaphore, which stands in for the row lock.
func (s *Tokens) lock(accountID int64) chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.locks[accountID]
	if !ok {
		l = make(chan struct{}, 1)
		s.locks[accountID] = l
	}
	return l
}

// leaseTTL bounds a lease left behind by a test binary that was killed.
const leaseTTL = 10 * time.Minute

// RedisURL is the Redis server tests use: TEST_REDIS_URL, else REDIS_URL, else local.
func RedisURL() string {
	for _, k := range []string{"TEST_REDIS_URL", "REDIS_URL"} {
		if v := os.Getenv(k); v != "" {
			return v
		}
	}
	return "redis://127.0.0.1:6379/0"
}

// Redis leases one of Redis's numbered databases (1–15) for the test,
// flushed before and after use, and returns options pointing at it. It
// waits for a free database when all fifteen are taken, and fails the test
// after five minutes.
func Redis(t testing.TB) *redis.Options {
	t.Helper()
	base, err := redis.ParseURL(RedisURL())
	require.NoError(t, err)
	ctx := context.Background()
	control := redis.NewClient(base)
	t.Cleanup(func() { _ = control.Close() })
	require.NoError(t, control.Ping(ctx).Err(), "Redis at %s (run scripts/services.sh)", RedisURL())

	owner := fmt.Sprintf("%d:%s", os.Getpid(), t.Name())
	deadline := time.Now().Add(5 * time.Minute)
	for {
		for db := 1; db <= 15; db++ {
			// The same key as backend/redistest's: one lease space for both.
			key := "svyazka:testlease:" + strconv.Itoa(db)
			ok, err := control.SetNX(ctx, key, owner, leaseTTL).Result()
			require.NoError(t, err)
			if !ok {
				continue
			}
			opts := *base
			opts.DB = db
			c := redis.NewClient(&opts)
			require.NoError(t, c.FlushDB(ctx).Err())
			_ = c.Close()
			t.Cleanup(func() {
				c := redis.NewClient(&opts)
				_ = c.FlushDB(context.Background()).Err()
				_ = c.Close()
				control.Del(context.Background(), key)
			})
			return &opts
		}
		if time.Now().After(deadline) {
			t.Fatal("amocrmtest: no free Redis database for 5 minutes")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
