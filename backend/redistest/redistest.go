// Package redistest leases each test one of Redis's numbered databases (1–15),
// flushed before and after use, so parallel tests and packages never share keys
// or asynq queues. Database 0 holds only the leases. The lease protocol lives
// in amocrm/amocrmtest (the amoCRM client's tests cannot import backend/);
// this package is the backend's name for it.
package redistest

import (
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/svyazka/svyazka/amocrm/amocrmtest"
)

// URL is the Redis server tests use: TEST_REDIS_URL, else REDIS_URL, else local.
func URL() string { return amocrmtest.RedisURL() }

// New leases a database for the test and returns options pointing at it.
// It waits for a free database when all fifteen are taken.
func New(t testing.TB) *redis.Options {
	t.Helper()
	return amocrmtest.Redis(t)
}

// Client returns a client on a leased database, closed when the test ends.
func Client(t testing.TB) *redis.Client {
	t.Helper()
	c := redis.NewClient(New(t))
	t.Cleanup(func() { _ = c.Close() })
	return c
}
