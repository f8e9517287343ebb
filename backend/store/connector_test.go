package store_test

import (
	"context"
	"crypto/sha256"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/svyazka/svyazka/backend/eventlog"
	"github.com/svyazka/svyazka/backend/store"
	"github.com/svyazka/svyazka/backend/store/storetest"
)

func newDatabase(t *testing.T, db *store.DB, hash string) (store.Account, store.ClinicDatabase) {
	t.Helper()
	now := time.Now().UTC()
	acc := install(t, db, 300, now)
	d, err := db.IssueConnectorToken(context.Background(), store.TokenRequest{AccountID: acc.ID, TokenHash: []byte(hash), Now: now, MaxDatabases: 5})
	require.NoError(t, err)
	return acc, d
}

func record(kind, id string, version int64, content string) store.IngestRecord {
	h := sha256.Sum256([]byte(content))
	return store.IngestRecord{Kind: kind, SourceID: id, Version: version, Data: []byte(`{"c":"` + content + `"}`), Hash: h[:]}
}

type stored struct {
	Version   int64
	ChangeSeq int64
	Data      string
}

func storedRecord(t *testing.T, db *store.DB, databaseID int64, kind, id string) stored {
	t.Helper()
	var s stored
	require.NoError(t, db.SQL().QueryRow(`SELECT version, change_seq, data::text FROM source_records WHERE database_id = $1 AND kind = $2 AND source_id = $3`,
		databaseID, kind, id).Scan(&s.Version, &s.ChangeSeq, &s.Data))
	return s
}

func TestIngestNewestVersionWins(t *testing.T) {
	t.Parallel()
	db := storetest.New(t)
	ctx := context.Background()
	_, d := newDatabase(t, db, "h1")
	ingest := func(recs ...store.IngestRecord) store.IngestResult {
		t.Helper()
		res, err := db.Ingest(ctx, store.IngestBatch{DatabaseID: d.ID, BatchID: uuid.NewString(), Total: len(recs), Records: recs, Now: time.Now().UTC()})
		require.NoError(t, err)
		return res
	}
	res := ingest(record("reception", "1", 10, "a"), record("patient", "7", 5, "p"))
	require.Equal(t, 2, res.Changed)
	first := storedRecord(t, db, d.ID, "reception", "1")

	res = ingest(record("reception", "1", 9, "stale"))
	require.Zero(t, res.Changed)
	require.Equal(t, first, storedRecord(t, db, d.ID, "reception", "1"), "an older version is ignored")

	res = ingest(record("reception", "1", 11, "a"))
	require.Zero(t, res.Changed, "same content, newer version: no new work")
	got := storedRecord(t, db, d.ID, "reception", "1")
	require.EqualValues(t, 11, got.Version)
	require.Equal(t, first.ChangeSeq, got.ChangeSeq)

	res = ingest(record("reception", "1", 12, "b"))
	require.Equal(t, 1, res.Changed)
	got = storedRecord(t, db, d.ID, "reception", "1")
	require.Greater(t, got.ChangeSeq, first.ChangeSeq, "changed content is new work, in order")
	require.Contains(t, got.Data, `"b"`)

	counts, err := db.ReceivedCounts(ctx, d.ID)
	require.NoError(t, err)
	require.Equal(t, map[string]int64{"reception": 1, "patient": 1}, counts)
}

func TestIngestBatchIsIdempotent(t *testing.T) {
	t.Parallel()
	db := storetest.New(t)
	ctx := context.Background()
	_, d := newDatabase(t, db, "h2")
	b := store.IngestBatch{DatabaseID: d.ID, BatchID: uuid.NewString(), Total: 2, Records: []store.IngestRecord{record("branch", "1", 1, "x")},
		Errors: []byte(`[{"index":1,"kind":"branch","source_id":"x","message":"bad"}]`), Now: time.Now().UTC()}
	res, err := db.Ingest(ctx, b)
	require.NoError(t, err)
	require.False(t, res.Duplicate)
	b.Records = []store.IngestRecord{record("branch", "1", 2, "changed in a resend")}
	again, err := db.Ingest(ctx, b)
	require.NoError(t, err)
	require.True(t, again.Duplicate)
	require.Equal(t, 1, again.Accepted)
	require.JSONEq(t, string(res.Errors), string(again.Errors), "a resend gets the stored answer")
	require.EqualValues(t, 1, storedRecord(t, db, d.ID, "branch", "1").Version, "and changes nothing")
}

func TestConnectorTokensPairingAndHeartbeats(t *testing.T) {
	t.Parallel()
	db := storetest.New(t)
	ctx := context.Background()
	acc, d := newDatabase(t, db, "old-hash")

	got, gotAcc, err := db.ConnectorDatabase(ctx, []byte("old-hash"))
	require.NoError(t, err)
	require.Equal(t, d.ID, got.ID)
	require.Equal(t, acc.ID, gotAcc.ID)
	_, _, err = db.ConnectorDatabase(ctx, []byte("never"))
	require.ErrorIs(t, err, store.ErrNotFound)

	instance, other := uuid.NewString(), uuid.NewString()
	now := time.Now().UTC()
	_, err = db.PairConnector(ctx, store.PairInput{DatabaseID: d.ID, InstanceID: instance, Hostname: "IDENT-SRV", Now: now})
	require.NoError(t, err)
	_, err = db.PairConnector(ctx, store.PairInput{DatabaseID: d.ID, InstanceID: instance, Hostname: "IDENT-SRV", Now: now})
	require.NoError(t, err, "the same installation may pair again")
	_, err = db.PairConnector(ctx, store.PairInput{DatabaseID: d.ID, InstanceID: other, Hostname: "LAPTOP", Now: now})
	require.ErrorIs(t, err, store.ErrPairedElsewhere)

	beat := func(up bool, detail string) {
		t.Helper()
		require.NoError(t, db.RecordHeartbeat(ctx, store.HeartbeatInput{DatabaseID: d.ID, InstanceID: instance, DatabaseUp: up, Detail: detail, Now: time.Now().UTC()}))
	}
	for range 3 {
		beat(true, "")
	}
	beat(false, "Неверный логин или пароль базы IDENT")
	beat(false, "Неверный логин или пароль базы IDENT")
	beat(true, "")
	require.ErrorIs(t, db.RecordHeartbeat(ctx, store.HeartbeatInput{DatabaseID: d.ID, InstanceID: other, DatabaseUp: true, Now: time.Now().UTC()}),
		store.ErrPairedElsewhere)

	// Silence: the periodic check marks it disconnected once.
	n, err := db.MarkStaleConnectors(ctx, time.Now().UTC().Add(time.Minute), time.Now().UTC())
	require.NoError(t, err)
	require.Equal(t, 1, n)
	n, err = db.MarkStaleConnectors(ctx, time.Now().UTC().Add(time.Minute), time.Now().UTC())
	require.NoError(t, err)
	require.Zero(t, n, "no flapping: a second check changes nothing")

	evs, _, err := db.ListEvents(ctx, eventlog.Filter{AccountID: acc.ID, Types: []eventlog.Type{eventlog.TypeDatabaseConnected, eventlog.TypeDatabaseDisconnect}, Oldest: true, PerPage: 100})
	require.NoError(t, err)
	var msgs []string
	for _, e := range evs {
		msgs = append(msgs, e.Message)
	}
	require.Len(t, msgs, 6, "%q", msgs)
	require.Contains(t, msgs[0], "IDENT-SRV")           // paired
	require.Contains(t, msgs[1], "связь с коннектором") // first heartbeat
	require.Contains(t, msgs[2], "подключение к базе IDENT выполнено")
	require.Contains(t, msgs[3], "Неверный логин или пароль")
	require.Contains(t, msgs[4], "подключение к базе IDENT выполнено")
	require.Contains(t, msgs[5], "коннектор не на связи")

	// «Получить токен» again: the old token is revoked and the pairing ends.
	_, err = db.IssueConnectorToken(ctx, store.TokenRequest{AccountID: acc.ID, DatabaseID: d.ID, TokenHash: []byte("new-hash"), Now: now, MaxDatabases: 5})
	require.NoError(t, err)
	_, _, err = db.ConnectorDatabase(ctx, []byte("old-hash"))
	require.ErrorIs(t, err, store.ErrTokenRevoked)
	_, err = db.PairConnector(ctx, store.PairInput{DatabaseID: d.ID, InstanceID: other, Hostname: "NEW-SRV", Now: now})
	require.NoError(t, err, "a new token pairs afresh")
}
