package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"time"

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

// SyncLockBusyDelay is how soon a task that found the account's sync
// running elsewhere tries again, so its wake-up is not lost.
const SyncLockBusyDelay = time.Second

// maxSyncRounds bounds one task's Process calls; the sweep picks up the rest.
const maxSyncRounds = 50

// SyncAccount handles TypeSyncAccount: under the account's lock it calls
// Process until nothing is pending. A held lock retries in
// SyncLockBusyDelay; amoCRM's 429 after its Retry-After; 5xx and timeouts
// with the usual backoff; a revoked or blocked account, a broken mapping or
// a bad payload are not retried (the event log and the sweep take over).
type SyncAccount struct {
	Engine SyncEngine
	Locks  SyncLocks
	Log    *slog.Logger
}

// ProcessTask implements asynq.Handler.
func (h *SyncAccount) ProcessTask(ctx context.Context, t *asynq.Task) error {
	if h.Engine == nil || h.Locks == nil || h.Log == nil {
		return errors.New("jobs: sync account needs Engine, Locks and Log")
	}
	p, err := ParseSyncAccount(t)
	if err != nil {
		return err
	}
	release, ok, err := h.Locks.TryAccountSyncLock(ctx, p.AccountID)
	if err != nil {
		return err
	}
	if !ok {
		return &RetryAfterError{Delay: SyncLockBusyDelay, Err: fmt.Errorf("jobs: sync of account %d runs elsewhere", p.AccountID)}
	}
	defer release()
	for range maxSyncRounds {
		res, err := h.Engine.Process(ctx, p.AccountID)
		if err != nil {
			return syncError(p.AccountID, err)
		}
		if res.Held != engine.HoldNone || !res.More {
			if res.Records > 0 || res.Held != engine.HoldNone {
				h.Log.InfoContext(ctx, "sync done", "account_id", p.AccountID, "held", res.Held, "records", res.Records,
					"contacts_created", res.ContactsCreated, "leads_created", res.LeadsCreated, "parked", res.Parked)
			}
			return nil
		}
	}
	return nil
}

// syncError classifies Process's error for asynq.
func syncError(accountID int64, err error) error {
	switch {
	case errors.Is(err, amocrm.ErrRateLimited):
		return &RetryAfterError{Delay: 5 * time.Second, Err: err}
	case amocrm.Retryable(err):
		return err
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
