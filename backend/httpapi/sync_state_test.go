package httpapi_test

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/svyazka/svyazka/backend/eventlog"
	"github.com/svyazka/svyazka/backend/store"
)

// TestStateSync reads the "sync" key of GET /api/app/v1/state: the sync's
// state, the last start's import with its pace, the lag and the queue, and
// each database's last change received and written.
func TestStateSync(t *testing.T) {
	t.Parallel()
	env := newWidgetEnv(t)
	t0 := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	env.now.Store(t0.UnixNano())
	acc := env.install(3001, "sync-state")
	_, session := env.open(3001, "sync-state", 7)
	ctx := context.Background()
	d, err := env.db.IssueConnectorToken(ctx, store.TokenRequest{AccountID: acc.ID, TokenHash: []byte("sync-state"), Now: t0, MaxDatabases: 2})
	require.NoError(t, err)
	require.NoError(t, env.db.RecordHeartbeat(ctx, store.HeartbeatInput{DatabaseID: d.ID, InstanceID: "i", DatabaseUp: true, InitialLoadDone: true, Now: t0}))
	var recs []store.IngestRecord
	for i := range 4 {
		h := sha256.Sum256(fmt.Appendf(nil, "p%d", i))
		recs = append(recs, store.IngestRecord{Kind: "patient", SourceID: fmt.Sprint(i), Version: 1, Data: []byte(`{}`), Hash: h[:]})
	}
	_, err = env.db.Ingest(ctx, store.IngestBatch{DatabaseID: d.ID, BatchID: uuid.NewString(), Total: len(recs), Records: recs, Now: t0})
	require.NoError(t, err)

	syncKey := func() string {
		t.Helper()
		r := env.do(http.MethodGet, "/api/app/v1/state", bearer(session), nil)
		require.Equal(t, http.StatusOK, r.status, string(r.body))
		var st struct {
			Sync json.RawMessage `json:"sync"`
		}
		require.NoError(t, json.Unmarshal(r.body, &st))
		return string(st.Sync)
	}

	env.now.Store(t0.Add(time.Minute).UnixNano())
	require.JSONEq(t, fmt.Sprintf(`{"state": "stopped", "started_at": null, "since": "", "continue_inbound_leads": true,
		"import": {"total": 0, "done": 0, "rate_per_minute": 0, "eta_seconds": 0},
		"lag_seconds": 60, "queue": {"pending": 4, "parked": 0},
		"databases": [{"id": %d, "enabled": true, "last_received_at": "2026-03-02T09:00:00Z", "last_written_at": null}]}`, d.ID), syncKey())

	start := t0.Add(2 * time.Minute)
	require.NoError(t, env.db.StartSync(ctx, store.StartSyncInput{AccountID: acc.ID, ImportSince: "2025-03-02", Now: start,
		Task:  store.OutboxMessage{TaskID: "sync:account:test:" + uuid.NewString(), TaskType: "sync:account", Payload: []byte(`{}`), Queue: "default", TimeoutSeconds: 60},
		Event: eventlog.Event{AccountID: acc.ID, Type: eventlog.TypeSyncStarted, Message: "started"}}))
	changes, err := env.db.PendingChanges(ctx, d.ID, 0, 10)
	require.NoError(t, err)
	written := start.Add(20 * time.Second)
	require.NoError(t, env.db.CommitSync(ctx, store.SyncCommit{AccountID: acc.ID, DatabaseID: d.ID, Cursor: changes[0].ChangeSeq, Now: written}))

	env.now.Store(start.Add(30 * time.Second).UnixNano())
	require.JSONEq(t, fmt.Sprintf(`{"state": "running", "started_at": "2026-03-02T09:02:00Z", "since": "2025-03-02", "continue_inbound_leads": true,
		"import": {"total": 4, "done": 1, "rate_per_minute": 2, "eta_seconds": 90},
		"lag_seconds": 150, "queue": {"pending": 3, "parked": 0},
		"databases": [{"id": %d, "enabled": true, "last_received_at": "2026-03-02T09:00:00Z", "last_written_at": "2026-03-02T09:02:20Z"}]}`, d.ID), syncKey())
}
