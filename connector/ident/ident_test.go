package ident_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/svyazka/svyazka/backend/store/storetest"
	"github.com/svyazka/svyazka/connector/demo"
	"github.com/svyazka/svyazka/connector/ident"
	"github.com/svyazka/svyazka/connector/protocol"
)

var clinicNow = time.Date(2026, 6, 15, 12, 0, 0, 0, time.UTC)

// clock is a settable Options.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type fixture struct {
	dsn   string
	clock *clock
	opts  ident.Options
	db    *pgx.Conn
}

func newFixture(t testing.TB, patients int, since time.Time) *fixture {
	t.Helper()
	ctx := context.Background()
	dsn := storetest.NewURL(t)
	require.NoError(t, demo.Create(ctx, dsn, demo.Options{Patients: patients, Seed: 7, Now: clinicNow}))
	db, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close(context.Background()) })
	c := &clock{t: clinicNow}
	return &fixture{dsn: dsn, clock: c, db: db, opts: ident.Options{
		Since: since, PageSize: 40, PagePause: -1, Now: c.Now,
	}}
}

func (f *fixture) reader(t testing.TB) *ident.Reader {
	t.Helper()
	r, err := ident.OpenOptions(context.Background(), f.dsn, f.opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// readAll reads until caught up.
func readAll(t testing.TB, r *ident.Reader, cur []byte) ([]protocol.Record, []byte) {
	t.Helper()
	var all []protocol.Record
	for i := 0; ; i++ {
		require.Less(t, i, 100000, "Read never caught up")
		recs, next, more, err := r.Read(context.Background(), cur)
		require.NoError(t, err)
		require.LessOrEqual(t, len(recs), 40)
		all = append(all, recs...)
		cur = next
		if !more {
			return all, cur
		}
	}
}

func ids(t testing.TB, db *pgx.Conn, q string, args ...any) []string {
	t.Helper()
	rows, err := db.Query(context.Background(), q, args...)
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (string, error) {
		var id int64
		err := row.Scan(&id)
		return strconv.FormatInt(id, 10), err
	})
	require.NoError(t, err)
	return out
}

func countBy(recs []protocol.Record, kind protocol.Kind) map[string]int {
	out := map[string]int{}
	for _, r := range recs {
		if r.Kind == kind {
			out[r.SourceID]++
		}
	}
	return out
}

func find(recs []protocol.Record, kind protocol.Kind, id string) *protocol.Record {
	for i := len(recs) - 1; i >= 0; i-- {
		if recs[i].Kind == kind && recs[i].SourceID == id {
			return &recs[i]
		}
	}
	return nil
}

func requireExactlyOnce(t *testing.T, got map[string]int, want []string) {
	t.Helper()
	require.Len(t, got, len(want))
	for _, id := range want {
		require.Equal(t, 1, got[id], "id %s", id)
	}
}

var since = clinicNow.AddDate(-1, 0, 0)

func TestInitialLoadSendsEverythingOnce(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 120, since)
	recs, _ := readAll(t, f.reader(t), nil)

	requireExactlyOnce(t, countBy(recs, protocol.KindPatient), ids(t, f.db, `SELECT "ID_Persons" FROM dbo."Patients"`))
	requireExactlyOnce(t, countBy(recs, protocol.KindReception),
		ids(t, f.db, `SELECT "ID" FROM dbo."Receptions" WHERE "PlanStart" >= $1`, since))
	requireExactlyOnce(t, countBy(recs, protocol.KindDoctor), ids(t, f.db, `SELECT "ID_Persons" FROM dbo."Staffs"`))
	requireExactlyOnce(t, countBy(recs, protocol.KindChair), ids(t, f.db, `SELECT "ID" FROM dbo."Armchairs"`))
	requireExactlyOnce(t, countBy(recs, protocol.KindBranch), ids(t, f.db, `SELECT "ID" FROM dbo."OwnCompanies"`))
	requireExactlyOnce(t, countBy(recs, protocol.KindCancelReason), ids(t, f.db, `SELECT "ID" FROM dbo."ReceptionCancelReasons"`))

	for _, rec := range recs {
		_, err := protocol.DecodeIdentData(rec.Kind, rec.Data)
		require.NoError(t, err, "%s %s: %s", rec.Kind, rec.SourceID, rec.Data)
		require.Positive(t, rec.Version)
	}
	// The payload is IDENT's facts: naive wall-clock times, the chair's branch.
	var id int64
	var start time.Time
	var branch int
	require.NoError(t, f.db.QueryRow(context.Background(), `SELECT r."ID", r."PlanStart", a."ID_OwnCompanies" FROM dbo."Receptions" r
		JOIN dbo."Armchairs" a ON a."ID" = r."ID_Armchairs" WHERE r."PlanStart" >= $1 ORDER BY r."ID" LIMIT 1`, since).Scan(&id, &start, &branch))
	var rec protocol.IdentReception
	require.NoError(t, json.Unmarshal(find(recs, protocol.KindReception, strconv.FormatInt(id, 10)).Data, &rec))
	require.Equal(t, start.Format(protocol.LocalTimeLayout), rec.PlanStart)
	require.Equal(t, strconv.Itoa(branch), rec.BranchID)
}

func TestChangedReceptionAppearsInNextRead(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 60, since)
	r := f.reader(t)
	initial, cur := readAll(t, r, nil)
	again, cur := readAll(t, r, cur)
	require.Empty(t, again, "nothing changed, nothing sent")

	var id, patient int64
	require.NoError(t, f.db.QueryRow(context.Background(), `SELECT "ID", "ID_Patients" FROM dbo."Receptions"
		WHERE "PlanStart" > $1 AND "ReceptionCanceled" IS NULL ORDER BY "ID" LIMIT 1`, clinicNow).Scan(&id, &patient))
	_, err := f.db.Exec(context.Background(), `UPDATE dbo."Receptions" SET "PatientAppeared" = $1, "DateTimeChanged" = $1,
		"RowVersion" = `+demo.RowVersionExpr+` WHERE "ID" = $2`, clinicNow, id)
	require.NoError(t, err)

	recs, _ := readAll(t, r, cur)
	sid := strconv.FormatInt(id, 10)
	got := find(recs, protocol.KindReception, sid)
	require.NotNil(t, got)
	require.Greater(t, got.Version, find(initial, protocol.KindReception, sid).Version)
	var data protocol.IdentReception
	require.NoError(t, json.Unmarshal(got.Data, &data))
	require.Equal(t, clinicNow.Format(protocol.LocalTimeLayout), data.PatientAppeared)
	require.NotNil(t, find(recs, protocol.KindPatient, strconv.FormatInt(patient, 10)), "the patient of a changed reception is re-sent")
	require.Equal(t, 1, countBy(recs, protocol.KindReception)[sid])
}

func TestOpenTransactionIsNotSkipped(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 40, since)
	r := f.reader(t)
	_, cur := readAll(t, r, nil)
	ctx := context.Background()

	future := ids(t, f.db, `SELECT "ID" FROM dbo."Receptions" WHERE "PlanStart" > $1 ORDER BY "ID" LIMIT 2`, clinicNow)
	require.Len(t, future, 2)
	slow, fast := future[0], future[1]

	// The slow transaction takes the lower rowversion and stays open while
	// a later one commits a higher rowversion.
	w1, err := pgx.Connect(ctx, f.dsn)
	require.NoError(t, err)
	defer w1.Close(ctx)
	tx, err := w1.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `UPDATE dbo."Receptions" SET "Comment" = 'slow', "RowVersion" = `+demo.RowVersionExpr+` WHERE "ID" = $1`, slow)
	require.NoError(t, err)
	_, err = f.db.Exec(ctx, `UPDATE dbo."Receptions" SET "Comment" = 'fast', "RowVersion" = `+demo.RowVersionExpr+` WHERE "ID" = $1`, fast)
	require.NoError(t, err)

	during, cur := readAll(t, r, cur)
	require.Nil(t, find(during, protocol.KindReception, slow), "uncommitted row is invisible")
	require.NoError(t, tx.Commit(ctx))

	after, _ := readAll(t, r, cur)
	all := append(during, after...)
	require.NotNil(t, find(all, protocol.KindReception, slow), "the row committed late must not be skipped")
	require.NotNil(t, find(all, protocol.KindReception, fast))
}

func TestRescanReportsDeletedReceptions(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 60, since)
	r := f.reader(t)
	initial, cur := readAll(t, r, nil)
	ctx := context.Background()

	window := ids(t, f.db, `SELECT "ID" FROM dbo."Receptions" WHERE "PlanStart" >= $1 ORDER BY "ID" LIMIT 3`, since)
	gone, leftWindow := window[0], window[1]
	_, err := f.db.Exec(ctx, `DELETE FROM dbo."Receptions" WHERE "ID" = $1`, gone)
	require.NoError(t, err)
	_, err = f.db.Exec(ctx, `UPDATE dbo."Receptions" SET "PlanStart" = $1, "RowVersion" = `+demo.RowVersionExpr+` WHERE "ID" = $2`,
		since.AddDate(0, -1, 0), leftWindow)
	require.NoError(t, err)

	recs, cur := readAll(t, r, cur)
	require.Nil(t, find(recs, protocol.KindReception, gone), "no re-scan yet")

	f.clock.Add(ident.DefaultRescanEvery + time.Minute)
	recs, _ = readAll(t, r, cur)
	del := find(recs, protocol.KindReception, gone)
	require.NotNil(t, del)
	require.True(t, del.Deleted)
	require.Empty(t, del.Data)
	require.Greater(t, del.Version, find(initial, protocol.KindReception, gone).Version)
	for _, rec := range recs {
		if rec.SourceID == leftWindow && rec.Kind == protocol.KindReception {
			require.False(t, rec.Deleted, "a reception that left the window is not deleted")
		}
	}
	// The re-scan re-emits current rows of the window.
	require.NotNil(t, find(recs, protocol.KindReception, window[2]))
	require.Equal(t, 1, countBy(recs, protocol.KindReception)[gone])
}

func TestResumeMidInitialLoad(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 100, since)
	ctx := context.Background()

	// First run: a few pages, then a crash after the caller stored page 5.
	r1 := f.reader(t)
	var stored []protocol.Record
	var cur []byte
	for range 5 {
		recs, next, more, err := r1.Read(ctx, cur)
		require.NoError(t, err)
		require.True(t, more)
		stored, cur = append(stored, recs...), next
	}
	// Page 6 was read but never stored: it must come again.
	_, _, _, err := r1.Read(ctx, cur)
	require.NoError(t, err)
	require.NoError(t, r1.Close())

	// Second run, from the stored cursor, on a new Reader.
	rest, _ := readAll(t, f.reader(t), cur)
	all := append(stored, rest...)
	requireExactlyOnce(t, countBy(all, protocol.KindPatient), ids(t, f.db, `SELECT "ID_Persons" FROM dbo."Patients"`))
	requireExactlyOnce(t, countBy(all, protocol.KindReception),
		ids(t, f.db, `SELECT "ID" FROM dbo."Receptions" WHERE "PlanStart" >= $1`, since))
}

func TestFirstVisitOverFullHistory(t *testing.T) {
	t.Parallel()
	recent := clinicNow.AddDate(0, 0, -30)
	f := newFixture(t, 80, recent)
	recs, _ := readAll(t, f.reader(t), nil)

	// Patients whose first completed visit lies before the window.
	rows, err := f.db.Query(context.Background(), `
		SELECT DISTINCT ON ("ID_Patients") "ID_Patients", "ID", "PlanStart",
			count(*) OVER (PARTITION BY "ID_Patients")
		FROM dbo."Receptions"
		WHERE "ReceptionCanceled" IS NULL AND "ID_ReceptionCancelReasons" IS NULL
		  AND ("ReceptionEnded" IS NOT NULL OR "CheckIssued" IS NOT NULL)
		ORDER BY "ID_Patients", "PlanStart", "ID"`)
	require.NoError(t, err)
	type first struct {
		patient, id int64
		start       time.Time
		count       int
	}
	firsts, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (first, error) {
		var f first
		return f, row.Scan(&f.patient, &f.id, &f.start, &f.count)
	})
	require.NoError(t, err)
	before := 0
	for _, fv := range firsts {
		if fv.start.Before(recent) {
			before++
		}
		rec := find(recs, protocol.KindPatient, strconv.FormatInt(fv.patient, 10))
		require.NotNil(t, rec)
		var p protocol.IdentPatient
		require.NoError(t, json.Unmarshal(rec.Data, &p))
		require.Equal(t, strconv.FormatInt(fv.id, 10), p.FirstVisitReceptionID, "patient %d", fv.patient)
		require.Equal(t, fv.start.Format(protocol.LocalTimeLayout), p.FirstVisitPlanStart)
		require.Equal(t, fv.count, p.CompletedReceptions)
	}
	require.Positive(t, before, "the fixture must have first visits before the window")
}

func TestCheck(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 5, since)
	ctx := context.Background()

	t.Run("OK", func(t *testing.T) {
		version, err := f.reader(t).Check(ctx)
		require.NoError(t, err)
		require.Contains(t, version, "PostgreSQL")
	})

	withURL := func(t *testing.T, edit func(u *url.URL)) string {
		u, err := url.Parse(f.dsn)
		require.NoError(t, err)
		edit(u)
		return u.String()
	}
	const secret = "s3cr3t-Parol"

	t.Run("ErrLogin", func(t *testing.T) {
		dsn := withURL(t, func(u *url.URL) { u.User = url.UserPassword("no_such_user", secret) })
		_, err := ident.Open(ctx, dsn)
		require.ErrorIs(t, err, ident.ErrLogin)
		require.Equal(t, "Неверный логин или пароль базы IDENT", ident.UserMessage(err))
		require.NotContains(t, err.Error(), secret)
	})
	t.Run("ErrNoDatabase", func(t *testing.T) {
		dsn := withURL(t, func(u *url.URL) { u.Path = "/PZ_missing"; u.User = url.UserPassword("postgres", secret) })
		_, err := ident.Open(ctx, dsn)
		require.ErrorIs(t, err, ident.ErrNoDatabase)
		require.Equal(t, "База данных PZ_missing не найдена на сервере", ident.UserMessage(err))
		require.NotContains(t, err.Error(), secret)
	})
	t.Run("ErrUnreachable", func(t *testing.T) {
		dsn := withURL(t, func(u *url.URL) { u.Host = "127.0.0.1:1"; u.User = url.UserPassword("postgres", secret) })
		_, err := ident.Open(ctx, dsn)
		require.ErrorIs(t, err, ident.ErrUnreachable)
		require.Equal(t, "Сервер базы IDENT недоступен: проверьте адрес и порт", ident.UserMessage(err))
		require.NotContains(t, err.Error(), secret)
	})
	t.Run("ErrSchema", func(t *testing.T) {
		g := newFixture(t, 3, since)
		_, err := g.db.Exec(ctx, `ALTER TABLE dbo."Receptions" DROP COLUMN "PlanStart"`)
		require.NoError(t, err)
		_, err = g.reader(t).Check(ctx)
		require.ErrorIs(t, err, ident.ErrSchema)
		require.Contains(t, ident.UserMessage(err), "Receptions.PlanStart")
	})
	t.Run("OptionalColumnsMissing", func(t *testing.T) {
		g := newFixture(t, 10, since)
		_, err := g.db.Exec(ctx, `ALTER TABLE dbo."Persons" DROP COLUMN "Phone"; ALTER TABLE dbo."Patients" DROP COLUMN "ParentSNP"`)
		require.NoError(t, err)
		r := g.reader(t)
		_, err = r.Check(ctx)
		require.NoError(t, err)
		recs, _ := readAll(t, r, nil)
		require.NotEmpty(t, countBy(recs, protocol.KindPatient))
	})
}

func TestEmailWhenPresent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := storetest.NewURL(t)
	require.NoError(t, demo.Create(ctx, dsn, demo.Options{Patients: 30, Seed: 3, Now: clinicNow, Email: true}))
	r, err := ident.OpenOptions(ctx, dsn, ident.Options{Since: since, PageSize: 40, PagePause: -1})
	require.NoError(t, err)
	defer r.Close()
	recs, _ := readAll(t, r, nil)
	emails := 0
	for _, rec := range recs {
		if rec.Kind == protocol.KindPatient {
			var p protocol.IdentPatient
			require.NoError(t, json.Unmarshal(rec.Data, &p))
			if p.Email != "" {
				emails++
			}
		}
	}
	require.Positive(t, emails)
}

func TestCreateRefusesForeignDbo(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := storetest.NewURL(t)
	conn, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, `CREATE SCHEMA dbo`)
	require.NoError(t, err)
	err = demo.Create(ctx, dsn, demo.Options{Patients: 5})
	require.True(t, errors.Is(err, demo.ErrNotDemo), "%v", err)
}

func TestLiveChangesAreRead(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 50, since)
	r := f.reader(t)
	_, cur := readAll(t, r, nil)
	ctx := context.Background()
	for i := range 40 {
		_, err := demo.Step(ctx, f.dsn, uint64(i+1), clinicNow.Add(time.Duration(i)*time.Minute))
		require.NoError(t, err)
	}
	recs, _ := readAll(t, r, cur)
	require.NotEmpty(t, countBy(recs, protocol.KindReception))
	for _, rec := range recs {
		_, err := protocol.DecodeIdentData(rec.Kind, rec.Data)
		require.NoError(t, err)
	}
}

func BenchmarkReadThroughput(b *testing.B) {
	f := newFixture(b, 5500, clinicNow.AddDate(-10, 0, 0))
	f.opts.PageSize = 500
	var n int
	err := f.db.QueryRow(context.Background(), `SELECT count(*) FROM dbo."Receptions"`).Scan(&n)
	require.NoError(b, err)
	b.Logf("receptions: %d", n)
	r := f.reader(b)
	b.ResetTimer()
	total := 0
	for range b.N {
		var cur []byte
		for {
			recs, next, more, err := r.Read(context.Background(), cur)
			if err != nil {
				b.Fatal(err)
			}
			total += len(recs)
			cur = next
			if !more {
				break
			}
		}
	}
	b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "records/s")
}

func TestPayloadValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		kind protocol.Kind
		data string
		ok   bool
	}{
		{"ReceptionOK", protocol.KindReception, `{"patient_id":"12","plan_start":"2026-06-15T09:00:00","check_issued":"2026-06-15T09:40:00.003"}`, true},
		{"ReceptionBadID", protocol.KindReception, `{"patient_id":"12a","plan_start":"2026-06-15T09:00:00"}`, false},
		{"ReceptionZoned", protocol.KindReception, `{"patient_id":"12","plan_start":"2026-06-15T09:00:00Z"}`, false},
		{"ReceptionNoStart", protocol.KindReception, `{"patient_id":"12"}`, false},
		{"PatientOK", protocol.KindPatient, `{"surname":"Иванова","name":"Анна","birth_date":"1990-02-01","first_visit_reception_id":"5","first_visit_plan_start":"2020-01-01T10:00:00","completed_receptions":2,"archived":false}`, true},
		{"PatientHalfFirstVisit", protocol.KindPatient, `{"surname":"И","name":"А","first_visit_reception_id":"5","completed_receptions":1,"archived":false}`, false},
		{"PatientUnknownField", protocol.KindPatient, `{"surname":"И","name":"А","nickname":"x"}`, false},
		{"ChairOK", protocol.KindChair, `{"name":"Кресло 1","branch_id":"2","archived":true}`, true},
		{"UnknownKind", protocol.Kind("invoice"), `{}`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := protocol.DecodeIdentData(tc.kind, json.RawMessage(tc.data))
			if tc.ok {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, protocol.ErrInvalidData)
			}
		})
	}
}
