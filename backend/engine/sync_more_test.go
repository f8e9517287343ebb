package engine_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/svyazka/svyazka/amocrm"
	"github.com/svyazka/svyazka/amocrm/sandbox"
	"github.com/svyazka/svyazka/backend/engine"
	"github.com/svyazka/svyazka/backend/mirror"
	"github.com/svyazka/svyazka/backend/setup"
	"github.com/svyazka/svyazka/backend/store"
	"github.com/svyazka/svyazka/connector/protocol"
)

// events returns the messages of the account's events containing text.
func (e *env) events(t *testing.T, text string) []string {
	t.Helper()
	rows, err := e.db.SQL().Query(`SELECT message FROM events WHERE account_id = $1 AND message LIKE '%' || $2 || '%' ORDER BY id`, e.acc.ID, text)
	require.NoError(t, err)
	defer rows.Close()
	var out []string
	for rows.Next() {
		var m string
		require.NoError(t, rows.Scan(&m))
		out = append(out, m)
	}
	return out
}

// existingContact creates a contact as a call or a site form would.
func (e *env) existingContact(t *testing.T, name, phone string) int64 {
	t.Helper()
	saved, err := e.api.CreateContacts(context.Background(), []amocrm.Contact{{Name: name,
		CustomFieldsValues: []amocrm.FieldValues{amocrm.MultitextValue("PHONE", "WORK", phone)}}})
	require.NoError(t, err)
	return saved[0].ID
}

func (e *env) requestsTo(endpoint string) int {
	n := 0
	for _, r := range e.sb.Stats().Requests {
		if r.Endpoint == endpoint {
			n += r.Count
		}
	}
	return n
}

func TestAdoptionRealtime(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tomorrow := time.Now().Truncate(time.Hour).Add(24 * time.Hour)
	single := e.existingContact(t, "Звонок с сайта", "8 (900) 111-22-33")
	family := e.existingContact(t, "Мама", "+79002223344")
	e.ingest(t,
		rec(t, protocol.KindPatient, "1", protocol.IdentPatient{Surname: "Петров", Name: "Пётр", MobilePhone: "+7 900 111-22-33"}),
		rec(t, protocol.KindReception, "10", protocol.IdentReception{PatientID: "1", PlanStart: local(tomorrow)}),
		// A family phone: two patients, no adoption.
		rec(t, protocol.KindPatient, "2", protocol.IdentPatient{Surname: "Иванова", Name: "Ольга", MobilePhone: "89002223344"}),
		rec(t, protocol.KindReception, "20", protocol.IdentReception{PatientID: "2", PlanStart: local(tomorrow)}),
		rec(t, protocol.KindPatient, "3", protocol.IdentPatient{Surname: "Иванов", Name: "Олег", Phone: "+7 900 222 33 44"}),
		rec(t, protocol.KindReception, "30", protocol.IdentReception{PatientID: "3", PlanStart: local(tomorrow)}),
	)
	e.start(t, "")
	res := e.process(t)
	require.Equal(t, 1, res.Adopted)
	require.Equal(t, 2, res.ContactsCreated)
	contacts := e.contacts(t)
	require.Len(t, contacts["1"], 1)
	require.Equal(t, single, contacts["1"][0].ID, "the pre-existing contact is the patient's now")
	require.NotEqual(t, family, contacts["2"][0].ID)
	require.NotEqual(t, family, contacts["3"][0].ID, "one phone never merges two patients")
	require.Len(t, e.events(t, fmt.Sprintf("Контакт «Звонок с сайта» (№%d) связан с пациентом", single)), 1)
	require.Equal(t, single, e.leads(t)["10"][0].Embedded.Contacts[0].ID)
	in := e.integrity(t)
	require.Zero(t, in.ContactsSharingExternalID)
}

func TestAdoptionImportReadsContactsOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	tomorrow := time.Now().Truncate(time.Hour).Add(24 * time.Hour)
	existing := e.existingContact(t, "Звонок", "+7 (900) 000-00-03")
	var recs []protocol.Record
	for i := range engine.RealtimeLookupMax + 3 {
		id := fmt.Sprint(i + 1)
		recs = append(recs,
			rec(t, protocol.KindPatient, id, protocol.IdentPatient{Surname: "Пациент", Name: id, MobilePhone: fmt.Sprintf("+7900000000%d", i+1)}),
			rec(t, protocol.KindReception, "1"+id, protocol.IdentReception{PatientID: id, PlanStart: local(tomorrow)}))
	}
	e.ingest(t, recs...)
	e.start(t, "")
	before := e.requestsTo("GET /api/v4/contacts")
	res := e.process(t)
	require.Equal(t, 1, res.Adopted)
	// One full read and the adopted contact's leads (an inbound lead to
	// continue); no search per patient, no search by our key (nothing was
	// journaled).
	require.Equal(t, before+2, e.requestsTo("GET /api/v4/contacts"))
	require.Equal(t, existing, e.contacts(t)["3"][0].ID)
	s, err := e.db.SyncSettings(ctx, e.acc.ID)
	require.NoError(t, err)
	require.NotNil(t, s.ContactsScannedAt)

	// A second import batch uses the read it has.
	recs = nil
	for i := range engine.RealtimeLookupMax + 1 {
		id := fmt.Sprint(100 + i)
		recs = append(recs,
			rec(t, protocol.KindPatient, id, protocol.IdentPatient{Surname: "Пациент", Name: id, MobilePhone: fmt.Sprintf("+7900100%04d", i)}),
			rec(t, protocol.KindReception, "1"+id, protocol.IdentReception{PatientID: id, PlanStart: local(tomorrow)}))
	}
	e.ingest(t, recs...)
	before = e.requestsTo("GET /api/v4/contacts")
	e.process(t)
	require.Equal(t, before, e.requestsTo("GET /api/v4/contacts"), "no read at all")
}

func TestInboundLeadContinues(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	tomorrow := time.Now().Truncate(time.Hour).Add(24 * time.Hour)
	contact := e.existingContact(t, "Звонок", "+79001112233")
	// A call's lead in the main pipeline, with its manager.
	saved, err := e.api.CreateLeads(ctx, []amocrm.Lead{{Name: "Звонок с Яндекс.Директ",
		Embedded: &amocrm.LeadEmbedded{Contacts: []amocrm.EntityRef{{ID: contact, IsMain: true}}}}})
	require.NoError(t, err)
	inbound := saved[0].ID
	before, err := e.api.Lead(ctx, inbound)
	require.NoError(t, err)

	e.ingest(t,
		rec(t, protocol.KindPatient, "1", protocol.IdentPatient{Surname: "Петров", Name: "Пётр", MobilePhone: "+7 900 111-22-33"}),
		rec(t, protocol.KindReception, "10", protocol.IdentReception{PatientID: "1", PlanStart: local(tomorrow)}),
	)
	e.start(t, "")
	res := e.process(t)
	require.Equal(t, 1, res.Continued)
	require.Zero(t, res.LeadsCreated)
	leads := e.leads(t)
	require.Len(t, leads["10"], 1)
	got := leads["10"][0]
	require.Equal(t, inbound, got.ID, "the call's lead carries the appointment")
	e.requireStage(t, got, setup.PipelinePrimary, setup.StatePlanned)
	require.Equal(t, "Звонок с Яндекс.Директ", got.Name, "it keeps its name")
	require.Equal(t, before.ResponsibleUserID, got.ResponsibleUserID)
	require.Len(t, e.events(t, fmt.Sprintf("(сделка №%d) продолжена записью на приём", inbound)), 1)

	// The next change updates it as our lead.
	e.ingest(t, rec(t, protocol.KindReception, "10", protocol.IdentReception{PatientID: "1", PlanStart: local(tomorrow), PatientAppeared: local(tomorrow)}))
	e.process(t)
	e.requireStage(t, e.leads(t)["10"][0], setup.PipelinePrimary, setup.StateArrived)

	t.Run("Off", func(t *testing.T) {
		require.NoError(t, e.db.SetContinueInboundLeads(ctx, e.acc.ID, false))
		c2 := e.existingContact(t, "Форма", "+79005550000")
		_, err := e.api.CreateLeads(ctx, []amocrm.Lead{{Name: "Заявка с сайта", Embedded: &amocrm.LeadEmbedded{Contacts: []amocrm.EntityRef{{ID: c2, IsMain: true}}}}})
		require.NoError(t, err)
		e.ingest(t,
			rec(t, protocol.KindPatient, "2", protocol.IdentPatient{Surname: "Сидоров", Name: "Иван", MobilePhone: "+79005550000"}),
			rec(t, protocol.KindReception, "20", protocol.IdentReception{PatientID: "2", PlanStart: local(tomorrow)}))
		res := e.process(t)
		require.Equal(t, 1, res.Adopted)
		require.Zero(t, res.Continued)
		require.Equal(t, 1, res.LeadsCreated)
	})
}

func TestManualMoveIsUndoneAndLogged(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	tomorrow := time.Now().Truncate(time.Hour).Add(24 * time.Hour)
	e.ingest(t,
		rec(t, protocol.KindPatient, "1", protocol.IdentPatient{Surname: "Петров", Name: "Пётр"}),
		rec(t, protocol.KindReception, "10", protocol.IdentReception{PatientID: "1", PlanStart: local(tomorrow)}))
	e.start(t, "")
	e.process(t)
	lead := e.leads(t)["10"][0]
	pm := e.mv.Mapping.Pipelines[setup.PipelinePrimary]
	_, err := e.api.UpdateLeads(ctx, []amocrm.Lead{{ID: lead.ID, PipelineID: pm.PipelineID, StatusID: pm.Stages[setup.StateCompleted]}})
	require.NoError(t, err)
	e.ingest(t, rec(t, protocol.KindReception, "10", protocol.IdentReception{PatientID: "1", PlanStart: local(tomorrow), PatientAppeared: local(tomorrow)}))
	e.process(t)
	e.requireStage(t, e.leads(t)["10"][0], setup.PipelinePrimary, setup.StateArrived)
	require.Len(t, e.events(t, fmt.Sprintf("Сделка №%d была перемещена вручную", lead.ID)), 1)

	t.Run("MoveIsLogged", func(t *testing.T) {
		e.ingest(t,
			rec(t, protocol.KindReception, "10", protocol.IdentReception{PatientID: "1", PlanStart: local(tomorrow), ReceptionCanceled: local(tomorrow), CancelReasonID: mirror.DefaultMovedReasonID}),
			rec(t, protocol.KindReception, "11", protocol.IdentReception{PatientID: "1", PlanStart: local(tomorrow.Add(48 * time.Hour)), TransferFromID: "10"}))
		e.process(t)
		require.Equal(t, lead.ID, e.leads(t)["11"][0].ID)
		want := fmt.Sprintf("Запись перенесена: %s → %s", tomorrow.In(moscow).Format("02.01.2006 15:04"), tomorrow.Add(48*time.Hour).In(moscow).Format("02.01.2006 15:04"))
		require.Len(t, e.events(t, want), 1)
	})
}

func TestGraceTimerMarksNoShow(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	// Ended an hour ago: the 24-hour grace runs out in 23 hours.
	start := time.Now().Truncate(time.Minute).Add(-2 * time.Hour)
	e.ingest(t,
		rec(t, protocol.KindPatient, "1", protocol.IdentPatient{Surname: "Петров", Name: "Пётр"}),
		rec(t, protocol.KindReception, "10", protocol.IdentReception{PatientID: "1", PlanStart: local(start), PlanEnd: local(start.Add(time.Hour))}))
	e.start(t, "")
	e.process(t)
	e.requireStage(t, e.leads(t)["10"][0], setup.PipelinePrimary, setup.StatePlanned)
	due, err := e.db.DueReevaluationAccounts(ctx, time.Now())
	require.NoError(t, err)
	require.NotContains(t, due, e.acc.ID)

	e.offset.Store(int64(24 * time.Hour))
	due, err = e.db.DueReevaluationAccounts(ctx, e.now())
	require.NoError(t, err)
	require.Contains(t, due, e.acc.ID, "the sweep wakes the account")
	res := e.process(t)
	require.Equal(t, 1, res.Reevaluated)
	require.Equal(t, 1, res.LeadsUpdated)
	e.requireStage(t, e.leads(t)["10"][0], setup.PipelinePrimary, setup.StateNoShow)
	due, err = e.db.DueReevaluationAccounts(ctx, e.now())
	require.NoError(t, err)
	require.NotContains(t, due, e.acc.ID, "a no-show has no timer")
	before := e.requests()
	require.Zero(t, e.process(t).Reevaluated)
	require.Equal(t, before, e.requests())
}

func TestResponsibleByDoctorName(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tomorrow := time.Now().Truncate(time.Hour).Add(24 * time.Hour)
	user, err := e.sb.AddUser(e.amoID, sandbox.UserOptions{Name: "Иван Иванов", Email: "ivanov@clinic.test", IsActive: true})
	require.NoError(t, err)
	e.ingest(t,
		rec(t, protocol.KindDoctor, "1", protocol.IdentDoctor{Surname: "Иванов", Name: "Иван", Patronymic: "Иванович"}),
		rec(t, protocol.KindDoctor, "2", protocol.IdentDoctor{Surname: "Сергеев", Name: "Пётр"}),
		rec(t, protocol.KindPatient, "1", protocol.IdentPatient{Surname: "Петров", Name: "Пётр"}),
		rec(t, protocol.KindReception, "10", protocol.IdentReception{PatientID: "1", StaffID: "1", PlanStart: local(tomorrow)}),
		rec(t, protocol.KindReception, "11", protocol.IdentReception{PatientID: "1", StaffID: "2", PlanStart: local(tomorrow.Add(time.Hour))}))
	e.start(t, "")
	e.process(t)
	leads := e.leads(t)
	require.Equal(t, user.ID, leads["10"][0].ResponsibleUserID, "the doctor's amoCRM user")
	require.NotEqual(t, user.ID, leads["11"][0].ResponsibleUserID, "a doctor matching nobody keeps amoCRM's default")
}

func TestDeletedReceptionCancelsTheLead(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	tomorrow := time.Now().Truncate(time.Hour).Add(24 * time.Hour)
	e.ingest(t,
		rec(t, protocol.KindPatient, "1", protocol.IdentPatient{Surname: "Петров", Name: "Пётр"}),
		rec(t, protocol.KindReception, "10", protocol.IdentReception{PatientID: "1", PlanStart: local(tomorrow)}),
		rec(t, protocol.KindReception, "11", protocol.IdentReception{PatientID: "1", PlanStart: local(tomorrow.Add(time.Hour))}))
	e.start(t, "")
	e.process(t)
	leads := e.leads(t)
	// 11 sits in an exception stage: it is left alone.
	_, err := e.api.UpdateLeads(ctx, []amocrm.Lead{{ID: leads["11"][0].ID, PipelineID: leads["11"][0].PipelineID, StatusID: amocrm.StatusWon}})
	require.NoError(t, err)
	e.ingest(t, protocol.Record{Kind: protocol.KindReception, SourceID: "10", Deleted: true},
		protocol.Record{Kind: protocol.KindReception, SourceID: "11", Deleted: true})
	e.process(t)
	after := e.leads(t)
	e.requireStage(t, after["10"][0], setup.PipelinePrimary, setup.StateCancelled)
	require.Equal(t, amocrm.StatusWon, after["11"][0].StatusID)
	require.Len(t, e.events(t, "Запись 10 удалена в IDENT"), 1)
	links, err := e.db.EntityLinks(ctx, e.dbID, store.LinkAppointment, []string{"10", "11"})
	require.NoError(t, err)
	require.Len(t, links, 2, "the links are kept")
	before := e.requests()
	e.process(t)
	require.Equal(t, before, e.requests())
}

// blockingCRM is amoCRM blocking the account on writes.
type blockingCRM struct{ *amocrm.AccountAPI }

func (blockingCRM) CreateContacts(context.Context, []amocrm.Contact) ([]amocrm.Saved, error) {
	return nil, &amocrm.Error{Kind: amocrm.ErrBlocked, Status: 403}
}

func TestBlockPausesTheAccount(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	eng, err := engine.New(engine.Config{Store: e.db, Rules: mirror.DefaultRules(), Now: e.now, Log: e.log,
		CRM: func(context.Context, int64) (engine.CRM, error) { return blockingCRM{e.api}, nil }})
	require.NoError(t, err)
	e.ingest(t, rec(t, protocol.KindPatient, "1", protocol.IdentPatient{Surname: "Петров", Name: "Пётр"}),
		rec(t, protocol.KindReception, "10", protocol.IdentReception{PatientID: "1", PlanStart: local(time.Now().Add(24 * time.Hour))}))
	e.start(t, "")
	_, err = eng.Process(ctx, e.acc.ID)
	require.ErrorIs(t, err, amocrm.ErrBlocked)
	s, err := e.db.SyncSettings(ctx, e.acc.ID)
	require.NoError(t, err)
	require.Equal(t, "paused", s.SyncState)
	require.Len(t, e.events(t, "синхронизация приостановлена"), 1)
	res, err := eng.Process(ctx, e.acc.ID)
	require.NoError(t, err)
	require.Equal(t, engine.HoldPaused, res.Held)
	q, err := e.db.SyncQueue(ctx, e.acc.ID)
	require.NoError(t, err)
	require.Equal(t, int64(2), q.Pending, "records stay queued")
	// A start resumes.
	e.start(t, "")
	e.process(t)
	require.Len(t, e.leads(t)["10"], 1)
}

func TestRevokedStopsCleanly(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	e.ingest(t, rec(t, protocol.KindPatient, "1", protocol.IdentPatient{Surname: "Петров", Name: "Пётр"}),
		rec(t, protocol.KindReception, "10", protocol.IdentReception{PatientID: "1", PlanStart: local(time.Now().Add(24 * time.Hour))}))
	e.start(t, "")
	_, err := e.sb.Uninstall(ctx, e.amoID)
	require.NoError(t, err)
	_, err = e.eng.Process(ctx, e.acc.ID)
	require.Error(t, err)
	require.True(t, errors.Is(err, amocrm.ErrRevoked) || errors.Is(err, amocrm.ErrUnauthorized), "got %v", err)
	res, err := e.eng.Process(ctx, e.acc.ID)
	require.NoError(t, err)
	require.Equal(t, engine.HoldUninstalled, res.Held, "the engine stops: the account is uninstalled")
}

func TestDriftHolds(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	checks := 0
	eng, err := engine.New(engine.Config{Store: e.db, Rules: mirror.DefaultRules(), Now: e.now, Log: e.log,
		CRM: func(context.Context, int64) (engine.CRM, error) { return e.api, nil },
		CheckDrift: func(ctx context.Context, accountID int64) ([]setup.Problem, error) {
			checks++
			return e.runner.CheckDrift(ctx, accountID)
		}})
	require.NoError(t, err)
	e.ingest(t, rec(t, protocol.KindPatient, "1", protocol.IdentPatient{Surname: "Петров", Name: "Пётр"}),
		rec(t, protocol.KindReception, "10", protocol.IdentReception{PatientID: "1", PlanStart: local(time.Now().Add(24 * time.Hour))}))
	e.start(t, "")
	res, err := eng.Process(ctx, e.acc.ID)
	require.NoError(t, err)
	require.Equal(t, engine.HoldNone, res.Held)
	require.Equal(t, 1, checks, "checked before the first write of the start")
	e.ingest(t, rec(t, protocol.KindReception, "10", protocol.IdentReception{PatientID: "1", PlanStart: local(time.Now().Add(24 * time.Hour)), PatientAppeared: local(time.Now())}))
	_, err = eng.Process(ctx, e.acc.ID)
	require.NoError(t, err)
	require.Equal(t, 1, checks, "not again within the start")

	// The mapped doctor field points at a field amoCRM no longer has.
	_, err = e.db.SQL().Exec(`UPDATE mapping_versions SET mapping = jsonb_set(mapping, '{lead,appointment_status,field_id}', '999999') WHERE account_id = $1`, e.acc.ID)
	require.NoError(t, err)
	e.ingest(t, rec(t, protocol.KindReception, "10", protocol.IdentReception{PatientID: "1", PlanStart: local(time.Now().Add(24 * time.Hour)), PatientAppeared: local(time.Now()), ReceptionEnded: local(time.Now())}))
	res, err = eng.Process(ctx, e.acc.ID)
	require.NoError(t, err)
	require.Equal(t, engine.HoldDrift, res.Held)
	require.Zero(t, res.Parked, "a settings problem parks nothing")
	s, err := e.db.SyncSettings(ctx, e.acc.ID)
	require.NoError(t, err)
	require.Equal(t, string(setup.StatusDrift), s.SetupState)
	q, err := e.db.SyncQueue(ctx, e.acc.ID)
	require.NoError(t, err)
	require.Equal(t, store.SyncQueue{Pending: 1}, q, "held: the change waits")
}

func TestResendParked(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	e.ingest(t, rec(t, protocol.KindPatient, "1", protocol.IdentPatient{Surname: "Петров", Name: "Пётр"}))
	e.start(t, "")
	e.process(t)
	require.NoError(t, e.db.CommitSync(ctx, store.SyncCommit{AccountID: e.acc.ID, DatabaseID: e.dbID, Now: time.Now(),
		Parked: []store.Park{{Kind: "patient", SourceID: "1", Reason: "amoCRM отклонил"}}}))
	var parkedID int64
	require.NoError(t, e.db.SQL().QueryRow(`SELECT id FROM sync_parked WHERE database_id = $1`, e.dbID).Scan(&parkedID))
	control := engine.Control{Store: e.db, Now: time.Now, Wake: func(accountID int64, key string) (store.OutboxMessage, error) {
		return store.OutboxMessage{TaskID: "sync:account:test:" + key, TaskType: "sync:account", Payload: []byte(`{}`), Queue: "default", TimeoutSeconds: 60}, nil
	}}
	p, err := control.Resend(ctx, e.acc, parkedID, "test")
	require.NoError(t, err)
	require.Equal(t, "1", p.SourceID)
	q, err := e.db.SyncQueue(ctx, e.acc.ID)
	require.NoError(t, err)
	require.Equal(t, store.SyncQueue{Pending: 1}, q, "unparked and queued again")
	_, err = control.Resend(ctx, e.acc, parkedID, "test")
	require.Error(t, err, "a resend happens once")
	e.process(t)
	q, err = e.db.SyncQueue(ctx, e.acc.ID)
	require.NoError(t, err)
	require.Equal(t, store.SyncQueue{}, q)
}
