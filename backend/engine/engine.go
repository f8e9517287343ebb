// Package engine is the sync: it reads the changes the connector delivered
// (source_records above each database's cursor), decides with
// backend/mirror what amoCRM should show, and writes the difference through
// the account's amoCRM client.
//
// What Process promises:
//   - It holds (returns Result.Held, writes nothing) unless the account's
//     sync is running, its setup is configured and its subscription allows
//     work. Held work stays queued: the cursors do not move.
//   - Changes are read per enabled database in change_seq order, in pages
//     of Config.PageSize changes naming at most Config.PagePatients
//     patients, at most Config.MaxPages per call (Result.More
//     says more is pending). While an import runs a database has two lanes
//     (store.SyncDatabase): the import (change_seq up to the start's bound)
//     and the real-time changes above it, each with its own cursor. Each
//     round of a call reads a page of every database's real-time lane
//     first, then their due grace timers, then one import page each: a
//     change made after the start is written after at most one import page,
//     and one database's import never holds back another's changes. When
//     the import lane reaches its bound the lanes merge (store.CommitSync).
//     A patient touched by both lanes is synced twice from the same current
//     rows; the second finds equal hashes and costs no request.
//     For the patients a page touches it loads the
//     patient and every reception of theirs (chains and first visits are
//     decided over the whole history) and the doctor and branch
//     dictionaries.
//   - Scope: a reception is in scope when it starts on or after the
//     account's import date (all when none); a patient when it has an
//     in-scope reception or already has a contact.
//   - One contact per patient, one lead per chain (mirror.ResolveChains),
//     keyed in entity_links by the patient id and the chain's root. A chain
//     whose current reception was moved away (its successor has not arrived)
//     is left as it is. The pipeline is mirror.PipelineOf, the stage the
//     mapping's stage for mirror's state.
//   - Unchanged records cost no request: the hash of what was last written
//     (mirror's content hash with the mapping version and, for a lead, its
//     contact) is compared with the link's.
//   - Contacts are written first, in batches of at most BatchSize, and their
//     links committed; then leads, linked to their contact on creation.
//     Creates are journaled before they are sent (journal.go), so a crash
//     between amoCRM's answer and our commit never creates a duplicate: the
//     retry searches amoCRM by our key field («ID пациента IDENT», «ID
//     записи IDENT» with every reception id of the chain) for the journaled
//     ones only, and updates what it finds. What amoCRM held under our keys
//     before the start (a database added again) is found by the start's
//     account scan; a database restored from a backup is noticed through
//     Config.WriteMarks and scanned again.
//   - Exception stages: before updating linked leads their current stage is
//     read from amoCRM (one request per batch); a lead in an exception stage
//     of its pipeline gets its fields updated but keeps its stage and
//     pipeline. A lead deleted in amoCRM is created again.
//   - A validation error parks the refused records (sync_parked, with
//     amoCRM's message, and a sync_error event) and the rest of the batch is
//     sent again without them. A reception whose patient's contact could
//     not be written is parked too.
//   - Links, parks, events and the lane's cursor commit in one transaction after
//     amoCRM answered. Rate limits, 5xx and timeouts return the client's
//     error (amocrm.Retryable) with nothing committed for the page; the
//     caller retries with backoff.
//   - Adoption (rule 4): a patient with no link whose key is not found in
//     amoCRM takes a contact that existed before the sync when mirror.Adopt
//     allows it (its phones match exactly this one patient of the database,
//     the contact carries no patient id and is linked to nobody, nobody else
//     claims the patient); nothing is merged otherwise. A batch with at most
//     RealtimeLookupMax such patients searches amoCRM by each phone; a
//     bigger one (an import) matches against the account's contacts as the
//     start's scan read them (account_settings.contacts_scanned_at). Event
//     «Контакт … связан с пациентом …».
//   - Inbound leads (rule 6, account setting continue_inbound_leads, on by
//     default): a new chain in the planned state whose patient's contact
//     existed before the batch (linked or adopted) continues that contact's
//     newest open lead outside our pipelines created within InboundWindow
//     and linked to no chain: it is moved into our pipeline and stage, gets
//     our fields and price, keeps its name, manager, source and UTM fields.
//   - Manual moves (rule 7): links remember the pipeline and stage last
//     written; a lead found elsewhere is moved back by the next source
//     change, with an event. Exception stages still hold.
//   - Moves (rule 3): when a chain's current reception changes the event log
//     says «Запись перенесена: … → …».
//   - The grace timer (rule 1): a planned reception's link stores when its
//     grace expires (reevaluate_at); after the changes, Process decides
//     again the chains whose time has come (the sweep wakes such accounts).
//   - The responsible user follows the mapping's policy: fixed, or the
//     doctor's override, or setup.MatchDoctors over the account's users
//     (read once per Process call), or the fallback user.
//   - Deleted receptions: a lead whose current reception was deleted in
//     IDENT goes to the cancelled stage (left alone in an exception stage)
//     and keeps its link, so amoCRM keeps the visit's history and a
//     reception IDENT restores continues the same lead.
//   - Dictionaries: a changed doctor or branch syncs again the patients of
//     the leads whose current reception is with it (store.PatientsWithLeadsOf),
//     so a renamed doctor shows on its leads and the responsible user follows.
//   - Failures: amoCRM's block (amocrm.ErrBlocked) pauses the account
//     (sync_state paused, an error event) and returns the error; a start
//     resumes. A revoked token uninstalls the account in the client's token
//     path; Process then holds with HoldUninstalled. With Config.CheckDrift
//     the mapping is validated before the first write of each start and when
//     amoCRM refuses a field, pipeline or stage; a mapping that no longer
//     fits marks setup drift and Process holds (HoldDrift) with the page
//     uncommitted: nothing is parked for a settings problem.
package engine

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/svyazka/svyazka/amocrm"
	"github.com/svyazka/svyazka/backend/eventlog"
	"github.com/svyazka/svyazka/backend/mirror"
	"github.com/svyazka/svyazka/backend/setup"
	"github.com/svyazka/svyazka/backend/store"
	"github.com/svyazka/svyazka/billing"
	"github.com/svyazka/svyazka/connector/protocol"
)

// CRM is the part of an account's amoCRM API the engine uses;
// *amocrm.AccountAPI satisfies it.
type CRM interface {
	Contacts(ctx context.Context, p amocrm.ListParams) (amocrm.Page[amocrm.Contact], error)
	Leads(ctx context.Context, p amocrm.ListParams) (amocrm.Page[amocrm.Lead], error)
	CreateContacts(ctx context.Context, contacts []amocrm.Contact) ([]amocrm.Saved, error)
	UpdateContacts(ctx context.Context, contacts []amocrm.Contact) ([]amocrm.Saved, error)
	CreateLeads(ctx context.Context, leads []amocrm.Lead) ([]amocrm.Saved, error)
	UpdateLeads(ctx context.Context, leads []amocrm.Lead) ([]amocrm.Saved, error)
}

// Store is the storage the engine uses; *store.DB satisfies it.
type Store interface {
	AccountByID(ctx context.Context, id int64) (store.Account, error)
	Subscription(ctx context.Context, accountID int64) (billing.Subscription, error)
	SyncSettings(ctx context.Context, accountID int64) (store.SyncSettings, error)
	CurrentMapping(ctx context.Context, accountID int64) (setup.MappingVersion, bool, error)
	SyncDatabases(ctx context.Context, accountID int64) ([]store.SyncDatabase, error)
	PendingChangesUpTo(ctx context.Context, databaseID, after, upTo int64, limit int) ([]store.SourceRecord, error)
	SourceRecordsByID(ctx context.Context, databaseID int64, kind string, ids []string) ([]store.SourceRecord, error)
	SourceRecordsOfKind(ctx context.Context, databaseID int64, kind string) ([]store.SourceRecord, error)
	ReceptionsOfPatients(ctx context.Context, databaseID int64, patientIDs []string) ([]store.SourceRecord, error)
	EntityLinks(ctx context.Context, databaseID int64, entityType string, sourceIDs []string) (map[string]store.EntityLink, error)
	CommitSync(ctx context.Context, c store.SyncCommit) error
	AppointmentLinksOf(ctx context.Context, databaseID int64, receptionIDs []string) ([]store.EntityLink, error)
	AppointmentLinksByCurrent(ctx context.Context, databaseID int64, receptionIDs []string) ([]store.EntityLink, error)
	DueReevaluations(ctx context.Context, databaseID int64, now time.Time, limit int) ([]store.EntityLink, error)
	LinkedCRMIDs(ctx context.Context, accountID int64, crmEntityType string, ids []int64) (map[int64]bool, error)
	SaveAccountScan(ctx context.Context, accountID int64, s store.AccountScan, at time.Time) error
	ForgetScan(ctx context.Context, accountID int64, ev eventlog.Event) error
	RecordCreateIntents(ctx context.Context, databaseID int64, entityType string, sourceIDs []string, now time.Time) error
	CreateIntents(ctx context.Context, databaseID int64, entityType string, sourceIDs []string) (map[string]bool, error)
	ScannedKeys(ctx context.Context, accountID int64, crmEntityType string, keys []string) ([]store.ScannedKey, error)
	ScannedContactsByPhone(ctx context.Context, accountID int64, phones []string) ([]store.ContactPhone, error)
	PauseSync(ctx context.Context, accountID int64, ev eventlog.Event, now time.Time) error
	PatientsWithLeadsOf(ctx context.Context, databaseID int64, staffIDs, branchIDs []string) ([]string, error)
	AnalyzeSyncTables(ctx context.Context) error
}

// Defaults of Config.
const (
	DefaultPageSize = 500
	// DefaultPagePatients bounds the patients of one page: a page of
	// patient records writes each patient's contact and every lead, so a
	// bound on changes alone lets one import page take seconds (500
	// patients: ~40 requests) while real-time changes wait for it.
	DefaultPagePatients = 100
	// DefaultWriteConcurrency: at amoCRM's few hundred milliseconds per
	// 50-entity write, three in flight reach 7 rps.
	DefaultWriteConcurrency = 3
	// BatchSize is amoCRM's limit of entities per write request.
	BatchSize = 50
	// DefaultMaxPages bounds one Process call, so one account's import
	// yields the worker to others between calls.
	DefaultMaxPages = 20
)

// Config holds the engine's dependencies.
type Config struct {
	Store Store
	// CRM opens the account's amoCRM API.
	CRM   func(ctx context.Context, accountID int64) (CRM, error)
	Rules mirror.Rules
	Now   func() time.Time
	Log   *slog.Logger
	// PageSize is how many changes are read at once (DefaultPageSize).
	PageSize int
	// WriteConcurrency is how many write batches of one step are in flight
	// at once (DefaultWriteConcurrency); the shared limiter keeps the rate.
	WriteConcurrency int
	// PagePatients bounds the distinct patients a page syncs
	// (DefaultPagePatients); the page ends before the change that would
	// add one more.
	PagePatients int
	// MaxPages bounds the pages of one Process call (DefaultMaxPages).
	MaxPages int
	// BeforeCommit, when set, runs before each final commit of a page; an
	// error aborts the commit (tests simulate a crash after amoCRM answered).
	BeforeCommit func(ctx context.Context) error
	// CheckDrift, when set, validates the account's mapping against a fresh
	// amoCRM snapshot and marks the account drift when it no longer fits
	// (setup.Runner.CheckDrift). The engine calls it before the first write
	// after each start and when amoCRM refuses a field, pipeline or stage.
	CheckDrift func(ctx context.Context, accountID int64) ([]setup.Problem, error)
	// WriteMarks, when set, notices a database restored from a backup
	// (journal.go); nil: not noticed.
	WriteMarks WriteMarks
}

// Engine runs the sync of accounts.
type Engine struct {
	cfg Config

	mu sync.Mutex
	// driftChecked is the sync start each account's mapping was last
	// checked for (CheckDrift before the first write of a start).
	driftChecked map[int64]time.Time
	// users are the accounts' users last read (UsersTTL).
	users map[int64]cachedUsers
	// analyzed is when this process last refreshed the planner's
	// statistics during an import (AnalyzeEvery).
	analyzed time.Time
}

// AnalyzeEvery is how often, while an import runs, a process refreshes the
// planner's statistics of the sync's tables (store.AnalyzeSyncTables).
const AnalyzeEvery = 2 * time.Minute

// analyzeDuringImport refreshes the statistics when an import runs and
// AnalyzeEvery has passed; a failure is logged, not returned (only speed
// depends on it).
func (e *Engine) analyzeDuringImport(ctx context.Context, runs []*dbRun) {
	if !slices.ContainsFunc(runs, func(r *dbRun) bool { return r.imp != nil }) {
		return
	}
	now := e.cfg.Now()
	e.mu.Lock()
	due := now.Sub(e.analyzed) >= AnalyzeEvery
	if due {
		e.analyzed = now
	}
	e.mu.Unlock()
	if !due {
		return
	}
	if err := e.cfg.Store.AnalyzeSyncTables(ctx); err != nil {
		e.cfg.Log.Warn("sync: analyze tables", "error", err)
	}
}

// EventSync is the event type of what the sync did that a manager should
// know: a contact adopted, an inbound lead continued, a manual move undone,
// an appointment moved or deleted.
const EventSync = eventlog.TypeSync

// New returns an Engine; it fails on a missing dependency or invalid rules.
func New(cfg Config) (*Engine, error) {
	if cfg.Store == nil || cfg.CRM == nil || cfg.Now == nil || cfg.Log == nil {
		return nil, errors.New("engine: New needs Store, CRM, Now and Log")
	}
	if err := cfg.Rules.Validate(); err != nil {
		return nil, fmt.Errorf("engine: %w", err)
	}
	if cfg.PageSize <= 0 {
		cfg.PageSize = DefaultPageSize
	}
	if cfg.PagePatients <= 0 {
		cfg.PagePatients = DefaultPagePatients
	}
	if cfg.WriteConcurrency <= 0 {
		cfg.WriteConcurrency = DefaultWriteConcurrency
	}
	if cfg.MaxPages <= 0 {
		cfg.MaxPages = DefaultMaxPages
	}
	return &Engine{cfg: cfg, driftChecked: map[int64]time.Time{}, users: map[int64]cachedUsers{}}, nil
}

// HoldReason says why Process wrote nothing.
type HoldReason string

// Hold reasons.
const (
	HoldNone         HoldReason = ""
	HoldStopped      HoldReason = "sync_not_running"
	HoldSetup        HoldReason = "setup_not_configured"
	HoldSubscription HoldReason = "subscription"
	HoldUninstalled  HoldReason = "uninstalled"
	// HoldPaused: amoCRM blocked the account; a start resumes it.
	HoldPaused HoldReason = "sync_paused"
	// HoldDrift: the mapping no longer fits amoCRM (setup state drift).
	HoldDrift HoldReason = "setup_drift"
)

// Result counts what one Process call did.
type Result struct {
	Held            HoldReason
	Records         int
	ContactsCreated int
	ContactsUpdated int
	LeadsCreated    int
	LeadsUpdated    int
	Parked          int
	// Adopted counts existing contacts linked to patients; Continued the
	// inbound leads continued by an appointment.
	Adopted   int
	Continued int
	// Reevaluated counts chains whose grace timer expired and were decided
	// again.
	Reevaluated int
	// More is true when changes are still pending (MaxPages reached).
	More bool
}

func (r *Result) add(o Result) {
	r.Records += o.Records
	r.ContactsCreated += o.ContactsCreated
	r.ContactsUpdated += o.ContactsUpdated
	r.LeadsCreated += o.LeadsCreated
	r.LeadsUpdated += o.LeadsUpdated
	r.Parked += o.Parked
	r.Adopted += o.Adopted
	r.Continued += o.Continued
	r.Reevaluated += o.Reevaluated
}

// Process writes the account's pending changes to amoCRM (see the package
// doc). Errors: the store's, the client's (amocrm.Retryable ones are worth
// a retry; amocrm.ErrRevoked and ErrBlocked are not) and mirror.ErrInvalid
// for a broken mapping.
func (e *Engine) Process(ctx context.Context, accountID int64) (Result, error) {
	res, err := e.process(ctx, accountID)
	switch {
	case errors.Is(err, errDrift):
		res.Held = HoldDrift
		return res, nil
	case errors.Is(err, amocrm.ErrBlocked):
		// Pausing stops the wake-ups; the records stay queued for a start.
		perr := e.cfg.Store.PauseSync(context.WithoutCancel(ctx), accountID, eventlog.Event{AccountID: accountID, Type: eventlog.TypeSyncError,
			Severity: eventlog.Error, Message: "amoCRM заблокировал доступ к API для аккаунта; синхронизация приостановлена. " +
				"Изменения копятся и будут переданы после запуска.", Details: map[string]any{"reason": "blocked", "error": err.Error()}}, e.cfg.Now())
		if perr != nil && !errors.Is(perr, store.ErrSyncState) {
			return res, errors.Join(err, perr)
		}
	}
	return res, err
}

// errDrift is a write held because the mapping no longer fits amoCRM.
var errDrift = errors.New("engine: the mapping no longer fits amoCRM")

func (e *Engine) process(ctx context.Context, accountID int64) (Result, error) {
	var res Result
	acc, err := e.cfg.Store.AccountByID(ctx, accountID)
	if err != nil {
		return res, err
	}
	if acc.Status != store.AccountActive {
		res.Held = HoldUninstalled
		return res, nil
	}
	settings, err := e.cfg.Store.SyncSettings(ctx, accountID)
	if err != nil {
		return res, err
	}
	sub, err := e.cfg.Store.Subscription(ctx, accountID)
	if err != nil {
		return res, err
	}
	switch {
	case settings.SyncState == "paused":
		res.Held = HoldPaused
	case settings.SyncState != "running":
		res.Held = HoldStopped
	case settings.SetupState == string(setup.StatusDrift):
		res.Held = HoldDrift
	case settings.SetupState != string(setup.StatusConfigured):
		res.Held = HoldSetup
	case !sub.AllowsWork(e.cfg.Now()):
		res.Held = HoldSubscription
	}
	if res.Held != HoldNone {
		return res, nil
	}
	mv, ok, err := e.cfg.Store.CurrentMapping(ctx, accountID)
	if err != nil {
		return res, err
	}
	if !ok {
		res.Held = HoldSetup
		return res, nil
	}
	if err := checkMapping(mv.Mapping); err != nil {
		return res, err
	}
	crm, err := e.cfg.CRM(ctx, accountID)
	if err != nil {
		return res, err
	}
	dbs, err := e.cfg.Store.SyncDatabases(ctx, accountID)
	if err != nil {
		return res, err
	}
	acct := &accountRun{e: e, accountID: accountID, settings: &settings, crm: crm}
	var runs []*dbRun
	for _, d := range dbs {
		if !d.Enabled {
			continue
		}
		loc, err := time.LoadLocation(d.TimeZone)
		if err != nil {
			loc = acc.Location()
		}
		run := &dbRun{e: e, acc: acc, acct: acct, settings: settings, mv: mv, crm: crm, db: d.ClinicDatabase, loc: loc}
		if d.Split() {
			run.live = &lane{realtime: true, after: d.RealtimeCursor, importTo: d.ImportToSeq}
			run.imp = &lane{after: d.Cursor, upTo: d.ImportToSeq}
		} else {
			run.live = &lane{after: d.Cursor}
		}
		if err := run.checkRestored(ctx); err != nil {
			return res, err
		}
		runs = append(runs, run)
	}
	e.analyzeDuringImport(ctx, runs)
	// Rounds over the databases, one page per step: first every database's
	// real-time lane (read again each round), then their grace timers, then
	// one import page each. So a change made after the start waits for at
	// most one import page, and no database's import delays another's
	// changes. The call ends when a round found nothing or at MaxPages.
	pages := 0
	for {
		worked := false
		for prio := range stepCount {
			for _, run := range runs {
				drained, do := run.step(prio)
				if drained == nil || *drained {
					continue
				}
				if pages == e.cfg.MaxPages {
					res.More = true
					return res, nil
				}
				pr, more, err := do(ctx)
				res.add(pr)
				if err != nil {
					return res, err
				}
				*drained = !more
				if pr.Records > 0 || pr.Reevaluated > 0 {
					pages++
					worked = true
				}
			}
		}
		if !worked {
			return res, nil
		}
		// A change that arrived during the round is read in the next one,
		// before the next import page.
		for _, run := range runs {
			run.live.drained = false
		}
	}
}

// stepCount is the number of a database's steps in a round (dbRun.step).
const stepCount = 3

// step returns a database's step of priority prio within a round: the
// real-time lane, the grace timer, the import lane. drained is nil when the
// database has no such step.
func (r *dbRun) step(prio int) (drained *bool, do func(context.Context) (Result, bool, error)) {
	switch {
	case prio == 0:
		return &r.live.drained, func(ctx context.Context) (Result, bool, error) { return r.page(ctx, r.live) }
	case prio == 1:
		return &r.timerDrained, r.reevaluate
	case prio == 2 && r.imp != nil:
		return &r.imp.drained, func(ctx context.Context) (Result, bool, error) { return r.page(ctx, r.imp) }
	}
	return nil, nil
}

// lane is one ordered stream of a database's changes with its cursor: the
// real-time lane (above the import's bound; while no import runs, the only
// lane, committing the single cursor) or the import lane (up to the bound).
type lane struct {
	// realtime: commits move the real-time cursor (store.LaneRealtime).
	realtime bool
	after    int64
	// upTo bounds the import lane (0: none).
	upTo int64
	// importTo is the import's bound the real-time lane reads above.
	importTo int64
	drained  bool
}

// accountRun is what one Process call shares across the account's
// databases: its settings (the contact scan updates them) and the users,
// read once.
type accountRun struct {
	// scanMu serialises the start's scan (write batches run concurrently).
	scanMu    sync.Mutex
	e         *Engine
	accountID int64
	settings  *store.SyncSettings
	crm       CRM
	usersRead bool
	userList  []setup.User
	// rescanned: a restore was noticed in this call (one event per call).
	rescanned bool
}

// beforeWrite runs CheckDrift once per sync start, before its first write.
func (r *dbRun) beforeWrite(ctx context.Context) error {
	e := r.e
	if e.cfg.CheckDrift == nil {
		return nil
	}
	var started time.Time
	if r.settings.SyncStartedAt != nil {
		started = *r.settings.SyncStartedAt
	}
	e.mu.Lock()
	last, ok := e.driftChecked[r.acc.ID]
	e.mu.Unlock()
	if ok && !last.Before(started) {
		return nil
	}
	if err := r.checkDrift(ctx); err != nil {
		return err
	}
	e.mu.Lock()
	e.driftChecked[r.acc.ID] = started
	e.mu.Unlock()
	return nil
}

// checkDrift validates the mapping now; errDrift when it no longer fits
// (CheckDrift marked the account drift with its event).
func (r *dbRun) checkDrift(ctx context.Context) error {
	if r.e.cfg.CheckDrift == nil {
		return nil
	}
	problems, err := r.e.cfg.CheckDrift(ctx, r.acc.ID)
	if err != nil {
		return err
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s", errDrift, setup.DriftDetail(problems))
	}
	return nil
}

// driftSuspect reports whether amoCRM's refusal names a field, pipeline or
// stage: the mapping may no longer fit.
func driftSuspect(reason string) bool {
	for _, s := range []string{"custom_fields_values", "field_id", "status_id", "pipeline_id", "enum_id"} {
		if strings.Contains(reason, s) {
			return true
		}
	}
	return false
}

// checkMapping refuses a mapping without our key fields or pipelines.
func checkMapping(m setup.Mapping) error {
	if !m.Contact[setup.DatumPatientID].Sent() || m.Contact[setup.DatumPatientID].FieldID == 0 ||
		!m.Lead[setup.DatumReceptionID].Sent() || m.Lead[setup.DatumReceptionID].FieldID == 0 {
		return fmt.Errorf("%w: the mapping has no key fields", mirror.ErrInvalid)
	}
	for _, k := range []setup.PipelineKey{setup.PipelinePrimary, setup.PipelineRepeat} {
		if m.Pipelines[k].PipelineID == 0 {
			return fmt.Errorf("%w: pipeline %s is not mapped", mirror.ErrInvalid, k)
		}
	}
	return nil
}

// dbRun is the sync of one database within one Process call.
type dbRun struct {
	// phonesMu guards phones (write batches run concurrently).
	phonesMu sync.Mutex
	e        *Engine
	acct     *accountRun
	phones   *phoneIndex
	matches  map[string]setup.Match
	acc      store.Account
	settings store.SyncSettings
	mv       setup.MappingVersion
	crm      CRM
	db       store.ClinicDatabase
	loc      *time.Location
	dict     *mirror.Dictionaries
	// live is the real-time lane (the only one when no import runs), imp
	// the import lane (nil then); timerDrained: no grace timer is due.
	live, imp    *lane
	timerDrained bool
}

// desiredContact is a contact the page wants in amoCRM.
type desiredContact struct {
	facts   mirror.ContactFacts
	version int64
	hash    []byte
	link    store.EntityLink // zero CRMID: none
	// existed: the patient had a contact before this page (its link);
	// adopted: a contact that existed before the sync was linked now.
	existed bool
	adopted bool
}

// desiredLead is a chain's lead the page wants in amoCRM.
type desiredLead struct {
	chain     mirror.Chain
	facts     mirror.LeadFacts
	staffID   string
	version   int64
	link      store.EntityLink // zero CRMID: none
	linkKey   string           // the source id the link is stored under now
	contactID int64
	hash      []byte
	// contactExisted: the patient's contact was there before this page
	// (linked or adopted), so it may have an inbound lead to continue.
	contactExisted bool
	// continued is the inbound lead this chain continues (nil: none).
	continued *amocrm.Lead
	// reevaluateAt is when a planned reception's grace expires (nil: never).
	reevaluateAt *time.Time
	// starts are the plan starts of the chain's members (a move's event).
	starts map[string]string
}

// page processes one page of changes of lane l; more reports that a full
// page was read (and, for the import lane, its bound is not reached).
//
// A patient may have changes in both lanes (its record in the import, a
// reception changed since): each lane syncs the patient from the current
// rows (the patient, every reception of theirs, the dictionaries), never
// from the change that woke it, so the second lane finds the hashes equal
// and sends nothing. A record is in one lane only: a record changed again
// takes a new change_seq, above the import's bound.
func (r *dbRun) page(ctx context.Context, l *lane) (Result, bool, error) {
	var res Result
	st := r.e.cfg.Store
	changes, err := st.PendingChangesUpTo(ctx, r.db.ID, l.after, l.upTo, r.e.cfg.PageSize)
	if err != nil || len(changes) == 0 {
		return res, false, err
	}
	full := len(changes) == r.e.cfg.PageSize
	if n, err := r.patientPrefix(changes); err != nil {
		return res, false, err
	} else if n < len(changes) {
		changes, full = changes[:n], true
	}
	res.Records = len(changes)
	newCursor := changes[len(changes)-1].ChangeSeq
	if r.dict == nil || slices.ContainsFunc(changes, func(c store.SourceRecord) bool {
		return c.Kind == string(protocol.KindDoctor) || c.Kind == string(protocol.KindBranch)
	}) {
		if err := r.loadDictionaries(ctx); err != nil {
			return res, false, err
		}
	}

	var patientIDs []string
	seen := map[string]bool{}
	addPatient := func(id string) {
		if id != "" && !seen[id] {
			seen[id] = true
			patientIDs = append(patientIDs, id)
		}
	}
	var deleted, doctors, branches []string
	for _, c := range changes {
		switch {
		case c.Kind == string(protocol.KindDoctor) && !c.Deleted:
			doctors = append(doctors, c.SourceID)
		case c.Kind == string(protocol.KindBranch) && !c.Deleted:
			branches = append(branches, c.SourceID)
		case c.Deleted && c.Kind == string(protocol.KindReception):
			// A deleted reception has lost its patient id with its data;
			// its lead is found by the link (see deleteReceptions).
			deleted = append(deleted, c.SourceID)
		case c.Deleted:
			// A deleted patient keeps its contact: amoCRM's history stays.
		case c.Kind == string(protocol.KindPatient):
			addPatient(c.SourceID)
		case c.Kind == string(protocol.KindReception):
			var rec protocol.IdentReception
			if err := json.Unmarshal(c.Data, &rec); err != nil {
				return res, false, fmt.Errorf("engine: reception %s: %w", c.SourceID, err)
			}
			addPatient(rec.PatientID)
		}
	}
	commit := store.SyncCommit{AccountID: r.acc.ID, DatabaseID: r.db.ID, Cursor: newCursor}
	if l.realtime {
		commit.Lane, commit.ImportToSeq = store.LaneRealtime, l.importTo
	}
	if len(deleted) > 0 {
		more, dr, err := r.deleteReceptions(ctx, deleted, &commit)
		res.add(dr)
		if err != nil {
			return res, false, err
		}
		for _, id := range more {
			addPatient(id)
		}
	}
	if len(doctors) > 0 || len(branches) > 0 {
		// A renamed doctor or branch changes what its leads show: their
		// patients are synced again (the leads' hashes include the names).
		ids, err := st.PatientsWithLeadsOf(ctx, r.db.ID, doctors, branches)
		if err != nil {
			return res, false, err
		}
		for _, id := range ids {
			addPatient(id)
		}
	}
	if len(patientIDs) > 0 {
		pr, err := r.sync(ctx, patientIDs, &commit)
		res.add(pr)
		if err != nil {
			return res, false, err
		}
	}
	if err := r.commitPage(ctx, commit); err != nil {
		return res, false, err
	}
	l.after = newCursor
	return res, full && (l.upTo == 0 || newCursor < l.upTo), nil
}

// patientPrefix is how many of changes (at least one) name at most
// Config.PagePatients distinct patients.
func (r *dbRun) patientPrefix(changes []store.SourceRecord) (int, error) {
	seen := map[string]bool{}
	for i, c := range changes {
		id := ""
		switch {
		case c.Deleted:
		case c.Kind == string(protocol.KindPatient):
			id = c.SourceID
		case c.Kind == string(protocol.KindReception):
			var rec protocol.IdentReception
			if err := json.Unmarshal(c.Data, &rec); err != nil {
				return 0, fmt.Errorf("engine: reception %s: %w", c.SourceID, err)
			}
			id = rec.PatientID
		}
		if id == "" || seen[id] {
			continue
		}
		if len(seen) == r.e.cfg.PagePatients {
			return max(i, 1), nil
		}
		seen[id] = true
	}
	return len(changes), nil
}

func (r *dbRun) loadDictionaries(ctx context.Context) error {
	d := mirror.Dictionaries{Doctors: map[string]protocol.IdentDoctor{}, Branches: map[string]protocol.IdentBranch{}}
	doctors, err := r.e.cfg.Store.SourceRecordsOfKind(ctx, r.db.ID, string(protocol.KindDoctor))
	if err != nil {
		return err
	}
	for _, rec := range doctors {
		var doc protocol.IdentDoctor
		if json.Unmarshal(rec.Data, &doc) == nil {
			d.Doctors[rec.SourceID] = doc
		}
	}
	branches, err := r.e.cfg.Store.SourceRecordsOfKind(ctx, r.db.ID, string(protocol.KindBranch))
	if err != nil {
		return err
	}
	for _, rec := range branches {
		var b protocol.IdentBranch
		if json.Unmarshal(rec.Data, &b) == nil {
			d.Branches[rec.SourceID] = b
		}
	}
	r.dict = &d
	return nil
}

// inScope reports whether a reception belongs to the import.
func (r *dbRun) inScope(rec protocol.IdentReception) bool {
	since := r.settings.ImportSince
	return since == "" || (len(rec.PlanStart) >= len(since) && rec.PlanStart[:len(since)] >= since)
}

// sync decides and writes the contacts and leads of patientIDs, adding the
// links, parks and events to commit.
func (r *dbRun) sync(ctx context.Context, patientIDs []string, commit *store.SyncCommit) (Result, error) {
	var res Result
	st := r.e.cfg.Store
	now := r.e.cfg.Now()
	patientRecs, err := st.SourceRecordsByID(ctx, r.db.ID, string(protocol.KindPatient), patientIDs)
	if err != nil {
		return res, err
	}
	receptionRecs, err := st.ReceptionsOfPatients(ctx, r.db.ID, patientIDs)
	if err != nil {
		return res, err
	}
	contactLinks, err := st.EntityLinks(ctx, r.db.ID, store.LinkPatient, patientIDs)
	if err != nil {
		return res, err
	}
	byPatient := map[string][]mirror.Reception{}
	versions := map[string]int64{}
	for _, rec := range receptionRecs {
		var ir protocol.IdentReception
		if err := json.Unmarshal(rec.Data, &ir); err != nil {
			return res, fmt.Errorf("engine: reception %s: %w", rec.SourceID, err)
		}
		byPatient[ir.PatientID] = append(byPatient[ir.PatientID], mirror.Reception{ID: rec.SourceID, IdentReception: ir})
		versions["r"+rec.SourceID] = rec.Version
	}

	var contacts []*desiredContact
	var leads []*desiredLead
	var memberIDs []string
	for _, pr := range patientRecs {
		if pr.Deleted {
			continue
		}
		var ip protocol.IdentPatient
		if err := json.Unmarshal(pr.Data, &ip); err != nil {
			return res, fmt.Errorf("engine: patient %s: %w", pr.SourceID, err)
		}
		patient := mirror.Patient{ID: pr.SourceID, IdentPatient: ip}
		recs := byPatient[patient.ID]
		links := make(map[string]mirror.Link, len(recs))
		byID := make(map[string]mirror.Reception, len(recs))
		for _, rec := range recs {
			links[rec.ID] = mirror.LinkOf(rec.IdentReception)
			byID[rec.ID] = rec
		}
		var patientLeads []*desiredLead
		for _, ch := range mirror.ResolveChains(links).All() {
			cur := byID[ch.Current]
			if !r.inScope(cur.IdentReception) || r.e.cfg.Rules.MovedAway(cur.IdentReception) {
				continue
			}
			state, err := r.e.cfg.Rules.ReceptionState(cur, r.loc, now)
			if err != nil {
				commit.Parked = append(commit.Parked, store.Park{Kind: string(protocol.KindReception), SourceID: cur.ID, Reason: err.Error()})
				continue
			}
			pipeline, err := mirror.PipelineOf(cur, patient.IdentPatient)
			if err != nil {
				commit.Parked = append(commit.Parked, store.Park{Kind: string(protocol.KindReception), SourceID: cur.ID, Reason: err.Error()})
				continue
			}
			facts, err := mirror.BuildLead(mirror.LeadInput{Reception: cur, Patient: patient, State: state, Pipeline: pipeline,
				Dictionaries: *r.dict, Location: r.loc})
			if err != nil {
				commit.Parked = append(commit.Parked, store.Park{Kind: string(protocol.KindReception), SourceID: cur.ID, Reason: err.Error()})
				continue
			}
			dl := &desiredLead{chain: ch, facts: facts, staffID: cur.StaffID, version: versions["r"+cur.ID], starts: map[string]string{}}
			if at, ok := r.e.cfg.Rules.NextReevaluation(cur, r.loc, now); ok {
				dl.reevaluateAt = &at
			}
			for _, id := range ch.Members {
				dl.starts[id] = byID[id].PlanStart
			}
			patientLeads = append(patientLeads, dl)
			memberIDs = append(memberIDs, ch.Members...)
		}
		link, linked := contactLinks[patient.ID]
		if len(patientLeads) == 0 && !linked {
			continue // out of scope
		}
		facts := mirror.BuildContact(patient)
		contacts = append(contacts, &desiredContact{facts: facts, version: pr.Version, link: link, existed: linked && link.CRMID != 0,
			hash: hashOf("contact", facts.Hash, r.mv.ID, 0)})
		leads = append(leads, patientLeads...)
	}

	// Contacts first: leads link to them.
	cr, err := r.writeContacts(ctx, contacts, commit)
	res.add(cr)
	if err != nil {
		return res, err
	}
	contactOf := map[string]int64{}
	contactExisted := map[string]bool{}
	for _, c := range contacts {
		if c.link.CRMID != 0 {
			contactOf[c.facts.PatientID] = c.link.CRMID
			contactExisted[c.facts.PatientID] = c.existed || c.adopted
		}
	}

	leadLinks, err := st.EntityLinks(ctx, r.db.ID, store.LinkAppointment, memberIDs)
	if err != nil {
		return res, err
	}
	// A chain moved from a reception we no longer have (deleted in IDENT in
	// the middle of a chain) may still have a lead: one linked under an
	// earlier root whose current reception is in this chain.
	var orphanMembers []string
	for _, l := range leads {
		if l.chain.MissingFrom != "" && !slices.ContainsFunc(l.chain.Members, func(id string) bool { _, ok := leadLinks[id]; return ok }) {
			orphanMembers = append(orphanMembers, l.chain.Members...)
		}
	}
	byCurrent := map[string]store.EntityLink{}
	if len(orphanMembers) > 0 {
		more, err := st.AppointmentLinksByCurrent(ctx, r.db.ID, orphanMembers)
		if err != nil {
			return res, err
		}
		for _, link := range more {
			if link.CurrentID != "" {
				byCurrent[link.CurrentID] = link
			}
		}
	}
	var ready []*desiredLead
	for _, l := range leads {
		l.linkKey = l.chain.Root
		if link, ok := leadLinks[l.chain.Root]; ok {
			l.link = link
		} else {
			for _, id := range l.chain.Members {
				if link, ok := leadLinks[id]; ok {
					l.link, l.linkKey = link, id
					break
				}
			}
			for _, id := range l.chain.Members {
				if link, ok := byCurrent[id]; ok && l.link.CRMID == 0 {
					l.link, l.linkKey = link, link.SourceID
				}
			}
		}
		l.contactID = contactOf[l.facts.PatientID]
		l.contactExisted = contactExisted[l.facts.PatientID]
		if l.contactID == 0 {
			commit.Parked = append(commit.Parked, store.Park{Kind: string(protocol.KindReception), SourceID: l.facts.ReceptionID,
				Reason: "Контакт пациента не записан в amoCRM"})
			res.Parked++
			continue
		}
		l.hash = hashOf("lead", l.facts.Hash, r.mv.ID, l.contactID)
		ready = append(ready, l)
	}
	lr, err := r.writeLeads(ctx, ready, commit)
	res.add(lr)
	return res, err
}

// hashOf is what a link stores: mirror's content hash with what else
// shapes the request (the mapping version, the lead's contact).
func hashOf(kind, contentHash string, mappingVersionID, contactID int64) []byte {
	sum := sha256.Sum256(fmt.Appendf(nil, "%s\n%s\n%d\n%d", kind, contentHash, mappingVersionID, contactID))
	return sum[:]
}

// writeContacts creates or updates the contacts whose hash changed, and
// commits their links at once (the leads' commit comes later; a lost lead
// commit then costs no contact request on retry).
func (r *dbRun) writeContacts(ctx context.Context, contacts []*desiredContact, commit *store.SyncCommit) (Result, error) {
	var res Result
	var todo []*desiredContact
	for _, c := range contacts {
		if c.link.CRMID == 0 || string(c.link.ContentHash) != string(c.hash) {
			todo = append(todo, c)
		}
	}
	if len(todo) == 0 {
		return res, nil
	}
	if err := r.beforeWrite(ctx); err != nil {
		return res, err
	}
	keyField := r.mv.Mapping.Contact[setup.DatumPatientID].FieldID
	chunks := slices.Collect(slices.Chunk(todo, BatchSize))
	err := r.eachChunk(ctx, len(chunks), r.e.cfg.WriteConcurrency, commit, &res, func(ctx context.Context, i int, commit *store.SyncCommit, res *Result) error {
		chunk := chunks[i]
		mini := store.SyncCommit{AccountID: r.acc.ID, DatabaseID: r.db.ID}
		var unlinked []string
		for _, c := range chunk {
			if c.link.CRMID == 0 {
				unlinked = append(unlinked, c.facts.PatientID)
			}
		}
		if len(unlinked) > 0 {
			var keys [][]string
			var which []*desiredContact
			for _, c := range chunk {
				if c.link.CRMID == 0 {
					keys = append(keys, []string{c.facts.PatientID})
					which = append(which, c)
				}
			}
			found, err := r.existing(ctx, keyLookup{crmType: store.CRMContact, linkType: store.LinkPatient, fieldID: keyField,
				list: fieldsOf(ctx, r.crm.Contacts, func(c amocrm.Contact) (int64, []amocrm.FieldValues) { return c.ID, c.CustomFieldsValues }, nil)}, keys)
			if err != nil {
				return err
			}
			for i, c := range which {
				c.link.CRMID = found[i]
			}
			if err := r.adopt(ctx, chunk, &mini); err != nil {
				return err
			}
			for _, c := range chunk {
				if c.adopted {
					res.Adopted++
				}
			}
		}
		var creates, updates []*desiredContact
		for _, c := range chunk {
			if c.link.CRMID == 0 {
				creates = append(creates, c)
			} else {
				updates = append(updates, c)
			}
		}
		toContact := func(c *desiredContact) amocrm.Contact {
			return amocrm.Contact{ID: c.link.CRMID, Name: c.facts.Name, CustomFieldsValues: contactFields(r.mv.Mapping, c.facts)}
		}
		if err := r.journal(ctx, store.LinkPatient, journalIDs(creates, func(c *desiredContact) string { return c.facts.PatientID })); err != nil {
			return err
		}
		written, parked, err := writeBatch(ctx, creates, toContact, r.crm.CreateContacts)
		if err != nil {
			return err
		}
		if err := r.suspectDrift(ctx, parked); err != nil {
			return err
		}
		for i, c := range creates {
			if written[i] != 0 {
				c.link.CRMID = written[i]
				res.ContactsCreated++
			}
		}
		r.park(commit, parked, func(c *desiredContact) (string, string) { return string(protocol.KindPatient), c.facts.PatientID }, res)
		uwritten, uparked, err := writeBatch(ctx, updates, toContact, r.crm.UpdateContacts)
		if err != nil {
			return err
		}
		if err := r.suspectDrift(ctx, uparked); err != nil {
			return err
		}
		for i := range updates {
			if uwritten[i] != 0 {
				res.ContactsUpdated++
			}
		}
		r.park(commit, uparked, func(c *desiredContact) (string, string) { return string(protocol.KindPatient), c.facts.PatientID }, res)

		var links []store.EntityLink
		var unparked []store.Park
		for i, c := range creates {
			if written[i] != 0 {
				links = append(links, c.linkRow())
				unparked = append(unparked, store.Park{Kind: string(protocol.KindPatient), SourceID: c.facts.PatientID})
			}
		}
		for i, c := range updates {
			if uwritten[i] != 0 {
				links = append(links, c.linkRow())
				unparked = append(unparked, store.Park{Kind: string(protocol.KindPatient), SourceID: c.facts.PatientID})
			}
		}
		// An adoption whose contact write was refused is not kept.
		var events []eventlog.Event
		var adopted []int64
		for _, ev := range mini.Events {
			for _, c := range append(slices.Clone(creates), updates...) {
				if c.adopted && ev.Details["contact_id"] == c.link.CRMID && slices.ContainsFunc(links, func(l store.EntityLink) bool { return l.SourceID == c.facts.PatientID }) {
					events = append(events, ev)
					adopted = append(adopted, c.link.CRMID)
				}
			}
		}
		if len(links) > 0 {
			if err := r.commit(ctx, store.SyncCommit{AccountID: r.acc.ID, DatabaseID: r.db.ID, Links: links,
				Unparked: unparked, Events: events, AdoptedContacts: adopted, Now: r.e.cfg.Now()}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return res, err
	}
	return res, nil
}

func (c *desiredContact) linkRow() store.EntityLink {
	return store.EntityLink{EntityType: store.LinkPatient, SourceID: c.facts.PatientID, CRMEntityType: store.CRMContact,
		CRMID: c.link.CRMID, ContentHash: c.hash, SourceVersion: c.version}
}

// writeLeads creates or updates the leads whose hash changed and adds their
// links to commit.
func (r *dbRun) writeLeads(ctx context.Context, leads []*desiredLead, commit *store.SyncCommit) (Result, error) {
	var res Result
	var todo []*desiredLead
	for _, l := range leads {
		if l.link.CRMID == 0 || string(l.link.ContentHash) != string(l.hash) || l.linkKey != l.chain.Root {
			todo = append(todo, l)
		}
	}
	if len(todo) == 0 {
		return res, nil
	}
	if err := r.beforeWrite(ctx); err != nil {
		return res, err
	}
	matches, err := r.responsibles(ctx)
	if err != nil {
		return res, err
	}
	keyField := r.mv.Mapping.Lead[setup.DatumReceptionID].FieldID
	chunks := slices.Collect(slices.Chunk(todo, BatchSize))
	// A chain of a contact that existed may continue an inbound lead, and
	// which chain does depends on what amoCRM shows after the batches
	// before: such steps write one batch at a time.
	concurrency := r.e.cfg.WriteConcurrency
	if r.acct.settings.ContinueInboundLeads && slices.ContainsFunc(todo, func(l *desiredLead) bool { return l.contactExisted && l.link.CRMID == 0 }) {
		concurrency = 1
	}
	err = r.eachChunk(ctx, len(chunks), concurrency, commit, &res, func(ctx context.Context, i int, commit *store.SyncCommit, res *Result) error {
		chunk := chunks[i]
		// The current stage of linked leads, for the exception rule and to
		// notice a manager's move; a lead amoCRM no longer has is created
		// again.
		current := map[int64]amocrm.Lead{}
		var linkedIDs []string
		for _, l := range chunk {
			if l.link.CRMID != 0 {
				linkedIDs = append(linkedIDs, itoa(l.link.CRMID))
			}
		}
		if len(linkedIDs) > 0 {
			page, err := r.crm.Leads(ctx, amocrm.ListParams{Limit: BatchSize, Extra: map[string][]string{"filter[id][]": linkedIDs}})
			if err != nil {
				return err
			}
			for _, l := range page.Items {
				current[l.ID] = l
			}
			for _, l := range chunk {
				if _, ok := current[l.link.CRMID]; l.link.CRMID != 0 && !ok {
					l.link.CRMID = 0
				}
			}
		}
		var keys [][]string
		var which []*desiredLead
		for _, l := range chunk {
			if l.link.CRMID == 0 {
				keys = append(keys, l.chain.Members)
				which = append(which, l)
			}
		}
		if len(keys) > 0 {
			found, err := r.existing(ctx, keyLookup{crmType: store.CRMLead, linkType: store.LinkAppointment, fieldID: keyField,
				list: fieldsOf(ctx, r.crm.Leads, func(l amocrm.Lead) (int64, []amocrm.FieldValues) { return l.ID, l.CustomFieldsValues },
					func(l amocrm.Lead) { current[l.ID] = l })}, keys)
			if err != nil {
				return err
			}
			for i, l := range which {
				l.link.CRMID = found[i]
			}
		}
		var creates, updates []*desiredLead
		for _, l := range chunk {
			if l.link.CRMID == 0 {
				creates = append(creates, l)
			} else {
				updates = append(updates, l)
			}
		}
		if err := r.continueInbound(ctx, creates); err != nil {
			return err
		}
		var stillCreates, continued []*desiredLead
		for _, l := range creates {
			if l.continued != nil {
				current[l.continued.ID] = *l.continued
				updates = append(updates, l)
				continued = append(continued, l)
			} else {
				stillCreates = append(stillCreates, l)
			}
		}
		creates = stillCreates
		// A continued lead gets our key field with the update: journaled
		// like a create, so a retry after a lost commit finds it by the key
		// (it is in our pipeline then, no longer an inbound lead).
		if err := r.journal(ctx, store.LinkAppointment, journalIDs(continued, func(l *desiredLead) string { return l.chain.Root })); err != nil {
			return err
		}
		// target is where a lead goes: the mapped pipeline and stage, or its
		// current ones when it sits in an exception stage.
		target := func(l *desiredLead) (pipelineID, statusID int64, held bool) {
			pm := r.mv.Mapping.Pipelines[setup.PipelineKey(l.facts.Pipeline)]
			if cur, ok := current[l.link.CRMID]; ok && l.link.CRMID != 0 && r.held(cur) {
				return cur.PipelineID, cur.StatusID, true
			}
			return pm.PipelineID, pm.Stages[setup.State(l.facts.State)], false
		}
		toLead := func(l *desiredLead) amocrm.Lead {
			pipelineID, statusID, held := target(l)
			lead := amocrm.Lead{ID: l.link.CRMID, Name: l.facts.Name, Price: priceOf(l.facts.AmountKopecks),
				ResponsibleUserID: responsibleOf(r.mv.Mapping.Responsible, matches, l.staffID),
				PipelineID:        pipelineID, StatusID: statusID,
				CustomFieldsValues: leadFields(r.mv.Mapping, l.facts)}
			if l.link.CRMID == 0 {
				lead.Embedded = &amocrm.LeadEmbedded{Contacts: []amocrm.EntityRef{{ID: l.contactID, IsMain: true}}}
				return lead
			}
			if l.continued != nil {
				// A continued lead keeps what the call or the form gave it:
				// its name, its manager, its source and UTM fields (only our
				// mapped fields are sent; amoCRM keeps the others).
				lead.Name, lead.ResponsibleUserID = "", 0
			}
			if held {
				lead.PipelineID, lead.StatusID = 0, 0
			}
			return lead
		}
		if err := r.journal(ctx, store.LinkAppointment, journalIDs(creates, func(l *desiredLead) string { return l.chain.Root })); err != nil {
			return err
		}
		written, parked, err := writeBatch(ctx, creates, toLead, r.crm.CreateLeads)
		if err != nil {
			return err
		}
		if err := r.suspectDrift(ctx, parked); err != nil {
			return err
		}
		for i, l := range creates {
			if written[i] != 0 {
				l.link.CRMID = written[i]
				res.LeadsCreated++
			}
		}
		uwritten, uparked, err := writeBatch(ctx, updates, toLead, r.crm.UpdateLeads)
		if err != nil {
			return err
		}
		if err := r.suspectDrift(ctx, uparked); err != nil {
			return err
		}
		for i := range updates {
			if uwritten[i] != 0 {
				res.LeadsUpdated++
			}
		}
		key := func(l *desiredLead) (string, string) { return string(protocol.KindReception), l.facts.ReceptionID }
		r.park(commit, parked, key, res)
		r.park(commit, uparked, key, res)
		for _, batch := range []struct {
			items   []*desiredLead
			written []int64
		}{{creates, written}, {updates, uwritten}} {
			for i, l := range batch.items {
				if batch.written[i] == 0 {
					continue
				}
				pipelineID, statusID, held := target(l)
				r.leadEvents(l, current[l.link.CRMID], pipelineID, statusID, held, commit)
				if l.continued != nil {
					res.Continued++
				}
				commit.ClearIntents = append(commit.ClearIntents, l.chain.Members...)
				if l.linkKey != l.chain.Root {
					commit.Rekeys = append(commit.Rekeys, store.Rekey{EntityType: store.LinkAppointment, From: l.linkKey, To: l.chain.Root})
				}
				commit.Links = append(commit.Links, store.EntityLink{EntityType: store.LinkAppointment, SourceID: l.chain.Root,
					CRMEntityType: store.CRMLead, CRMID: l.link.CRMID, ContentHash: l.hash, SourceVersion: l.version,
					PatientID: l.facts.PatientID, CurrentID: l.chain.Current, PipelineID: pipelineID, StatusID: statusID, ReevaluateAt: l.reevaluateAt})
				commit.Unparked = append(commit.Unparked, store.Park{Kind: string(protocol.KindReception), SourceID: l.facts.ReceptionID})
			}
		}
		return nil
	})
	if err != nil {
		return res, err
	}
	return res, nil
}

// leadEvents adds what the event log says about a written lead: an inbound
// lead continued, a manager's move undone, an appointment moved.
func (r *dbRun) leadEvents(l *desiredLead, cur amocrm.Lead, pipelineID, statusID int64, held bool, commit *store.SyncCommit) {
	dbID := r.db.ID
	stage := mirror.State(l.facts.State).Title()
	pipeline := mirror.Pipeline(l.facts.Pipeline).Title()
	details := map[string]any{"lead_id": l.link.CRMID, "kind": string(protocol.KindReception), "source_id": l.facts.ReceptionID}
	add := func(msg string) {
		commit.Events = append(commit.Events, eventlog.Event{AccountID: r.acc.ID, DatabaseID: &dbID, Type: EventSync,
			Message: fmt.Sprintf("«%s»: %s", r.db.Name, msg), Details: details})
	}
	switch {
	case l.continued != nil:
		name := l.continued.Name
		if name == "" {
			name = "без названия"
		}
		add(fmt.Sprintf("Заявка «%s» (сделка №%d) продолжена записью на приём %s: сделка переведена в воронку «%s», этап «%s»; источник и метки сохранены",
			name, l.link.CRMID, l.facts.StartLocal.Format("02.01.2006 15:04"), pipeline, stage))
	case !held && l.link.PipelineID != 0 && cur.ID != 0 &&
		(cur.PipelineID != l.link.PipelineID || cur.StatusID != l.link.StatusID) &&
		(cur.PipelineID != pipelineID || cur.StatusID != statusID):
		add(fmt.Sprintf("Сделка №%d была перемещена вручную; по изменению записи %s она переведена в воронку «%s», этап «%s»",
			l.link.CRMID, l.facts.ReceptionID, pipeline, stage))
	}
	if prev := l.link.CurrentID; prev != "" && prev != l.chain.Current && slices.Contains(l.chain.Members, prev) {
		add(fmt.Sprintf("Запись перенесена: %s → %s (%s, сделка №%d)", r.localStart(l.starts[prev]), l.facts.StartLocal.Format("02.01.2006 15:04"),
			l.facts.Name, l.link.CRMID))
	}
}

// localStart shows a naive IDENT time as 02.01.2006 15:04.
func (r *dbRun) localStart(naive string) string {
	t, err := time.Parse(protocol.LocalTimeLayout, naive)
	if err != nil {
		return naive
	}
	return t.Format("02.01.2006 15:04")
}

// suspectDrift checks the mapping when amoCRM refused a field, pipeline or
// stage: errDrift when it no longer fits, so nothing is parked for a
// settings problem.
func (r *dbRun) suspectDrift(ctx context.Context, parked any) error {
	var reasons []string
	switch p := parked.(type) {
	case []parkedItem[*desiredContact]:
		for _, it := range p {
			reasons = append(reasons, it.reason)
		}
	case []parkedItem[*desiredLead]:
		for _, it := range p {
			reasons = append(reasons, it.reason)
		}
	}
	if !slices.ContainsFunc(reasons, driftSuspect) {
		return nil
	}
	return r.checkDrift(ctx)
}

// held reports whether a lead sits in an exception stage of the mapped
// pipeline it is in: its stage and pipeline are then left alone.
func (r *dbRun) held(l amocrm.Lead) bool {
	for _, pm := range r.mv.Mapping.Pipelines {
		if pm.PipelineID == l.PipelineID && pm.IsException(l.StatusID) {
			return true
		}
	}
	return false
}

// parkedItem is an item amoCRM refused, with its message.
type parkedItem[T any] struct {
	item   T
	reason string
}

func (r *dbRun) park(commit *store.SyncCommit, parked any, key any, res *Result) {
	switch p := parked.(type) {
	case []parkedItem[*desiredContact]:
		k := key.(func(*desiredContact) (string, string))
		for _, it := range p {
			kind, id := k(it.item)
			r.addPark(commit, kind, id, it.reason, res)
		}
	case []parkedItem[*desiredLead]:
		k := key.(func(*desiredLead) (string, string))
		for _, it := range p {
			kind, id := k(it.item)
			r.addPark(commit, kind, id, it.reason, res)
		}
	}
}

func (r *dbRun) addPark(commit *store.SyncCommit, kind, id, reason string, res *Result) {
	res.Parked++
	commit.Parked = append(commit.Parked, store.Park{Kind: kind, SourceID: id, Reason: reason})
	what := "Пациент"
	if kind == string(protocol.KindReception) {
		what = "Запись"
	}
	dbID := r.db.ID
	commit.Events = append(commit.Events, eventlog.Event{AccountID: r.acc.ID, DatabaseID: &dbID, Type: eventlog.TypeSyncError,
		Severity: eventlog.Error, Message: fmt.Sprintf("«%s»: %s %s не передан(а) в amoCRM: %s", r.db.Name, what, id, reason),
		Details: map[string]any{"kind": kind, "source_id": id, "reason": reason, "action": "resend"}})
}

// writeBatch sends items (at most BatchSize) with request ids that are
// their indexes. A validation error parks the items amoCRM named and sends
// the rest again; when amoCRM names none, each item is sent alone to find
// the bad ones. written[i] is item i's amoCRM id, 0 when it was parked.
func writeBatch[T any, E any](ctx context.Context, items []T, build func(T) E, send func(context.Context, []E) ([]amocrm.Saved, error)) ([]int64, []parkedItem[T], error) {
	written := make([]int64, len(items))
	var parked []parkedItem[T]
	pending := make([]int, len(items))
	for i := range items {
		pending[i] = i
	}
	for len(pending) > 0 {
		batch := make([]E, len(pending))
		for j, i := range pending {
			batch[j] = build(items[i])
			setRequestID(&batch[j], itoa(int64(j)))
		}
		saved, err := send(ctx, batch)
		var verr *amocrm.ValidationError
		if err == nil {
			for j, i := range pending {
				written[i] = saved[j].ID
			}
			return written, parked, nil
		}
		if !errors.As(err, &verr) {
			return written, parked, err
		}
		bad := map[int]string{}
		for _, it := range verr.Items {
			var j int
			if _, scanErr := fmt.Sscan(it.RequestID, &j); scanErr == nil && j >= 0 && j < len(pending) {
				bad[j] = validationMessage(verr, it)
			}
		}
		if len(bad) == 0 {
			if len(pending) == 1 {
				parked = append(parked, parkedItem[T]{items[pending[0]], validationMessage(verr, amocrm.ItemErrors{})})
				return written, parked, nil
			}
			// amoCRM did not say which: send each alone.
			for _, i := range pending {
				w, p, err := writeBatch(ctx, []T{items[i]}, build, send)
				if err != nil {
					return written, parked, err
				}
				written[i] = w[0]
				parked = append(parked, p...)
			}
			return written, parked, nil
		}
		var rest []int
		for j, i := range pending {
			if msg, ok := bad[j]; ok {
				parked = append(parked, parkedItem[T]{items[i], msg})
			} else {
				rest = append(rest, i)
			}
		}
		pending = rest
	}
	return written, parked, nil
}

func setRequestID(v any, id string) {
	switch x := v.(type) {
	case *amocrm.Contact:
		x.RequestID = id
	case *amocrm.Lead:
		x.RequestID = id
	}
}

// validationMessage is amoCRM's refusal in words for the event log.
func validationMessage(verr *amocrm.ValidationError, it amocrm.ItemErrors) string {
	var parts []string
	for _, fe := range it.Errors {
		s := fe.Code
		if fe.Path != "" {
			s += " (" + fe.Path + ")"
		}
		if fe.Detail != "" {
			s += ": " + fe.Detail
		}
		parts = append(parts, s)
	}
	if len(parts) == 0 {
		return strings.TrimSpace("amoCRM отклонил запрос: " + firstNonEmpty(verr.Detail, verr.Title))
	}
	return "amoCRM отклонил: " + strings.Join(parts, "; ")
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

// fieldsOf adapts an entity list to findByKey: each page's field values
// with the id of the entity each belongs to; seen, when set, gets every
// entity listed.
func fieldsOf[E any](ctx context.Context, list func(context.Context, amocrm.ListParams) (amocrm.Page[E], error),
	fields func(E) (int64, []amocrm.FieldValues), seen func(E)) func(amocrm.ListParams) ([]amocrm.FieldValues, []int64, bool, error) {
	return func(p amocrm.ListParams) ([]amocrm.FieldValues, []int64, bool, error) {
		page, err := list(ctx, p)
		var fvs []amocrm.FieldValues
		var ids []int64
		for _, e := range page.Items {
			id, values := fields(e)
			for _, fv := range values {
				fvs = append(fvs, fv)
				ids = append(ids, id)
			}
			if seen != nil {
				seen(e)
			}
		}
		return fvs, ids, page.HasNext, err
	}
}

// findByKey searches amoCRM for entities whose key field holds one of keys
// (pages of the filter are followed) and returns the entity ids per key,
// ascending. list returns the field values of a page with the entity id of
// each.
func findByKey(ctx context.Context, keys []string, fieldID int64,
	list func(amocrm.ListParams) ([]amocrm.FieldValues, []int64, bool, error)) (map[string][]int64, error) {
	found := map[string][]int64{}
	filter := fmt.Sprintf("filter[custom_fields_values][%d][]", fieldID)
	for chunk := range slices.Chunk(keys, BatchSize) {
		want := map[string]bool{}
		for _, k := range chunk {
			want[k] = true
		}
		for pageNo := 1; ; pageNo++ {
			fvs, ids, more, err := list(amocrm.ListParams{Page: pageNo, Limit: amocrm.DefaultPageLimit, Extra: map[string][]string{filter: chunk}})
			if err != nil {
				return nil, err
			}
			for i, fv := range fvs {
				if fv.FieldID != fieldID {
					continue
				}
				for _, v := range fv.Values {
					k := strings.TrimSpace(fmt.Sprint(v.Value))
					if want[k] && !slices.Contains(found[k], ids[i]) {
						found[k] = append(found[k], ids[i])
					}
				}
			}
			if !more || ctx.Err() != nil {
				break
			}
		}
	}
	for _, ids := range found {
		slices.Sort(ids)
	}
	return found, ctx.Err()
}
