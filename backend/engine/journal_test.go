package engine_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/svyazka/svyazka/amocrm"
	"github.com/svyazka/svyazka/backend/engine"
	"github.com/svyazka/svyazka/backend/eventlog"
	"github.com/svyazka/svyazka/backend/store"
	"github.com/svyazka/svyazka/connector/protocol"
)

// patients ingests n new patients with one reception each, ids from+1….
func (e *env) patients(t *testing.T, from, n int) {
	t.Helper()
	tomorrow := time.Now().Truncate(time.Hour).Add(24 * time.Hour)
	var recs []protocol.Record
	for i := from + 1; i <= from+n; i++ {
		id := fmt.Sprint(i)
		recs = append(recs,
			rec(t, protocol.KindPatient, id, protocol.IdentPatient{Surname: "Пациент", Name: id, MobilePhone: fmt.Sprintf("+7901%07d", i)}),
			rec(t, protocol.KindReception, fmt.Sprint(100000+i), protocol.IdentReception{PatientID: id, PlanStart: local(tomorrow)}))
	}
	e.ingest(t, recs...)
}

func (e *env) intents(t *testing.T) int {
	t.Helper()
	var n int
	require.NoError(t, e.db.SQL().QueryRow(`SELECT count(*) FROM sync_create_intents`).Scan(&n))
	return n
}

// requireOneEach checks that amoCRM has exactly one contact per patient
// and one lead per reception of patients 1…n.
func (e *env) requireOneEach(t *testing.T, n int) {
	t.Helper()
	contacts, leads := e.contacts(t), e.leads(t)
	require.Len(t, contacts, n)
	require.Len(t, leads, n)
	for i := 1; i <= n; i++ {
		require.Len(t, contacts[fmt.Sprint(i)], 1, "contacts of patient %d", i)
		require.Len(t, leads[fmt.Sprint(100000+i)], 1, "leads of reception %d", 100000+i)
	}
}

// importedEnv is an env whose n patients (one reception each) are
// imported.
func importedEnv(t *testing.T, n int) *env {
	t.Helper()
	e := newEnv(t)
	e.patients(t, 0, n)
	e.start(t, "")
	e.process(t)
	e.requireOneEach(t, n)
	return e
}

func TestImportSearchesNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.patients(t, 0, 120)
	e.start(t, "")
	before := e.requests()
	res := e.process(t)
	require.Equal(t, 120, res.ContactsCreated)
	require.Equal(t, 120, res.LeadsCreated)
	require.Zero(t, e.keySearches.Load(), "nothing was journaled: no search by our key")
	require.Equal(t, 3, e.requestsTo("POST /api/v4/contacts"))
	require.Equal(t, 3, e.requestsTo("POST /api/v4/leads"))
	// The writes (240 entities ÷ 50 = 6), the start's scan of contacts and
	// of our pipelines' leads, the account's users (responsible).
	require.Equal(t, 6+2+1, e.requests()-before)
	require.Zero(t, e.intents(t), "committed creates leave no journal")
	e.requireOneEach(t, 120)
	// The event log says once which settings version the data follows.
	require.Len(t, e.events(t, fmt.Sprintf("по настройкам версии %d", e.mv.Version)), 1)
	e.patients(t, 120, 3)
	e.process(t)
	require.Len(t, e.events(t, "по настройкам версии"), 1)
}

func TestCrashAfterAnswerSearchesOnlyTheJournaled(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.patients(t, 0, 60)
	e.start(t, "")
	e.failAt.Store(1)
	_, err := e.eng.Process(context.Background(), e.acc.ID)
	require.Error(t, err)
	require.Equal(t, 60, e.intents(t), "the leads' creates are journaled, their links lost")
	res := e.process(t)
	require.Zero(t, res.LeadsCreated)
	require.Equal(t, 60, res.LeadsUpdated, "the retry found the leads it had created")
	require.Equal(t, int64(2), e.keySearches.Load(), "one search per batch of journaled creates")
	require.Zero(t, e.intents(t))
	e.requireOneEach(t, 60)

	// New patients afterwards: nothing journaled, nothing searched.
	e.patients(t, 60, 10)
	e.process(t)
	require.Equal(t, int64(2), e.keySearches.Load())
	e.requireOneEach(t, 70)
}

func TestRestoredDatabaseCreatesNoDuplicates(t *testing.T) {
	t.Parallel()
	e := importedEnv(t, 30)
	ctx := context.Background()
	_, kept, err := e.marks.Get(ctx, e.dbID)
	require.NoError(t, err)
	require.True(t, kept, "the worker keeps when it last stored links")

	// The database comes back from a backup taken after the start's scan
	// of the (then empty) account and before any write; Redis is kept.
	for _, q := range []string{
		`DELETE FROM entity_links WHERE database_id = $1`,
		`UPDATE sync_cursors SET last_change_seq = 0, realtime_seq = 0 WHERE database_id = $1`,
		`UPDATE clinic_databases SET sync_wrote_at = NULL WHERE id = $1`,
		`DELETE FROM sync_scanned_keys WHERE account_id = (SELECT account_id FROM clinic_databases WHERE id = $1)`,
	} {
		_, err := e.db.SQL().Exec(q, e.dbID)
		require.NoError(t, err)
	}
	res := e.process(t)
	require.Zero(t, res.ContactsCreated, "what amoCRM has is linked again, not created twice")
	require.Zero(t, res.LeadsCreated)
	require.Equal(t, 30, res.ContactsUpdated)
	require.Equal(t, 30, res.LeadsUpdated)
	e.requireOneEach(t, 30)
	events, _, err := e.db.ListEvents(ctx, eventlog.Filter{AccountID: e.acc.ID, Types: []eventlog.Type{engine.EventSync}})
	require.NoError(t, err)
	restored := 0
	for _, ev := range events {
		if ev.Details["reason"] == "restored" {
			restored++
		}
	}
	require.Equal(t, 1, restored, "the event log says why amoCRM was read again")

	// Once noticed, it is not noticed again.
	e.patients(t, 30, 5)
	res = e.process(t)
	require.Equal(t, 5, res.ContactsCreated)
	e.requireOneEach(t, 35)
}

func TestDatabaseAddedAgainLinksWhatAmoCRMHas(t *testing.T) {
	t.Parallel()
	e := importedEnv(t, 20)
	ctx := context.Background()

	// The clinic removes the database and connects it again: a new
	// database with the same records and no links.
	require.NoError(t, e.db.StopSync(ctx, e.acc.ID, eventlog.Event{AccountID: e.acc.ID, Type: eventlog.TypeSyncStopped, Message: "test"}, time.Now()))
	_, err := e.db.SQL().Exec(`DELETE FROM clinic_databases WHERE id = $1`, e.dbID)
	require.NoError(t, err)
	d, err := e.db.IssueConnectorToken(ctx, store.TokenRequest{AccountID: e.acc.ID, TokenHash: []byte(uuid.NewString()), Now: time.Now(),
		MaxDatabases: 3, Name: "Клиника", TimeZone: "Europe/Moscow"})
	require.NoError(t, err)
	e.dbID = d.ID
	e.patients(t, 0, 20)
	e.start(t, "")
	res := e.process(t)
	require.Zero(t, res.ContactsCreated)
	require.Zero(t, res.LeadsCreated)
	e.requireOneEach(t, 20)
}

// A lost commit after an inbound lead was continued: the retry finds that
// lead by our key (it is in our pipeline now, no longer inbound) instead of
// creating a second lead for the appointment.
func TestCrashAfterContinuingAnInboundLead(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	tomorrow := time.Now().Truncate(time.Hour).Add(24 * time.Hour)
	contact := e.existingContact(t, "Звонок", "+79001112233")
	saved, err := e.api.CreateLeads(ctx, []amocrm.Lead{{Name: "Звонок", Embedded: &amocrm.LeadEmbedded{Contacts: []amocrm.EntityRef{{ID: contact, IsMain: true}}}}})
	require.NoError(t, err)
	e.ingest(t,
		rec(t, protocol.KindPatient, "1", protocol.IdentPatient{Surname: "Петров", Name: "Пётр", MobilePhone: "+7 900 111-22-33"}),
		rec(t, protocol.KindReception, "10", protocol.IdentReception{PatientID: "1", PlanStart: local(tomorrow)}))
	e.start(t, "")
	e.failAt.Store(1)
	_, err = e.eng.Process(ctx, e.acc.ID)
	require.Error(t, err)
	res := e.process(t)
	require.Zero(t, res.LeadsCreated)
	leads := e.leads(t)
	require.Len(t, leads["10"], 1)
	require.Equal(t, saved[0].ID, leads["10"][0].ID)
	require.Zero(t, e.intents(t))
}
