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

func TestIngestWakesTheSyncOnlyOnChange(t *testing.T) {
	t.Parallel()
	db := storetest.New(t)
	ctx := context.Background()
	_, d := newDatabase(t, db, "wake")
	var seqs []int64
	wake := func(seq int64) (store.OutboxMessage, error) {
		seqs = append(seqs, seq)
		return store.OutboxMessage{TaskID: "sync:test:" + uuid.NewString(), TaskType: "sync:account", Payload: []byte(`{}`), Queue: "default", TimeoutSeconds: 60}, nil
	}
	ingest := func(recs ...store.IngestRecord) {
		t.Helper()
		_, err := db.Ingest(ctx, store.IngestBatch{DatabaseID: d.ID, BatchID: uuid.NewString(), Total: len(recs), Records: recs, Now: time.Now().UTC(), Wake: wake})
		require.NoError(t, err)
	}
	ingest(record("reception", "1", 1, "a"), record("patient", "7", 1, "p"))
	ingest(record("reception", "1", 2, "a")) // same content: no new work
	require.Len(t, seqs, 1)
	require.Equal(t, max(storedRecord(t, db, d.ID, "reception", "1").ChangeSeq, storedRecord(t, db, d.ID, "patient", "7").ChangeSeq), seqs[0],
		"the wake-up carries the batch's highest change_seq")
	var n int
	require.NoError(t, db.SQL().QueryRow(`SELECT count(*) FROM outbox WHERE task_type = 'sync:account'`).Scan(&n))
	require.Equal(t, 1, n)
}

func TestSyncCursorLinksAndParks(t *testing.T) {
	t.Parallel()
	db := storetest.New(t)
	ctx := context.Background()
	acc, d := newDatabase(t, db, "cursor")
	_, err := db.Ingest(ctx, store.IngestBatch{DatabaseID: d.ID, BatchID: uuid.NewString(), Total: 2, Now: time.Now().UTC(),
		Records: []store.IngestRecord{record("patient", "1", 1, "a"), record("patient", "2", 1, "b")}})
	require.NoError(t, err)

	changes, err := db.PendingChanges(ctx, d.ID, 0, 10)
	require.NoError(t, err)
	require.Len(t, changes, 2)
	q, err := db.SyncQueue(ctx, acc.ID)
	require.NoError(t, err)
	require.Equal(t, store.SyncQueue{Pending: 2}, q)

	require.NoError(t, db.CommitSync(ctx, store.SyncCommit{AccountID: acc.ID, DatabaseID: d.ID, Cursor: changes[0].ChangeSeq, Now: time.Now(),
		Links:  []store.EntityLink{{EntityType: store.LinkPatient, SourceID: "1", CRMEntityType: store.CRMContact, CRMID: 77, ContentHash: []byte{1}, SourceVersion: 1}},
		Parked: []store.Park{{Kind: "patient", SourceID: "2", Reason: "amoCRM refused"}},
		Events: []eventlog.Event{{AccountID: acc.ID, Type: eventlog.TypeSyncError, Severity: eventlog.Error, Message: "refused"}}}))
	// The cursor never moves back.
	require.NoError(t, db.CommitSync(ctx, store.SyncCommit{AccountID: acc.ID, DatabaseID: d.ID, Cursor: 1, Now: time.Now()}))
	dbs, err := db.SyncDatabases(ctx, acc.ID)
	require.NoError(t, err)
	require.Equal(t, changes[0].ChangeSeq, dbs[0].Cursor)
	require.True(t, dbs[0].Enabled)
	q, err = db.SyncQueue(ctx, acc.ID)
	require.NoError(t, err)
	require.Equal(t, store.SyncQueue{Pending: 1, Parked: 1}, q)

	links, err := db.EntityLinks(ctx, d.ID, store.LinkPatient, []string{"1", "2"})
	require.NoError(t, err)
	require.Equal(t, int64(77), links["1"].CRMID)
	require.NotContains(t, links, "2")

	// Rekey moves a link; unpark removes the park.
	require.NoError(t, db.CommitSync(ctx, store.SyncCommit{AccountID: acc.ID, DatabaseID: d.ID, Now: time.Now(),
		Rekeys: []store.Rekey{{EntityType: store.LinkPatient, From: "1", To: "3"}}, Unparked: []store.Park{{Kind: "patient", SourceID: "2"}}}))
	links, err = db.EntityLinks(ctx, d.ID, store.LinkPatient, []string{"1", "3"})
	require.NoError(t, err)
	require.Equal(t, int64(77), links["3"].CRMID)
	require.NotContains(t, links, "1")
	q, err = db.SyncQueue(ctx, acc.ID)
	require.NoError(t, err)
	require.Zero(t, q.Parked)
}

func TestStartStopSync(t *testing.T) {
	t.Parallel()
	db := storetest.New(t)
	ctx := context.Background()
	acc, d := newDatabase(t, db, "startstop")
	now := time.Now().UTC()
	task := store.OutboxMessage{TaskID: "sync:account:test:start", TaskType: "sync:account", Payload: []byte(`{}`), Queue: "default", TimeoutSeconds: 60}
	start := store.StartSyncInput{AccountID: acc.ID, ImportSince: "2025-03-01", DatabaseIDs: []int64{d.ID}, Now: now, Task: task,
		Event: eventlog.Event{AccountID: acc.ID, Type: eventlog.TypeSyncStarted, Message: "started"}}
	require.NoError(t, db.StartSync(ctx, start))
	require.ErrorIs(t, db.StartSync(ctx, start), store.ErrSyncState)
	st, err := db.SyncSettings(ctx, acc.ID)
	require.NoError(t, err)
	require.Equal(t, "running", st.SyncState)
	require.Equal(t, "2025-03-01", st.ImportSince)

	pending, err := db.PendingSyncAccounts(ctx)
	require.NoError(t, err)
	require.Empty(t, pending)
	_, err = db.Ingest(ctx, store.IngestBatch{DatabaseID: d.ID, BatchID: uuid.NewString(), Total: 1, Now: now, Records: []store.IngestRecord{record("patient", "1", 1, "a")}})
	require.NoError(t, err)
	pending, err = db.PendingSyncAccounts(ctx)
	require.NoError(t, err)
	require.Len(t, pending, 1)
	require.Equal(t, acc.ID, pending[0].AccountID)

	stop := eventlog.Event{AccountID: acc.ID, Type: eventlog.TypeSyncStopped, Message: "stopped"}
	require.NoError(t, db.StopSync(ctx, acc.ID, stop, now))
	require.ErrorIs(t, db.StopSync(ctx, acc.ID, stop, now), store.ErrSyncState)
	pending, err = db.PendingSyncAccounts(ctx)
	require.NoError(t, err)
	require.Empty(t, pending, "a stopped account keeps its queue but is not swept")

	other := store.StartSyncInput{AccountID: acc.ID, DatabaseIDs: []int64{d.ID + 1000}, Now: now, Task: task, Event: start.Event}
	require.ErrorIs(t, db.StartSync(ctx, other), store.ErrNotFound)
}

func TestAccountSyncLock(t *testing.T) {
	t.Parallel()
	db := storetest.New(t)
	ctx := context.Background()
	release, ok, err := db.TryAccountSyncLock(ctx, 42)
	require.NoError(t, err)
	require.True(t, ok)
	_, ok, err = db.TryAccountSyncLock(ctx, 42)
	require.NoError(t, err)
	require.False(t, ok, "one holder at a time")
	other, ok, err := db.TryAccountSyncLock(ctx, 43)
	require.NoError(t, err)
	require.True(t, ok)
	other()
	release()
	again, ok, err := db.TryAccountSyncLock(ctx, 42)
	require.NoError(t, err)
	require.True(t, ok)
	again()
}

func TestSyncSecondSliceStorage(t *testing.T) {
	t.Parallel()
	db := storetest.New(t)
	ctx := context.Background()
	acc, d := newDatabase(t, db, "second")
	now := time.Now().UTC().Truncate(time.Second)

	t.Run("ContactScan", func(t *testing.T) {
		require.NoError(t, db.SaveAccountScan(ctx, acc.ID, store.AccountScan{Phones: []store.ContactPhone{{ContactID: 1, Phone: "+79001112233"}, {ContactID: 2, Phone: "+79002223344"}}}, now))
		got, err := db.ScannedContactsByPhone(ctx, acc.ID, []string{"+79001112233"})
		require.NoError(t, err)
		require.Equal(t, []store.ContactPhone{{ContactID: 1, Phone: "+79001112233"}}, got)
		s, err := db.SyncSettings(ctx, acc.ID)
		require.NoError(t, err)
		require.True(t, s.ContinueInboundLeads, "on by default")
		require.WithinDuration(t, now, *s.ContactsScannedAt, time.Second)
		// An adopted contact leaves the candidates; a new scan replaces them.
		require.NoError(t, db.CommitSync(ctx, store.SyncCommit{AccountID: acc.ID, DatabaseID: d.ID, AdoptedContacts: []int64{1}, Now: now}))
		got, err = db.ScannedContactsByPhone(ctx, acc.ID, []string{"+79001112233", "+79002223344"})
		require.NoError(t, err)
		require.Equal(t, []store.ContactPhone{{ContactID: 2, Phone: "+79002223344"}}, got)
		require.NoError(t, db.SetContinueInboundLeads(ctx, acc.ID, false))
		s, err = db.SyncSettings(ctx, acc.ID)
		require.NoError(t, err)
		require.False(t, s.ContinueInboundLeads)
	})

	t.Run("LinksAndTimer", func(t *testing.T) {
		due := now.Add(-time.Minute)
		require.NoError(t, db.CommitSync(ctx, store.SyncCommit{AccountID: acc.ID, DatabaseID: d.ID, Now: now, Links: []store.EntityLink{
			{EntityType: store.LinkAppointment, SourceID: "10", CRMEntityType: store.CRMLead, CRMID: 5, PatientID: "1", CurrentID: "11",
				PipelineID: 7, StatusID: 8, ReevaluateAt: &due}}}))
		links, err := db.AppointmentLinksOf(ctx, d.ID, []string{"11"})
		require.NoError(t, err)
		require.Len(t, links, 1)
		require.Equal(t, "1", links[0].PatientID)
		require.Equal(t, int64(8), links[0].StatusID)
		linked, err := db.LinkedCRMIDs(ctx, acc.ID, store.CRMLead, []int64{5, 6})
		require.NoError(t, err)
		require.Equal(t, map[int64]bool{5: true}, linked)
		got, err := db.DueReevaluations(ctx, d.ID, now, 10)
		require.NoError(t, err)
		require.Len(t, got, 1)
		require.NoError(t, db.CommitSync(ctx, store.SyncCommit{AccountID: acc.ID, DatabaseID: d.ID, Now: now, ClearReevaluation: []string{"10"}}))
		got, err = db.DueReevaluations(ctx, d.ID, now, 10)
		require.NoError(t, err)
		require.Empty(t, got)
	})

	t.Run("ResendUnknown", func(t *testing.T) {
		_, err := db.ResendParked(ctx, store.ResendInput{AccountID: acc.ID, ParkedID: 999, Now: now})
		require.ErrorIs(t, err, store.ErrNotFound)
	})

	t.Run("PauseNeedsRunning", func(t *testing.T) {
		err := db.PauseSync(ctx, acc.ID, eventlog.Event{AccountID: acc.ID, Type: eventlog.TypeSyncError, Message: "blocked"}, now)
		require.ErrorIs(t, err, store.ErrSyncState)
	})
}

// While an import runs a database has two lanes: the import up to the
// start's bound (last_change_seq) and the real-time changes above it
// (realtime_seq). The queue counts what neither wrote; when the import
// lane reaches its bound the lanes merge into one cursor.
func TestSyncLanes(t *testing.T) {
	t.Parallel()
	db := storetest.New(t)
	ctx := context.Background()
	acc, d := newDatabase(t, db, "lanes")
	now := time.Now().UTC()
	ingest := func(recs ...store.IngestRecord) {
		t.Helper()
		_, err := db.Ingest(ctx, store.IngestBatch{DatabaseID: d.ID, BatchID: uuid.NewString(), Total: len(recs), Records: recs, Now: now})
		require.NoError(t, err)
	}
	lanes := func() store.SyncDatabase {
		t.Helper()
		dbs, err := db.SyncDatabases(ctx, acc.ID)
		require.NoError(t, err)
		require.Len(t, dbs, 1)
		return dbs[0]
	}
	pending := func() int64 {
		t.Helper()
		q, err := db.SyncQueue(ctx, acc.ID)
		require.NoError(t, err)
		return q.Pending
	}
	ingest(record("patient", "1", 1, "a"), record("patient", "2", 1, "b"), record("patient", "3", 1, "c"))
	require.NoError(t, db.StartSync(ctx, store.StartSyncInput{AccountID: acc.ID, Now: now,
		Task:  store.OutboxMessage{TaskID: "sync:account:test:lanes", TaskType: "sync:account", Payload: []byte(`{}`), Queue: "default", TimeoutSeconds: 60},
		Event: eventlog.Event{AccountID: acc.ID, Type: eventlog.TypeSyncStarted, Message: "started"}}))
	imported, err := db.PendingChanges(ctx, d.ID, 0, 10)
	require.NoError(t, err)
	require.Len(t, imported, 3)

	// While the connector's first load runs, what it delivers is import.
	ingest(record("patient", "4", 1, "d"))
	l := lanes()
	require.True(t, l.Split())
	require.Equal(t, storedRecord(t, db, d.ID, "patient", "4").ChangeSeq, l.ImportToSeq)
	require.NoError(t, db.CommitSync(ctx, store.SyncCommit{AccountID: acc.ID, DatabaseID: d.ID, Cursor: imported[0].ChangeSeq, Now: now}))
	require.NoError(t, db.SQL().QueryRow(`UPDATE clinic_databases SET initial_load_done = true WHERE id = $1 RETURNING id`, d.ID).Scan(new(int64)))
	importTo := storedRecord(t, db, d.ID, "patient", "4").ChangeSeq
	require.Equal(t, importTo, lanes().ImportToSeq, "the commit kept the first load's bound")

	// After it, changes are real-time: above the bound, a lane of their own.
	ingest(record("patient", "5", 1, "e"), record("patient", "6", 1, "f"))
	l = lanes()
	require.True(t, l.Split())
	require.Equal(t, importTo, l.ImportToSeq)
	require.Equal(t, importTo, l.RealtimeCursor)
	bounded, err := db.PendingChangesUpTo(ctx, d.ID, l.Cursor, l.ImportToSeq, 10)
	require.NoError(t, err)
	require.Len(t, bounded, 3, "the import lane stops at its bound")
	live, err := db.PendingChangesUpTo(ctx, d.ID, l.RealtimeCursor, 0, 10)
	require.NoError(t, err)
	require.Len(t, live, 2)
	require.Equal(t, int64(5), pending())

	require.NoError(t, db.CommitSync(ctx, store.SyncCommit{AccountID: acc.ID, DatabaseID: d.ID, Cursor: live[1].ChangeSeq,
		Lane: store.LaneRealtime, ImportToSeq: l.ImportToSeq, Now: now.Add(time.Second)}))
	// Never back.
	require.NoError(t, db.CommitSync(ctx, store.SyncCommit{AccountID: acc.ID, DatabaseID: d.ID, Cursor: live[0].ChangeSeq,
		Lane: store.LaneRealtime, ImportToSeq: l.ImportToSeq, Now: now.Add(time.Second)}))
	l = lanes()
	require.True(t, l.Split())
	require.Equal(t, imported[0].ChangeSeq, l.Cursor, "the import lane did not move")
	require.Equal(t, live[1].ChangeSeq, l.RealtimeCursor)
	require.Equal(t, int64(3), pending(), "the real-time changes are written, the import's wait")
	p, err := db.SyncProgress(ctx, acc.ID)
	require.NoError(t, err)
	require.Equal(t, int64(4), p.ImportTotal())
	require.Equal(t, int64(1), p.ImportDone())
	require.NotNil(t, p.Databases[0].OldestPendingAt, "the lag counts the import's oldest change")
	require.NotNil(t, p.Databases[0].LastWrittenAt)
	require.Equal(t, now.Add(time.Second).Truncate(time.Microsecond), p.Databases[0].LastWrittenAt.Truncate(time.Microsecond))

	// The import lane reaches its bound: the lanes merge.
	require.NoError(t, db.CommitSync(ctx, store.SyncCommit{AccountID: acc.ID, DatabaseID: d.ID, Cursor: importTo, Now: now.Add(2 * time.Second)}))
	l = lanes()
	require.False(t, l.Split())
	require.Equal(t, live[1].ChangeSeq, l.Cursor)
	require.Zero(t, pending())
	p, err = db.SyncProgress(ctx, acc.ID)
	require.NoError(t, err)
	require.Equal(t, p.ImportTotal(), p.ImportDone())
	require.Nil(t, p.Databases[0].OldestPendingAt)
	accounts, err := db.PendingSyncAccounts(ctx)
	require.NoError(t, err)
	require.Empty(t, accounts)
}
