package widgetauth

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisReplayGuard keeps seen token ids in Redis, shared by every API replica.
type RedisReplayGuard struct {
	Client redis.UniversalClient
	Now    func() time.Time
}

// Claim implements ReplayGuard with SET NX and a TTL until the token's expiry.
func (g RedisReplayGuard) Claim(ctx context.Context, jti string, until time.Time) (bool, error) {
	now := time.Now
	if g.Now != nil {
		now = g.Now
	}
	ttl := until.Sub(now())
	if ttl < time.Second {
		ttl = time.Second
	}
	ok, err := g.Client.SetNX(ctx, "svyazka:jti:"+jti, 1, ttl).Result()
	if err != nil {
		return false, fmt.Errorf("widgetauth: replay guard: %w", err)
	}
	return ok, nil
}
