package engine_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/svyazka/svyazka/backend/engine"
	"github.com/svyazka/svyazka/backend/mirror"
	"github.com/svyazka/svyazka/connector/protocol"
	"github.com/svyazka/svyazka/jobs"
)

// smallEngine is the env's engine with small pages, so an import of a few
// thousand records takes several Process calls.
func (e *env) smallEngine(t *testing.T) *engine.Engine {
	t.Helper()
	eng, err := engine.New(engine.Config{Store: e.db, Rules: mirror.DefaultRules(), Now: e.now, Log: e.log,
		CRM:      func(context.Context, int64) (engine.CRM, error) { return e.api, nil },
		PageSize: 100, MaxPages: 3})
	require.NoError(t, err)
	return eng
}

// ingestPatients ingests n patients, each with one planned reception
// (patient id, reception "1"+id), in batches, the last patient last.
func (e *env) ingestPatients(t *testing.T, prefix string, n int) {
	t.Helper()
	tomorrow := time.Now().Truncate(time.Hour).Add(24 * time.Hour)
	var recs []protocol.Record
	for i := range n {
		id := fmt.Sprintf("%s%d", prefix, i+1)
		recs = append(recs,
			rec(t, protocol.KindPatient, id, protocol.IdentPatient{Surname: "Пациент", Name: id}),
			rec(t, protocol.KindReception, "1"+id, protocol.IdentReception{PatientID: id, PlanStart: local(tomorrow)}))
		if len(recs) == 200 || i == n-1 {
			e.ingest(t, recs...)
			recs = nil
		}
	}
}

// firstLoadDone marks the connector's first load finished: from now on the
// clinic's changes are real-time, not part of the import.
func (e *env) firstLoadDone(t *testing.T) {
	t.Helper()
	_, err := e.db.SQL().Exec(`UPDATE clinic_databases SET initial_load_done = true WHERE id = $1`, e.dbID)
	require.NoError(t, err)
}

func (e *env) importLeft(t *testing.T) int64 {
	t.Helper()
	p, err := e.db.SyncProgress(context.Background(), e.acc.ID)
	require.NoError(t, err)
	return p.ImportTotal() - p.ImportDone()
}

// A change made after the start does not wait behind the import: one
// Process call writes it while the import is far from done; the import
// then completes with every contact and lead created once (the patient
// synced by both lanes costs nothing the second time) and the lanes merge.
func TestRealtimeChangeOvertakesTheImport(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	const patients = 1000
	e.ingestPatients(t, "", patients)
	e.firstLoadDone(t)
	e.start(t, "")
	// The last patient of the import books another visit after the start.
	last := fmt.Sprint(patients)
	e.ingest(t, rec(t, protocol.KindReception, "900001", protocol.IdentReception{PatientID: last,
		PlanStart: local(time.Now().Truncate(time.Hour).Add(48 * time.Hour))}))

	dbs, err := e.db.SyncDatabases(ctx, e.acc.ID)
	require.NoError(t, err)
	require.True(t, dbs[0].Split(), "the import and the real-time change are separate lanes")

	eng := e.smallEngine(t)
	res, err := eng.Process(ctx, e.acc.ID)
	require.NoError(t, err)
	total := res
	require.True(t, res.More)
	leads := e.leads(t)
	require.Len(t, leads["900001"], 1, "the real-time change is written by the first call")
	require.Len(t, leads["1"+last], 1, "with its patient's other lead, from the current rows")
	require.Len(t, e.contacts(t)[last], 1)
	require.Greater(t, e.importLeft(t), int64(patients), "the import is far from done")
	lag, err := e.db.SyncProgress(ctx, e.acc.ID)
	require.NoError(t, err)
	require.NotNil(t, lag.Databases[0].OldestPendingAt, "the import's changes still wait")

	for res.More {
		res, err = eng.Process(ctx, e.acc.ID)
		require.NoError(t, err)
		total.ContactsCreated += res.ContactsCreated
		total.ContactsUpdated += res.ContactsUpdated
		total.LeadsCreated += res.LeadsCreated
		total.LeadsUpdated += res.LeadsUpdated
	}
	require.Equal(t, patients, total.ContactsCreated)
	require.Equal(t, patients+1, total.LeadsCreated)
	require.Zero(t, total.ContactsUpdated, "the patient synced by both lanes is not written twice")
	require.Zero(t, total.LeadsUpdated)
	contacts, leads := e.contacts(t), e.leads(t)
	require.Len(t, contacts, patients)
	require.Len(t, leads, patients+1)
	for id, cs := range contacts {
		require.Len(t, cs, 1, "one contact for patient %s", id)
	}
	for id, ls := range leads {
		require.Len(t, ls, 1, "one lead for reception %s", id)
	}

	// The lanes merged: one cursor past everything, nothing pending.
	dbs, err = e.db.SyncDatabases(ctx, e.acc.ID)
	require.NoError(t, err)
	require.False(t, dbs[0].Split())
	var maxSeq int64
	require.NoError(t, e.db.SQL().QueryRow(`SELECT max(change_seq) FROM source_records WHERE database_id = $1`, e.dbID).Scan(&maxSeq))
	require.Equal(t, maxSeq, dbs[0].Cursor)
	q, err := e.db.SyncQueue(ctx, e.acc.ID)
	require.NoError(t, err)
	require.Zero(t, q.Pending)
	require.Zero(t, e.importLeft(t))
	p, err := e.db.SyncProgress(ctx, e.acc.ID)
	require.NoError(t, err)
	require.Nil(t, p.Databases[0].OldestPendingAt)

	// After the merge a change flows through the single cursor.
	e.ingest(t, rec(t, protocol.KindReception, "900002", protocol.IdentReception{PatientID: "1",
		PlanStart: local(time.Now().Truncate(time.Hour).Add(72 * time.Hour))}))
	res, err = eng.Process(ctx, e.acc.ID)
	require.NoError(t, err)
	require.Equal(t, 1, res.LeadsCreated)
	require.False(t, res.More)
}

// Two accounts on a worker with one slot: account A's big import hands
// over to a continuation after each bounded task, so account B's single
// change, queued behind A's start, is written before A's import finishes.
// The test is the worker: one task at a time, first in, first out, with the
// continuations the handler adds to the outbox going to the tail.
func TestOneAccountsImportDoesNotStarveAnother(t *testing.T) {
	t.Parallel()
	a, b := newEnv(t), newEnv(t)
	ctx := context.Background()
	a.ingestPatients(t, "", 600)
	a.firstLoadDone(t)
	a.start(t, "")
	b.ingestPatients(t, "7", 1)
	b.firstLoadDone(t)
	b.start(t, "")

	type item struct {
		env     *env
		handler *jobs.SyncAccount
		task    *asynq.Task
	}
	handler := func(e *env) *jobs.SyncAccount {
		return &jobs.SyncAccount{Engine: e.smallEngine(t), Locks: e.db, Outbox: e.db, Now: time.Now, Log: e.log, MaxRounds: 1}
	}
	seen := map[*env]int64{}
	// continuations returns the sync tasks e's handler added since the last call.
	continuations := func(e *env, h *jobs.SyncAccount) []item {
		rows, err := e.db.SQL().Query(`SELECT id, task_id, payload FROM outbox WHERE task_type = $1 AND id > $2 ORDER BY id`,
			jobs.TypeSyncAccount, seen[e])
		require.NoError(t, err)
		defer rows.Close()
		var out []item
		for rows.Next() {
			var id int64
			var taskID string
			var payload []byte
			require.NoError(t, rows.Scan(&id, &taskID, &payload))
			seen[e] = id
			if strings.Contains(taskID, ":cont:") {
				out = append(out, item{e, h, asynq.NewTask(jobs.TypeSyncAccount, payload)})
			}
		}
		require.NoError(t, rows.Err())
		return out
	}
	ha, hb := handler(a), handler(b)
	continuations(a, ha)
	continuations(b, hb)
	startTask := func(e *env) *asynq.Task {
		task, err := jobs.NewSyncAccountTask(jobs.SyncAccountPayload{AccountID: e.acc.ID}, "start:test")
		require.NoError(t, err)
		return asynq.NewTask(jobs.TypeSyncAccount, task.Payload)
	}
	queue := []item{{a, ha, startTask(a)}, {b, hb, startTask(b)}}
	aLeftWhenBRan := int64(-1)
	tasksOfA := 0
	for len(queue) > 0 {
		it := queue[0]
		queue = queue[1:]
		require.NoError(t, it.handler.ProcessTask(ctx, it.task))
		if it.env == b {
			require.Len(t, b.leads(t)["171"], 1, "B's change is written by its first task")
			aLeftWhenBRan = a.importLeft(t)
		} else {
			tasksOfA++
		}
		queue = append(queue, continuations(it.env, it.handler)...)
	}
	require.Greater(t, aLeftWhenBRan, int64(0), "B was served while A's import was still running")
	require.Greater(t, tasksOfA, 2, "A's import took several bounded tasks")
	require.Zero(t, a.importLeft(t), "A's import completes through its continuations")
	require.Len(t, a.leads(t), 600)
	require.Len(t, a.contacts(t), 600)
}
