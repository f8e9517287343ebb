// Package jobs holds Svyazka's background work on asynq: queue names, task
// types with their payloads and constructors, handlers, the worker process and
// a periodic scheduler that is safe to run in several replicas.
package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/hibiken/asynq"
)

// Queue names with their weights: critical work (webhooks, installs) is picked
// six times as often as low-priority work (status checks, cleanup).
const (
	QueueCritical = "critical"
	QueueDefault  = "default"
	QueueLow      = "low"
)

// Queues maps every queue to its processing weight.
var Queues = map[string]int{QueueCritical: 6, QueueDefault: 3, QueueLow: 1}

// RetryAfterError asks for a retry after Delay without counting the attempt
// as a failure (amoCRM's 429, a held account lock).
type RetryAfterError struct {
	Delay time.Duration
	Err   error
}

func (e *RetryAfterError) Error() string {
	return fmt.Sprintf("retry after %s: %v", e.Delay, e.Err)
}

func (e *RetryAfterError) Unwrap() error { return e.Err }

// BackoffError asks for a retry that counts as a failure, after a delay
// that starts at Base and doubles with each retry up to Max, with jitter:
// for transient faults (amoCRM's 5xx and timeouts) where asynq's default
// backoff (tens of seconds from the first retry) would leave a clinic's
// change waiting far longer than the fault lasted.
type BackoffError struct {
	Base, Max time.Duration
	Err       error
}

func (e *BackoffError) Error() string { return e.Err.Error() }

func (e *BackoffError) Unwrap() error { return e.Err }

// delay is the wait before retry n (0-based), with up to 25% jitter.
func (e *BackoffError) delay(n int) time.Duration {
	d := e.Base
	for i := 0; i < n && d < e.Max; i++ {
		d *= 2
	}
	d = min(d, e.Max)
	return d - time.Duration(rand.Int64N(int64(d/4)+1))
}

// WorkerOptions configure a Worker.
type WorkerOptions struct {
	Redis           asynq.RedisConnOpt
	Concurrency     int
	ShutdownTimeout time.Duration
	Logger          *slog.Logger
	// TaskCheckInterval is how often an idle worker looks for new tasks
	// (default 250ms: a freshly relayed install runs within a fraction of a
	// second; each idle worker costs Redis about four cheap polls a second).
	TaskCheckInterval time.Duration
	// OnFailure is told about every task that will not be retried again
	// (retries exhausted or asynq.SkipRetry), so it can reach the event log.
	OnFailure func(ctx context.Context, task *asynq.Task, err error)
}

// Worker processes tasks from every queue until its context ends.
type Worker struct {
	srv *asynq.Server
	mux *asynq.ServeMux
	log *slog.Logger
}

// NewWorker returns a worker; register handlers with Handle before Run.
func NewWorker(opts WorkerOptions) (*Worker, error) {
	if opts.Redis == nil || opts.Logger == nil {
		return nil, errors.New("jobs: worker needs Redis and Logger")
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = 10
	}
	if opts.ShutdownTimeout <= 0 {
		opts.ShutdownTimeout = 25 * time.Second
	}
	if opts.TaskCheckInterval <= 0 {
		opts.TaskCheckInterval = 250 * time.Millisecond
	}
	log := opts.Logger.With("component", "worker")
	isFailure := func(err error) bool {
		var ra *RetryAfterError
		return !errors.As(err, &ra)
	}
	srv := asynq.NewServer(opts.Redis, asynq.Config{
		Concurrency:       opts.Concurrency,
		TaskCheckInterval: opts.TaskCheckInterval,
		Queues:            Queues,
		ShutdownTimeout:   opts.ShutdownTimeout,
		Logger:            asynqLogger{log},
		LogLevel:          asynq.WarnLevel,
		IsFailure:         isFailure,
		RetryDelayFunc: func(n int, err error, t *asynq.Task) time.Duration {
			var ra *RetryAfterError
			if errors.As(err, &ra) && ra.Delay > 0 {
				return ra.Delay
			}
			var be *BackoffError
			if errors.As(err, &be) && be.Base > 0 && be.Max >= be.Base {
				return be.delay(n)
			}
			return asynq.DefaultRetryDelayFunc(n, err, t)
		},
		ErrorHandler: asynq.ErrorHandlerFunc(func(ctx context.Context, task *asynq.Task, err error) {
			retried, _ := asynq.GetRetryCount(ctx)
			maxRetry, _ := asynq.GetMaxRetry(ctx)
			id, _ := asynq.GetTaskID(ctx)
			// asynq archives once retried >= maxRetry, even after a RetryAfterError;
			// RetryAfterError only keeps retried from growing.
			final := errors.Is(err, asynq.SkipRetry) || retried >= maxRetry
			log.WarnContext(ctx, "task failed", "type", task.Type(), "task_id", id,
				"retried", retried, "max_retry", maxRetry, "final", final, "err", err)
			if final && opts.OnFailure != nil {
				opts.OnFailure(ctx, task, err)
			}
		}),
	})
	return &Worker{srv: srv, mux: asynq.NewServeMux(), log: log}, nil
}

// Handle registers the handler for a task type.
func (w *Worker) Handle(taskType string, h asynq.Handler) { w.mux.Handle(taskType, h) }

// Run processes tasks until ctx ends, then stops taking new tasks and waits up
// to the shutdown timeout; tasks still running after it go back to their queue.
func (w *Worker) Run(ctx context.Context) error {
	if err := w.srv.Start(w.mux); err != nil {
		return fmt.Errorf("jobs: start worker: %w", err)
	}
	w.log.Info("worker started", "queues", Queues)
	<-ctx.Done()
	w.srv.Shutdown()
	w.log.Info("worker stopped")
	return nil
}

// asynqLogger routes asynq's own messages to slog.
type asynqLogger struct{ log *slog.Logger }

func (l asynqLogger) Debug(args ...any) { l.log.Debug(fmt.Sprint(args...)) }
func (l asynqLogger) Info(args ...any)  { l.log.Info(fmt.Sprint(args...)) }
func (l asynqLogger) Warn(args ...any)  { l.log.Warn(fmt.Sprint(args...)) }
func (l asynqLogger) Error(args ...any) { l.log.Error(fmt.Sprint(args...)) }
func (l asynqLogger) Fatal(args ...any) { l.log.Error(fmt.Sprint(args...)) }
