package admin_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/svyazka/svyazka/backend/admin"
	"github.com/svyazka/svyazka/backend/apperr"
	"github.com/svyazka/svyazka/backend/conntoken"
	"github.com/svyazka/svyazka/backend/eventlog"
	"github.com/svyazka/svyazka/backend/store"
	"github.com/svyazka/svyazka/backend/store/storetest"
)

var now = time.Date(2026, 3, 2, 9, 30, 0, 0, time.UTC)

func newService(t *testing.T, db *store.DB, maxDatabases int) *admin.Service {
	t.Helper()
	svc, err := admin.New(admin.Config{Store: db, Now: func() time.Time { return now }, DefaultTimeZone: "Europe/Moscow",
		MaxDatabases: maxDatabases, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	return svc
}

func install(t *testing.T, db *store.DB, amoID int64, subdomain string) store.Account {
	t.Helper()
	acc, _, err := db.InstallAccount(context.Background(), store.InstallInput{AmoAccountID: amoID, Subdomain: subdomain,
		BaseDomain: "amocrm.ru", Name: "Clinic " + subdomain, TrialDays: 14, Now: now.AddDate(0, 0, -1)})
	require.NoError(t, err)
	return acc
}

func TestNewFailsFast(t *testing.T) {
	t.Parallel()
	db := storetest.New(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for name, c := range map[string]admin.Config{
		"NoStore":    {Now: time.Now, DefaultTimeZone: "Europe/Moscow", MaxDatabases: 1, Log: log},
		"NoClock":    {Store: db, DefaultTimeZone: "Europe/Moscow", MaxDatabases: 1, Log: log},
		"NoLog":      {Store: db, Now: time.Now, DefaultTimeZone: "Europe/Moscow", MaxDatabases: 1},
		"BadZone":    {Store: db, Now: time.Now, DefaultTimeZone: "Mars/Olympus", MaxDatabases: 1, Log: log},
		"LocalZone":  {Store: db, Now: time.Now, DefaultTimeZone: "Local", MaxDatabases: 1, Log: log},
		"ZeroCap":    {Store: db, Now: time.Now, DefaultTimeZone: "Europe/Moscow", Log: log},
		"EmptyZone_": {Store: db, Now: time.Now, MaxDatabases: 1, Log: log},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := admin.New(c)
			require.Error(t, err)
		})
	}
}

func TestAdminAddDatabase(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := storetest.New(t)
	svc := newService(t, db, 3)
	demo := install(t, db, 30123456, "demo-clinic")
	full := install(t, db, 30000002, "full-clinic")
	for i := range 3 {
		_, _, err := svc.AddDatabase(ctx, "full-clinic", fmt.Sprintf("Branch %d", i+1), "")
		require.NoError(t, err)
	}
	gone := install(t, db, 30000003, "gone-clinic")
	_, err := db.UninstallAccount(ctx, gone.AmoAccountID, "test", now)
	require.NoError(t, err)
	// Two accounts on one subdomain, neither active: only the id tells them apart.
	for _, id := range []int64{30000004, 30000005} {
		install(t, db, id, "twins")
		_, err := db.UninstallAccount(ctx, id, "test", now)
		require.NoError(t, err)
	}
	install(t, db, 42, "4242") // an all-digit subdomain

	for _, tc := range []struct {
		name, account, dbName, zone string
		wantAccount                 int64
		wantName, wantZone          string
		wantCode                    apperr.Code
		wantMessage                 string
	}{
		{name: "ByAmoID", account: "30123456", dbName: "Филиал на Ленина", zone: "Asia/Yekaterinburg",
			wantAccount: demo.ID, wantName: "Филиал на Ленина", wantZone: "Asia/Yekaterinburg"},
		{name: "BySubdomain", account: "demo-clinic", dbName: "  Main   branch ", wantAccount: demo.ID, wantName: "Main branch", wantZone: "Europe/Moscow"},
		{name: "BySubdomainAnyCase", account: " Demo-Clinic ", dbName: "Third", zone: "UTC", wantAccount: demo.ID, wantName: "Third", wantZone: "UTC"},
		{name: "DigitsFallBackToSubdomain", account: "4242", dbName: "X", wantAccount: 0, wantName: "X", wantZone: "Europe/Moscow"},
		{name: "NameOf100Runes", account: "42", dbName: strings.Repeat("я", 100), wantAccount: 0, wantName: strings.Repeat("я", 100), wantZone: "Europe/Moscow"},
		{name: "ErrUnknownAccount", account: "no-such-clinic", dbName: "X", wantCode: apperr.NotFound, wantMessage: `no account with amoCRM id or subdomain "no-such-clinic"`},
		{name: "ErrUnknownAmoID", account: "999", dbName: "X", wantCode: apperr.NotFound},
		{name: "ErrEmptyAccount", account: " ", dbName: "X", wantCode: apperr.Invalid},
		{name: "ErrAmbiguousSubdomain", account: "twins", dbName: "X", wantCode: apperr.Conflict, wantMessage: "30000004, 30000005"},
		{name: "ErrBadZone", account: "demo-clinic", dbName: "X", zone: "Europe/Atlantis", wantCode: apperr.Invalid, wantMessage: `unknown time zone "Europe/Atlantis"`},
		{name: "ErrLocalZone", account: "demo-clinic", dbName: "X", zone: "Local", wantCode: apperr.Invalid},
		{name: "ErrZonePath", account: "demo-clinic", dbName: "X", zone: "../../etc/passwd", wantCode: apperr.Invalid},
		{name: "ErrEmptyName", account: "demo-clinic", dbName: "", wantCode: apperr.Invalid, wantMessage: "database name must be 1 to 100 characters"},
		{name: "ErrBlankName", account: "demo-clinic", dbName: "   ", wantCode: apperr.Invalid},
		{name: "ErrNameTooLong", account: "demo-clinic", dbName: strings.Repeat("я", 101), wantCode: apperr.Invalid},
		{name: "ErrNameControlChar", account: "demo-clinic", dbName: "Branch\n2", wantCode: apperr.Invalid},
		{name: "ErrNameNUL", account: "demo-clinic", dbName: "Branch\x00", wantCode: apperr.Invalid},
		{name: "ErrNameInvalidUTF8", account: "demo-clinic", dbName: "Branch \xff", wantCode: apperr.Invalid},
		{name: "ErrCapReached", account: "full-clinic", dbName: "Branch 4", wantCode: apperr.Conflict, wantMessage: "maximum of 3 databases"},
		{name: "ErrUninstalled", account: "gone-clinic", dbName: "X", wantCode: apperr.Conflict, wantMessage: "uninstalled"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			token, d, err := svc.AddDatabase(ctx, tc.account, tc.dbName, tc.zone)
			if tc.wantCode != "" {
				require.Error(t, err)
				require.Equal(t, tc.wantCode, apperr.CodeOf(err), err.Error())
				require.Contains(t, apperr.MessageOf(err), tc.wantMessage)
				require.Empty(t, token)
				return
			}
			require.NoError(t, err)
			require.Regexp(t, `^svz_[A-Za-z0-9_-]{43}$`, token)
			require.Equal(t, tc.wantName, d.Name)
			require.Equal(t, tc.wantZone, d.TimeZone)
			require.Equal(t, "disconnected", string(d.Connector))
			require.Equal(t, "disconnected", string(d.Database))
			require.Nil(t, d.LastSeenAt)
			require.Equal(t, admin.Received{}, d.Received)

			// The token authenticates: the stored hash is its SHA-256.
			stored, acc, err := db.ConnectorDatabase(ctx, conntoken.Hash(token))
			require.NoError(t, err)
			require.Equal(t, d.ID, stored.ID)
			require.Equal(t, tc.wantZone, stored.TimeZone)
			if tc.wantAccount != 0 {
				require.Equal(t, tc.wantAccount, acc.ID)
			}
			events, _, err := db.ListEvents(ctx, eventlog.Filter{AccountID: acc.ID, DatabaseID: &d.ID, Types: []eventlog.Type{eventlog.TypeTokenIssued}})
			require.NoError(t, err)
			var bySupport bool
			for _, e := range events {
				bySupport = bySupport || (strings.Contains(e.Message, "службой поддержки") && e.Details["issued_by"] == "support")
			}
			require.True(t, bySupport, "the event log says support issued the token: %+v", events)
		})
	}

	dbs, err := db.ListDatabases(ctx, full.ID)
	require.NoError(t, err)
	require.Len(t, dbs, 3, "the cap held")
}

func TestAdminStatus(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := storetest.New(t)
	svc := newService(t, db, 20)
	acc := install(t, db, 30123456, "demo-clinic")

	_, never, err := svc.AddDatabase(ctx, "demo-clinic", "Never seen", "")
	require.NoError(t, err)
	_, live, err := svc.AddDatabase(ctx, "demo-clinic", "Live", "Asia/Yekaterinburg")
	require.NoError(t, err)
	_, stale, err := svc.AddDatabase(ctx, "demo-clinic", "Stale", "")
	require.NoError(t, err)
	_, dbDown, err := svc.AddDatabase(ctx, "demo-clinic", "IDENT down", "")
	require.NoError(t, err)

	heartbeat := func(id int64, at time.Time, up bool, detail string) {
		require.NoError(t, db.RecordHeartbeat(ctx, store.HeartbeatInput{DatabaseID: id, InstanceID: fmt.Sprintf("inst-%d", id),
			ConnectorVersion: "1.2.0", DatabaseUp: up, Detail: detail, SourceVersion: "IDENT 9.1", Pending: 7, InitialLoadDone: up, Now: at}))
	}
	heartbeat(live.ID, now.Add(-30*time.Second+123*time.Millisecond), true, "")
	heartbeat(stale.ID, now.Add(-3*time.Minute-time.Second), true, "") // stored connected, but silent too long
	heartbeat(dbDown.ID, now.Add(-10*time.Second), false, "Login failed")

	insert := func(databaseID int64, kind, sourceID string, deleted bool) {
		require.NoError(t, db.Gorm(ctx).Exec(`INSERT INTO source_records (database_id, kind, source_id, version, deleted, content_hash, change_seq, received_at, changed_at)
			VALUES (?, ?, ?, 1, ?, '\x00', nextval('source_change_seq'), ?, ?)`, databaseID, kind, sourceID, deleted, now.Add(-90*time.Second), now.Add(-90*time.Second)).Error)
	}
	insert(live.ID, "patient", "1", false)
	insert(live.ID, "patient", "2", false)
	insert(live.ID, "patient", "3", true) // deleted: not counted
	insert(live.ID, "reception", "10", false)
	insert(live.ID, "doctor", "5", false) // other kinds are not patients or appointments
	insert(stale.ID, "reception", "11", false)

	t.Run("ErrUnknownAccount", func(t *testing.T) {
		_, err := svc.Status(ctx, "30999999")
		require.Equal(t, apperr.NotFound, apperr.CodeOf(err))
	})

	for _, account := range []string{"30123456", "demo-clinic"} {
		t.Run("By_"+account, func(t *testing.T) {
			st, err := svc.Status(ctx, account)
			require.NoError(t, err)
			got, err := json.Marshal(st)
			require.NoError(t, err)
			want := fmt.Sprintf(`{
			"account": {"id": %[1]d, "amo_account_id": 30123456, "subdomain": "demo-clinic", "base_domain": "amocrm.ru",
				"name": "Clinic demo-clinic", "status": "active", "time_zone": "Europe/Moscow", "install_form_done": false},
			"subscription": {"status": "trial", "label": "Бесплатный пробный период", "allows_work": true,
				"trial_ends_at": "2026-03-15T09:30:00Z", "paid_until": null, "paid_seats": 0},
			"databases": [
				{"id": %[2]d, "name": "Never seen", "source": "ident", "connector": "disconnected", "database": "disconnected", "database_detail": "",
				 "time_zone": "Europe/Moscow", "last_seen_at": null, "hostname": "", "connector_version": "", "source_version": "",
				 "pending": 0, "initial_load_done": false, "token_issued_at": "2026-03-02T09:30:00Z", "received": {"patients": 0, "appointments": 0}},
				{"id": %[3]d, "name": "Live", "source": "ident", "connector": "connected", "database": "connected", "database_detail": "",
				 "time_zone": "Asia/Yekaterinburg", "last_seen_at": "2026-03-02T09:29:30Z", "hostname": "", "connector_version": "1.2.0", "source_version": "IDENT 9.1",
				 "pending": 7, "initial_load_done": true, "token_issued_at": "2026-03-02T09:30:00Z", "received": {"patients": 2, "appointments": 1}},
				{"id": %[4]d, "name": "Stale", "source": "ident", "connector": "disconnected", "database": "connected", "database_detail": "",
				 "time_zone": "Europe/Moscow", "last_seen_at": "2026-03-02T09:26:59Z", "hostname": "", "connector_version": "1.2.0", "source_version": "IDENT 9.1",
				 "pending": 7, "initial_load_done": true, "token_issued_at": "2026-03-02T09:30:00Z", "received": {"patients": 0, "appointments": 1}},
				{"id": %[5]d, "name": "IDENT down", "source": "ident", "connector": "connected", "database": "disconnected", "database_detail": "Login failed",
				 "time_zone": "Europe/Moscow", "last_seen_at": "2026-03-02T09:29:50Z", "hostname": "", "connector_version": "1.2.0", "source_version": "IDENT 9.1",
				 "pending": 7, "initial_load_done": false, "token_issued_at": "2026-03-02T09:30:00Z", "received": {"patients": 0, "appointments": 0}}
			],
			"setup": "not_configured", "setup_detail": "",
			"sync": "stopped", "sync_started_at": null, "queue": {"pending": 6, "parked": 0},
			"import": {"total": 0, "done": 0}, "lag_seconds": 90,
			"checked_at": "2026-03-02T09:30:00Z"
		}`, acc.ID, never.ID, live.ID, stale.ID, dbDown.ID)
			require.JSONEq(t, want, string(got))
		})
	}

	t.Run("Import", func(t *testing.T) {
		require.NoError(t, db.StartSync(ctx, store.StartSyncInput{AccountID: acc.ID, Now: now,
			Task:  store.OutboxMessage{TaskID: "sync:account:admin-test", TaskType: "sync:account", Payload: []byte(`{}`), Queue: "default", TimeoutSeconds: 60},
			Event: eventlog.Event{AccountID: acc.ID, Type: eventlog.TypeSyncStarted, Message: "started"}}))
		changes, err := db.PendingChanges(ctx, live.ID, 0, 10)
		require.NoError(t, err)
		require.NoError(t, db.CommitSync(ctx, store.SyncCommit{AccountID: acc.ID, DatabaseID: live.ID, Cursor: changes[1].ChangeSeq, Now: now}))
		st, err := svc.Status(ctx, "demo-clinic")
		require.NoError(t, err)
		require.Equal(t, "running", st.Sync)
		require.Equal(t, admin.ImportProgress{Total: 6, Done: 2}, st.Import, "every record queued at the start")
		require.Equal(t, store.SyncQueue{Pending: 4}, st.Queue)
		require.Equal(t, int64(90), st.LagSeconds)
	})

	t.Run("NoDatabases", func(t *testing.T) {
		install(t, db, 30000009, "empty-clinic")
		st, err := svc.Status(ctx, "empty-clinic")
		require.NoError(t, err)
		got, err := json.Marshal(st)
		require.NoError(t, err)
		require.Contains(t, string(got), `"databases":[]`, "an empty list, never null")
	})
}
