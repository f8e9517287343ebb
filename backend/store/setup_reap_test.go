package store_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/svyazka/svyazka/backend/setup"
	"github.com/svyazka/svyazka/backend/store"
	"github.com/svyazka/svyazka/backend/store/storetest"
	"github.com/svyazka/svyazka/jobs"
)

// reapAccount installs an account with the sync stopped (autosetup allowed).
func reapAccount(t *testing.T, db *store.DB, amoID int64) int64 {
	t.Helper()
	acc, _, err := db.InstallAccount(context.Background(), store.InstallInput{AmoAccountID: amoID, Subdomain: "reap" + strconv.FormatInt(amoID, 10),
		BaseDomain: "amocrm.ru", TrialDays: 14, Now: time.Now()})
	require.NoError(t, err)
	return acc.ID
}

// startRun records a running run whose last progress was idle ago.
func startRun(t *testing.T, db *store.DB, accountID int64, idle time.Duration) setup.Run {
	t.Helper()
	run, task := newRun(accountID)
	run.StartedAt = run.StartedAt.Add(-idle)
	run.UpdatedAt = run.StartedAt
	run.Progress = setup.Progress{Done: 1, Total: 4, Item: "pipeline:repeat"}
	require.NoError(t, db.CreateSetupRun(context.Background(), run, task))
	return run
}

func setupEvents(t *testing.T, db *store.DB, accountID int64) int {
	t.Helper()
	var n int
	require.NoError(t, db.SQL().QueryRow(`SELECT count(*) FROM events WHERE account_id = $1 AND type = 'setup' AND severity = 'error' AND message = $2`,
		accountID, setup.MessageRunLost).Scan(&n))
	return n
}

func TestFailIdleSetupRuns(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := storetest.New(t)
	lostAcc, freshAcc := reapAccount(t, db, 40000101), reapAccount(t, db, 40000102)
	fresh := startRun(t, db, freshAcc, time.Minute)

	// Each round leaves a run whose task was lost, races reapers on it (as
	// several workers' periodic checks would), then starts a new run: the
	// account is not stuck.
	const rounds, reapers = 3, 4
	for round := 1; round <= rounds; round++ {
		lost := startRun(t, db, lostAcc, jobs.SetupLostAfter+time.Minute)

		var wg sync.WaitGroup
		start := make(chan struct{})
		failed := make([][]setup.Run, reapers)
		errs := make([]error, reapers)
		for i := range reapers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				runner := &setup.Runner{Store: jobs.SetupStore{DB: db}}
				<-start
				failed[i], errs[i] = runner.FailIdle(ctx, jobs.SetupLostAfter)
			}()
		}
		close(start)
		wg.Wait()
		var ids []string
		for i := range reapers {
			require.NoError(t, errs[i])
			for _, r := range failed[i] {
				ids = append(ids, r.ID)
			}
		}
		require.Equal(t, []string{lost.ID}, ids, "round %d: the lost run is failed once, the fresh one not at all", round)
		require.Equal(t, round, setupEvents(t, db, lostAcc), "round %d: one event per lost run", round)

		got, err := db.SetupRun(ctx, lost.ID)
		require.NoError(t, err)
		require.Equal(t, setup.RunFailed, got.State)
		require.Equal(t, setup.MessageRunLost, got.Error)
		require.NotNil(t, got.FinishedAt)
		require.Equal(t, lost.Progress, got.Progress, "progress kept as the task left it")
		st, err := db.SetupState(ctx, lostAcc)
		require.NoError(t, err)
		require.Equal(t, setup.AccountState{Status: setup.StatusFailed, Detail: setup.MessageRunLost, SyncStopped: true}, st)
	}

	got, err := db.SetupRun(ctx, fresh.ID)
	require.NoError(t, err)
	require.Equal(t, setup.RunRunning, got.State, "a run that moved recently is left alone")
	st, err := db.SetupState(ctx, freshAcc)
	require.NoError(t, err)
	require.Equal(t, setup.StatusRunning, st.Status)
	require.Zero(t, setupEvents(t, db, freshAcc))
}

// A run listed as idle that moves before the reaper commits is not failed.
func TestFailIdleSkipsRunThatMoved(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := storetest.New(t)
	acc := reapAccount(t, db, 40000103)
	run := startRun(t, db, acc, time.Hour)

	before := time.Now().Add(-jobs.SetupLostAfter)
	idle, err := db.IdleSetupRuns(ctx, before)
	require.NoError(t, err)
	require.Len(t, idle, 1)
	require.Equal(t, run.ID, idle[0].ID)

	require.NoError(t, db.SaveSetupProgress(ctx, run), "the task wakes up")
	idle, err = db.IdleSetupRuns(ctx, before)
	require.NoError(t, err)
	require.Empty(t, idle)

	failed := run
	failed.State, failed.Error = setup.RunFailed, setup.MessageRunLost
	_, err = db.CommitSetup(ctx, acc, setup.Commit{Run: &failed, IdleBefore: before})
	require.ErrorIs(t, err, setup.ErrRunFinished)
	got, err := db.SetupRun(ctx, run.ID)
	require.NoError(t, err)
	require.Equal(t, setup.RunRunning, got.State)
}

// A retry that starts long after the run last moved stamps it first, so a
// reaper racing the live attempt leaves it alone.
func TestSetupRunHeartbeat(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := storetest.New(t)
	acc := reapAccount(t, db, 40000104)
	run := startRun(t, db, acc, time.Hour)

	errAmoDown := errors.New("amoCRM: 503")
	reaper := &setup.Runner{Store: jobs.SetupStore{DB: db}}
	var reaped []setup.Run
	runner := &setup.Runner{Store: jobs.SetupStore{DB: db}, Transient: func(error) bool { return true },
		CRM: func(ctx context.Context, _ int64) (setup.CRM, error) {
			var err error
			reaped, err = reaper.FailIdle(ctx, jobs.SetupLostAfter)
			require.NoError(t, err)
			return nil, errAmoDown
		}}
	require.ErrorIs(t, runner.Run(ctx, run.ID), errAmoDown, "a transient error: the task retries")
	require.Empty(t, reaped)
	got, err := db.SetupRun(ctx, run.ID)
	require.NoError(t, err)
	require.Equal(t, setup.RunRunning, got.State)
	require.WithinDuration(t, time.Now(), got.UpdatedAt, time.Minute)
}

// The periodic reap task fails lost runs.
func TestSetupReapFailsLostRuns(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := storetest.New(t)
	acc := reapAccount(t, db, 40000105)
	lost := startRun(t, db, acc, 2*jobs.SetupLostAfter)

	h := &jobs.SetupReap{Runner: &setup.Runner{Store: jobs.SetupStore{DB: db}}, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	require.NoError(t, h.ProcessTask(ctx, jobs.NewSetupReapTask()))
	got, err := db.SetupRun(ctx, lost.ID)
	require.NoError(t, err)
	require.Equal(t, setup.RunFailed, got.State)
	require.Equal(t, 1, setupEvents(t, db, acc))

	again, task := newRun(acc)
	require.NoError(t, db.CreateSetupRun(ctx, again, task), "a new run can start")
	st, err := db.SetupState(ctx, acc)
	require.NoError(t, err)
	require.Equal(t, setup.StatusRunning, st.Status)
}

// A live run is never quiet for longer than SetupLostAfter: not during an
// attempt, nor while its retry waits.
func TestSetupLostAfterOutlastsQuietSpells(t *testing.T) {
	t.Parallel()
	task, err := jobs.NewSetupApplyTask(jobs.SetupApplyPayload{RunID: "r"})
	require.NoError(t, err)
	require.Equal(t, jobs.SetupApplyTimeout, task.Timeout)
	require.GreaterOrEqual(t, jobs.SetupLostAfter, max(jobs.SetupApplyTimeout, jobs.SetupRetryMaxDelay)+5*time.Minute)

	ctx := context.Background()
	db := storetest.New(t)
	acc := reapAccount(t, db, 40000106)
	run := startRun(t, db, acc, 0)
	errAmoDown := errors.New("amoCRM: 503")
	runner := &setup.Runner{Store: jobs.SetupStore{DB: db}, Transient: func(error) bool { return true },
		CRM: func(context.Context, int64) (setup.CRM, error) { return nil, errAmoDown }}
	for _, tc := range []struct {
		name       string
		retryAfter time.Duration
	}{{"Backoff", 0}, {"RetryAfter", time.Hour}} {
		h := &jobs.SetupApply{Runner: runner, RetryAfter: func(error) time.Duration { return tc.retryAfter },
			Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
		apply, err := jobs.NewSetupApplyTask(jobs.SetupApplyPayload{RunID: run.ID})
		require.NoError(t, err)
		err = h.ProcessTask(ctx, asynq.NewTask(apply.Type, apply.Payload))
		require.ErrorIs(t, err, errAmoDown, tc.name)
		var backoff *jobs.BackoffError
		var retryAfter *jobs.RetryAfterError
		switch {
		case errors.As(err, &backoff):
			require.LessOrEqual(t, backoff.Max, jobs.SetupRetryMaxDelay, tc.name)
		case errors.As(err, &retryAfter):
			require.LessOrEqual(t, retryAfter.Delay, jobs.SetupRetryMaxDelay, tc.name)
		default:
			t.Fatalf("%s: %v is retried with asynq's default backoff (hours by the last retry)", tc.name, err)
		}
	}
}
