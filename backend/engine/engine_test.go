package engine_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/svyazka/svyazka/amocrm"
	"github.com/svyazka/svyazka/amocrm/sandbox"
	"github.com/svyazka/svyazka/backend/amosetup"
	"github.com/svyazka/svyazka/backend/engine"
	"github.com/svyazka/svyazka/backend/eventlog"
	"github.com/svyazka/svyazka/backend/ingest"
	"github.com/svyazka/svyazka/backend/install"
	"github.com/svyazka/svyazka/backend/mirror"
	"github.com/svyazka/svyazka/backend/redistest"
	"github.com/svyazka/svyazka/backend/sealer"
	"github.com/svyazka/svyazka/backend/setup"
	"github.com/svyazka/svyazka/backend/store"
	"github.com/svyazka/svyazka/backend/store/storetest"
	"github.com/svyazka/svyazka/connector/protocol"
	"github.com/svyazka/svyazka/jobs"
)

// env is one installed, autosetup sandbox account with a clinic database
// and a real client, store and engine.
type env struct {
	sb     *sandbox.Sandbox
	db     *store.DB
	api    *amocrm.AccountAPI
	acc    store.Account
	dbID   int64
	mv     setup.MappingVersion
	eng    *engine.Engine
	failAt atomic.Int64 // >0: the next commit fails (a crash after amoCRM answered)
	// fail500 makes the next POST to the API answer 500 after it was applied.
	fail500 atomic.Bool
	// keySearches counts list requests filtered by a custom field (the
	// search by our key field before a create).
	keySearches atomic.Int64
	marks       jobs.RedisWriteMarks
	version     int64
	// offset moves the engine's clock (the grace timer).
	offset atomic.Int64
	amoID  int64
	runner *setup.Runner
	log    *slog.Logger
}

// now is the engine's clock.
func (e *env) now() time.Time { return time.Now().Add(time.Duration(e.offset.Load())) }

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	sb, err := sandbox.New(sandbox.Config{ClientID: "client-id", ClientSecret: "client-secret",
		RedirectURI: "https://svyazka.test/oauth/amocrm/callback", HTTPClient: &http.Client{Timeout: time.Second}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = sb.Close() })
	e := &env{sb: sb, db: storetest.New(t), version: 1}
	h := sb.Handler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && strings.Contains(r.URL.Query().Encode(), url.QueryEscape("filter[custom_fields_values]")) {
			e.keySearches.Add(1)
		}
		if r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, "/api/v4/") && e.fail500.CompareAndSwap(true, false) {
			h.ServeHTTP(httptest.NewRecorder(), r) // applied, then the answer is lost
			http.Error(w, "upstream failed", http.StatusInternalServerError)
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)

	seal, err := sealer.New(make([]byte, 32))
	require.NoError(t, err)
	tokens, err := store.NewAmoTokens(e.db, seal)
	require.NoError(t, err)
	ropts := redistest.New(t)
	queue := asynq.NewClient(asynq.RedisClientOpt{Addr: ropts.Addr, DB: ropts.DB})
	t.Cleanup(func() { _ = queue.Close() })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc := &install.Service{Store: e.db, Sealer: seal, TrialDays: 14, TimeZone: "Europe/Moscow", Now: time.Now,
		Log: log, Relay: &jobs.OutboxRelay{Store: e.db, Client: queue, Log: log}, IsRevoked: install.IsRevoked}
	client, err := amocrm.New(amocrm.Config{ClientID: "client-id", ClientSecret: "client-secret",
		RedirectURI: "https://svyazka.test/oauth/amocrm/callback", BaseURL: srv.URL, Redis: redistest.Client(t),
		Tokens: install.RevokingTokens{AmoTokens: tokens, Service: svc}, RetryBaseDelay: 5 * time.Millisecond,
		RetryMaxDelay: 20 * time.Millisecond, MaxRetryAfter: 50 * time.Millisecond, MaxRetries: 2})
	require.NoError(t, err)
	svc.Exchanger = install.AmoExchanger{Client: client, Tokens: tokens}

	info, err := sb.CreateAccount(sandbox.AccountOptions{})
	require.NoError(t, err)
	require.NoError(t, svc.BeginInstall(ctx, info.Code, info.Subdomain+".amocrm.ru", true))
	var payload []byte
	require.NoError(t, e.db.SQL().QueryRow(`SELECT payload FROM outbox WHERE task_type = $1 ORDER BY id DESC LIMIT 1`, jobs.TypeInstallComplete).Scan(&payload))
	require.NoError(t, svc.ProcessTask(ctx, asynq.NewTask(jobs.TypeInstallComplete, payload)))
	e.amoID = info.AccountID
	e.acc, err = e.db.AccountByAmoID(ctx, info.AccountID)
	require.NoError(t, err)
	ref := amocrm.AccountRef{ID: e.acc.ID, Subdomain: e.acc.Subdomain, Domain: e.acc.BaseDomain}
	e.api = client.Account(ref)

	// Autosetup, as the setup task would run it.
	accounts := amosetup.Accounts{Client: client, Ref: func(context.Context, int64) (amocrm.AccountRef, error) { return ref, nil }}
	runner := &setup.Runner{Store: jobs.SetupStore{DB: e.db}, CRM: accounts.CRM, Transient: amosetup.Transient, Now: time.Now}
	run, _, err := runner.Start(ctx, e.acc.ID, nil, nil, "test")
	require.NoError(t, err)
	for range 40 {
		if err = runner.Run(ctx, run.ID); err == nil || !amosetup.Transient(err) {
			break
		}
	}
	require.NoError(t, err)
	mv, ok, err := e.db.CurrentMapping(ctx, e.acc.ID)
	require.NoError(t, err)
	require.True(t, ok)
	e.mv = mv
	e.runner, e.log = runner, log

	d, err := e.db.IssueConnectorToken(ctx, store.TokenRequest{AccountID: e.acc.ID, TokenHash: []byte(uuid.NewString()), Now: time.Now(),
		MaxDatabases: 3, Name: "Клиника", TimeZone: "Europe/Moscow"})
	require.NoError(t, err)
	e.dbID = d.ID

	e.marks = jobs.RedisWriteMarks{Client: redistest.Client(t), Prefix: "test:wrote:" + uuid.NewString() + ":"}
	e.eng, err = engine.New(engine.Config{Store: e.db, Rules: mirror.DefaultRules(), Now: e.now, Log: log, WriteMarks: e.marks,
		CRM: func(context.Context, int64) (engine.CRM, error) { return e.api, nil },
		BeforeCommit: func(context.Context) error {
			if e.failAt.CompareAndSwap(1, 0) {
				return errors.New("crash before commit")
			}
			return nil
		}})
	require.NoError(t, err)
	return e
}

func (e *env) start(t *testing.T, since string) {
	t.Helper()
	task, err := jobs.NewSyncAccountTask(jobs.SyncAccountPayload{AccountID: e.acc.ID}, "start:test")
	require.NoError(t, err)
	require.NoError(t, e.db.StartSync(context.Background(), store.StartSyncInput{AccountID: e.acc.ID, ImportSince: since, Now: time.Now(),
		Event: eventlog.Event{AccountID: e.acc.ID, Type: eventlog.TypeSyncStarted, Message: "test"}, Task: task.Outbox()}))
}

// ingest stores records as the connector API would (checked, canonical).
func (e *env) ingest(t *testing.T, recs ...protocol.Record) {
	t.Helper()
	for i := range recs {
		e.version++
		recs[i].Version = e.version
	}
	checked, err := ingest.Check(protocol.Batch{BatchID: uuid.NewString(), Records: recs})
	require.NoError(t, err)
	require.Empty(t, checked.Errors)
	in := store.IngestBatch{DatabaseID: e.dbID, BatchID: checked.BatchID, Total: checked.Total, Now: time.Now().UTC()}
	for _, r := range checked.Records {
		in.Records = append(in.Records, store.IngestRecord{Kind: string(r.Kind), SourceID: r.SourceID, Version: r.Version, Deleted: r.Deleted, Data: r.Data, Hash: r.Hash})
	}
	_, err = e.db.Ingest(context.Background(), in)
	require.NoError(t, err)
}

func rec(t *testing.T, kind protocol.Kind, id string, data any) protocol.Record {
	t.Helper()
	raw, err := json.Marshal(data)
	require.NoError(t, err)
	return protocol.Record{Kind: kind, SourceID: id, Data: raw}
}

func (e *env) process(t *testing.T) engine.Result {
	t.Helper()
	res, err := e.eng.Process(context.Background(), e.acc.ID)
	require.NoError(t, err)
	require.Equal(t, engine.HoldNone, res.Held)
	return res
}

func (e *env) requests() int {
	n := 0
	for _, r := range e.sb.Stats().Requests {
		n += r.Count
	}
	return n
}

// leads returns amoCRM's leads by the value of «ID записи IDENT».
func (e *env) leads(t *testing.T) map[string][]amocrm.Lead {
	t.Helper()
	all, err := e.api.AllLeads(context.Background(), amocrm.ListParams{With: []string{"contacts"}})
	require.NoError(t, err)
	key := e.mv.Mapping.Lead[setup.DatumReceptionID].FieldID
	out := map[string][]amocrm.Lead{}
	for _, l := range all {
		for _, fv := range l.CustomFieldsValues {
			if fv.FieldID == key {
				out[fmt.Sprint(fv.Values[0].Value)] = append(out[fmt.Sprint(fv.Values[0].Value)], l)
			}
		}
	}
	return out
}

// contacts returns amoCRM's contacts by «ID пациента IDENT».
func (e *env) contacts(t *testing.T) map[string][]amocrm.Contact {
	t.Helper()
	all, err := e.api.AllContacts(context.Background(), amocrm.ListParams{})
	require.NoError(t, err)
	key := e.mv.Mapping.Contact[setup.DatumPatientID].FieldID
	out := map[string][]amocrm.Contact{}
	for _, c := range all {
		for _, fv := range c.CustomFieldsValues {
			if fv.FieldID == key {
				out[fmt.Sprint(fv.Values[0].Value)] = append(out[fmt.Sprint(fv.Values[0].Value)], c)
			}
		}
	}
	return out
}

func (e *env) requireStage(t *testing.T, l amocrm.Lead, p setup.PipelineKey, s setup.State) {
	t.Helper()
	pm := e.mv.Mapping.Pipelines[p]
	require.Equal(t, pm.PipelineID, l.PipelineID, "pipeline of lead %d", l.ID)
	require.Equal(t, pm.Stages[s], l.StatusID, "stage of lead %d: want %s", l.ID, s)
}

func (e *env) integrity(t *testing.T) sandbox.AccountIntegrity {
	t.Helper()
	info, ok := e.sb.FindAccount(e.acc.Subdomain)
	require.True(t, ok)
	for _, in := range e.sb.Stats().Integrity {
		if in.AccountID == info.AccountID {
			return in
		}
	}
	t.Fatal("no integrity for the account")
	return sandbox.AccountIntegrity{}
}

func local(d time.Time) string { return d.In(moscow).Format(protocol.LocalTimeLayout) }

var moscow, _ = time.LoadLocation("Europe/Moscow")

func TestSyncEndToEnd(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	now := time.Now().Truncate(time.Hour)
	tomorrow, nextWeek, lastMonth, longAgo := now.Add(24*time.Hour), now.Add(7*24*time.Hour), now.Add(-30*24*time.Hour), now.Add(-700*24*time.Hour)
	since := now.Add(-60 * 24 * time.Hour).In(moscow).Format(protocol.DateLayout)

	e.ingest(t,
		rec(t, protocol.KindDoctor, "1", protocol.IdentDoctor{Surname: "Иванов", Name: "Иван", Patronymic: "Иванович"}),
		rec(t, protocol.KindBranch, "1", protocol.IdentBranch{Name: "Центр"}),
		// A new patient: no completed visit yet.
		rec(t, protocol.KindPatient, "1", protocol.IdentPatient{Surname: "Петров", Name: "Пётр", MobilePhone: "+7 900 111-22-33"}),
		rec(t, protocol.KindReception, "10", protocol.IdentReception{PatientID: "1", StaffID: "1", BranchID: "1", PlanStart: local(tomorrow), PlanEnd: local(tomorrow.Add(time.Hour))}),
		// A returning patient: first visit last month, a repeat next week, one long before the import.
		rec(t, protocol.KindPatient, "2", protocol.IdentPatient{Surname: "Сидорова", Name: "Анна", MobilePhone: "89001112234",
			FirstVisitReceptionID: "20", FirstVisitPlanStart: local(lastMonth), CompletedReceptions: 1}),
		rec(t, protocol.KindReception, "19", protocol.IdentReception{PatientID: "2", PlanStart: local(longAgo), ReceptionCanceled: local(longAgo), CancelReasonID: "1"}),
		rec(t, protocol.KindReception, "20", protocol.IdentReception{PatientID: "2", StaffID: "1", PlanStart: local(lastMonth),
			ReceptionEnded: local(lastMonth.Add(time.Hour)), AmountKopecks: ptr(int64(350050))}),
		rec(t, protocol.KindReception, "21", protocol.IdentReception{PatientID: "2", PlanStart: local(nextWeek)}),
		// Out of scope: only a reception before the import date.
		rec(t, protocol.KindPatient, "3", protocol.IdentPatient{Surname: "Архивов", Name: "Олег"}),
		rec(t, protocol.KindReception, "30", protocol.IdentReception{PatientID: "3", PlanStart: local(longAgo)}),
	)

	res, err := e.eng.Process(ctx, e.acc.ID)
	require.NoError(t, err)
	require.Equal(t, engine.HoldStopped, res.Held, "nothing is written before the start")
	require.Empty(t, e.contacts(t))

	e.start(t, since)
	res = e.process(t)
	require.Equal(t, 2, res.ContactsCreated)
	require.Equal(t, 3, res.LeadsCreated)

	contacts := e.contacts(t)
	require.Len(t, contacts, 2)
	require.Len(t, contacts["1"], 1)
	require.Len(t, contacts["2"], 1)
	leads := e.leads(t)
	require.Len(t, leads, 3)
	for _, id := range []string{"10", "20", "21"} {
		require.Len(t, leads[id], 1, "one lead for reception %s", id)
		require.NotNil(t, leads[id][0].Embedded)
	}
	e.requireStage(t, leads["10"][0], setup.PipelinePrimary, setup.StatePlanned)
	e.requireStage(t, leads["20"][0], setup.PipelinePrimary, setup.StateCompleted)
	e.requireStage(t, leads["21"][0], setup.PipelineRepeat, setup.StatePlanned)
	require.Equal(t, int64(3501), leads["20"][0].Price)
	require.Equal(t, contacts["1"][0].ID, leads["10"][0].Embedded.Contacts[0].ID, "the lead is linked to its patient's contact")
	require.Equal(t, contacts["2"][0].ID, leads["21"][0].Embedded.Contacts[0].ID)

	t.Run("NothingChangedNoRequests", func(t *testing.T) {
		before := e.requests()
		res := e.process(t)
		require.Zero(t, res.Records)
		require.Equal(t, before, e.requests())
		// A resend of the same content changes nothing either.
		e.ingest(t, rec(t, protocol.KindPatient, "1", protocol.IdentPatient{Surname: "Петров", Name: "Пётр", MobilePhone: "+7 900 111-22-33"}))
		e.process(t)
		require.Equal(t, before, e.requests())
	})

	t.Run("ArrivalMovesTheLead", func(t *testing.T) {
		e.ingest(t, rec(t, protocol.KindReception, "10", protocol.IdentReception{PatientID: "1", StaffID: "1", BranchID: "1",
			PlanStart: local(tomorrow), PlanEnd: local(tomorrow.Add(time.Hour)), PatientAppeared: local(tomorrow)}))
		res := e.process(t)
		require.Equal(t, 1, res.LeadsUpdated)
		require.Zero(t, res.ContactsUpdated, "the contact did not change")
		e.requireStage(t, e.leads(t)["10"][0], setup.PipelinePrimary, setup.StateArrived)
	})

	t.Run("MoveContinuesTheLead", func(t *testing.T) {
		lead21 := e.leads(t)["21"][0]
		e.ingest(t,
			rec(t, protocol.KindReception, "21", protocol.IdentReception{PatientID: "2", PlanStart: local(nextWeek), ReceptionCanceled: local(now), CancelReasonID: mirror.DefaultMovedReasonID}),
			rec(t, protocol.KindReception, "22", protocol.IdentReception{PatientID: "2", PlanStart: local(nextWeek.Add(24 * time.Hour)), TransferFromID: "21"}),
		)
		res := e.process(t)
		require.Zero(t, res.LeadsCreated)
		leads := e.leads(t)
		require.Len(t, leads["22"], 1)
		require.Equal(t, lead21.ID, leads["22"][0].ID, "the chain keeps its lead")
		require.Empty(t, leads["21"])
		e.requireStage(t, leads["22"][0], setup.PipelineRepeat, setup.StatePlanned)

		e.ingest(t, rec(t, protocol.KindReception, "22", protocol.IdentReception{PatientID: "2", PlanStart: local(nextWeek.Add(24 * time.Hour)),
			TransferFromID: "21", ReceptionCanceled: local(now), CancelReasonID: "1"}))
		e.process(t)
		e.requireStage(t, e.leads(t)["22"][0], setup.PipelineRepeat, setup.StateCancelled)
	})

	t.Run("ExceptionStageHolds", func(t *testing.T) {
		lead := e.leads(t)["10"][0]
		_, err := e.api.UpdateLeads(ctx, []amocrm.Lead{{ID: lead.ID, StatusID: amocrm.StatusWon, PipelineID: lead.PipelineID}})
		require.NoError(t, err)
		e.ingest(t, rec(t, protocol.KindReception, "10", protocol.IdentReception{PatientID: "1", StaffID: "1", BranchID: "1",
			PlanStart: local(tomorrow), PlanEnd: local(tomorrow.Add(time.Hour)), PatientAppeared: local(tomorrow), ReceptionEnded: local(tomorrow.Add(time.Hour))}))
		res := e.process(t)
		require.Equal(t, 1, res.LeadsUpdated)
		got := e.leads(t)["10"][0]
		require.Equal(t, amocrm.StatusWon, got.StatusID, "a lead in an exception stage is never moved")
		status := e.mv.Mapping.Lead[setup.DatumAppointmentStatus]
		found := false
		for _, fv := range got.CustomFieldsValues {
			if fv.FieldID == status.FieldID {
				found = true
				require.Equal(t, status.Enums[string(setup.StateCompleted)], fv.Values[0].EnumID, "its fields are still updated")
			}
		}
		require.True(t, found)
	})

	t.Run("CrashBeforeCommitCreatesNoDuplicate", func(t *testing.T) {
		e.ingest(t,
			rec(t, protocol.KindPatient, "4", protocol.IdentPatient{Surname: "Новиков", Name: "Илья", MobilePhone: "+79005556677"}),
			rec(t, protocol.KindReception, "40", protocol.IdentReception{PatientID: "4", PlanStart: local(tomorrow)}),
		)
		e.failAt.Store(1)
		_, err := e.eng.Process(ctx, e.acc.ID)
		require.Error(t, err)
		require.Len(t, e.leads(t)["40"], 1, "amoCRM has the lead; we did not commit it")
		res := e.process(t)
		require.Zero(t, res.ContactsCreated)
		require.Zero(t, res.LeadsCreated)
		require.Len(t, e.contacts(t)["4"], 1)
		require.Len(t, e.leads(t)["40"], 1)

		// A write applied before a lost answer (500).
		e.ingest(t,
			rec(t, protocol.KindPatient, "5", protocol.IdentPatient{Surname: "Смирнов", Name: "Ян"}),
			rec(t, protocol.KindReception, "50", protocol.IdentReception{PatientID: "5", PlanStart: local(tomorrow)}),
		)
		e.fail500.Store(true)
		_, err = e.eng.Process(ctx, e.acc.ID)
		require.ErrorIs(t, err, amocrm.ErrTransient)
		e.process(t)
		require.Len(t, e.contacts(t)["5"], 1)
		require.Len(t, e.leads(t)["50"], 1)
		in := e.integrity(t)
		require.Zero(t, in.ContactsSharingExternalID)
		require.Zero(t, in.LeadsWithoutContact)
	})

	q, err := e.db.SyncQueue(ctx, e.acc.ID)
	require.NoError(t, err)
	require.Equal(t, store.SyncQueue{}, q)
}

func ptr[T any](v T) *T { return &v }
