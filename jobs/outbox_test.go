package jobs_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/svyazka/svyazka/backend/store"
	"github.com/svyazka/svyazka/backend/store/storetest"
	"github.com/svyazka/svyazka/jobs"
)

func testTask(t *testing.T, payload any) jobs.Task {
	t.Helper()
	raw, err := json.Marshal(payload)
	require.NoError(t, err)
	return jobs.Task{Type: "test:outboxed", Payload: raw, Queue: jobs.QueueDefault, MaxRetry: 3, Timeout: time.Minute, Retention: time.Hour}
}

func enqueue(t *testing.T, db *store.DB, tasks ...jobs.Task) {
	t.Helper()
	require.NoError(t, db.InTx(context.Background(), func(tx *store.Tx) error {
		for _, task := range tasks {
			if _, err := tx.Enqueue(task.Outbox()); err != nil {
				return err
			}
		}
		return nil
	}))
}

// collect runs a worker that records every payload of test:outboxed.
func collect(t *testing.T, opt asynq.RedisConnOpt) func() []string {
	var mu sync.Mutex
	var seen []string
	w, err := jobs.NewWorker(jobs.WorkerOptions{Redis: opt, Logger: quiet})
	require.NoError(t, err)
	w.Handle("test:outboxed", asynq.HandlerFunc(func(_ context.Context, task *asynq.Task) error {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, string(task.Payload()))
		return nil
	}))
	startWorker(t, w)
	return func() []string { mu.Lock(); defer mu.Unlock(); return append([]string(nil), seen...) }
}

// TestOutboxSurvivesDatabaseRestore reproduces the lost install: a database
// restored (or re-created) under the same Redis repeats its outbox row ids,
// while Redis still remembers the task ids of the first life. Task ids are
// per row UUIDs now, so the second life's tasks all run.
func TestOutboxSurvivesDatabaseRestore(t *testing.T) {
	t.Parallel()
	opt := redisOpt(t)
	seen := collect(t, opt)
	ctx := context.Background()

	before := storetest.New(t)
	enqueue(t, before, testTask(t, "first life"))
	relay := &jobs.OutboxRelay{Store: before, Client: client(t, opt), Log: quiet}
	n, err := relay.Relay(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	waitFor(t, "the first task ran", func() bool { return len(seen()) == 1 })

	restored := storetest.New(t) // same row ids from 1 again, same Redis
	enqueue(t, restored, testTask(t, "second life"))
	var id int64
	require.NoError(t, restored.SQL().QueryRow(`SELECT id FROM outbox`).Scan(&id))
	require.EqualValues(t, 1, id, "the restored database repeats the row id")
	relay = &jobs.OutboxRelay{Store: restored, Client: client(t, opt), Log: quiet}
	n, err = relay.Relay(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	waitFor(t, "the second life's task ran too", func() bool { return len(seen()) == 2 })
	require.Equal(t, []string{`"first life"`, `"second life"`}, seen())
}

// TestOutboxCarriesTaskOptions checks that a relayed task keeps the queue,
// retry budget, timeout and id its constructor gave it.
func TestOutboxCarriesTaskOptions(t *testing.T) {
	t.Parallel()
	db := storetest.New(t)
	opt := redisOpt(t)
	ctx := context.Background()
	task, err := jobs.NewInstallConfirmDisableTask(jobs.InstallConfirmDisablePayload{AmoAccountID: 42, ReceivedAt: 1_800_000_000})
	require.NoError(t, err)
	enqueue(t, db, task)
	enqueue(t, db, task) // the same domain key within its minute: one task
	relay := &jobs.OutboxRelay{Store: db, Client: client(t, opt), Log: quiet}
	n, err := relay.Relay(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n, "a repeated domain key is one outbox row")

	insp := asynq.NewInspector(opt)
	t.Cleanup(func() { _ = insp.Close() })
	info, err := insp.GetTaskInfo(jobs.QueueCritical, task.ID)
	require.NoError(t, err)
	require.Equal(t, jobs.TypeInstallConfirmDisable, info.Type)
	require.Equal(t, 10, info.MaxRetry)
	require.Equal(t, time.Minute, info.Timeout)
	require.Equal(t, "install:confirm-disable:42:30000000", info.ID)
}

// TestRelayWakesOnCommit measures how long a committed row waits for the
// relay loop when its safety-net tick is far away: the commit's NOTIFY must
// wake it at once.
func TestRelayWakesOnCommit(t *testing.T) {
	t.Parallel()
	db := storetest.New(t)
	opt := redisOpt(t)
	seen := collect(t, opt)
	ctx, cancel := context.WithCancel(context.Background())
	relay := &jobs.OutboxRelay{Store: db, Client: client(t, opt), Log: quiet}
	done := make(chan error, 1)
	go func() { done <- relay.Run(ctx, time.Hour) }()
	t.Cleanup(func() { cancel(); <-done })

	// The listener may still be connecting: rows committed before LISTEN are
	// relayed by its first wake-up, so the first task also proves that path.
	enqueue(t, db, testTask(t, 0))
	waitFor(t, "first task", func() bool { return len(seen()) == 1 })
	for i := 1; i <= 5; i++ {
		start := time.Now()
		enqueue(t, db, testTask(t, i))
		waitFor(t, "task after commit", func() bool { return len(seen()) == i+1 })
		t.Logf("commit → task handled: %s (relay tick is 1h)", time.Since(start).Round(time.Millisecond))
	}
}
