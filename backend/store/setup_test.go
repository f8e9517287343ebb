package store_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/svyazka/svyazka/backend/eventlog"
	"github.com/svyazka/svyazka/backend/setup"
	"github.com/svyazka/svyazka/backend/store"
	"github.com/svyazka/svyazka/backend/store/storetest"
)

func newRun(accountID int64) (setup.Run, store.OutboxMessage) {
	id := uuid.NewString()
	now := time.Now().UTC()
	return setup.Run{ID: id, AccountID: accountID, State: setup.RunRunning, Blocks: setup.AllBlocks(), StartedBy: "test",
			Renames: map[setup.ItemKey]string{"field:lead:doctor": "Лечащий врач"}, StartedAt: now, UpdatedAt: now},
		store.OutboxMessage{TaskID: "setup:apply:" + id, TaskType: "setup:apply", Payload: json.RawMessage(`{"run_id":"` + id + `"}`),
			Queue: "critical", TimeoutSeconds: 600}
}

func TestSetupRuns(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := storetest.New(t)
	acc, _, err := db.InstallAccount(ctx, store.InstallInput{AmoAccountID: 40000001, Subdomain: "runs", BaseDomain: "amocrm.ru", TrialDays: 14, Now: time.Now()})
	require.NoError(t, err)

	run, task := newRun(acc.ID)
	require.NoError(t, db.CreateSetupRun(ctx, run, task))
	st, err := db.SetupState(ctx, acc.ID)
	require.NoError(t, err)
	require.Equal(t, setup.StatusRunning, st.Status)
	require.True(t, st.SyncStopped)
	var n int
	require.NoError(t, db.SQL().QueryRow(`SELECT count(*) FROM outbox WHERE task_id = $1`, task.TaskID).Scan(&n))
	require.Equal(t, 1, n)

	second, task2 := newRun(acc.ID)
	require.ErrorIs(t, db.CreateSetupRun(ctx, second, task2), setup.ErrRunActive, "one running run per account")
	require.NoError(t, db.SQL().QueryRow(`SELECT count(*) FROM outbox WHERE task_id = $1`, task2.TaskID).Scan(&n))
	require.Zero(t, n, "the refused run left no task")

	run.Progress = setup.Progress{Done: 2, Total: 5, Item: "pipeline:repeat"}
	run.Created = map[setup.ItemKey]int64{"pipeline:primary": 7}
	require.NoError(t, db.SaveSetupProgress(ctx, run))
	got, err := db.SetupRun(ctx, run.ID)
	require.NoError(t, err)
	require.Equal(t, run.Progress, got.Progress)
	require.Equal(t, run.Created, got.Created)
	require.Equal(t, run.Renames, got.Renames)

	now := time.Now().UTC()
	run.State, run.FinishedAt = setup.RunSucceeded, &now
	m := setup.Mapping{Lead: map[setup.Datum]setup.FieldMapping{setup.DatumDoctor: {FieldID: 9, Type: setup.FieldText}}}
	mv, err := db.CommitSetup(ctx, acc.ID, setup.Commit{Run: &run, Mapping: &m, By: "test", Update: func(st *setup.AccountState) *eventlog.Event {
		st.Status = setup.StatusConfigured
		return &eventlog.Event{AccountID: acc.ID, Type: eventlog.TypeSetup, Message: "Связка настроена"}
	}})
	require.NoError(t, err)
	require.Equal(t, 1, mv.Version)
	_, err = db.CommitSetup(ctx, acc.ID, setup.Commit{Run: &run})
	require.ErrorIs(t, err, setup.ErrRunFinished, "a finished run is finished once")
	cur, ok, err := db.CurrentMapping(ctx, acc.ID)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, m, cur.Mapping)
	ids, err := db.DriftCheckAccounts(ctx)
	require.NoError(t, err)
	require.Equal(t, []int64{acc.ID}, ids)

	t.Run("SyncRunning", func(t *testing.T) {
		_, err := db.SQL().Exec(`UPDATE account_settings SET sync_state = 'running' WHERE account_id = $1`, acc.ID)
		require.NoError(t, err)
		r, task := newRun(acc.ID)
		require.ErrorIs(t, db.CreateSetupRun(ctx, r, task), setup.ErrSyncRunning)
	})

	t.Run("UnknownRun", func(t *testing.T) {
		_, err := db.SetupRun(ctx, "not-a-uuid")
		require.ErrorIs(t, err, store.ErrNotFound)
		_, err = db.SetupRun(ctx, uuid.NewString())
		require.ErrorIs(t, err, store.ErrNotFound)
	})
}
