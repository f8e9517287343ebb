package demo_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/svyazka/svyazka/backend/store/storetest"
	"github.com/svyazka/svyazka/connector/demo"
)

var now = time.Date(2026, 6, 15, 12, 0, 0, 0, time.UTC)

func digest(t *testing.T, dsn string) string {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	var d string
	require.NoError(t, conn.QueryRow(context.Background(), `SELECT md5(
		(SELECT string_agg(p::text, '|' ORDER BY p."ID") FROM dbo."Persons" p) ||
		(SELECT string_agg(r::text, '|' ORDER BY r."ID") FROM dbo."Receptions" r))`).Scan(&d))
	return d
}

func TestCreateIsDeterministicAndResets(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a, b := storetest.NewURL(t), storetest.NewURL(t)
	opts := demo.Options{Patients: 80, Seed: 42, Now: now}
	require.NoError(t, demo.Create(ctx, a, opts))
	require.NoError(t, demo.Create(ctx, b, opts))
	require.Equal(t, digest(t, a), digest(t, b))
	// Create on an existing demo resets it to the same clinic.
	require.NoError(t, demo.Create(ctx, a, opts))
	require.Equal(t, digest(t, a), digest(t, b))
}

func TestCreateHasEveryState(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := storetest.NewURL(t)
	require.NoError(t, demo.Create(ctx, dsn, demo.Options{Now: now}))
	conn, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	defer conn.Close(ctx)
	for name, q := range map[string]string{
		"patients":        `SELECT count(*) = 300 FROM dbo."Patients"`,
		"completed":       `SELECT count(*) > 0 FROM dbo."Receptions" WHERE "ReceptionEnded" IS NOT NULL AND "CheckIssued" IS NOT NULL`,
		"no-show marked":  `SELECT count(*) > 0 FROM dbo."Receptions" WHERE "ID_ReceptionCancelReasons" = 8 AND "ReceptionCanceled" = "PlanEnd" AND "ID_StaffsReceptionCanceled" IS NULL`,
		"moved":           `SELECT count(*) > 0 FROM dbo."Receptions" n JOIN dbo."Receptions" o ON o."ID" = n."ID_ReceptionsTransferFrom" WHERE o."ID_ReceptionCancelReasons" = 6 AND n."ID" > o."ID"`,
		"zero length":     `SELECT count(*) > 0 FROM dbo."Receptions" WHERE "PlanEnd" = "PlanStart"`,
		"future":          `SELECT count(*) > 0 FROM dbo."Receptions" WHERE "PlanStart" > '2026-06-15 12:00'`,
		"arrived open":    `SELECT count(*) > 0 FROM dbo."Receptions" WHERE "PatientAppeared" IS NOT NULL AND "ReceptionEnded" IS NULL AND "ReceptionCanceled" IS NULL`,
		"archived doctor": `SELECT count(*) = 1 FROM dbo."Staffs" WHERE "Archive"`,
		"shared phones":   `SELECT count(*) > 0 FROM (SELECT "MobilePhone" FROM dbo."Persons" WHERE "MobilePhone" <> '' GROUP BY 1 HAVING count(*) > 1) s`,
		"blank phones":    `SELECT count(*) > 0 FROM dbo."Persons" WHERE "MobilePhone" = '' OR "MobilePhone" IS NULL`,
		"rowversions":     `SELECT count(DISTINCT "RowVersion") = count(*) AND min(length("RowVersion")) = 8 FROM dbo."Receptions"`,
		"helpers outside": `SELECT count(*) = 0 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'dbo' AND c.relkind = 'S'`,
	} {
		var ok bool
		require.NoError(t, conn.QueryRow(ctx, q).Scan(&ok), name)
		require.True(t, ok, name)
	}
}

func TestLiveStopsWithContext(t *testing.T) {
	t.Parallel()
	dsn := storetest.NewURL(t)
	require.NoError(t, demo.Create(context.Background(), dsn, demo.Options{Patients: 20, Now: now}))
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	require.NoError(t, demo.Live(ctx, dsn, demo.LiveOptions{Interval: 10 * time.Millisecond, Seed: 1, Now: func() time.Time { return now }}))
}
