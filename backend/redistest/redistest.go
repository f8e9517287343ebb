// Package redistest leases each test one of Redis's numbered databases (1–15),
// flushed before and after use, so parallel tests and packages never share keys
// or asynq queues. Database 0 holds only the leases.
package redistest

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// leaseTTL bounds a lease left behind by a test binary that was killed.
const leaseTTL = 10 * time.Minute

// URL is the Redis server tests use: TEST_REDIS_URL, else REDIS_URL, else local.
func URL() string {
	for _, k := range []string{"TEST_REDIS_URL", "REDIS_URL"} {
		if v := os.Getenv(k); v != "" {
			return v
		}
	}
	return "redis://127.0.0.1:6379/0"
}

// New leases a database for the test and returns options pointing at it.
// It waits for a free database when all fifteen are taken.
func New(t testing.TB) *redis.Options {
	t.Helper()
	base, err := redis.ParseURL(URL())
	require.NoError(t, err)
	ctx := context.Background()
	control := redis.NewClient(base)
	t.Cleanup(func() { _ = control.Close() })
	require.NoError(t, control.Ping(ctx).Err(), "Redis at %s (run scripts/services.sh)", URL())

	owner := fmt.Sprintf("%d:%s", os.Getpid(), t.Name())
	deadline := time.Now().Add(5 * time.Minute)
	for {
		for db := 1; db <= 15; db++ {
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
			t.Fatal("redistest: no free Redis database for 5 minutes")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Client returns a client on a leased database, closed when the test ends.
func Client(t testing.TB) *redis.Client {
	t.Helper()
	c := redis.NewClient(New(t))
	t.Cleanup(func() { _ = c.Close() })
	return c
}
