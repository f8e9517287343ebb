package jobs

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

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
