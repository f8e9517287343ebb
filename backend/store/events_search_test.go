package store_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/svyazka/svyazka/backend/eventlog"
	"github.com/svyazka/svyazka/backend/store/storetest"
)

// TestSearchMatchesVisibleTextOnly: the text filter finds what the user sees
// (the message), never the hidden details' keys or values.
func TestSearchMatchesVisibleTextOnly(t *testing.T) {
	t.Parallel()
	db := storetest.New(t)
	ctx := context.Background()
	base := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
	a := installAt(t, db, 1, base)
	require.NoError(t, db.Record(ctx, eventlog.Event{AccountID: a.ID, Type: eventlog.TypeSyncError, Severity: eventlog.Error,
		Message: "Пациент Иванов: нет телефона", Details: map[string]any{"patient_ref": "zq-7731", "first_install": true}}))

	for name, tc := range map[string]struct {
		text string
		want int64
	}{
		"VisibleValue":      {"Иванов", 1},
		"CaseInsensitive":   {"ИВАНОВ: НЕТ", 1},
		"KeyName":           {"account_id", 0}, // in the install event's details
		"OtherKeyName":      {"patient_ref", 0},
		"HiddenValue":       {"zq-7731", 0},
		"JSONSyntax":        {`": "`, 0},
		"HiddenBoolean":     {"true", 0},
		"AmoAccountIDValue": {"amo_account_id", 0},
	} {
		evs, total, err := db.ListEvents(ctx, eventlog.Filter{AccountID: a.ID, Text: tc.text})
		require.NoError(t, err, name)
		require.Equal(t, tc.want, total, name)
		require.Len(t, evs, int(tc.want), name)
	}
}

// TestSearchUsesTrigramIndex checks the plan of the list's COUNT for a rare
// text: it must come from events_message_trgm_idx, not a scan of the account.
func TestSearchUsesTrigramIndex(t *testing.T) {
	t.Parallel()
	db := storetest.New(t)
	base := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
	a := installAt(t, db, 1, base)
	seedEvents(t, db, a.ID, 20_000, base)
	rows, err := db.SQL().Query(`EXPLAIN SELECT count(*) FROM events WHERE account_id = $1 AND message ILIKE $2`, a.ID, "%Пациент 4242:%")
	require.NoError(t, err)
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var line string
		require.NoError(t, rows.Scan(&line))
		plan = append(plan, line)
	}
	require.NoError(t, rows.Err())
	require.Contains(t, strings.Join(plan, "\n"), "events_message_trgm_idx")
}
