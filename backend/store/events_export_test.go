package store_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/svyazka/svyazka/backend/eventlog"
	"github.com/svyazka/svyazka/backend/store"
	"github.com/svyazka/svyazka/backend/store/storetest"
)

// installAt installs an account for the event tests (Moscow time).
func installAt(t testing.TB, db *store.DB, amoID int64, now time.Time) store.Account {
	t.Helper()
	acc, _, err := db.InstallAccount(context.Background(), store.InstallInput{AmoAccountID: amoID,
		Subdomain: fmt.Sprintf("events%d", amoID), BaseDomain: "amocrm.ru", Timezone: "Europe/Moscow", TrialDays: 14, Now: now})
	require.NoError(t, err)
	return acc
}

// seedEvents inserts n events for the account: three share each second (so
// the id breaks ties), every tenth is an error whose message says so.
func seedEvents(t testing.TB, db *store.DB, accountID int64, n int, base time.Time) {
	t.Helper()
	_, err := db.SQL().Exec(`INSERT INTO events (account_id, type, severity, message, details, created_at)
		SELECT $1, CASE WHEN g % 10 = 0 THEN 'sync_error' ELSE 'sync_started' END,
		       CASE WHEN g % 10 = 0 THEN 'error' ELSE 'info' END,
		       'Пациент ' || g || CASE WHEN g % 10 = 0 THEN ': нет телефона' ELSE ': запись передана' END,
		       jsonb_build_object('account_id', $1::bigint, 'n', g),
		       $2::timestamptz + (g / 3) * interval '1 second'
		FROM generate_series(1, $3) g`, accountID, base, n)
	require.NoError(t, err)
	// VACUUM also merges the trigram index's pending list, as autovacuum
	// does in production; without it the planner shuns the index.
	_, err = db.SQL().Exec(`VACUUM ANALYZE events`)
	require.NoError(t, err)
}

// wantIDs is the reference order, straight from SQL.
func wantIDs(t *testing.T, db *store.DB, where string, args ...any) []int64 {
	t.Helper()
	rows, err := db.SQL().Query(`SELECT id FROM events WHERE `+where, args...)
	require.NoError(t, err)
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var id int64
		require.NoError(t, rows.Scan(&id))
		ids = append(ids, id)
	}
	require.NoError(t, rows.Err())
	return ids
}

func export(t *testing.T, db *store.DB, f eventlog.Filter, limit int) ([]int64, bool) {
	t.Helper()
	var ids []int64
	more, err := db.ExportEvents(context.Background(), f, limit, func(batch []eventlog.Event) error {
		require.LessOrEqual(t, len(batch), store.ExportBatch)
		for _, e := range batch {
			ids = append(ids, e.ID)
		}
		return nil
	})
	require.NoError(t, err)
	return ids, more
}

func TestExportEvents(t *testing.T) {
	t.Parallel()
	db := storetest.New(t)
	ctx := context.Background()
	base := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	a := installAt(t, db, 1, base.Add(-time.Hour))
	other := installAt(t, db, 2, base.Add(-time.Hour))
	const n = 25_000
	seedEvents(t, db, a.ID, n, base)
	seedEvents(t, db, other.ID, 100, base)

	t.Run("NewestFirst", func(t *testing.T) {
		t.Parallel()
		ids, more := export(t, db, eventlog.Filter{AccountID: a.ID}, 0)
		require.False(t, more)
		require.Len(t, ids, n+1, "every event plus the install")
		require.Equal(t, wantIDs(t, db, `account_id = $1 ORDER BY created_at DESC, id DESC`, a.ID), ids)
	})
	t.Run("OldestFirstFiltered", func(t *testing.T) {
		t.Parallel()
		from, to := base.Add(time.Hour), base.Add(5*time.Hour)
		f := eventlog.Filter{AccountID: a.ID, Oldest: true, Types: []eventlog.Type{eventlog.TypeSyncError},
			Severities: []eventlog.Severity{eventlog.Error}, Text: "ТЕЛЕФОНА", From: &from, To: &to}
		ids, more := export(t, db, f, 0)
		require.False(t, more)
		want := wantIDs(t, db, `account_id = $1 AND type = 'sync_error' AND severity = 'error' AND message ILIKE '%телефона%'
			AND created_at >= $2 AND created_at < $3 ORDER BY created_at, id`, a.ID, from, to)
		require.Greater(t, len(want), store.ExportBatch, "more than one batch")
		require.Equal(t, want, ids)
	})
	t.Run("ByDatabase", func(t *testing.T) {
		t.Parallel()
		d := int64(999_999)
		ids, _ := export(t, db, eventlog.Filter{AccountID: a.ID, DatabaseID: &d}, 0)
		require.Empty(t, ids)
	})
	t.Run("Limit", func(t *testing.T) {
		t.Parallel()
		all := wantIDs(t, db, `account_id = $1 ORDER BY created_at DESC, id DESC`, a.ID)
		ids, more := export(t, db, eventlog.Filter{AccountID: a.ID}, 2_500)
		require.True(t, more)
		require.Equal(t, all[:2_500], ids)
		ids, more = export(t, db, eventlog.Filter{AccountID: a.ID}, len(all))
		require.False(t, more, "exactly at the limit nothing is missing")
		require.Equal(t, all, ids)
	})
	t.Run("OneSnapshot", func(t *testing.T) {
		t.Parallel()
		c := installAt(t, db, 3, base.Add(-time.Hour))
		seedEvents(t, db, c.ID, 3*store.ExportBatch, base)
		want := wantIDs(t, db, `account_id = $1 ORDER BY created_at DESC, id DESC`, c.ID)
		var ids []int64
		batches := 0
		_, err := db.ExportEvents(ctx, eventlog.Filter{AccountID: c.ID}, 0, func(batch []eventlog.Event) error {
			if batches++; batches == 1 {
				// Written while the export runs: neither may appear, nor shift rows.
				for _, at := range []time.Time{base.Add(time.Minute), base.Add(time.Second / 2)} {
					require.NoError(t, db.Record(ctx, eventlog.Event{AccountID: c.ID, Type: eventlog.TypeError, Message: "позже", CreatedAt: at}))
				}
			}
			for _, e := range batch {
				ids = append(ids, e.ID)
			}
			return nil
		})
		require.NoError(t, err)
		require.Equal(t, want, ids)
	})
	t.Run("CallbackErrorStops", func(t *testing.T) {
		t.Parallel()
		boom := errors.New("client gone")
		calls := 0
		_, err := db.ExportEvents(ctx, eventlog.Filter{AccountID: a.ID}, 0, func([]eventlog.Event) error { calls++; return boom })
		require.ErrorIs(t, err, boom)
		require.Equal(t, 1, calls)
	})
	t.Run("ContextEnds", func(t *testing.T) {
		t.Parallel()
		cctx, cancel := context.WithCancel(ctx)
		_, err := db.ExportEvents(cctx, eventlog.Filter{AccountID: a.ID}, 0, func([]eventlog.Event) error { cancel(); return nil })
		require.Error(t, err)
	})
}
