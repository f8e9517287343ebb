package jobs_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/svyazka/svyazka/amocrm"
	"github.com/svyazka/svyazka/backend/engine"
	"github.com/svyazka/svyazka/jobs"
)

type failingEngine struct{ err error }

func (f failingEngine) Process(context.Context, int64) (engine.Result, error) {
	return engine.Result{}, f.err
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
			h := &jobs.SyncAccount{Engine: failingEngine{tc.err}, Locks: freeLocks{}, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
			err := h.ProcessTask(context.Background(), asynq.NewTask(jobs.TypeSyncAccount, task.Payload))
			require.Error(t, err)
			require.Equal(t, !tc.retry, errors.Is(err, asynq.SkipRetry))
		})
	}
}
