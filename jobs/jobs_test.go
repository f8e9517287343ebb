package jobs_test

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/svyazka/svyazka/backend/redistest"
	"github.com/svyazka/svyazka/backend/store"
	"github.com/svyazka/svyazka/backend/store/storetest"
	"github.com/svyazka/svyazka/jobs"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func redisOpt(t *testing.T) asynq.RedisClientOpt {
	o := redistest.New(t)
	return asynq.RedisClientOpt{Addr: o.Addr, DB: o.DB}
}

func client(t *testing.T, opt asynq.RedisConnOpt) *asynq.Client {
	c := asynq.NewClient(opt)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// startWorker runs a worker until the test ends (or stop is called).
func startWorker(t *testing.T, w *jobs.Worker) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = w.Run(ctx) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return stop
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	require.Eventually(t, cond, 20*time.Second, 20*time.Millisecond, what)
}

func TestWorkerRunsEnqueuedTask(t *testing.T) {
	t.Parallel()
	opt := redisOpt(t)
	w, err := jobs.NewWorker(jobs.WorkerOptions{Redis: opt, Logger: quiet, Concurrency: 2})
	require.NoError(t, err)
	got := make(chan string, 3)
	w.Handle("test:echo", asynq.HandlerFunc(func(ctx context.Context, task *asynq.Task) error {
		got <- string(task.Payload())
		return nil
	}))
	startWorker(t, w)

	c := client(t, opt)
	for _, q := range []string{jobs.QueueCritical, jobs.QueueDefault, jobs.QueueLow} {
		_, err := c.Enqueue(asynq.NewTask("test:echo", []byte("hello "+q)), asynq.Queue(q))
		require.NoError(t, err)
	}
	var seen []string
	for range 3 {
		select {
		case p := <-got:
			seen = append(seen, p)
		case <-time.After(20 * time.Second):
			t.Fatalf("worker ran %d of 3 tasks", len(seen))
		}
	}
	require.ElementsMatch(t, []string{"hello critical", "hello default", "hello low"}, seen)
}

func TestWorkerRetriesAndReportsFinalFailure(t *testing.T) {
	t.Parallel()
	opt := redisOpt(t)
	failed := make(chan string, 1)
	w, err := jobs.NewWorker(jobs.WorkerOptions{Redis: opt, Logger: quiet,
		OnFailure: func(_ context.Context, task *asynq.Task, err error) { failed <- task.Type() + ": " + err.Error() }})
	require.NoError(t, err)
	var attempts atomic.Int32
	w.Handle("test:flaky", asynq.HandlerFunc(func(ctx context.Context, task *asynq.Task) error {
		if attempts.Add(1) <= 2 {
			// Not counted as a failure and retried after the asked delay.
			return &jobs.RetryAfterError{Delay: time.Second, Err: io.ErrUnexpectedEOF}
		}
		return errPermanent
	}))
	startWorker(t, w)
	_, err = client(t, opt).Enqueue(asynq.NewTask("test:flaky", nil), asynq.MaxRetry(1))
	require.NoError(t, err)
	select {
	case msg := <-failed:
		require.Equal(t, "test:flaky: bad payload: skip retry for the task", msg)
	case <-time.After(30 * time.Second):
		t.Fatal("final failure never reported")
	}
	require.EqualValues(t, 3, attempts.Load(), "two rate-limited attempts did not use up MaxRetry(1)")
}

var errPermanent = &permanentError{}

type permanentError struct{}

func (*permanentError) Error() string { return "bad payload: " + asynq.SkipRetry.Error() }
func (*permanentError) Unwrap() error { return asynq.SkipRetry }

// TestWorkerShutdownRequeuesInFlight proves graceful shutdown: a task still
// running when the shutdown timeout passes goes back to its queue, and the
// next worker finishes it.
func TestWorkerShutdownRequeuesInFlight(t *testing.T) {
	t.Parallel()
	opt := redisOpt(t)
	started := make(chan struct{}, 1)
	first, err := jobs.NewWorker(jobs.WorkerOptions{Redis: opt, Logger: quiet, ShutdownTimeout: time.Second})
	require.NoError(t, err)
	first.Handle("test:slow", asynq.HandlerFunc(func(ctx context.Context, _ *asynq.Task) error {
		started <- struct{}{}
		<-ctx.Done() // runs past the shutdown timeout
		return ctx.Err()
	}))
	stopFirst := startWorker(t, first)
	info, err := client(t, opt).Enqueue(asynq.NewTask("test:slow", nil), asynq.MaxRetry(3))
	require.NoError(t, err)
	<-started
	stopFirst()

	insp := asynq.NewInspector(opt)
	t.Cleanup(func() { _ = insp.Close() })
	task, err := insp.GetTaskInfo(info.Queue, info.ID)
	require.NoError(t, err)
	require.Contains(t, []asynq.TaskState{asynq.TaskStatePending, asynq.TaskStateRetry}, task.State, "the task went back to the queue")

	finished := make(chan struct{})
	second, err := jobs.NewWorker(jobs.WorkerOptions{Redis: opt, Logger: quiet})
	require.NoError(t, err)
	second.Handle("test:slow", asynq.HandlerFunc(func(context.Context, *asynq.Task) error { close(finished); return nil }))
	startWorker(t, second)
	if task.State == asynq.TaskStateRetry {
		require.NoError(t, insp.RunTask(info.Queue, info.ID))
	}
	select {
	case <-finished:
	case <-time.After(30 * time.Second):
		t.Fatal("requeued task never finished")
	}
}

func TestSchedulerDeduplicatesAcrossReplicas(t *testing.T) {
	t.Parallel()
	opt := redisOpt(t)
	var now atomic.Int64
	now.Store(time.Date(2026, 11, 22, 10, 0, 30, 0, time.UTC).UnixNano())
	clock := func() time.Time { return time.Unix(0, now.Load()) }
	entry := jobs.Periodic{Every: time.Minute, Task: func(time.Time) *asynq.Task {
		return asynq.NewTask("test:periodic", nil, asynq.Queue(jobs.QueueLow))
	}}
	var schedulers []*jobs.Scheduler
	for range 3 {
		s, err := jobs.NewScheduler(client(t, opt), quiet, clock, entry)
		require.NoError(t, err)
		schedulers = append(schedulers, s)
	}
	insp := asynq.NewInspector(opt)
	t.Cleanup(func() { _ = insp.Close() })
	pending := func() int {
		q, err := insp.GetQueueInfo(jobs.QueueLow)
		require.NoError(t, err)
		return q.Pending
	}

	total := 0
	for _, s := range schedulers {
		total += s.Tick(context.Background())
	}
	require.Equal(t, 1, total, "three replicas enqueue the slot once")
	require.Equal(t, 1, pending())

	now.Add(int64(20 * time.Second)) // same slot
	for _, s := range schedulers {
		total += s.Tick(context.Background())
	}
	require.Equal(t, 1, total)

	now.Add(int64(time.Minute)) // next slot
	var wg sync.WaitGroup
	var next atomic.Int32
	for _, s := range schedulers {
		wg.Go(func() { next.Add(int32(s.Tick(context.Background()))) })
	}
	wg.Wait()
	require.EqualValues(t, 1, next.Load(), "concurrent replicas still enqueue once")
	require.Equal(t, 2, pending())
}

func TestOutboxRelayRunsEachMessageOnce(t *testing.T) {
	t.Parallel()
	db := storetest.New(t)
	opt := redisOpt(t)
	ctx := context.Background()

	require.NoError(t, db.InTx(ctx, func(tx *store.Tx) error {
		for i := range 5 {
			if _, err := tx.Enqueue(testTask(t, map[string]int{"n": i}).Outbox()); err != nil {
				return err
			}
		}
		return nil
	}))
	// A rolled-back transaction leaves no message behind.
	_ = db.InTx(ctx, func(tx *store.Tx) error {
		_, err := tx.Enqueue(testTask(t, map[string]int{"n": 99}).Outbox())
		require.NoError(t, err)
		return io.EOF
	})

	relay := &jobs.OutboxRelay{Store: db, Client: client(t, opt), Log: quiet}
	var wg sync.WaitGroup
	var relayed atomic.Int32
	for range 3 { // concurrent relays skip each other's locked rows
		wg.Go(func() {
			n, err := relay.Relay(ctx)
			require.NoError(t, err)
			relayed.Add(int32(n))
		})
	}
	wg.Wait()
	require.EqualValues(t, 5, relayed.Load())

	var mu sync.Mutex
	seen := map[string]int{}
	w, err := jobs.NewWorker(jobs.WorkerOptions{Redis: opt, Logger: quiet})
	require.NoError(t, err)
	w.Handle("test:outboxed", asynq.HandlerFunc(func(_ context.Context, task *asynq.Task) error {
		mu.Lock()
		defer mu.Unlock()
		seen[string(task.Payload())]++
		return nil
	}))
	startWorker(t, w)
	waitFor(t, "all five messages handled", func() bool { mu.Lock(); defer mu.Unlock(); return len(seen) == 5 })
	n, err := relay.Relay(ctx)
	require.NoError(t, err)
	require.Zero(t, n, "nothing left to relay")
	mu.Lock()
	defer mu.Unlock()
	for payload, count := range seen {
		require.Equal(t, 1, count, payload)
		require.NotContains(t, payload, "99")
	}
}

func TestQueueCollector(t *testing.T) {
	t.Parallel()
	opt := redisOpt(t)
	_, err := client(t, opt).Enqueue(asynq.NewTask("test:x", nil), asynq.Queue(jobs.QueueLow))
	require.NoError(t, err)
	insp := asynq.NewInspector(opt)
	t.Cleanup(func() { _ = insp.Close() })
	reg := prometheus.NewRegistry()
	reg.MustRegister(jobs.QueueCollector{Inspector: insp})
	families, err := reg.Gather()
	require.NoError(t, err)
	require.Len(t, families, 1)
	require.Len(t, families[0].GetMetric(), 3*6, "three queues by six states")
	var lowPending float64 = -1
	for _, m := range families[0].GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		if labels["queue"] == "low" && labels["state"] == "pending" {
			lowPending = m.GetGauge().GetValue()
		}
	}
	require.Equal(t, 1.0, lowPending)
}

func TestBackoffErrorDelay(t *testing.T) {
	t.Parallel()
	e := &jobs.BackoffError{Base: time.Second, Max: time.Minute, Err: io.ErrUnexpectedEOF}
	require.ErrorIs(t, e, io.ErrUnexpectedEOF)
	for n, want := range map[int]time.Duration{0: time.Second, 1: 2 * time.Second, 3: 8 * time.Second, 10: time.Minute} {
		got := jobs.BackoffDelay(e, n)
		require.LessOrEqual(t, got, want, "retry %d", n)
		require.GreaterOrEqual(t, got, want*3/4, "retry %d: at most 25%% jitter", n)
	}
}
