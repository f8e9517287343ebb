package store_test

import (
	"bytes"
	"context"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/svyazka/svyazka/backend/store"
	"github.com/svyazka/svyazka/backend/store/storetest"
)

func TestRedactSQL(t *testing.T) {
	t.Parallel()
	got := store.RedactSQL(`SELECT * FROM "events" WHERE message ILIKE '%Иванова Мария%' AND phone = '+79001234567' AND id = 42 AND o = 'it''s'`)
	require.Equal(t, `SELECT * FROM "events" WHERE message ILIKE '?' AND phone = '?' AND id = ? AND o = '?'`, got)
}

// TestFailedQueryLogsNoValues runs queries that fail with personal data as
// parameters and checks the log keeps the failure but none of the values.
func TestFailedQueryLogsNoValues(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	db, err := store.Open(context.Background(), storetest.NewURL(t), store.Options{Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	ctx := context.Background()

	const name, phone = "Иванова Мария Петровна", "+79001234567"
	var n int
	err = db.Gorm(ctx).Raw("SELECT count(*) FROM no_such_table WHERE name = ? AND phone = ?", name, phone).Scan(&n).Error
	require.Error(t, err)
	err = db.Gorm(ctx).Raw("SELECT ?::bigint", "Петров 89001112233").Scan(&n).Error
	require.Error(t, err, "the value is quoted back in PostgreSQL's message")

	out := logs.String()
	require.Contains(t, out, "query failed")
	require.Contains(t, out, "42P01", "the SQLSTATE is kept")
	for _, secret := range []string{"Иванова", "Мария", phone, "9001234567", "Петров", "89001112233"} {
		require.NotContains(t, out, secret)
	}
}
