package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hibiken/asynq"

	"github.com/svyazka/svyazka/backend/setup"
	"github.com/svyazka/svyazka/backend/store"
)

// SetupStore is setup.Store on our database: a run is recorded together
// with its TypeSetupApply task in the outbox.
type SetupStore struct {
	DB *store.DB
}

var _ setup.Store = SetupStore{}

// CreateRun implements setup.Store.
func (s SetupStore) CreateRun(ctx context.Context, run setup.Run) error {
	t, err := NewSetupApplyTask(SetupApplyPayload{RunID: run.ID})
	if err != nil {
		return err
	}
	return s.DB.CreateSetupRun(ctx, run, t.Outbox())
}

// Run implements setup.Store.
func (s SetupStore) Run(ctx context.Context, id string) (setup.Run, error) {
	return s.DB.SetupRun(ctx, id)
}

// LatestRun implements setup.Store.
func (s SetupStore) LatestRun(ctx context.Context, accountID int64) (setup.Run, bool, error) {
	return s.DB.LatestSetupRun(ctx, accountID)
}

// SaveProgress implements setup.Store.
func (s SetupStore) SaveProgress(ctx context.Context, run setup.Run) error {
	return s.DB.SaveSetupProgress(ctx, run)
}

// IdleRuns implements setup.Store.
func (s SetupStore) IdleRuns(ctx context.Context, before time.Time) ([]setup.Run, error) {
	return s.DB.IdleSetupRuns(ctx, before)
}

// Commit implements setup.Store.
func (s SetupStore) Commit(ctx context.Context, accountID int64, c setup.Commit) (setup.MappingVersion, error) {
	return s.DB.CommitSetup(ctx, accountID, c)
}

// Mapping implements setup.Store.
func (s SetupStore) Mapping(ctx context.Context, accountID int64) (setup.MappingVersion, bool, error) {
	return s.DB.CurrentMapping(ctx, accountID)
}

// State implements setup.Store.
func (s SetupStore) State(ctx context.Context, accountID int64) (setup.AccountState, error) {
	return s.DB.SetupState(ctx, accountID)
}

// SetupApply handles TypeSetupApply. Run's outcome decides the task's:
// a finished or unknown run is done; a failed run (already marked, with its
// event) is not retried; any other error is transient and retried —
// after RetryAfter's delay when it gives one (amoCRM's 429), else with a
// doubling backoff — and when the retries run out the run is marked failed,
// so it never stays running. No delay exceeds SetupRetryMaxDelay: a run
// waiting for its retry must not look lost (SetupLostAfter).
type SetupApply struct {
	Runner *setup.Runner
	// RetryAfter is the delay an error asks for (0: the usual backoff).
	RetryAfter func(error) time.Duration
	Log        *slog.Logger
}

// ProcessTask implements asynq.Handler.
func (h *SetupApply) ProcessTask(ctx context.Context, t *asynq.Task) error {
	if h.Runner == nil || h.RetryAfter == nil || h.Log == nil {
		return errors.New("jobs: setup apply needs Runner, RetryAfter and Log")
	}
	p, err := ParseSetupApply(t)
	if err != nil {
		return err
	}
	err = h.Runner.Run(ctx, p.RunID)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, setup.ErrRunFinished), errors.Is(err, store.ErrNotFound):
		h.Log.InfoContext(ctx, "setup run has nothing to do", "run_id", p.RunID, "err", err)
		return nil
	case errors.Is(err, setup.ErrRunFailed):
		return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
	}
	retried, _ := asynq.GetRetryCount(ctx)
	maxRetry, ok := asynq.GetMaxRetry(ctx)
	if ok && retried >= maxRetry {
		if ferr := h.Runner.Fail(context.WithoutCancel(ctx), p.RunID, err); ferr != nil {
			return errors.Join(err, ferr)
		}
		return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
	}
	if d := h.RetryAfter(err); d > 0 {
		return &RetryAfterError{Delay: min(d, SetupRetryMaxDelay), Err: err}
	}
	// Not asynq's default backoff: by the sixth retry it waits over ten
	// minutes, by the last about four hours, and the run would look lost.
	return &BackoffError{Base: setupRetryBase, Max: SetupRetryMaxDelay, Err: err}
}

// setupRetryBase is the first retry's delay after a transient failure.
const setupRetryBase = 15 * time.Second

// DriftAccounts lists the accounts the drift check visits.
type DriftAccounts interface {
	DriftCheckAccounts(ctx context.Context) ([]int64, error)
}

// SetupDrift handles TypeSetupDrift: every configured or drifted account's
// mapping is checked against amoCRM. One account's failure (amoCRM down for
// it) is logged and the others are still checked.
type SetupDrift struct {
	Runner   *setup.Runner
	Accounts DriftAccounts
	Log      *slog.Logger
}

// ProcessTask implements asynq.Handler.
func (h *SetupDrift) ProcessTask(ctx context.Context, _ *asynq.Task) error {
	if h.Runner == nil || h.Accounts == nil || h.Log == nil {
		return errors.New("jobs: setup drift needs Runner, Accounts and Log")
	}
	ids, err := h.Accounts.DriftCheckAccounts(ctx)
	if err != nil {
		return err
	}
	failed := 0
	for _, id := range ids {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		problems, err := h.Runner.CheckDrift(ctx, id)
		if err != nil {
			failed++
			h.Log.WarnContext(ctx, "drift check failed", "account_id", id, "err", err)
			continue
		}
		if len(problems) > 0 {
			h.Log.InfoContext(ctx, "mapping drifted", "account_id", id, "problems", len(problems))
		}
	}
	h.Log.InfoContext(ctx, "drift check done", "accounts", len(ids), "failed", failed)
	return nil
}

// SetupReap handles TypeSetupReap: the runs whose apply task was lost (no
// progress for SetupLostAfter) are failed, so their accounts can run
// autosetup again. Safe with several workers: a run is failed once.
type SetupReap struct {
	Runner *setup.Runner
	Log    *slog.Logger
}

// ProcessTask implements asynq.Handler.
func (h *SetupReap) ProcessTask(ctx context.Context, _ *asynq.Task) error {
	if h.Runner == nil || h.Log == nil {
		return errors.New("jobs: setup reap needs Runner and Log")
	}
	lost, err := h.Runner.FailIdle(ctx, SetupLostAfter)
	for _, run := range lost {
		h.Log.WarnContext(ctx, "setup run lost its task: failed", "run_id", run.ID, "account_id", run.AccountID)
	}
	return err
}
