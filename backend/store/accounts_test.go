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
	"github.com/svyazka/svyazka/billing"
)

func install(t *testing.T, db *store.DB, amoID int64, now time.Time) store.Account {
	t.Helper()
	acc, _, err := db.InstallAccount(context.Background(), store.InstallInput{
		AmoAccountID: amoID, Subdomain: fmt.Sprintf("clinic%d", amoID), BaseDomain: "amocrm.ru", TrialDays: 14, Now: now})
	require.NoError(t, err)
	return acc
}

func TestInstallUninstallReinstall(t *testing.T) {
	t.Parallel()
	db := storetest.New(t)
	ctx := context.Background()
	now := time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)

	acc, first, err := db.InstallAccount(ctx, store.InstallInput{AmoAccountID: 777, Subdomain: "smile", BaseDomain: "amocrm.ru", TrialDays: 14, Now: now})
	require.NoError(t, err)
	require.True(t, first)
	require.Equal(t, store.AccountActive, acc.Status)
	sub, err := db.Subscription(ctx, acc.ID)
	require.NoError(t, err)
	require.Equal(t, billing.StatusTrial, sub.Effective(now))
	require.Equal(t, now.AddDate(0, 0, 14), sub.TrialEndsAt.UTC())

	_, err = db.UninstallAccount(ctx, 777, "отключение в настройках amoCRM", now.Add(time.Hour))
	require.NoError(t, err)
	_, err = db.UninstallAccount(ctx, 777, "повтор", now.Add(2*time.Hour))
	require.NoError(t, err, "a second uninstall is a no-op")
	got, err := db.AccountByAmoID(ctx, 777)
	require.NoError(t, err)
	require.Equal(t, store.AccountUninstalled, got.Status)

	again, first, err := db.InstallAccount(ctx, store.InstallInput{AmoAccountID: 777, Subdomain: "smile2", BaseDomain: "amocrm.ru", TrialDays: 14, Now: now.AddDate(0, 0, 30)})
	require.NoError(t, err)
	require.False(t, first)
	require.Equal(t, acc.ID, again.ID, "re-install keeps the account and its data")
	require.Equal(t, store.AccountActive, again.Status)
	sub, err = db.Subscription(ctx, acc.ID)
	require.NoError(t, err)
	require.Equal(t, billing.StatusExpired, sub.Effective(now.AddDate(0, 0, 30)), "re-install does not restart the trial")

	events, total, err := db.ListEvents(ctx, eventlog.Filter{AccountID: acc.ID, Oldest: true})
	require.NoError(t, err)
	require.EqualValues(t, 3, total)
	require.Equal(t, []eventlog.Type{eventlog.TypeInstall, eventlog.TypeUninstall, eventlog.TypeInstall},
		[]eventlog.Type{events[0].Type, events[1].Type, events[2].Type})
	require.Contains(t, events[2].Message, "повторно")

	_, err = db.UninstallAccount(ctx, 999, "x", now)
	require.True(t, errors.Is(err, store.ErrNotFound))
	_, err = db.AccountByID(ctx, 424242)
	require.True(t, errors.Is(err, store.ErrNotFound))
}

func TestInstallForm(t *testing.T) {
	t.Parallel()
	db := storetest.New(t)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Second)
	acc := install(t, db, 1, now)
	require.False(t, acc.InstallFormDone())
	require.NoError(t, db.SaveInstallForm(ctx, acc.ID, "Анна", "+79161234567", 42, now))
	got, err := db.AccountByID(ctx, acc.ID)
	require.NoError(t, err)
	require.True(t, got.InstallFormDone())
	require.Equal(t, "+79161234567", got.ContactPhone)
	require.EqualValues(t, 42, *got.ConsentUserID)
	require.True(t, errors.Is(db.SaveInstallForm(ctx, 999999, "x", "y", 1, now), store.ErrNotFound))
}

func TestConnectorTokens(t *testing.T) {
	t.Parallel()
	db := storetest.New(t)
	ctx := context.Background()
	now := time.Now().UTC()
	a := install(t, db, 1, now)
	b := install(t, db, 2, now)

	first, err := db.IssueConnectorToken(ctx, store.TokenRequest{AccountID: a.ID, DatabaseID: 0, TokenHash: []byte("hash-1"), UserID: 42, Now: now, MaxDatabases: 2})
	require.NoError(t, err)
	require.Equal(t, "База 1", first.Name)
	second, err := db.IssueConnectorToken(ctx, store.TokenRequest{AccountID: a.ID, DatabaseID: 0, TokenHash: []byte("hash-2"), UserID: 42, Now: now, MaxDatabases: 2})
	require.NoError(t, err)
	require.Equal(t, "База 2", second.Name)

	rotated, err := db.IssueConnectorToken(ctx, store.TokenRequest{AccountID: a.ID, DatabaseID: first.ID, TokenHash: []byte("hash-3"), UserID: 42, Now: now, MaxDatabases: 2})
	require.NoError(t, err)
	require.Equal(t, first.ID, rotated.ID)
	require.Equal(t, []byte("hash-3"), rotated.TokenHash)

	_, err = db.IssueConnectorToken(ctx, store.TokenRequest{AccountID: b.ID, DatabaseID: first.ID, TokenHash: []byte("hash-4"), UserID: 7, Now: now, MaxDatabases: 2})
	require.True(t, errors.Is(err, store.ErrNotFound), "account B cannot touch account A's database")

	_, err = db.IssueConnectorToken(ctx, store.TokenRequest{AccountID: a.ID, TokenHash: []byte("hash-5"), UserID: 42, Now: now, MaxDatabases: 2})
	require.ErrorIs(t, err, store.ErrTooManyDatabases, "a third database is over the cap")

	list, err := db.ListDatabases(ctx, a.ID)
	require.NoError(t, err)
	require.Len(t, list, 2)
	list, err = db.ListDatabases(ctx, b.ID)
	require.NoError(t, err)
	require.Empty(t, list)
}

func TestListEventsFilters(t *testing.T) {
	t.Parallel()
	db := storetest.New(t)
	ctx := context.Background()
	base := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
	a := install(t, db, 1, base.Add(-time.Hour))
	other := install(t, db, 2, base.Add(-time.Hour))
	d, err := db.IssueConnectorToken(ctx, store.TokenRequest{AccountID: a.ID, DatabaseID: 0, TokenHash: []byte("h"), UserID: 1, Now: base.Add(-time.Minute), MaxDatabases: 2})
	require.NoError(t, err)

	for i := range 30 {
		e := eventlog.Event{AccountID: a.ID, Type: eventlog.TypeSyncError, Severity: eventlog.Error,
			Message: fmt.Sprintf("Пациент %d: нет телефона", i), CreatedAt: base.Add(time.Duration(i) * time.Hour)}
		if i%3 == 0 {
			e.Type, e.Severity, e.Message = eventlog.TypeSyncStarted, eventlog.Info, fmt.Sprintf("Запуск %d", i)
			e.DatabaseID = &d.ID
		}
		require.NoError(t, db.Record(ctx, e))
	}
	require.NoError(t, db.Record(ctx, eventlog.Event{AccountID: other.ID, Type: eventlog.TypeSyncError, Severity: eventlog.Error, Message: "чужое 100%_"}))

	count := func(f eventlog.Filter) (int64, []eventlog.Event) {
		f.AccountID = a.ID
		evs, total, err := db.ListEvents(ctx, f)
		require.NoError(t, err)
		return total, evs
	}
	from, to := base.Add(5*time.Hour), base.Add(10*time.Hour)
	for name, tc := range map[string]struct {
		f    eventlog.Filter
		want int64
	}{
		"All":           {eventlog.Filter{}, 30 + 2}, // + install and token events
		"ByType":        {eventlog.Filter{Types: []eventlog.Type{eventlog.TypeSyncStarted}}, 10},
		"BySeverity":    {eventlog.Filter{Severities: []eventlog.Severity{eventlog.Error}}, 20},
		"ByDatabase":    {eventlog.Filter{DatabaseID: &d.ID}, 11},
		"ByText":        {eventlog.Filter{Text: "ТЕЛЕФОНА"}, 20},
		"ByTextNumber":  {eventlog.Filter{Text: "Пациент 2:"}, 1},
		"LikeIsEscaped": {eventlog.Filter{Text: "%"}, 0},
		"ByDateRange":   {eventlog.Filter{From: &from, To: &to}, 5},
	} {
		total, _ := count(tc.f)
		require.Equal(t, tc.want, total, name)
	}

	total, newest := count(eventlog.Filter{Types: []eventlog.Type{eventlog.TypeSyncError}, PerPage: 5})
	require.EqualValues(t, 20, total)
	require.Len(t, newest, 5)
	require.Equal(t, "Пациент 29: нет телефона", newest[0].Message)
	_, page2 := count(eventlog.Filter{Types: []eventlog.Type{eventlog.TypeSyncError}, PerPage: 5, Page: 2})
	require.True(t, page2[0].CreatedAt.Before(newest[4].CreatedAt))
	_, oldest := count(eventlog.Filter{Types: []eventlog.Type{eventlog.TypeSyncError}, PerPage: 5, Oldest: true})
	require.Equal(t, "Пациент 1: нет телефона", oldest[0].Message)
}
