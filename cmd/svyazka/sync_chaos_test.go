package main

// The sync with real processes: a real `svyazka worker` (so it can be
// SIGKILLed) writes into an amoCRM sandbox served by the test process, so
// the test can wrap it with faults and read its counters. Records reach
// source_records as the connector API stores them (ingest.Check +
// store.Ingest with the sync wake-up in the outbox).
//
// What "right" means at the end (syncStand.verify): the sandbox's contacts,
// keyed by «ID пациента IDENT», and leads, keyed by «ID записи IDENT», are
// exactly the sets backend/mirror computes from source_records as they are
// now — one of each, none missing, none extra —, every lead sits in the
// pipeline and stage mirror's rules and the mapping give and is linked to
// its patient's contact, and the sandbox counted no rate-limit violation
// and no block.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/svyazka/svyazka/amocrm"
	"github.com/svyazka/svyazka/amocrm/sandbox"
	"github.com/svyazka/svyazka/backend/amosetup"
	"github.com/svyazka/svyazka/backend/eventlog"
	"github.com/svyazka/svyazka/backend/ingest"
	"github.com/svyazka/svyazka/backend/install"
	"github.com/svyazka/svyazka/backend/mirror"
	"github.com/svyazka/svyazka/backend/redistest"
	"github.com/svyazka/svyazka/backend/sealer"
	"github.com/svyazka/svyazka/backend/setup"
	"github.com/svyazka/svyazka/backend/store"
	"github.com/svyazka/svyazka/backend/store/storetest"
	"github.com/svyazka/svyazka/connector/demo"
	"github.com/svyazka/svyazka/connector/ident"
	"github.com/svyazka/svyazka/connector/protocol"
	"github.com/svyazka/svyazka/jobs"
)

const (
	syncKey      = "c3luYy1jaGFvcy10ZXN0LWtleS0zMi1ieXRlcy1vayE="
	syncSecret   = "sync-client-secret"
	syncRedirect = "https://svyazka.test/oauth/amocrm/callback"
	syncClientID = "00000000-0000-4000-8000-000000000042"
)

var syncZone, _ = time.LoadLocation("Europe/Moscow")

// syncStand is one installed, autosetup sandbox account with a clinic
// database, the worker's environment and the sandbox behind a fault
// wrapper. Nothing runs until startWorker.
type syncStand struct {
	t     testing.TB
	ctx   context.Context
	sb    *sandbox.Sandbox
	chaos *chaosHandler
	db    *store.DB
	api   *amocrm.AccountAPI // the test's own client: the raw sandbox, the worker's Redis limiter
	acc   store.Account
	dbID  int64
	mv    setup.MappingVersion
	env   map[string]string
	since string // import date, clinic-local

	mu      sync.Mutex
	worker  *proc
	workers []*proc
	batches atomic.Int64
}

func newSyncStand(t testing.TB, since string) *syncStand {
	t.Helper()
	ctx := context.Background()
	s := &syncStand{t: t, ctx: ctx, since: since}
	var err error
	s.sb, err = sandbox.New(sandbox.Config{ClientID: syncClientID, ClientSecret: syncSecret, RedirectURI: syncRedirect,
		HTTPClient: &http.Client{Timeout: time.Second}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.sb.Close() })
	s.chaos = &chaosHandler{next: s.sb.Handler()}
	faulty := httptest.NewServer(s.chaos)
	t.Cleanup(faulty.Close)
	clean := httptest.NewServer(s.sb.Handler())
	t.Cleanup(clean.Close)

	dbURL := storetest.NewURL(t)
	s.db, err = store.Open(ctx, dbURL, store.Options{MaxConns: 4})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.db.Close() })
	mig, err := store.NewMigrator(s.db.SQL())
	require.NoError(t, err)
	_, err = mig.Up(ctx)
	require.NoError(t, err)

	ropts := redistest.New(t)
	s.env = map[string]string{
		"APP_ENV": "production", "DATABASE_URL": dbURL, "REDIS_URL": fmt.Sprintf("redis://%s/%d", ropts.Addr, ropts.DB),
		"ENCRYPTION_KEY": syncKey, "AMOCRM_CLIENT_ID": syncClientID, "AMOCRM_CLIENT_SECRET": syncSecret,
		"AMOCRM_REDIRECT_URI": syncRedirect, "AMOCRM_BASE_URL": faulty.URL, "LOG_LEVEL": "warn",
	}

	// Install as the service does: the token sealed with ENCRYPTION_KEY.
	raw, err := base64.StdEncoding.DecodeString(syncKey)
	require.NoError(t, err)
	seal, err := sealer.New(raw)
	require.NoError(t, err)
	tokens, err := store.NewAmoTokens(s.db, seal)
	require.NoError(t, err)
	queue := asynq.NewClient(asynq.RedisClientOpt{Addr: ropts.Addr, DB: ropts.DB})
	t.Cleanup(func() { _ = queue.Close() })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc := &install.Service{Store: s.db, Sealer: seal, TrialDays: 14, TimeZone: "Europe/Moscow", Now: time.Now,
		Log: log, Relay: &jobs.OutboxRelay{Store: s.db, Client: queue, Log: log}, IsRevoked: install.IsRevoked}
	// The test's client shares the worker's Redis, so its reads and the
	// worker's writes stay within one 7 rps budget.
	limiterRedis := redis.NewClient(ropts)
	t.Cleanup(func() { _ = limiterRedis.Close() })
	client, err := amocrm.New(amocrm.Config{ClientID: syncClientID, ClientSecret: syncSecret, RedirectURI: syncRedirect,
		BaseURL: clean.URL, Redis: limiterRedis, Tokens: install.RevokingTokens{AmoTokens: tokens, Service: svc}})
	require.NoError(t, err)
	svc.Exchanger = install.AmoExchanger{Client: client, Tokens: tokens}
	info, err := s.sb.CreateAccount(sandbox.AccountOptions{Subdomain: "sync-clinic"})
	require.NoError(t, err)
	require.NoError(t, svc.BeginInstall(ctx, info.Code, "sync-clinic.amocrm.ru", true))
	var payload []byte
	require.NoError(t, s.db.SQL().QueryRow(`SELECT payload FROM outbox WHERE task_type = $1`, jobs.TypeInstallComplete).Scan(&payload))
	require.NoError(t, svc.ProcessTask(ctx, asynq.NewTask(jobs.TypeInstallComplete, payload)))
	s.acc, err = s.db.AccountByAmoID(ctx, info.AccountID)
	require.NoError(t, err)
	ref := amocrm.AccountRef{ID: s.acc.ID, Subdomain: s.acc.Subdomain, Domain: s.acc.BaseDomain}
	s.api = client.Account(ref)

	accounts := amosetup.Accounts{Client: client, Ref: func(context.Context, int64) (amocrm.AccountRef, error) { return ref, nil }}
	runner := &setup.Runner{Store: jobs.SetupStore{DB: s.db}, CRM: accounts.CRM, Transient: amosetup.Transient, Now: time.Now}
	run, _, err := runner.Start(ctx, s.acc.ID, nil, nil, "test")
	require.NoError(t, err)
	for range 40 {
		if err = runner.Run(ctx, run.ID); err == nil || !amosetup.Transient(err) {
			break
		}
	}
	require.NoError(t, err)
	var ok bool
	s.mv, ok, err = s.db.CurrentMapping(ctx, s.acc.ID)
	require.NoError(t, err)
	require.True(t, ok)

	d, err := s.db.IssueConnectorToken(ctx, store.TokenRequest{AccountID: s.acc.ID, TokenHash: []byte(uuid.NewString()), Now: time.Now(),
		MaxDatabases: 3, Name: "Клиника", TimeZone: "Europe/Moscow"})
	require.NoError(t, err)
	s.dbID = d.ID
	t.Cleanup(s.cleanup)
	return s
}

func (s *syncStand) cleanup() {
	s.mu.Lock()
	workers := s.workers
	s.mu.Unlock()
	for _, p := range workers {
		if p.running() {
			_ = p.cmd.Process.Signal(os.Interrupt)
			select {
			case <-p.done:
			case <-time.After(30 * time.Second):
				_ = p.cmd.Process.Kill()
				<-p.done
			}
		}
		out := p.out.String()
		if strings.Contains(out, "WARNING: DATA RACE") {
			s.t.Errorf("%s reported a data race:\n%s", p.name, tail(out))
		}
		if s.t.Failed() {
			s.t.Logf("--- output of %s ---\n%s", p.name, tail(out))
		}
	}
}

// startWorker runs `svyazka worker` (built with -race under -race).
func (s *syncStand) startWorker() *proc {
	s.t.Helper()
	bin := binary
	if t, ok := s.t.(*testing.T); ok {
		_, bin = e2eBinaries(t)
	}
	cmd := exec.Command(bin, "worker")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	for k, v := range s.env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	p := &proc{name: "svyazka worker", cmd: cmd, out: &lockedBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	require.NoError(s.t, cmd.Start())
	go func() { _ = cmd.Wait(); close(p.done) }()
	s.mu.Lock()
	s.worker = p
	s.workers = append(s.workers, p)
	s.mu.Unlock()
	return p
}

// start sets the sync running from s.since, as ЗАПУСТИТЬ does once its
// preconditions hold (the connector's heartbeat is not part of this stand).
func (s *syncStand) start() {
	s.t.Helper()
	task, err := jobs.NewSyncAccountTask(jobs.SyncAccountPayload{AccountID: s.acc.ID}, "start:test")
	require.NoError(s.t, err)
	require.NoError(s.t, s.db.StartSync(s.ctx, store.StartSyncInput{AccountID: s.acc.ID, ImportSince: s.since, Now: time.Now(),
		Event: eventlog.Event{AccountID: s.acc.ID, Type: eventlog.TypeSyncStarted, Message: "test"}, Task: task.Outbox()}))
}

// ingest stores records as the connector API does, waking the sync.
func (s *syncStand) ingest(recs []protocol.Record) {
	s.t.Helper()
	for len(recs) > 0 {
		n := min(len(recs), protocol.MaxRecordsPerBatch)
		checked, err := ingest.Check(protocol.Batch{BatchID: uuid.NewString(), Records: recs[:n]})
		require.NoError(s.t, err)
		require.Empty(s.t, checked.Errors)
		in := store.IngestBatch{DatabaseID: s.dbID, BatchID: checked.BatchID, Total: checked.Total, Now: time.Now().UTC(),
			Wake: jobs.SyncWake(s.acc.ID)}
		for _, r := range checked.Records {
			in.Records = append(in.Records, store.IngestRecord{Kind: string(r.Kind), SourceID: r.SourceID, Version: r.Version,
				Deleted: r.Deleted, Data: r.Data, Hash: r.Hash})
		}
		_, err = s.db.Ingest(s.ctx, in)
		require.NoError(s.t, err)
		s.batches.Add(1)
		recs = recs[n:]
	}
}

func (s *syncStand) pending() int64 {
	q, err := s.db.SyncQueue(s.ctx, s.acc.ID)
	require.NoError(s.t, err)
	return q.Pending
}

// apiRequests is how many amoCRM API calls the sandbox answered so far, by
// endpoint (all statuses), the raw reads of the test included.
func (s *syncStand) apiRequests() map[string]int {
	out := map[string]int{}
	for _, r := range s.sb.Stats().Requests {
		if strings.Contains(r.Endpoint, "/api/v4/") {
			out[r.Endpoint] += r.Count
		}
	}
	return out
}

// okCount is how many calls to endpoint the sandbox answered with 2xx.
func (s *syncStand) okCount(endpoint string) int {
	n := 0
	for _, r := range s.sb.Stats().Requests {
		if r.Endpoint == endpoint && r.Status >= 200 && r.Status < 300 {
			n += r.Count
		}
	}
	return n
}

// expectation is what amoCRM should show for source_records now.
type expectation struct {
	contacts map[string]bool         // patient ids
	leads    map[string]expectedLead // by the chain's current reception id
}

type expectedLead struct {
	patientID string
	pipeline  setup.PipelineKey
	state     setup.State
	// unsure: the no-show grace period passes between now and the engine's
	// evaluation; either state is right.
	alt setup.State
}

// expect applies backend/mirror's rules to source_records, as the engine
// must: scope by the import date, one lead per chain unless its current
// reception was moved away, the state at now and at then.
func (s *syncStand) expect(now, then time.Time) expectation {
	s.t.Helper()
	rules := mirror.DefaultRules()
	patients, err := s.db.SourceRecordsOfKind(s.ctx, s.dbID, string(protocol.KindPatient))
	require.NoError(s.t, err)
	receptions, err := s.db.SourceRecordsOfKind(s.ctx, s.dbID, string(protocol.KindReception))
	require.NoError(s.t, err)
	byPatient := map[string][]mirror.Reception{}
	for _, r := range receptions {
		if r.Deleted {
			continue
		}
		var ir protocol.IdentReception
		require.NoError(s.t, json.Unmarshal(r.Data, &ir))
		byPatient[ir.PatientID] = append(byPatient[ir.PatientID], mirror.Reception{ID: r.SourceID, IdentReception: ir})
	}
	ex := expectation{contacts: map[string]bool{}, leads: map[string]expectedLead{}}
	for _, p := range patients {
		if p.Deleted {
			continue
		}
		var ip protocol.IdentPatient
		require.NoError(s.t, json.Unmarshal(p.Data, &ip))
		links := map[string]mirror.Link{}
		byID := map[string]mirror.Reception{}
		for _, r := range byPatient[p.SourceID] {
			links[r.ID] = mirror.LinkOf(r.IdentReception)
			byID[r.ID] = r
		}
		for _, ch := range mirror.ResolveChains(links).All() {
			cur := byID[ch.Current]
			if s.since != "" && (len(cur.PlanStart) < len(s.since) || cur.PlanStart[:len(s.since)] < s.since) || rules.MovedAway(cur.IdentReception) {
				continue
			}
			state, err := rules.ReceptionState(cur, syncZone, now)
			require.NoError(s.t, err, "reception %s", cur.ID)
			alt, err := rules.ReceptionState(cur, syncZone, then)
			require.NoError(s.t, err)
			pipeline, err := mirror.PipelineOf(cur, ip)
			require.NoError(s.t, err)
			ex.leads[cur.ID] = expectedLead{patientID: p.SourceID, pipeline: setup.PipelineKey(pipeline), state: setup.State(state), alt: setup.State(alt)}
			ex.contacts[p.SourceID] = true
		}
	}
	return ex
}

// verify compares the sandbox with ex (see the file comment) and returns
// a one-line summary for the log.
func (s *syncStand) verify(ex expectation) string {
	s.t.Helper()
	t := s.t
	contacts, err := s.api.AllContacts(s.ctx, amocrm.ListParams{})
	require.NoError(t, err)
	leads, err := s.api.AllLeads(s.ctx, amocrm.ListParams{With: []string{"contacts"}})
	require.NoError(t, err)
	patientKey := s.mv.Mapping.Contact[setup.DatumPatientID].FieldID
	receptionKey := s.mv.Mapping.Lead[setup.DatumReceptionID].FieldID
	keyOf := func(fvs []amocrm.FieldValues, field int64) string {
		for _, fv := range fvs {
			if fv.FieldID == field && len(fv.Values) > 0 {
				return strings.TrimSpace(fmt.Sprint(fv.Values[0].Value))
			}
		}
		return ""
	}
	contactOf := map[string][]int64{}
	patientOfContact := map[int64]string{}
	for _, c := range contacts {
		k := keyOf(c.CustomFieldsValues, patientKey)
		contactOf[k] = append(contactOf[k], c.ID)
		patientOfContact[c.ID] = k
	}
	var problems []string
	report := func(format string, a ...any) {
		if len(problems) < 30 {
			problems = append(problems, fmt.Sprintf(format, a...))
		}
	}
	for k, ids := range contactOf {
		switch {
		case !ex.contacts[k]:
			report("contact(s) %v with «ID пациента IDENT»=%q not expected", ids, k)
		case len(ids) > 1:
			report("patient %s has %d contacts %v", k, len(ids), ids)
		}
	}
	missingContacts, missingLeads, dupLeads, wrongStage := 0, 0, 0, 0
	for k := range ex.contacts {
		if len(contactOf[k]) == 0 {
			missingContacts++
			report("patient %s has no contact", k)
		}
	}
	leadOf := map[string][]amocrm.Lead{}
	for _, l := range leads {
		k := keyOf(l.CustomFieldsValues, receptionKey)
		leadOf[k] = append(leadOf[k], l)
	}
	for k, ls := range leadOf {
		want, ok := ex.leads[k]
		if !ok {
			report("lead(s) with «ID записи IDENT»=%q not expected (lead %d)", k, ls[0].ID)
			continue
		}
		if len(ls) > 1 {
			dupLeads++
			report("reception %s has %d leads", k, len(ls))
		}
		l := ls[0]
		pm := s.mv.Mapping.Pipelines[want.pipeline]
		if l.PipelineID != pm.PipelineID || (l.StatusID != pm.Stages[want.state] && l.StatusID != pm.Stages[want.alt]) {
			wrongStage++
			report("lead %d of reception %s: pipeline %d stage %d, want %s/%s (%d/%d)", l.ID, k, l.PipelineID, l.StatusID,
				want.pipeline, want.state, pm.PipelineID, pm.Stages[want.state])
		}
		if l.Embedded == nil || len(l.Embedded.Contacts) != 1 || patientOfContact[l.Embedded.Contacts[0].ID] != want.patientID {
			report("lead %d of reception %s is not linked to patient %s's contact alone", l.ID, k, want.patientID)
		}
	}
	for k := range ex.leads {
		if len(leadOf[k]) == 0 {
			missingLeads++
			report("reception %s has no lead", k)
		}
	}
	st := s.sb.Stats()
	require.Len(t, st.Integrity, 1)
	in := st.Integrity[0]
	if in.ContactsSharingExternalID != 0 || in.LeadsWithoutContact != 0 {
		report("sandbox integrity: %+v", in)
	}
	if st.RateLimited != 0 || st.Blocks != 0 {
		report("rate-limit violations %d, blocks %d", st.RateLimited, st.Blocks)
	}
	require.Empty(t, problems, "contacts %d (want %d), leads %d (want %d); missing %d contacts, %d leads; duplicate leads %d; wrong stage %d",
		len(contacts), len(ex.contacts), len(leads), len(ex.leads), missingContacts, missingLeads, dupLeads, wrongStage)
	return fmt.Sprintf("%d contacts and %d leads as expected; rate-limit violations %d, blocks %d", len(contacts), len(leads), st.RateLimited, st.Blocks)
}

// clinicFeed is the connector in-process: the demo IDENT stand-in read by
// connector/ident, changed with demo.Step.
type clinicFeed struct {
	dsn    string
	reader *ident.Reader
	cursor []byte
	seed   uint64
}

func newClinicFeed(t testing.TB, patients int, since time.Time) *clinicFeed {
	t.Helper()
	ctx := context.Background()
	f := &clinicFeed{dsn: storetest.NewURL(t), seed: 7}
	require.NoError(t, demo.Create(ctx, f.dsn, demo.Options{Patients: patients, Seed: 42, Now: wallNow()}))
	var err error
	f.reader, err = ident.OpenOptions(ctx, f.dsn, ident.Options{Since: since, PagePause: -1, Now: wallNow})
	require.NoError(t, err)
	t.Cleanup(func() { _ = f.reader.Close() })
	return f
}

// wallNow is the clinic's wall clock, naive, as IDENT keeps it.
func wallNow() time.Time {
	n := time.Now().In(syncZone)
	return time.Date(n.Year(), n.Month(), n.Day(), n.Hour(), n.Minute(), n.Second(), n.Nanosecond(), time.UTC)
}

// read returns what the connector would send now (one cycle).
func (f *clinicFeed) read(t testing.TB) []protocol.Record {
	t.Helper()
	var out []protocol.Record
	for {
		recs, next, more, err := f.reader.Read(context.Background(), f.cursor)
		require.NoError(t, err)
		out = append(out, recs...)
		f.cursor = next
		if !more {
			return out
		}
	}
}

// change makes one random change in the clinic and returns its records.
func (f *clinicFeed) change(t testing.TB) []protocol.Record {
	t.Helper()
	f.seed++
	_, err := demo.Step(context.Background(), f.dsn, f.seed, time.Now().In(syncZone))
	require.NoError(t, err)
	return f.read(t)
}

// chaosHandler injects the faults the sandbox cannot: 429s that are not
// rate-limit violations (so the sandbox's counter stays a pure count of
// violations), writes applied before a 500 or before the connection drops
// (a timeout whose write went through), and a deadline that turns the
// sandbox's hanging "timeout" into a gateway 504. The sandbox's own
// injection (SetFaults) adds 5xx before the write and those timeouts.
type chaosHandler struct {
	next http.Handler

	mu             sync.Mutex
	rnd            *rand.Rand
	rate429        float64
	rateApplied500 float64 // of contact and lead writes
	rateAppliedCut float64 // of contact and lead writes
	deadline       time.Duration
	injected       map[string]int
	requests       int
	// kinds counts calls by what they are for: "lookup" (a search by our
	// key field), "read-by-id" (current stages), "write", "other".
	kinds map[string]int

	// forced: the next writes this many are applied and then fail
	// (alternately a 500 and a dropped connection), whatever the dice say.
	forced int
	// observe, when set, sees every 2xx lead write with its body.
	observe atomic.Pointer[func(body []byte, at time.Time)]
}

func (c *chaosHandler) set(seed uint64, rate429, applied500, appliedCut float64, deadline time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rnd = rand.New(rand.NewPCG(seed, seed^0xc4a05))
	c.rate429, c.rateApplied500, c.rateAppliedCut, c.deadline = rate429, applied500, appliedCut, deadline
	c.injected = map[string]int{}
}

// force makes the next n contact or lead writes fail after they were applied.
func (c *chaosHandler) force(n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.forced = n
}

func (c *chaosHandler) off() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rnd = nil
}

func (c *chaosHandler) counts() (requests int, injected map[string]int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.requests, maps.Clone(c.injected)
}

// kindCounts returns the calls by kind so far and resets the counters.
func (c *chaosHandler) kindCounts() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.kinds
	c.kinds = map[string]int{}
	return out
}

func (c *chaosHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !strings.HasPrefix(r.URL.Path, "/api/v4/") {
		c.next.ServeHTTP(w, r)
		return
	}
	write := (r.Method == http.MethodPost || r.Method == http.MethodPatch) &&
		(r.URL.Path == "/api/v4/contacts" || r.URL.Path == "/api/v4/leads")
	fault := ""
	var deadline time.Duration
	kind := "other"
	switch q := r.URL.RawQuery; {
	case write:
		kind = "write " + r.Method + " " + strings.TrimPrefix(r.URL.Path, "/api/v4/")
	case r.Method == http.MethodGet && strings.Contains(q, "custom_fields_values"):
		kind = "lookup " + strings.TrimPrefix(r.URL.Path, "/api/v4/")
	case r.Method == http.MethodGet && strings.Contains(q, "filter%5Bid%5D") || strings.Contains(q, "filter[id]"):
		kind = "read-by-id " + strings.TrimPrefix(r.URL.Path, "/api/v4/")
	}
	c.mu.Lock()
	c.requests++
	if c.kinds == nil {
		c.kinds = map[string]int{}
	}
	c.kinds[kind]++
	if c.rnd != nil {
		deadline = c.deadline
		p := c.rnd.Float64()
		switch {
		case p < c.rate429:
			fault = "429"
		case write && p < c.rate429+c.rateApplied500:
			fault = "applied-500"
		case write && p < c.rate429+c.rateApplied500+c.rateAppliedCut:
			fault = "applied-cut"
		}
		if write && c.forced > 0 {
			c.forced--
			fault = []string{"applied-500", "applied-cut"}[c.forced%2]
		}
		if fault != "" {
			c.injected[fault]++
		}
	}
	c.mu.Unlock()
	if deadline > 0 {
		ctx, cancel := context.WithTimeout(r.Context(), deadline)
		defer cancel()
		r = r.WithContext(ctx)
	}
	var body []byte
	if obs := c.observe.Load(); obs != nil && r.URL.Path == "/api/v4/leads" && r.Method != http.MethodGet {
		body, _ = io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
	}
	switch fault {
	case "429":
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = io.WriteString(w, `{"title":"Too many requests","type":"https://httpstatus.es/429","status":429,"detail":"Too many requests"}`)
		return
	case "applied-500", "applied-cut":
		rec := httptest.NewRecorder()
		c.next.ServeHTTP(rec, r)
		if fault == "applied-500" {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = io.WriteString(w, `{"title":"Internal server error","status":500}`)
			return
		}
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				_ = conn.Close()
				return
			}
		}
		w.WriteHeader(http.StatusGatewayTimeout)
		return
	}
	if body == nil {
		c.next.ServeHTTP(w, r)
		return
	}
	rec := &statusCapture{ResponseWriter: w}
	c.next.ServeHTTP(rec, r)
	if rec.status >= 200 && rec.status < 300 {
		(*c.observe.Load())(body, time.Now())
	}
}

type statusCapture struct {
	http.ResponseWriter
	status int
}

func (w *statusCapture) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusCapture) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// waitFor polls cond until it holds or timeout passes, then fails with
// describe's account of where things stand.
func waitFor(t testing.TB, timeout time.Duration, cond func() bool, describe func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", timeout, describe())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// peakRSS is a process's peak resident set (VmHWM) in bytes.
func peakRSS(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb * 1024, err
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/%d/status", pid)
}

func sortedCounts(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%d ", k, m[k])
	}
	return strings.TrimSpace(b.String())
}

// TestSyncChaos imports a demo clinic (300 patients, about 1,000
// receptions of which some 600 are in the import's scope) while the
// sandbox fails about one call in ten — 429s, 5xx before the write, writes
// applied before a 500 or before the connection drops, gateway timeouts —
// and the clinic keeps changing; the worker is SIGKILLed twice during the
// import and restarted. At the end amoCRM holds exactly one contact per
// patient in scope and one lead per chain in the right pipeline and stage,
// and the sandbox counted no rate-limit violation.
func TestSyncChaos(t *testing.T) {
	t.Parallel()
	startedAt := time.Now()
	wall := wallNow()
	since := wall.AddDate(0, 0, -400).Format(protocol.DateLayout)
	feed := newClinicFeed(t, 300, wall.AddDate(0, 0, -800))
	s := newSyncStand(t, since)

	s.ingest(feed.read(t))
	// About one call in ten fails: 3% 429 and, of contact and lead writes,
	// 4% applied before a 500 and 3% applied before the connection drops
	// (the wrapper); 3% 5xx before the write and 2% gateway timeouts after
	// 2 s (the sandbox).
	s.sb.SetFaults(sandbox.Faults{Rate5xx: 0.03, RateTimeout: 0.02, Seed: 11})
	s.chaos.set(12, 0.03, 0.04, 0.03, 2*time.Second)
	base := s.apiRequests()
	s.chaos.force(2)
	s.start()
	s.startWorker()

	// The clinic keeps working: a change every 2 s, each its own batch.
	liveCtx, stopLive := context.WithCancel(context.Background())
	liveDone := make(chan struct{})
	changes := 0
	go func() {
		defer close(liveDone)
		tick := time.NewTicker(2 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-liveCtx.Done():
				return
			case <-tick.C:
			}
			if recs := feed.change(t); len(recs) > 0 {
				s.ingest(recs)
				changes++
			}
		}
	}()
	defer func() { stopLive(); <-liveDone }()

	// Kill during the import: after a quarter and after two thirds of the
	// leads' create batches went through.
	expectedBatches := (len(s.expect(time.Now(), time.Now()).leads) + 49) / 50
	for i, share := range []float64{0.25, 0.66} {
		want := int(float64(expectedBatches) * share)
		require.Eventually(t, func() bool { return s.okCount("POST /api/v4/leads") >= max(want, 1) }, 60*time.Second, 10*time.Millisecond,
			"kill %d: the import never reached %d lead batches", i+1, want)
		require.True(t, s.worker.running(), "the worker exited:\n%s", tail(s.worker.out.String()))
		s.worker.kill(t)
		t.Logf("SIGKILL %d after %d of ~%d lead create batches, %s", i+1, s.okCount("POST /api/v4/leads"), expectedBatches,
			time.Since(startedAt).Round(time.Millisecond))
		s.chaos.force(2)
		s.startWorker()
	}
	progress := func() string {
		return fmt.Sprintf("pending %d, lead batches created %d, requests %s", s.pending(), s.okCount("POST /api/v4/leads"), sortedCounts(s.apiRequests()))
	}
	waitFor(t, 90*time.Second, func() bool { return s.pending() == 0 }, func() string { return "the import never finished: " + progress() })
	imported := time.Since(startedAt)
	stopLive()
	<-liveDone
	waitFor(t, 60*time.Second, func() bool { return s.pending() == 0 }, func() string { return "the last changes never synced: " + progress() })
	q, err := s.db.SyncQueue(s.ctx, s.acc.ID)
	require.NoError(t, err)
	require.Zero(t, q.Parked, "nothing is parked")

	worker := map[string]int{}
	for k, v := range s.apiRequests() {
		if d := v - base[k]; d > 0 {
			worker[k] = d
		}
	}
	requests, injected := s.chaos.counts()
	st := s.sb.Stats()
	var sandbox5xx int
	for _, r := range st.Requests {
		if r.Status >= 500 {
			sandbox5xx += r.Count
		}
	}
	s.chaos.off()
	s.sb.SetFaults(sandbox.Faults{})
	require.GreaterOrEqual(t, injected["applied-500"]+injected["applied-cut"], 6, "writes were applied before their answer was lost")
	failed := 0
	for _, p := range s.workers {
		for _, line := range strings.Split(p.out.String(), "\n") {
			if strings.Contains(line, `"msg":"task failed"`) && !strings.Contains(line, "runs elsewhere") {
				failed++
			}
		}
	}
	summary := s.verify(s.expect(time.Now(), startedAt))
	t.Logf("%s; %d live changes; %d worker requests (%s; %s); injected by the wrapper %s, sandbox 5xx/504 answers %d; "+
		"%d failed sync tasks retried; import done at %s, total %s",
		summary, changes, requests, sortedCounts(worker), sortedCounts(s.chaos.kindCounts()), sortedCounts(injected), sandbox5xx, failed,
		imported.Round(time.Millisecond), time.Since(startedAt).Round(time.Millisecond))
}
