package jobs

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisWriteMarks keeps in Redis when the sync last stored links of each
// database (engine.WriteMarks): Redis outlives a database restored from a
// backup, so a kept instant later than the database's own is a restore.
// Values are Unix microseconds, never lowered by Raise.
type RedisWriteMarks struct {
	Client redis.UniversalClient
	// Prefix namespaces the keys ("svyazka:sync:wrote:" when empty).
	Prefix string
}

func (m RedisWriteMarks) key(databaseID int64) string {
	p := m.Prefix
	if p == "" {
		p = "svyazka:sync:wrote:"
	}
	return p + strconv.FormatInt(databaseID, 10)
}

// raiseScript sets the key to ARGV[1] unless it holds a greater number.
var raiseScript = redis.NewScript(`local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > cur then redis.call('SET', KEYS[1], ARGV[1]) end
return 1`)

// Get returns the kept instant of the database.
func (m RedisWriteMarks) Get(ctx context.Context, databaseID int64) (time.Time, bool, error) {
	v, err := m.Client.Get(ctx, m.key(databaseID)).Int64()
	if errors.Is(err, redis.Nil) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, fmt.Errorf("jobs: write mark of database %d: %w", databaseID, err)
	}
	return time.UnixMicro(v).UTC(), true, nil
}

// Raise keeps at unless a later instant is kept.
func (m RedisWriteMarks) Raise(ctx context.Context, databaseID int64, at time.Time) error {
	if err := raiseScript.Run(ctx, m.Client, []string{m.key(databaseID)}, at.UnixMicro()).Err(); err != nil {
		return fmt.Errorf("jobs: raise write mark of database %d: %w", databaseID, err)
	}
	return nil
}

// Reset keeps at, or forgets the database's instant when at is nil.
func (m RedisWriteMarks) Reset(ctx context.Context, databaseID int64, at *time.Time) error {
	var err error
	if at == nil {
		err = m.Client.Del(ctx, m.key(databaseID)).Err()
	} else {
		err = m.Client.Set(ctx, m.key(databaseID), at.UnixMicro(), 0).Err()
	}
	if err != nil {
		return fmt.Errorf("jobs: reset write mark of database %d: %w", databaseID, err)
	}
	return nil
}
