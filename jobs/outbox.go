package jobs

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/hibiken/asynq"

	"github.com/svyazka/svyazka/backend/store"
)

// TypeOutboxRelay moves outbox rows into asynq.
const TypeOutboxRelay = "outbox:relay"

// NewOutboxRelayTask returns the relay task; the scheduler runs it every few
// seconds as a sweeper behind the immediate relays writers trigger.
func NewOutboxRelayTask() *asynq.Task {
	return asynq.NewTask(TypeOutboxRelay, nil, asynq.Queue(QueueCritical), asynq.MaxRetry(1), asynq.Timeout(time.Minute))
}

// OutboxStore is the storage the relay reads.
type OutboxStore interface {
	DispatchOutbox(ctx context.Context, limit int, send func(store.OutboxMessage) error) (int, error)
}

// OutboxRelay enqueues outbox rows as tasks with the id "outbox:{row id}", so a
// row relayed twice (a crash between enqueue and marking) runs once.
type OutboxRelay struct {
	Store  OutboxStore
	Client *asynq.Client
}

// Relay enqueues every pending row and returns how many it dispatched.
func (r *OutboxRelay) Relay(ctx context.Context) (int, error) {
	const batch = 100
	total := 0
	for {
		n, err := r.Store.DispatchOutbox(ctx, batch, func(m store.OutboxMessage) error {
			_, err := r.Client.EnqueueContext(ctx, asynq.NewTask(m.TaskType, m.Payload),
				asynq.Queue(m.Queue), asynq.TaskID("outbox:"+strconv.FormatInt(m.ID, 10)), asynq.Retention(24*time.Hour))
			if errors.Is(err, asynq.ErrTaskIDConflict) {
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
