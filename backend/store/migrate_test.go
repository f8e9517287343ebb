package store_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/svyazka/svyazka/backend/store"
	"github.com/svyazka/svyazka/backend/store/storetest"
)

// TestMigrationsUpDownUp proves every migration applies on a fresh database,
// rolls back cleanly one by one, and applies again.
func TestMigrationsUpDownUp(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, err := store.Open(ctx, storetest.NewURL(t), store.Options{MaxConns: 2})
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	m, err := store.NewMigrator(db.SQL())
	require.NoError(t, err)

	all, err := m.Status(ctx)
	require.NoError(t, err)
	require.NotEmpty(t, all)

	n, err := m.Up(ctx)
	require.NoError(t, err)
	require.Equal(t, len(all), n)
	require.Positive(t, countTables(t, db))
	n, err = m.Up(ctx)
	require.NoError(t, err)
	require.Zero(t, n, "a second up applies nothing")

	for range all {
		rolled, err := m.Down(ctx)
		require.NoError(t, err)
		require.True(t, rolled)
	}
	rolled, err := m.Down(ctx)
	require.NoError(t, err)
	require.False(t, rolled, "nothing left to roll back")
	require.Zero(t, countTables(t, db), "every down drops what its up created")

	n, err = m.Up(ctx)
	require.NoError(t, err)
	require.Equal(t, len(all), n)
	st, err := m.Status(ctx)
	require.NoError(t, err)
	for _, s := range st {
		require.True(t, s.Applied, s.Source)
	}
}

func countTables(t *testing.T, db *store.DB) int {
	t.Helper()
	var n int
	require.NoError(t, db.SQL().QueryRow(
		`SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public' AND table_name <> 'goose_db_version'`).Scan(&n))
	return n
}
