package store_test

import (
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/svyazka/svyazka/backend/eventlog"
	"github.com/svyazka/svyazka/backend/store"
	"github.com/svyazka/svyazka/backend/store/storetest"
)

// benchLog is an account with n events, each with details as the real ones
// have (ids the user never sees), a tenth of them errors.
func benchLog(b *testing.B, n int) (*store.DB, store.Account) {
	b.Helper()
	db := storetest.New(b)
	acc, _, err := db.InstallAccount(context.Background(), store.InstallInput{AmoAccountID: 1, Subdomain: "bench",
		BaseDomain: "amocrm.ru", Timezone: "Europe/Moscow", TrialDays: 14, Now: time.Now()})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := db.SQL().Exec(`INSERT INTO events (account_id, type, severity, message, details, created_at)
		SELECT $1, CASE WHEN g % 10 = 0 THEN 'sync_error' ELSE 'sync_started' END,
		       CASE WHEN g % 10 = 0 THEN 'error' ELSE 'info' END,
		       'Пациент ' || g || ': запись передана',
		       jsonb_build_object('account_id', $1::bigint, 'patient_id', g, 'source', 'ident'),
		       now() - g * interval '1 minute'
		FROM generate_series(1, $2) g`, acc.ID, n); err != nil {
		b.Fatal(err)
	}
	if _, err := db.SQL().Exec(`VACUUM ANALYZE events`); err != nil {
		b.Fatal(err)
	}
	return db, acc
}

// BenchmarkListEvents pages a 50 000-event log the way the «Список событий»
// tab does: newest first, with and without a text filter.
func BenchmarkListEvents(b *testing.B) {
	db, acc := benchLog(b, 50_000)
	ctx := context.Background()
	for name, f := range map[string]eventlog.Filter{
		"FirstPage":  {PerPage: 50},
		"DeepPage":   {PerPage: 50, Page: 500},
		"ErrorsOnly": {PerPage: 50, Severities: []eventlog.Severity{eventlog.Error}},
		"Text":       {PerPage: 50, Text: "Пациент 4242:"},
		"TextCommon": {PerPage: 50, Text: "запись передана"},
		"TextKey":    {PerPage: 50, Text: "patient_id"}, // a hidden key: no match, served by the index
	} {
		f.AccountID = acc.ID
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				if _, _, err := db.ListEvents(ctx, f); err != nil {
					b.Fatal(fmt.Errorf("%s: %w", name, err))
				}
			}
		})
	}
}

// BenchmarkExportEvents measures the CSV export end to end (query, rows,
// CSV encoding) over a 100 000-event log, in rows per second. OffsetPaging is
// the former way (COUNT plus a growing OFFSET per page of 200) for comparison,
// over the first 20 000 rows only: it is quadratic.
func BenchmarkExportEvents(b *testing.B) {
	const n = 100_000
	db, acc := benchLog(b, n)
	ctx := context.Background()
	names := map[int64]string{}
	for name, f := range map[string]eventlog.Filter{
		"Keyset":       {},
		"KeysetOldest": {Oldest: true},
		"KeysetErrors": {Severities: []eventlog.Severity{eventlog.Error}},
		"KeysetText":   {Text: "передана"},
	} {
		f.AccountID = acc.ID
		b.Run(name, func(b *testing.B) {
			rows := 0
			for b.Loop() {
				w, err := eventlog.NewCSVWriter(io.Discard, time.UTC, names)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := db.ExportEvents(ctx, f, 0, func(batch []eventlog.Event) error {
					if err := w.Write(batch); err != nil {
						return err
					}
					return w.Flush()
				}); err != nil {
					b.Fatal(err)
				}
				if err := w.Complete(); err != nil {
					b.Fatal(err)
				}
				rows += w.Rows()
			}
			b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
		})
	}
	b.Run("OffsetPaging", func(b *testing.B) {
		rows := 0
		for b.Loop() {
			w, err := eventlog.NewCSVWriter(io.Discard, time.UTC, names)
			if err != nil {
				b.Fatal(err)
			}
			f := eventlog.Filter{AccountID: acc.ID, PerPage: eventlog.MaxPerPage}
			for f.Page = 1; w.Rows() < 20_000; f.Page++ {
				evs, _, err := db.ListEvents(ctx, f)
				if err != nil {
					b.Fatal(err)
				}
				if err := w.Write(evs); err != nil {
					b.Fatal(err)
				}
			}
			rows += w.Rows()
		}
		b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
	})
}
