package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"

	"github.com/svyazka/svyazka/amocrm"
	"github.com/svyazka/svyazka/backend/engine"
	"github.com/svyazka/svyazka/backend/mirror"
	"github.com/svyazka/svyazka/backend/store"
)

// SyncEngine is what the sync task runs; *engine.Engine satisfies it.
type SyncEngine interface {
	Process(ctx context.Context, accountID int64) (engine.Result, error)
}

// SyncLocks gives one process at a time an account's sync; *store.DB
// satisfies it.
type SyncLocks interface {
	TryAccountSyncLock(ctx context.Context, accountID int64) (release func(), ok bool, err error)
}

// SyncOutbox adds a task to the outbox in its own transaction; *store.DB
// satisfies it.
type SyncOutbox interface {
	InTx(ctx context.Context, fn func(tx *store.Tx) error) error
}

// SyncLockBusyDelay is how soon a task that found the account's sync
// running elsewhere tries again, so its wake-up is not lost.
const SyncLockBusyDelay = time.Second

// Bounds of one TypeSyncAccount task (SyncAccount's defaults): after them
// a task with work left hands over to a continuation at the queue's tail.
const (
	// DefaultSyncTaskRounds is the most Process calls of one task.
	DefaultSyncTaskRounds = 3
	// DefaultSyncTaskBudget is how long a task starts new Process calls.
	DefaultSyncTaskBudget = 15 * time.Second
)

// SyncAccount handles TypeSyncAccount: under the account's lock it calls
// Process while more is pending, for at most MaxRounds calls or Budget
// (the first call always runs); work left then goes to a continuation task
// with a fresh id, added to the outbox after the lock is released. The
// continuation queues behind the tasks already waiting, so a worker with
// few slots serves every account in turn: one account's import never holds
// a slot for long, and each call writes the account's real-time changes
// before its import (engine.Engine.Process).
//
// With Wakes, a task that finds the lock held marks the wake-up and ends:
// the holder, after releasing the lock, takes the mark and runs again, so a
// change is never left behind and no wake-up spins on the lock. Without
// Wakes (or when Redis fails) a held lock retries in SyncLockBusyDelay.
// amoCRM's 429 retries after its
// Retry-After; 5xx and timeouts with the usual backoff; a revoked or
// blocked account, a broken mapping or a bad payload are not retried (the
// event log and the sweep take over).
type SyncAccount struct {
	Engine SyncEngine
	Locks  SyncLocks
	Outbox SyncOutbox
	Now    func() time.Time
	Log    *slog.Logger
	// Wakes, when set, hands a wake-up to the task running the account.
	Wakes SyncWakes
	// MaxRounds and Budget bound one task (DefaultSyncTaskRounds,
	// DefaultSyncTaskBudget when zero).
	MaxRounds int
	Budget    time.Duration
}

// ProcessTask implements asynq.Handler.
func (h *SyncAccount) ProcessTask(ctx context.Context, t *asynq.Task) error {
	if h.Engine == nil || h.Locks == nil || h.Outbox == nil || h.Now == nil || h.Log == nil {
		return errors.New("jobs: sync account needs Engine, Locks, Outbox, Now and Log")
	}
	p, err := ParseSyncAccount(t)
	if err != nil {
		return err
	}
	more, err := h.run(ctx, p.AccountID)
	if err != nil || !more {
		return err
	}
	next, err := NewSyncAccountTask(p, "cont:"+uuid.NewString())
	if err != nil {
		return err
	}
	if err := h.Outbox.InTx(ctx, func(tx *store.Tx) error {
		_, err := tx.Enqueue(next.Outbox())
		return err
	}); err != nil {
		// A retry of this task does the next bounded part and hands over.
		return fmt.Errorf("jobs: continue sync of account %d: %w", p.AccountID, err)
	}
	return nil
}

// run calls Process under the account's lock within the task's bounds;
// more reports work left for a continuation. A wake-up marked while it ran
// makes it run again once it released the lock (see SyncAccount).
func (h *SyncAccount) run(ctx context.Context, accountID int64) (more bool, err error) {
	marked := false
	if h.Wakes != nil {
		if err := h.Wakes.Mark(ctx, accountID); err != nil {
			h.Log.WarnContext(ctx, "sync wake-up not marked; retrying on the lock instead", "account_id", accountID, "err", err)
		} else {
			marked = true
		}
	}
	for {
		release, ok, err := h.Locks.TryAccountSyncLock(ctx, accountID)
		if err != nil {
			return false, err
		}
		if !ok {
			if marked {
				return false, nil // the holder takes the mark
			}
			return false, &RetryAfterError{Delay: SyncLockBusyDelay, Err: fmt.Errorf("jobs: sync of account %d runs elsewhere", accountID)}
		}
		if marked {
			// Everything committed before this is read from here on.
			if _, err := h.Wakes.Take(ctx, accountID); err != nil {
				release()
				return false, err
			}
		}
		more, err = h.rounds(ctx, accountID)
		release()
		if err != nil || more || !marked {
			return more, err
		}
		woken, err := h.Wakes.Take(ctx, accountID)
		if err != nil {
			// A wake-up may be waiting: the asynq retry runs again.
			return false, &RetryAfterError{Delay: SyncLockBusyDelay, Err: err}
		}
		if !woken {
			return false, nil
		}
		// Marked while this ran, its task gone: run again (or leave it to
		// whoever holds the lock now, who reads after the mark).
		if err := h.Wakes.Mark(ctx, accountID); err != nil {
			return false, &RetryAfterError{Delay: SyncLockBusyDelay, Err: err}
		}
	}
}

// rounds calls Process while more is pending, within the task's bounds.
func (h *SyncAccount) rounds(ctx context.Context, accountID int64) (more bool, err error) {
	rounds, budget := h.MaxRounds, h.Budget
	if rounds <= 0 {
		rounds = DefaultSyncTaskRounds
	}
	if budget <= 0 {
		budget = DefaultSyncTaskBudget
	}
	started := h.Now()
	for round := 1; ; round++ {
		res, err := h.Engine.Process(ctx, accountID)
		if err != nil {
			return false, syncError(accountID, err)
		}
		if res.Held != engine.HoldNone || !res.More {
			if res.Records > 0 || res.Held != engine.HoldNone {
				h.Log.InfoContext(ctx, "sync done", "account_id", accountID, "held", res.Held, "records", res.Records,
					"contacts_created", res.ContactsCreated, "leads_created", res.LeadsCreated, "parked", res.Parked)
			}
			return false, nil
		}
		if round >= rounds || h.Now().Sub(started) >= budget {
			h.Log.InfoContext(ctx, "sync continues in a new task", "account_id", accountID, "rounds", round)
			return true, nil
		}
	}
}

// syncError classifies Process's error for asynq.
func syncError(accountID int64, err error) error {
	switch {
	case errors.Is(err, amocrm.ErrRateLimited):
		return &RetryAfterError{Delay: 5 * time.Second, Err: err}
	case amocrm.Retryable(err):
		// amoCRM's 5xx and timeouts are usually short: retry in seconds,
		// not asynq's default tens of seconds; still counted against MaxRetry.
		return &BackoffError{Base: time.Second, Max: time.Minute, Err: err}
	case errors.Is(err, amocrm.ErrRevoked), errors.Is(err, amocrm.ErrUnauthorized), errors.Is(err, amocrm.ErrBlocked), errors.Is(err, amocrm.ErrPaymentRequired),
		errors.Is(err, mirror.ErrInvalid), errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("jobs: sync of account %d: %w: %w", accountID, err, asynq.SkipRetry)
	}
	return err
}

// SyncSweepStore lists accounts with pending work and records wake-ups;
// *store.DB satisfies it.
type SyncSweepStore interface {
	PendingSyncAccounts(ctx context.Context) ([]store.PendingAccount, error)
	DueReevaluationAccounts(ctx context.Context, now time.Time) ([]int64, error)
	InTx(ctx context.Context, fn func(tx *store.Tx) error) error
}

// SyncSweep handles TypeSyncSweep: every running account with pending
// changes, or whose no-show grace timer expired for a planned reception
// (no row changes when it passes), gets a TypeSyncAccount task for this
// minute (through the outbox; the task id makes repeats of one minute, by
// any number of schedulers, one task). It catches what a lost wake-up or an
// exhausted retry left behind.
type SyncSweep struct {
	Store SyncSweepStore
	Now   func() time.Time
	Log   *slog.Logger
}

// ProcessTask implements asynq.Handler.
func (h *SyncSweep) ProcessTask(ctx context.Context, _ *asynq.Task) error {
	if h.Store == nil || h.Now == nil || h.Log == nil {
		return errors.New("jobs: sync sweep needs Store, Now and Log")
	}
	pending, err := h.Store.PendingSyncAccounts(ctx)
	if err != nil {
		return err
	}
	now := h.Now()
	due, err := h.Store.DueReevaluationAccounts(ctx, now)
	if err != nil {
		return err
	}
	ids := make([]int64, 0, len(pending)+len(due))
	for _, a := range pending {
		ids = append(ids, a.AccountID)
	}
	for _, id := range due {
		if !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	slot := now.UTC().Truncate(SyncSweepEvery).Unix()
	return h.Store.InTx(ctx, func(tx *store.Tx) error {
		for _, id := range ids {
			t, err := NewSyncAccountTask(SyncAccountPayload{AccountID: id}, "sweep:"+strconv.FormatInt(slot, 10))
			if err != nil {
				return err
			}
			if _, err := tx.Enqueue(t.Outbox()); err != nil {
				return err
			}
		}
		return nil
	})
}

// SyncWake builds the wake-up an ingest adds to the outbox when records of
// the account changed (store.IngestBatch.Wake).
func SyncWake(accountID int64) func(maxChangeSeq int64) (store.OutboxMessage, error) {
	return func(maxChangeSeq int64) (store.OutboxMessage, error) {
		t, err := NewSyncAccountTask(SyncAccountPayload{AccountID: accountID}, "seq:"+strconv.FormatInt(maxChangeSeq, 10))
		return t.Outbox(), err
	}
}
