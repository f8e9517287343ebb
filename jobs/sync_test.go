package jobs_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/svyazka/svyazka/amocrm"
	"github.com/svyazka/svyazka/backend/engine"
	"github.com/svyazka/svyazka/backend/redistest"
	"github.com/svyazka/svyazka/backend/store"
	"github.com/svyazka/svyazka/backend/store/storetest"
	"github.com/svyazka/svyazka/jobs"
)

type failingEngine struct{ err error }

func (f failingEngine) Process(context.Context, int64) (engine.Result, error) {
	return engine.Result{}, f.err
}

// noOutbox fails the test when a continuation is added.
type noOutbox struct{ t *testing.T }

func (o noOutbox) InTx(context.Context, func(*store.Tx) error) error {
	o.t.Error("unexpected continuation")
	return nil
}

type freeLocks struct{}

func (freeLocks) TryAccountSyncLock(context.Context, int64) (func(), bool, error) {
	return func() {}, true, nil
}

// A revoked, unauthorized or blocked account is not retried: the account is
// uninstalled or paused and the sweep takes over after a start.
func TestSyncAccountDoesNotRetryForever(t *testing.T) {
	t.Parallel()
	task, err := jobs.NewSyncAccountTask(jobs.SyncAccountPayload{AccountID: 1}, "test")
	require.NoError(t, err)
	for name, tc := range map[string]struct {
		err   error
		retry bool
	}{
		"Revoked":      {&amocrm.Error{Kind: amocrm.ErrRevoked}, false},
		"Unauthorized": {&amocrm.Error{Kind: amocrm.ErrUnauthorized, Status: 401}, false},
		"Blocked":      {&amocrm.Error{Kind: amocrm.ErrBlocked, Status: 403}, false},
		"Transient":    {&amocrm.Error{Kind: amocrm.ErrTransient, Status: 502}, true},
	} {
		t.Run(name, func(t *testing.T) {
			h := &jobs.SyncAccount{Engine: failingEngine{tc.err}, Locks: freeLocks{}, Outbox: noOutbox{t}, Now: time.Now,
				Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
			err := h.ProcessTask(context.Background(), asynq.NewTask(jobs.TypeSyncAccount, task.Payload))
			require.Error(t, err)
			require.Equal(t, !tc.retry, errors.Is(err, asynq.SkipRetry))
		})
	}
}

// busyEngine has pending work for its first left calls.
type busyEngine struct {
	calls, left int
}

func (b *busyEngine) Process(context.Context, int64) (engine.Result, error) {
	b.calls++
	b.left--
	return engine.Result{Records: 1, More: b.left > 0}, nil
}

// A task does bounded work and hands the rest to a continuation with a
// fresh id at the queue's tail, so other accounts get the worker's slots;
// a task that finished adds none.
func TestSyncAccountYieldsToAContinuation(t *testing.T) {
	t.Parallel()
	db := storetest.New(t)
	ctx := context.Background()
	task, err := jobs.NewSyncAccountTask(jobs.SyncAccountPayload{AccountID: 7}, "test")
	require.NoError(t, err)
	continuations := func() []string {
		rows, err := db.SQL().Query(`SELECT task_id FROM outbox WHERE task_type = $1 ORDER BY id`, jobs.TypeSyncAccount)
		require.NoError(t, err)
		defer rows.Close()
		var ids []string
		for rows.Next() {
			var id string
			require.NoError(t, rows.Scan(&id))
			ids = append(ids, id)
		}
		require.NoError(t, rows.Err())
		return ids
	}
	eng := &busyEngine{left: 100}
	h := &jobs.SyncAccount{Engine: eng, Locks: freeLocks{}, Outbox: db, Now: time.Now, MaxRounds: 2,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	require.NoError(t, h.ProcessTask(ctx, asynq.NewTask(jobs.TypeSyncAccount, task.Payload)))
	require.Equal(t, 2, eng.calls, "MaxRounds bounds the task")
	require.NoError(t, h.ProcessTask(ctx, asynq.NewTask(jobs.TypeSyncAccount, task.Payload)))
	ids := continuations()
	require.Len(t, ids, 2)
	require.NotEqual(t, ids[0], ids[1], "each continuation has a fresh id")
	for _, id := range ids {
		require.Regexp(t, `^sync:account:7:cont:`, id)
	}

	// A time budget ends the task too, after the first call.
	clock := time.Now()
	h.MaxRounds, h.Budget = 100, time.Second
	h.Now = func() time.Time { clock = clock.Add(time.Second); return clock }
	eng.calls = 0
	require.NoError(t, h.ProcessTask(ctx, asynq.NewTask(jobs.TypeSyncAccount, task.Payload)))
	require.Equal(t, 1, eng.calls)
	require.Len(t, continuations(), 3)

	// Done: no continuation.
	h.Engine, h.Now = &busyEngine{left: 1}, time.Now
	require.NoError(t, h.ProcessTask(ctx, asynq.NewTask(jobs.TypeSyncAccount, task.Payload)))
	require.Len(t, continuations(), 3)
}

// mutexLocks is one process-wide lock per account.
type mutexLocks struct {
	mu   sync.Mutex
	held map[int64]bool
}

func (l *mutexLocks) TryAccountSyncLock(_ context.Context, accountID int64) (func(), bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.held[accountID] {
		return nil, false, nil
	}
	l.held[accountID] = true
	return func() { l.mu.Lock(); delete(l.held, accountID); l.mu.Unlock() }, true, nil
}

// wakingEngine delivers a wake-up of the same account (its own task, which
// finds the lock held) during its first call.
type wakingEngine struct {
	calls int
	wake  func() error
	errs  []error
}

func (w *wakingEngine) Process(context.Context, int64) (engine.Result, error) {
	w.calls++
	if w.calls == 1 {
		w.errs = append(w.errs, w.wake())
	}
	return engine.Result{Records: 1}, nil
}

// A wake-up that finds the account's sync running ends at once (no retry
// spinning on the lock) and the running task runs again for it.
func TestSyncWakeUpGoesToTheRunningTask(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	wakes := jobs.RedisSyncWakes{Client: redistest.Client(t), Prefix: "test:woken:" + uuid.NewString() + ":"}
	locks := &mutexLocks{held: map[int64]bool{}}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	task, err := jobs.NewSyncAccountTask(jobs.SyncAccountPayload{AccountID: 7}, "test")
	require.NoError(t, err)
	eng := &wakingEngine{}
	waker := &jobs.SyncAccount{Engine: failingEngine{errors.New("the waker must not run")}, Locks: locks, Outbox: noOutbox{t}, Now: time.Now, Log: log, Wakes: wakes}
	eng.wake = func() error { return waker.ProcessTask(ctx, asynq.NewTask(jobs.TypeSyncAccount, task.Payload)) }
	holder := &jobs.SyncAccount{Engine: eng, Locks: locks, Outbox: noOutbox{t}, Now: time.Now, Log: log, Wakes: wakes}
	require.NoError(t, holder.ProcessTask(ctx, asynq.NewTask(jobs.TypeSyncAccount, task.Payload)))
	require.Equal(t, []error{nil}, eng.errs, "the wake-up ended without an error: nothing to retry")
	require.Equal(t, 2, eng.calls, "the holder ran again for the wake-up")
	woken, err := wakes.Take(ctx, 7)
	require.NoError(t, err)
	require.False(t, woken, "no mark is left behind")

	// Without a wake-up during the run, one call.
	eng2 := &busyEngine{left: 1}
	h := &jobs.SyncAccount{Engine: eng2, Locks: locks, Outbox: noOutbox{t}, Now: time.Now, Log: log, Wakes: wakes}
	require.NoError(t, h.ProcessTask(ctx, asynq.NewTask(jobs.TypeSyncAccount, task.Payload)))
	require.Equal(t, 1, eng2.calls)
}
