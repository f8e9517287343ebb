package jobs

import (
	"context"
	"fmt"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// RedisConfig says how to reach Redis: a URL, or Sentinel addresses for failover.
type RedisConfig struct {
	URL              string
	SentinelAddrs    []string
	SentinelMaster   string
	SentinelPassword string
}

// ConnOpt returns the asynq connection option for the configuration.
func (c RedisConfig) ConnOpt() (asynq.RedisConnOpt, error) {
	u, err := redis.ParseURL(c.URL)
	if err != nil {
		return nil, fmt.Errorf("jobs: redis url: %w", err)
	}
	if len(c.SentinelAddrs) > 0 {
		return asynq.RedisFailoverClientOpt{
			MasterName:       c.SentinelMaster,
			SentinelAddrs:    c.SentinelAddrs,
			SentinelPassword: c.SentinelPassword,
			Username:         u.Username,
			Password:         u.Password,
			DB:               u.DB,
			TLSConfig:        u.TLSConfig,
		}, nil
	}
	return asynq.RedisClientOpt{
		Addr:      u.Addr,
		Username:  u.Username,
		Password:  u.Password,
		DB:        u.DB,
		TLSConfig: u.TLSConfig,
	}, nil
}

// NewRedisClient opens a go-redis client for the same server asynq uses (for
// shared rate limits, leases and readiness checks).
func NewRedisClient(opt asynq.RedisConnOpt) redis.UniversalClient {
	return opt.MakeRedisClient().(redis.UniversalClient)
}

// RedisPinger adapts a Redis client to a readiness check.
type RedisPinger struct{ Client redis.UniversalClient }

// Ping reports whether Redis answers PING.
func (p RedisPinger) Ping(ctx context.Context) error {
	if err := p.Client.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis unreachable: %w", err)
	}
	return nil
}
