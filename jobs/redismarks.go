package jobs

// The sync's two Redis marks: when links were last stored per database
// (a restore is noticed) and wake-ups handed to a running task.

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

// SyncWakes remembers that an account's sync was woken (new changes) while
// its sync ran elsewhere, so the running task goes on instead of the
// wake-up spinning on the lock; RedisSyncWakes satisfies it.
type SyncWakes interface {
	// Mark records a wake-up of the account.
	Mark(ctx context.Context, accountID int64) error
	// Take clears the account's mark and reports whether it was set.
	Take(ctx context.Context, accountID int64) (bool, error)
}

// RedisSyncWakes keeps the marks in Redis, shared by every worker.
type RedisSyncWakes struct {
	Client redis.UniversalClient
	// Prefix namespaces the keys ("svyazka:sync:woken:" when empty).
	Prefix string
}

// syncWakeTTL bounds a mark nobody took (a worker gone between its run and
// its check): it costs at most one more Process call; the sweep catches
// the rest.
const syncWakeTTL = 10 * time.Minute

func (w RedisSyncWakes) key(accountID int64) string {
	p := w.Prefix
	if p == "" {
		p = "svyazka:sync:woken:"
	}
	return p + strconv.FormatInt(accountID, 10)
}

// Mark implements SyncWakes.
func (w RedisSyncWakes) Mark(ctx context.Context, accountID int64) error {
	if err := w.Client.Set(ctx, w.key(accountID), 1, syncWakeTTL).Err(); err != nil {
		return fmt.Errorf("jobs: mark sync wake-up of account %d: %w", accountID, err)
	}
	return nil
}

// Take implements SyncWakes.
func (w RedisSyncWakes) Take(ctx context.Context, accountID int64) (bool, error) {
	err := w.Client.GetDel(ctx, w.key(accountID)).Err()
	switch {
	case errors.Is(err, redis.Nil):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("jobs: take sync wake-up of account %d: %w", accountID, err)
	}
	return true, nil
}
