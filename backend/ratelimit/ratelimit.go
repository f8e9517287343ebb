// Package ratelimit bounds how often an outside caller may hit an endpoint,
// shared by every API replica through Redis (GCRA, go-redis/redis_rate).
//
// A limiter that cannot reach Redis refuses (fails closed) for endpoints that
// cost us an outbound call, such as the OAuth callback's token exchange:
// better a rare 503 than an open door.
package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
)

// Rate is a number of events per period with a burst.
type Rate struct {
	Events int
	Per    time.Duration
	Burst  int
}

// PerMinute is n events a minute with a burst of n.
func PerMinute(n int) Rate { return Rate{Events: n, Per: time.Minute, Burst: n} }

// Limiter decides whether one more event under a key is allowed.
type Limiter struct {
	rl     *redis_rate.Limiter
	prefix string
}

// New returns a limiter storing its state in rdb under keys "ratelimit:{prefix}:…".
func New(rdb redis.UniversalClient, prefix string) (*Limiter, error) {
	if rdb == nil || prefix == "" {
		return nil, errors.New("ratelimit: needs Redis and a key prefix")
	}
	return &Limiter{rl: redis_rate.NewLimiter(rdb), prefix: prefix}, nil
}

// Allow records one event under key and reports whether it fits the rate;
// when it does not, retryAfter says when the next one will. It returns an
// error only when Redis cannot be asked.
func (l *Limiter) Allow(ctx context.Context, key string, r Rate) (ok bool, retryAfter time.Duration, err error) {
	res, err := l.rl.Allow(ctx, "ratelimit:"+l.prefix+":"+key, redis_rate.Limit{Rate: r.Events, Period: r.Per, Burst: r.Burst})
	if err != nil {
		return false, 0, fmt.Errorf("ratelimit: %s: %w", l.prefix, err)
	}
	return res.Allowed > 0, res.RetryAfter, nil
}
