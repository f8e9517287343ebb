package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/svyazka/svyazka/backend/eventlog"
	"github.com/svyazka/svyazka/backend/store"
	"github.com/svyazka/svyazka/backend/store/storetest"
)

// BenchmarkListEvents pages a 50 000-event log the way the «Список событий»
// tab does: newest first, with and without a text filter.
func BenchmarkListEvents(b *testing.B) {
	db := storetest.New(b)
	ctx := context.Background()
	acc, _, err := db.InstallAccount(ctx, store.InstallInput{AmoAccountID: 1, Subdomain: "bench", BaseDomain: "amocrm.ru", TrialDays: 14, Now: time.Now()})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := db.SQL().Exec(`INSERT INTO events (account_id, type, severity, message, created_at)
		SELECT $1, CASE WHEN g % 10 = 0 THEN 'sync_error' ELSE 'sync_started' END,
		       CASE WHEN g % 10 = 0 THEN 'error' ELSE 'info' END,
		       'Пациент ' || g || ': запись передана', now() - g * interval '1 minute'
		FROM generate_series(1, 50000) g`, acc.ID); err != nil {
		b.Fatal(err)
	}
	if _, err := db.SQL().Exec(`ANALYZE events`); err != nil {
		b.Fatal(err)
	}
	for name, f := range map[string]eventlog.Filter{
		"FirstPage":  {PerPage: 50},
		"DeepPage":   {PerPage: 50, Page: 500},
		"ErrorsOnly": {PerPage: 50, Severities: []eventlog.Severity{eventlog.Error}},
		"Text":       {PerPage: 50, Text: "Пациент 4242:"},
	} {
		f.AccountID = acc.ID
		b.Run(name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				if _, _, err := db.ListEvents(ctx, f); err != nil {
					b.Fatal(fmt.Errorf("%s: %w", name, err))
				}
			}
		})
	}
}
