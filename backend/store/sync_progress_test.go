package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/svyazka/svyazka/backend/eventlog"
	"github.com/svyazka/svyazka/backend/store"
	"github.com/svyazka/svyazka/backend/store/storetest"
)

func TestSyncProgress(t *testing.T) {
	t.Parallel()
	db := storetest.New(t)
	ctx := context.Background()
	acc, d := newDatabase(t, db, "progress")
	t0 := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	ingest := func(at time.Time, recs ...store.IngestRecord) {
		t.Helper()
		_, err := db.Ingest(ctx, store.IngestBatch{DatabaseID: d.ID, BatchID: uuid.NewString(), Total: len(recs), Records: recs, Now: at})
		require.NoError(t, err)
	}
	progress := func() store.SyncProgress {
		t.Helper()
		p, err := db.SyncProgress(ctx, acc.ID)
		require.NoError(t, err)
		require.Len(t, p.Databases, 1)
		return p
	}
	start := func(at time.Time) {
		t.Helper()
		require.NoError(t, db.StartSync(ctx, store.StartSyncInput{AccountID: acc.ID, Now: at,
			Task:  store.OutboxMessage{TaskID: "sync:account:test:" + uuid.NewString(), TaskType: "sync:account", Payload: []byte(`{}`), Queue: "default", TimeoutSeconds: 60},
			Event: eventlog.Event{AccountID: acc.ID, Type: eventlog.TypeSyncStarted, Message: "started"}}))
	}
	loadDone := func(done bool) {
		t.Helper()
		require.NoError(t, db.RecordHeartbeat(ctx, store.HeartbeatInput{DatabaseID: d.ID, InstanceID: "inst", ConnectorVersion: "1.0",
			DatabaseUp: true, InitialLoadDone: done, Now: t0}))
	}

	ingest(t0, record("patient", "1", 1, "a"), record("patient", "2", 1, "b"))
	ingest(t0.Add(time.Minute), record("reception", "1", 1, "c"), record("reception", "2", 1, "d"))

	t.Run("NeverStarted", func(t *testing.T) {
		p := progress()
		require.Equal(t, "stopped", p.State)
		require.Nil(t, p.StartedAt)
		require.Zero(t, p.ImportTotal(), "no import before a start")
		require.Equal(t, store.SyncQueue{Pending: 4}, p.Queue)
		require.Equal(t, int64(600), p.LagSeconds(t0.Add(10*time.Minute)), "the oldest pending change arrived at t0")
		require.Equal(t, t0.Add(time.Minute), *p.Databases[0].LastReceivedAt)
		require.Nil(t, p.Databases[0].LastWrittenAt)
		eta, ok := p.ETASeconds(t0)
		require.True(t, ok)
		require.Zero(t, eta, "nothing to import")
	})

	// The connector's first load still runs: what it delivers after the
	// start joins the import.
	loadDone(false)
	tStart := t0.Add(2 * time.Minute)
	start(tStart)
	ingest(tStart.Add(time.Second), record("reception", "3", 1, "e"))
	p := progress()
	require.Equal(t, "running", p.State)
	require.Equal(t, tStart, *p.StartedAt)
	require.Equal(t, int64(5), p.ImportTotal(), "the first load's late records are part of the import")
	require.Zero(t, p.ImportDone())

	// A commit during the first load keeps its records in the import; once
	// the load ends, later changes are real-time work, not import.
	changes, err := db.PendingChanges(ctx, d.ID, 0, 10)
	require.NoError(t, err)
	require.Len(t, changes, 5)
	tWrite := tStart.Add(10 * time.Second)
	require.NoError(t, db.CommitSync(ctx, store.SyncCommit{AccountID: acc.ID, DatabaseID: d.ID, Cursor: changes[1].ChangeSeq, Now: tWrite}))
	loadDone(true)
	ingest(tStart.Add(20*time.Second), record("patient", "9", 1, "late"))

	p = progress()
	require.Equal(t, int64(5), p.ImportTotal(), "the import's upper bound held after the first load")
	require.Equal(t, int64(2), p.ImportDone())
	require.Equal(t, store.SyncQueue{Pending: 4}, p.Queue)
	require.Equal(t, tWrite, *p.Databases[0].LastWrittenAt)
	require.Equal(t, tStart.Add(20*time.Second), *p.Databases[0].LastReceivedAt)
	now := tStart.Add(time.Minute)
	require.InDelta(t, 2.0, p.RatePerMinute(now), 1e-9, "two records in the minute since the start")
	eta, ok := p.ETASeconds(now)
	require.True(t, ok)
	require.Equal(t, int64(90), eta, "three left at two a minute")
	require.Equal(t, int64(now.Sub(t0.Add(time.Minute))/time.Second), p.LagSeconds(now), "the oldest pending is reception 1")

	// A commit that does not move the cursor writes nothing new.
	require.NoError(t, db.CommitSync(ctx, store.SyncCommit{AccountID: acc.ID, DatabaseID: d.ID, Cursor: changes[0].ChangeSeq, Now: tWrite.Add(time.Minute)}))
	require.Equal(t, tWrite, *progress().Databases[0].LastWrittenAt)

	// A pending import record changed again leaves the import: it is a
	// real-time change now.
	ingest(tStart.Add(30*time.Second), record("reception", "2", 2, "d2"))
	p = progress()
	require.Equal(t, int64(4), p.ImportTotal())
	require.Equal(t, int64(2), p.ImportDone())

	// Everything written: done = total, no lag, ETA 0.
	all, err := db.PendingChanges(ctx, d.ID, 0, 100)
	require.NoError(t, err)
	tDone := tStart.Add(2 * time.Minute)
	require.NoError(t, db.CommitSync(ctx, store.SyncCommit{AccountID: acc.ID, DatabaseID: d.ID, Cursor: all[len(all)-1].ChangeSeq, Now: tDone}))
	p = progress()
	require.Equal(t, p.ImportTotal(), p.ImportDone())
	require.Zero(t, p.LagSeconds(tDone))
	require.Zero(t, p.Queue.Pending)
	eta, ok = p.ETASeconds(tDone)
	require.True(t, ok)
	require.Zero(t, eta)
	require.Equal(t, tDone, *p.Databases[0].LastWrittenAt)

	// A restart takes on only what queued since.
	require.NoError(t, db.StopSync(ctx, acc.ID, eventlog.Event{AccountID: acc.ID, Type: eventlog.TypeSyncStopped, Message: "stopped"}, tDone))
	ingest(tDone.Add(time.Minute), record("patient", "10", 1, "x"))
	require.Zero(t, progress().RatePerMinute(tDone.Add(time.Minute)), "no pace while stopped")
	start(tDone.Add(2 * time.Minute))
	p = progress()
	require.Equal(t, int64(1), p.ImportTotal())
	require.Zero(t, p.ImportDone())
}

func TestSyncProgressPace(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	ago := func(d time.Duration) *time.Time { at := now.Add(-d); return &at }
	for _, tc := range []struct {
		name     string
		p        store.SyncProgress
		rate     float64
		eta      int64
		etaKnown bool
		lag      int64
	}{
		{name: "Idle", p: store.SyncProgress{State: "running"}, etaKnown: true},
		{name: "TwoDatabases", p: store.SyncProgress{State: "running", Databases: []store.DatabaseProgress{
			{Enabled: true, ImportTotal: 100, ImportDone: 40, WindowDone: 30, WindowSince: ago(time.Minute), OldestPendingAt: ago(90 * time.Second)},
			{Enabled: true, ImportTotal: 50, ImportDone: 50, WindowDone: 30, WindowSince: ago(30 * time.Second), OldestPendingAt: ago(10 * time.Second)},
		}}, rate: 90, eta: 40, etaKnown: true, lag: 90},
		{name: "DisabledDatabaseIgnored", p: store.SyncProgress{State: "running", Databases: []store.DatabaseProgress{
			{Enabled: true, ImportTotal: 10, ImportDone: 10},
			{Enabled: false, ImportTotal: 50, WindowDone: 30, WindowSince: ago(time.Minute), OldestPendingAt: ago(time.Hour)},
		}}, etaKnown: true},
		{name: "NoPaceYet", p: store.SyncProgress{State: "running", Databases: []store.DatabaseProgress{
			{Enabled: true, ImportTotal: 10, WindowSince: ago(time.Minute), OldestPendingAt: ago(5 * time.Second)},
		}}, lag: 5},
		{name: "Stopped", p: store.SyncProgress{State: "stopped", Databases: []store.DatabaseProgress{
			{Enabled: true, ImportTotal: 10, ImportDone: 5, WindowDone: 5, WindowSince: ago(time.Minute), OldestPendingAt: ago(time.Minute)},
		}}, lag: 60},
		{name: "ClockSkew", p: store.SyncProgress{State: "running", Databases: []store.DatabaseProgress{
			{Enabled: true, ImportTotal: 1, OldestPendingAt: ago(-time.Minute)},
		}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.InDelta(t, tc.rate, tc.p.RatePerMinute(now), 1e-9)
			eta, ok := tc.p.ETASeconds(now)
			require.Equal(t, tc.etaKnown, ok)
			require.Equal(t, tc.eta, eta)
			require.Equal(t, tc.lag, tc.p.LagSeconds(now))
		})
	}
}
