package amosetup_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/svyazka/svyazka/amocrm"
	"github.com/svyazka/svyazka/amocrm/sandbox"
	"github.com/svyazka/svyazka/backend/amosetup"
	"github.com/svyazka/svyazka/backend/eventlog"
	"github.com/svyazka/svyazka/backend/install"
	"github.com/svyazka/svyazka/backend/redistest"
	"github.com/svyazka/svyazka/backend/sealer"
	"github.com/svyazka/svyazka/backend/setup"
	"github.com/svyazka/svyazka/backend/store"
	"github.com/svyazka/svyazka/backend/store/storetest"
	"github.com/svyazka/svyazka/jobs"
)

// env is one installed sandbox account with a real client, store and runner.
type env struct {
	sb        *sandbox.Sandbox
	srv       *httptest.Server
	db        *store.DB
	client    *amocrm.Client
	runner    *setup.Runner
	api       *amocrm.AccountAPI
	acc       store.Account
	amoID     int64
	adminUser int64
	// fail500 > 0 makes every fail500-th write answer 500 after it was applied.
	fail500 atomic.Int64
	writes  atomic.Int64
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	sb, err := sandbox.New(sandbox.Config{ClientID: "client-id", ClientSecret: "client-secret",
		RedirectURI: "https://svyazka.test/oauth/amocrm/callback", HTTPClient: &http.Client{Timeout: time.Second}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = sb.Close() })
	e := &env{sb: sb, db: storetest.New(t)}
	h := sb.Handler()
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		every := e.fail500.Load()
		if r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, "/api/v4/") && every > 0 && e.writes.Add(1)%every == 0 {
			// The write is applied, then the gateway loses the answer.
			h.ServeHTTP(httptest.NewRecorder(), r)
			http.Error(w, "upstream failed", http.StatusInternalServerError)
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(e.srv.Close)

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
	e.client, err = amocrm.New(amocrm.Config{ClientID: "client-id", ClientSecret: "client-secret",
		RedirectURI: "https://svyazka.test/oauth/amocrm/callback", BaseURL: e.srv.URL, Redis: redistest.Client(t),
		Tokens: install.RevokingTokens{AmoTokens: tokens, Service: svc}, RetryBaseDelay: 5 * time.Millisecond,
		RetryMaxDelay: 20 * time.Millisecond, MaxRetryAfter: 50 * time.Millisecond, MaxRetries: 2})
	require.NoError(t, err)
	svc.Exchanger = install.AmoExchanger{Client: e.client, Tokens: tokens}

	info, err := sb.CreateAccount(sandbox.AccountOptions{})
	require.NoError(t, err)
	e.amoID, e.adminUser = info.AccountID, info.AdminUserID
	require.NoError(t, svc.BeginInstall(ctx, info.Code, info.Subdomain+".amocrm.ru", true))
	var payload []byte
	require.NoError(t, e.db.SQL().QueryRow(`SELECT payload FROM outbox WHERE task_type = $1 ORDER BY id DESC LIMIT 1`, jobs.TypeInstallComplete).Scan(&payload))
	require.NoError(t, svc.ProcessTask(ctx, asynq.NewTask(jobs.TypeInstallComplete, payload)))
	e.acc, err = e.db.AccountByAmoID(ctx, info.AccountID)
	require.NoError(t, err)
	e.api = e.client.Account(amocrm.AccountRef{ID: e.acc.ID, Subdomain: e.acc.Subdomain, Domain: e.acc.BaseDomain})
	accounts := amosetup.Accounts{Client: e.client, Ref: func(ctx context.Context, id int64) (amocrm.AccountRef, error) {
		acc, err := e.db.AccountByID(ctx, id)
		return amocrm.AccountRef{ID: acc.ID, Subdomain: acc.Subdomain, Domain: acc.BaseDomain}, err
	}}
	e.runner = &setup.Runner{Store: jobs.SetupStore{DB: e.db}, CRM: accounts.CRM, Transient: amosetup.Transient}
	return e
}

// autosetup starts a run and applies it as the task would, retrying
// transient errors like asynq does.
func (e *env) autosetup(t *testing.T, blocks ...setup.Block) setup.Run {
	t.Helper()
	ctx := context.Background()
	run, _, err := e.runner.Start(ctx, e.acc.ID, blocks, nil, "test")
	require.NoError(t, err)
	e.finish(t, run.ID)
	got, err := e.db.SetupRun(ctx, run.ID)
	require.NoError(t, err)
	return got
}

func (e *env) finish(t *testing.T, runID string) {
	t.Helper()
	var err error
	for range 40 {
		if err = e.runner.Run(context.Background(), runID); err == nil || errors.Is(err, setup.ErrRunFailed) {
			break
		}
		require.True(t, amosetup.Transient(err), "only transient errors are retried: %v", err)
	}
	require.NoError(t, err)
}

func (e *env) status(t *testing.T) setup.AccountState {
	t.Helper()
	st, err := e.db.SetupState(context.Background(), e.acc.ID)
	require.NoError(t, err)
	return st
}

// counts returns how many pipelines, contact fields and lead fields the
// sandbox holds, and fails on two of one kind under one name.
func (e *env) counts(t *testing.T) (pipelines, contact, lead int) {
	t.Helper()
	ctx := context.Background()
	e.sb.SetFaults(sandbox.Faults{})
	ps, err := e.api.Pipelines(ctx)
	require.NoError(t, err)
	seen := map[string]bool{}
	for _, p := range ps {
		require.False(t, seen[setup.Normalize(p.Name)], "pipeline %q twice", p.Name)
		seen[setup.Normalize(p.Name)] = true
		stages := map[string]bool{}
		for _, st := range p.Embedded.Statuses {
			require.False(t, stages[setup.Normalize(st.Name)], "stage %q twice in %q", st.Name, p.Name)
			stages[setup.Normalize(st.Name)] = true
		}
	}
	for _, entity := range []string{amocrm.EntityContacts, amocrm.EntityLeads} {
		fs, err := e.api.CustomFields(ctx, entity)
		require.NoError(t, err)
		names := map[string]bool{}
		for _, f := range fs {
			require.False(t, names[setup.Normalize(f.Name)], "%s field %q twice", entity, f.Name)
			names[setup.Normalize(f.Name)] = true
		}
		if entity == amocrm.EntityContacts {
			contact = len(fs)
		} else {
			lead = len(fs)
		}
	}
	return len(ps), contact, lead
}

// raw calls the sandbox as the account's admin (for what our client never does).
func (e *env) raw(t *testing.T, method, path string) int {
	t.Helper()
	token, err := e.sb.AccessTokenForUser(e.amoID, e.adminUser)
	require.NoError(t, err)
	req, err := http.NewRequest(method, e.srv.URL+path, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	_ = resp.Body.Close()
	return resp.StatusCode
}

func (e *env) events(t *testing.T, severity eventlog.Severity) []eventlog.Event {
	t.Helper()
	evs, _, err := e.db.ListEvents(context.Background(), eventlog.Filter{AccountID: e.acc.ID, Types: []eventlog.Type{eventlog.TypeSetup},
		Severities: []eventlog.Severity{severity}})
	require.NoError(t, err)
	return evs
}

func TestAutosetupEmptyAccount(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	p0, c0, l0 := e.counts(t)

	run := e.autosetup(t)
	require.Equal(t, setup.RunSucceeded, run.State)
	require.Equal(t, run.Progress.Total, run.Progress.Done)
	require.Len(t, run.Created, 2+10+4+5, "two pipelines with five stages each, four contact and five lead fields")
	require.Equal(t, setup.StatusConfigured, e.status(t).Status)
	p, c, l := e.counts(t)
	require.Equal(t, [3]int{p0 + 2, c0 + 4, l0 + 5}, [3]int{p, c, l})
	infos := e.events(t, eventlog.Info)
	require.Len(t, infos, 1)
	require.Contains(t, infos[0].Message, "Связка настроена")

	mv, ok, err := e.db.CurrentMapping(ctx, e.acc.ID)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, 1, mv.Version)
	require.Equal(t, "test", mv.CreatedBy)
	snap, err := amosetup.CRM{API: e.api}.Snapshot(ctx)
	require.NoError(t, err)
	require.Empty(t, setup.Validate(mv.Mapping, snap))
	require.Len(t, mv.Mapping.Lead[setup.DatumAppointmentStatus].Enums, 5)

	t.Run("SecondRunCreatesNothing", func(t *testing.T) {
		again := e.autosetup(t)
		require.Equal(t, setup.RunSucceeded, again.State)
		require.Empty(t, again.Created)
		require.Zero(t, again.Progress.Total)
		p2, c2, l2 := e.counts(t)
		require.Equal(t, [3]int{p, c, l}, [3]int{p2, c2, l2})
		mv2, _, err := e.db.CurrentMapping(ctx, e.acc.ID)
		require.NoError(t, err)
		require.Equal(t, 2, mv2.Version)
		require.Equal(t, mv.Mapping, mv2.Mapping)
	})

	t.Run("SyncRunningRefused", func(t *testing.T) {
		_, err := e.db.SQL().Exec(`UPDATE account_settings SET sync_state = 'running' WHERE account_id = $1`, e.acc.ID)
		require.NoError(t, err)
		t.Cleanup(func() {
			_, _ = e.db.SQL().Exec(`UPDATE account_settings SET sync_state = 'stopped' WHERE account_id = $1`, e.acc.ID)
		})
		_, _, err = e.runner.Start(ctx, e.acc.ID, nil, nil, "test")
		require.ErrorIs(t, err, setup.ErrSyncRunning)
		require.Contains(t, err.Error(), "Остановите синхронизацию, чтобы выполнить автонастройку")
	})
}

func TestAutosetupReusesSimilarItems(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	made, err := e.api.CreatePipelines(ctx, []amocrm.Pipeline{{Name: "Первичный прием", Sort: 50,
		Embedded: struct {
			Statuses []amocrm.Status `json:"statuses,omitempty"`
		}{Statuses: []amocrm.Status{{Name: "записан на прием", Sort: 20, Color: "#fffeb2"}}}}})
	require.NoError(t, err)
	fields, err := e.api.CreateCustomFields(ctx, amocrm.EntityLeads, []amocrm.CustomField{{Name: "дата и время приема", Type: amocrm.FieldDateTime}})
	require.NoError(t, err)
	var plannedID int64
	for _, st := range made[0].Embedded.Statuses {
		if st.Name == "записан на прием" {
			plannedID = st.ID
		}
	}
	p0, c0, l0 := e.counts(t)

	run := e.autosetup(t)
	require.Equal(t, setup.RunSucceeded, run.State)
	p, c, l := e.counts(t)
	require.Equal(t, [3]int{p0 + 1, c0 + 4, l0 + 4}, [3]int{p, c, l}, "only «Повторный приём» and the missing fields are new")
	mv, _, err := e.db.CurrentMapping(ctx, e.acc.ID)
	require.NoError(t, err)
	primary := mv.Mapping.Pipelines[setup.PipelinePrimary]
	require.Equal(t, made[0].ID, primary.PipelineID)
	require.Equal(t, plannedID, primary.Stages[setup.StatePlanned])
	require.Equal(t, fields[0].ID, mv.Mapping.Lead[setup.DatumAppointmentAt].FieldID)
	require.Equal(t, setup.FieldDateTime, mv.Mapping.Lead[setup.DatumAppointmentAt].Type)
	_, reusedPipeline := run.Created[setup.PipelineItem(setup.PipelinePrimary)]
	require.False(t, reusedPipeline)
	require.Contains(t, run.Created, setup.StageItem(setup.PipelinePrimary, setup.StateArrived), "the missing stages are added to the reused pipeline")
}

func TestAutosetupPipelineCap(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	var extra []amocrm.Pipeline
	for i := range 48 {
		extra = append(extra, amocrm.Pipeline{Name: "Филиал " + strconv.Itoa(i+1), Sort: 200 + i})
	}
	made, err := e.api.CreatePipelines(ctx, extra)
	require.NoError(t, err)
	p0, _, _ := e.counts(t)
	require.Equal(t, 49, p0)

	_, _, err = e.runner.Start(ctx, e.acc.ID, nil, nil, "test")
	var ie *setup.ItemError
	require.ErrorAs(t, err, &ie)
	require.ErrorIs(t, err, setup.ErrCapExceeded)
	require.Equal(t, setup.PipelineItem(setup.PipelineRepeat), ie.Item)
	require.Contains(t, ie.Message, "«Повторный приём»")
	require.Equal(t, setup.StatusNotConfigured, e.status(t).Status, "nothing started")

	require.Equal(t, http.StatusNoContent, e.raw(t, http.MethodDelete, "/api/v4/leads/pipelines/"+strconv.FormatInt(made[0].ID, 10)))
	run := e.autosetup(t)
	require.Equal(t, setup.RunSucceeded, run.State)
	p, _, _ := e.counts(t)
	require.Equal(t, 50, p)
	again := e.autosetup(t)
	require.Empty(t, again.Created)
	p2, _, _ := e.counts(t)
	require.Equal(t, 50, p2)
}

// cancelling wraps a CRM and cancels the run's context after n creations,
// as a killed worker would stop.
type cancelling struct {
	setup.CRM
	n      *atomic.Int64
	cancel context.CancelFunc
}

func (c cancelling) after() {
	if c.n.Add(-1) == 0 {
		c.cancel()
	}
}

func (c cancelling) CreatePipeline(ctx context.Context, name string, stages []string) (setup.Pipeline, error) {
	defer c.after()
	return c.CRM.CreatePipeline(ctx, name, stages)
}

func (c cancelling) CreateField(ctx context.Context, en setup.Entity, name string, t setup.FieldType, enums []string) (setup.Field, error) {
	defer c.after()
	return c.CRM.CreateField(ctx, en, name, t, enums)
}

func TestAutosetupResumes(t *testing.T) {
	t.Parallel()

	t.Run("KilledMidway", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		ctx := context.Background()
		p0, c0, l0 := e.counts(t)
		run, _, err := e.runner.Start(ctx, e.acc.ID, nil, nil, "test")
		require.NoError(t, err)
		killed, cancel := context.WithCancel(ctx)
		defer cancel()
		left := &atomic.Int64{}
		left.Store(4)
		crm := e.runner.CRM
		dying := *e.runner
		dying.CRM = func(ctx context.Context, id int64) (setup.CRM, error) {
			c, err := crm(ctx, id)
			return cancelling{CRM: c, n: left, cancel: cancel}, err
		}
		err = dying.Run(killed, run.ID)
		require.ErrorIs(t, err, context.Canceled)
		mid, err := e.db.SetupRun(ctx, run.ID)
		require.NoError(t, err)
		require.Equal(t, setup.RunRunning, mid.State)
		require.Positive(t, mid.Progress.Done)
		require.Less(t, mid.Progress.Done, mid.Progress.Total)
		require.Equal(t, setup.StatusRunning, e.status(t).Status)

		e.finish(t, run.ID)
		done, err := e.db.SetupRun(ctx, run.ID)
		require.NoError(t, err)
		require.Equal(t, setup.RunSucceeded, done.State)
		p, c, l := e.counts(t)
		require.Equal(t, [3]int{p0 + 2, c0 + 4, l0 + 5}, [3]int{p, c, l})
		require.Equal(t, setup.StatusConfigured, e.status(t).Status)
	})

	t.Run("AppliedWritesAnswered500", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		p0, c0, l0 := e.counts(t)
		e.fail500.Store(2)
		run := e.autosetup(t)
		e.fail500.Store(0)
		require.Positive(t, e.writes.Load(), "the lost answers happened")
		require.Equal(t, setup.RunSucceeded, run.State)
		p, c, l := e.counts(t)
		require.Equal(t, [3]int{p0 + 2, c0 + 4, l0 + 5}, [3]int{p, c, l}, "a lost answer never creates the item twice")
	})

	t.Run("Injected429And5xx", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		p0, c0, l0 := e.counts(t)
		e.sb.SetFaults(sandbox.Faults{Rate429: 0.15, Rate5xx: 0.25, Seed: 11})
		run := e.autosetup(t)
		e.sb.SetFaults(sandbox.Faults{})
		require.Equal(t, setup.RunSucceeded, run.State)
		p, c, l := e.counts(t)
		require.Equal(t, [3]int{p0 + 2, c0 + 4, l0 + 5}, [3]int{p, c, l})
	})
}

func TestDrift(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	require.Equal(t, setup.RunSucceeded, e.autosetup(t).State)
	mv, _, err := e.db.CurrentMapping(ctx, e.acc.ID)
	require.NoError(t, err)

	problems, err := e.runner.CheckDrift(ctx, e.acc.ID)
	require.NoError(t, err)
	require.Empty(t, problems)
	require.Empty(t, e.events(t, eventlog.Error))

	doctor := mv.Mapping.Lead[setup.DatumDoctor].FieldID
	require.Equal(t, http.StatusNoContent, e.raw(t, http.MethodDelete, "/api/v4/leads/custom_fields/"+strconv.FormatInt(doctor, 10)))
	problems, err = e.runner.CheckDrift(ctx, e.acc.ID)
	require.NoError(t, err)
	require.Len(t, problems, 1)
	st := e.status(t)
	require.Equal(t, setup.StatusDrift, st.Status)
	require.Contains(t, st.Detail, "«Врач»")
	errs := e.events(t, eventlog.Error)
	require.Len(t, errs, 1)
	require.Equal(t, "Данные не передаются: Поле «Врач» (сделка) удалено в amoCRM", errs[0].Message)

	_, err = e.runner.CheckDrift(ctx, e.acc.ID)
	require.NoError(t, err)
	require.Len(t, e.events(t, eventlog.Error), 1, "the same drift is logged once")

	t.Run("RequiredCannotBeNotSent", func(t *testing.T) {
		_, _, err := e.runner.SaveMappingItem(ctx, e.acc.ID, setup.FieldItem(setup.EntityLead, setup.DatumReceptionID), setup.ItemValue{}, "amo_user:1")
		require.Error(t, err)
		require.Contains(t, err.Error(), "обязательно")
	})

	t.Run("IncompatibleTypeRefused", func(t *testing.T) {
		dates, err := e.api.CreateCustomFields(ctx, amocrm.EntityLeads, []amocrm.CustomField{{Name: "Дата визита", Type: amocrm.FieldDate}})
		require.NoError(t, err)
		_, _, err = e.runner.SaveMappingItem(ctx, e.acc.ID, setup.FieldItem(setup.EntityLead, setup.DatumDoctor), setup.ItemValue{ID: dates[0].ID}, "amo_user:1")
		require.Error(t, err)
		require.Contains(t, err.Error(), "тип «Дата»")
	})

	t.Run("FixingTheMappingRecovers", func(t *testing.T) {
		other, err := e.api.CreateCustomFields(ctx, amocrm.EntityLeads, []amocrm.CustomField{{Name: "Лечащий врач", Type: amocrm.FieldText}})
		require.NoError(t, err)
		saved, problems, err := e.runner.SaveMappingItem(ctx, e.acc.ID, setup.FieldItem(setup.EntityLead, setup.DatumDoctor), setup.ItemValue{ID: other[0].ID}, "amo_user:1")
		require.NoError(t, err)
		require.Empty(t, problems)
		require.Equal(t, mv.Version+1, saved.Version)
		require.Equal(t, "amo_user:1", saved.CreatedBy)
		require.Equal(t, other[0].ID, saved.Mapping.Lead[setup.DatumDoctor].FieldID)
		require.Equal(t, setup.StatusConfigured, e.status(t).Status)
		infos := e.events(t, eventlog.Info)
		require.Contains(t, infos[0].Message, "Связка настроена", "newest first: the recovery")
		versions, err := e.db.MappingVersions(ctx, e.acc.ID)
		require.NoError(t, err)
		require.Len(t, versions, 2)
	})
}
