package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hibiken/asynq"

	"github.com/svyazka/svyazka/backend/store"
)

// TypeOutboxRelay moves outbox rows into asynq (kept for tasks already queued
// by older versions; the relay loop in Run does the work now).
const TypeOutboxRelay = "outbox:relay"

// OutboxStore is the storage the relay reads.
type OutboxStore interface {
	DispatchOutbox(ctx context.Context, limit int, send func(store.OutboxMessage) error) (int, error)
	// ListenOutbox calls wake on every committed outbox row until ctx ends
	// or the connection fails.
	ListenOutbox(ctx context.Context, wake func()) error
}

// OutboxRelay enqueues outbox rows as the tasks they carry, with their own
// task ids (unique for all time), so a row relayed twice (a crash between
// enqueue and marking) runs once and a restored database never collides
// with task ids Redis still remembers.
type OutboxRelay struct {
	Store  OutboxStore
	Client *asynq.Client
	Log    *slog.Logger
}

// Relay enqueues every pending row and returns how many it dispatched.
func (r *OutboxRelay) Relay(ctx context.Context) (int, error) {
	const batch = 100
	total := 0
	for {
		n, err := r.Store.DispatchOutbox(ctx, batch, func(m store.OutboxMessage) error {
			task, opts := asynqTask(m)
			_, err := r.Client.EnqueueContext(ctx, task, opts...)
			if errors.Is(err, asynq.ErrTaskIDConflict) {
				// Only this row ever carries this id: it was enqueued before
				// and not marked (a crash, a rolled-back mark).
				return nil
			}
			return err
		})
		total += n
		if err != nil {
			return total, fmt.Errorf("jobs: relay outbox: %w", err)
		}
		if n < batch {
			return total, nil
		}
	}
}

// ProcessTask implements asynq.Handler for TypeOutboxRelay.
func (r *OutboxRelay) ProcessTask(ctx context.Context, _ *asynq.Task) error {
	_, err := r.Relay(ctx)
	return err
}

// Run relays until ctx ends: at once whenever a transaction commits an
// outbox row (LISTEN/NOTIFY), and every interval as the safety net (a missed
// notification, a failed enqueue). Several replicas may run it: rows are
// claimed with SKIP LOCKED.
func (r *OutboxRelay) Run(ctx context.Context, interval time.Duration) error {
	if r.Log == nil {
		return errors.New("jobs: outbox relay needs a logger")
	}
	wake := make(chan struct{}, 1)
	signal := func() {
		select {
		case wake <- struct{}{}:
		default:
		}
	}
	go func() {
		backoff := 100 * time.Millisecond
		for ctx.Err() == nil {
			start := time.Now()
			err := r.Store.ListenOutbox(ctx, signal)
			if ctx.Err() != nil {
				return
			}
			r.Log.WarnContext(ctx, "outbox listener lost; polling until it is back", "err", err)
			if time.Since(start) > time.Minute {
				backoff = 100 * time.Millisecond
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 10*time.Second)
		}
	}()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-wake:
		case <-tick.C:
		}
		if _, err := r.Relay(ctx); err != nil && ctx.Err() == nil {
			r.Log.WarnContext(ctx, "relay outbox", "err", err)
		}
	}
}
