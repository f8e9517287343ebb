package setup

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/svyazka/svyazka/backend/apperr"
	"github.com/svyazka/svyazka/backend/eventlog"
)

// CRM is one amoCRM account as the runner sees it. The amoCRM adapter
// (backend/amosetup) implements it; it respects the shared rate limit.
//
// Errors: a *RejectedError when amoCRM refused the item itself (a cap, a
// validation error: permanent); any other error is returned as it is and
// the Runner's Transient classifier decides whether it is worth retrying.
type CRM interface {
	// Snapshot reads every pipeline with its stages, the contact and lead
	// fields and, when the token may read them, the users.
	Snapshot(ctx context.Context) (Snapshot, error)
	// CreatePipeline creates a pipeline with the named stages (in order) and
	// returns it as amoCRM lists it, system stages included.
	CreatePipeline(ctx context.Context, name string, stages []string) (Pipeline, error)
	// CreateStage adds a stage to a pipeline.
	CreateStage(ctx context.Context, pipelineID int64, name string) (Stage, error)
	// CreateField creates a custom field (with enums for enumerated types).
	CreateField(ctx context.Context, e Entity, name string, t FieldType, enums []string) (Field, error)
}

// RejectedError is amoCRM refusing an item for good; Message is amoCRM's
// own words (shown to the user next to the item).
type RejectedError struct {
	Message string
	Err     error
}

// Error implements error.
func (e *RejectedError) Error() string { return "amoCRM rejected the item: " + e.Message }

// Unwrap returns the adapter's error.
func (e *RejectedError) Unwrap() error { return e.Err }

// RunState is where an autosetup run stands.
type RunState string

// Run states, stored as they are.
const (
	RunRunning   RunState = "running"
	RunSucceeded RunState = "succeeded"
	RunFailed    RunState = "failed"
)

// Progress is how far a run got: Done of Total items, Item the one being
// created (or that failed).
type Progress struct {
	Done  int     `json:"done"`
	Total int     `json:"total"`
	Item  ItemKey `json:"item"`
}

// Run is one autosetup run: what was asked and how far it got. Created
// holds the amoCRM ids the run created (reused items are not listed).
type Run struct {
	ID         string
	AccountID  int64
	State      RunState
	Blocks     []Block
	Renames    map[ItemKey]string
	Progress   Progress
	Created    map[ItemKey]int64
	Error      string
	ErrorItem  ItemKey
	StartedBy  string
	StartedAt  time.Time
	UpdatedAt  time.Time
	FinishedAt *time.Time
}

// MappingVersion is one saved mapping of an account.
type MappingVersion struct {
	ID        int64
	AccountID int64
	Version   int
	Mapping   Mapping
	CreatedBy string
	CreatedAt time.Time
}

// AccountState is the account's setup status as stored, with its detail (why
// failed or drift) and whether the sync is stopped.
type AccountState struct {
	Status Status
	Detail string
	// SyncStopped: the sync is stopped (autosetup is allowed).
	SyncStopped bool
}

// Commit is what one step of setup writes in one transaction: an updated
// run, a new mapping version (made current), and a change of the account's
// state with the event that tells about it. Update sees the state under a
// row lock and returns the event to record (nil: none); nil fields are not
// written.
type Commit struct {
	Run *Run
	// IdleBefore, when set, writes Run only if its last progress (UpdatedAt
	// as stored) is before it: a run that moved on since is not written and
	// the commit fails with ErrRunFinished, as for a finished run.
	IdleBefore time.Time
	Mapping    *Mapping
	By         string
	Update     func(*AccountState) *eventlog.Event
}

// Store is the storage the Runner needs; backend/store (with the task
// outbox, in jobs) implements it.
type Store interface {
	// CreateRun records run (running), sets the account's status to running
	// and schedules the apply task, in one transaction. Errors: ErrSyncRunning
	// (re-checked under the lock), ErrRunActive.
	CreateRun(ctx context.Context, run Run) error
	// Run returns a run by id (store.ErrNotFound: not found).
	Run(ctx context.Context, id string) (Run, error)
	// LatestRun returns the account's newest run (false: none yet).
	LatestRun(ctx context.Context, accountID int64) (Run, bool, error)
	// SaveProgress writes a running run's progress and created ids and
	// stamps its last progress now (the heartbeat FailIdle looks at).
	SaveProgress(ctx context.Context, run Run) error
	// IdleRuns lists the running runs whose last progress is before before.
	IdleRuns(ctx context.Context, before time.Time) ([]Run, error)
	// Commit writes c in one transaction and returns the new mapping version
	// when c.Mapping is set.
	Commit(ctx context.Context, accountID int64, c Commit) (MappingVersion, error)
	// Mapping returns the account's current mapping (false: none yet).
	Mapping(ctx context.Context, accountID int64) (MappingVersion, bool, error)
	// State returns the account's setup state.
	State(ctx context.Context, accountID int64) (AccountState, error)
}

// Errors of the Runner (apperr errors: the HTTP layer answers them as they are).
var (
	// ErrSyncRunning: autosetup needs the sync stopped.
	ErrSyncRunning = apperr.New(apperr.Conflict, "Остановите синхронизацию, чтобы выполнить автонастройку")
	// ErrRunActive: another run of the account is running.
	ErrRunActive = apperr.New(apperr.Conflict, "Автонастройка уже выполняется: дождитесь её окончания")
	// ErrRunFinished: Run was called for a run that is no longer running.
	ErrRunFinished = errors.New("setup: run already finished")
	// ErrRunFailed: the run failed for good (marked failed, event recorded);
	// the task must not be retried.
	ErrRunFailed = errors.New("setup: run failed")
)

// Runner applies autosetup, saves mappings and checks drift for any
// account. Every field is required except Plan (DefaultPlan) and Now.
type Runner struct {
	Store Store
	// CRM opens an account's amoCRM.
	CRM func(ctx context.Context, accountID int64) (CRM, error)
	// Transient reports whether a CRM error is worth retrying (429, 5xx,
	// timeouts); others fail the run.
	Transient func(error) bool
	Plan      *Plan
	Now       func() time.Time
}

func (r *Runner) plan() Plan {
	if r.Plan != nil {
		return *r.Plan
	}
	return DefaultPlan()
}

func (r *Runner) now() time.Time {
	if r.Now != nil {
		return r.Now().UTC()
	}
	return time.Now().UTC()
}

func (r *Runner) check() error {
	if r.Store == nil || r.CRM == nil || r.Transient == nil {
		return errors.New("setup: Runner needs Store, CRM and Transient")
	}
	return nil
}

// Start validates an autosetup request and records it: the sync must be
// stopped (ErrSyncRunning), no other run may be running (ErrRunActive), and
// Propose must accept the blocks and renames on a fresh snapshot (its
// *ItemError, naming the item, for a cap or a bad rename). The run and its
// task are recorded in one transaction; the task calls Run. It returns the
// run and the proposal it was checked with.
func (r *Runner) Start(ctx context.Context, accountID int64, blocks []Block, renames map[ItemKey]string, startedBy string) (Run, Proposal, error) {
	if err := r.check(); err != nil {
		return Run{}, Proposal{}, err
	}
	if len(blocks) == 0 {
		blocks = AllBlocks()
	}
	st, err := r.Store.State(ctx, accountID)
	if err != nil {
		return Run{}, Proposal{}, err
	}
	if !st.SyncStopped {
		return Run{}, Proposal{}, ErrSyncRunning
	}
	if st.Status == StatusRunning {
		return Run{}, Proposal{}, ErrRunActive
	}
	crm, err := r.CRM(ctx, accountID)
	if err != nil {
		return Run{}, Proposal{}, err
	}
	snap, err := crm.Snapshot(ctx)
	if err != nil {
		return Run{}, Proposal{}, fmt.Errorf("setup: start (account %d): read amoCRM: %w", accountID, err)
	}
	prop, err := Propose(r.plan(), snap, blocks, renames)
	if err != nil {
		return Run{}, Proposal{}, err
	}
	now := r.now()
	run := Run{ID: uuid.NewString(), AccountID: accountID, State: RunRunning, Blocks: prop.Blocks,
		Renames: maps.Clone(renames), Progress: Progress{Total: countCreates(prop)}, Created: map[ItemKey]int64{},
		StartedBy: startedBy, StartedAt: now, UpdatedAt: now}
	if run.Renames == nil {
		run.Renames = map[ItemKey]string{}
	}
	if err := r.Store.CreateRun(ctx, run); err != nil {
		return Run{}, Proposal{}, err
	}
	return run, prop, nil
}

func countCreates(p Proposal) int { return len(p.ToCreate()) }

// Run is the apply task's body. It re-reads amoCRM, re-proposes with the
// run's blocks and renames and creates what is still missing, item by item,
// saving progress after each. Because every pass starts from what amoCRM
// has, a re-run or a resume after a crash, a 429 or a 5xx (even one whose
// write was applied) finds what already exists by name and creates nothing
// twice.
//
// On success it saves the mapping as a new version, marks the run
// succeeded and the account configured with the event «Связка настроена».
// A permanent failure (a cap, amoCRM rejecting an item, a bad plan) marks
// the run and the account failed with the item and amoCRM's message and
// returns an error wrapping ErrRunFailed. A transient error is returned as
// it is (the run stays running; retry later). ErrRunFinished: nothing to do.
func (r *Runner) Run(ctx context.Context, runID string) error {
	if err := r.check(); err != nil {
		return err
	}
	run, err := r.Store.Run(ctx, runID)
	if err != nil {
		return err
	}
	if run.State != RunRunning {
		return fmt.Errorf("%w: %s is %s", ErrRunFinished, runID, run.State)
	}
	if run.Created == nil {
		run.Created = map[ItemKey]int64{}
	}
	// The heartbeat: a retry may start long after the run last moved (the
	// retry delay); without this touch FailIdle could take a live attempt
	// for a lost one before its first item is created.
	run.UpdatedAt = r.now()
	if err := r.Store.SaveProgress(ctx, run); err != nil {
		return err
	}
	crm, err := r.CRM(ctx, run.AccountID)
	if err != nil {
		return r.failOrReturn(ctx, &run, "", err)
	}
	plan := r.plan()
	// Each pass creates everything the proposal lists; the next pass starts
	// from a fresh snapshot. Normally the second pass has nothing to create.
	for pass := 0; pass < 3; pass++ {
		snap, err := crm.Snapshot(ctx)
		if err != nil {
			return r.failOrReturn(ctx, &run, "", fmt.Errorf("setup: run %s: read amoCRM: %w", runID, err))
		}
		prop, err := Propose(plan, snap, run.Blocks, run.Renames)
		if err != nil {
			return r.fail(ctx, &run, itemOf(err), messageOf(err), err)
		}
		todo := prop.ToCreate()
		if len(todo) == 0 {
			return r.succeed(ctx, &run, prop, snap)
		}
		run.Progress.Total = run.Progress.Done + len(todo)
		if err := r.apply(ctx, crm, &run, prop); err != nil {
			return err
		}
	}
	return r.fail(ctx, &run, "", "amoCRM не показывает созданные элементы; повторите автонастройку",
		fmt.Errorf("setup: run %s: items still missing after creating them", runID))
}

// apply creates the proposal's missing items in ToCreate order: a new
// pipeline with its stages in one call, then stages of reused pipelines,
// then fields. Progress is saved after each call.
func (r *Runner) apply(ctx context.Context, crm CRM, run *Run, prop Proposal) error {
	step := func(item ItemKey, items int, create func() error) error {
		run.Progress.Item = item
		if err := create(); err != nil {
			return r.failOrReturn(ctx, run, item, err)
		}
		run.Progress.Done += items
		run.UpdatedAt = r.now()
		return r.Store.SaveProgress(ctx, *run)
	}
	for _, pp := range prop.Pipelines {
		if pp.Action != ActionCreate {
			continue
		}
		names := make([]string, 0, len(pp.Stages))
		for _, sp := range pp.Stages {
			names = append(names, sp.Name)
		}
		err := step(pp.Item, 1+len(pp.Stages), func() error {
			p, err := crm.CreatePipeline(ctx, pp.Name, names)
			if err != nil {
				return err
			}
			run.Created[pp.Item] = p.ID
			for _, sp := range pp.Stages {
				for _, st := range p.Stages {
					if !st.System() && SameName(st.Name, sp.Name) {
						run.Created[sp.Item] = st.ID
					}
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	for _, pp := range prop.Pipelines {
		if pp.Action != ActionReuse {
			continue
		}
		for _, sp := range pp.Stages {
			if sp.Action != ActionCreate {
				continue
			}
			err := step(sp.Item, 1, func() error {
				st, err := crm.CreateStage(ctx, pp.ExistingID, sp.Name)
				if err == nil {
					run.Created[sp.Item] = st.ID
				}
				return err
			})
			if err != nil {
				return err
			}
		}
	}
	for _, fields := range [][]FieldProposal{prop.Contact, prop.Lead} {
		for _, fp := range fields {
			if fp.Action != ActionCreate {
				continue
			}
			var enums []string
			for _, v := range fp.Values {
				enums = append(enums, v.Name)
			}
			err := step(fp.Item, 1, func() error {
				f, err := crm.CreateField(ctx, fp.Entity, fp.Name, fp.Type, enums)
				if err == nil {
					run.Created[fp.Item] = f.ID
				}
				return err
			})
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// succeed builds the mapping from a proposal that reuses everything and
// commits it with the run and the account's new status: configured when the
// whole mapping fits snap, else (some blocks were left out) not_configured
// with what is missing.
func (r *Runner) succeed(ctx context.Context, run *Run, prop Proposal, snap Snapshot) error {
	base, _, err := r.Store.Mapping(ctx, run.AccountID)
	if err != nil {
		return err
	}
	m, err := MappingFromProposal(base.Mapping, prop, nil)
	if err != nil {
		return r.fail(ctx, run, itemOf(err), messageOf(err), err)
	}
	now := r.now()
	run.State, run.UpdatedAt, run.FinishedAt = RunSucceeded, now, &now
	run.Progress.Done, run.Progress.Item = run.Progress.Total, ""
	reused, created := summary(prop, run.Created)
	problems := r.plan().Validate(m, snap)
	_, err = r.Store.Commit(ctx, run.AccountID, Commit{Run: run, Mapping: &m, By: run.StartedBy,
		Update: func(st *AccountState) *eventlog.Event {
			if len(problems) > 0 {
				st.Status, st.Detail = StatusNotConfigured, DriftDetail(problems)
				return &eventlog.Event{AccountID: run.AccountID, Type: eventlog.TypeSetup, Severity: eventlog.Warning,
					Message: fmt.Sprintf("Автонастройка выполнена (использовано — %d, создано — %d), но настройка не завершена: %s", reused, created, st.Detail),
					Details: map[string]any{"run_id": run.ID, "created": createdDetail(run.Created), "blocks": run.Blocks}}
			}
			st.Status, st.Detail = StatusConfigured, ""
			return &eventlog.Event{AccountID: run.AccountID, Type: eventlog.TypeSetup, Severity: eventlog.Info,
				Message: fmt.Sprintf("Связка настроена: использовано элементов amoCRM — %d, создано — %d", reused, created),
				Details: map[string]any{"run_id": run.ID, "created": createdDetail(run.Created), "blocks": run.Blocks}}
		}})
	return err
}

// summary counts the items the run reused and created.
func summary(prop Proposal, created map[ItemKey]int64) (reused, made int) {
	for _, d := range Decisions(prop) {
		if d.Action != ActionReuse {
			continue
		}
		if _, ok := created[d.Item]; ok {
			made++
		} else {
			reused++
		}
	}
	return reused, made
}

func createdDetail(created map[ItemKey]int64) map[string]int64 {
	out := make(map[string]int64, len(created))
	for k, v := range created {
		out[string(k)] = v
	}
	return out
}

// failOrReturn returns a transient error as it is (the task retries) and
// fails the run for any other.
func (r *Runner) failOrReturn(ctx context.Context, run *Run, item ItemKey, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || r.Transient(err) {
		run.UpdatedAt = r.now()
		if serr := r.Store.SaveProgress(context.WithoutCancel(ctx), *run); serr != nil {
			return errors.Join(err, serr)
		}
		return err
	}
	msg := "Ошибка amoCRM: " + err.Error()
	var rej *RejectedError
	if errors.As(err, &rej) {
		msg = "amoCRM отказал: " + rej.Message
	}
	return r.fail(ctx, run, item, msg, err)
}

// Fail marks a running run failed with message (the task gave up after its
// retries). It does nothing to a run that is no longer running.
func (r *Runner) Fail(ctx context.Context, runID string, cause error) error {
	run, err := r.Store.Run(ctx, runID)
	if err != nil {
		return err
	}
	if run.State != RunRunning {
		return nil
	}
	err = r.fail(ctx, &run, run.Progress.Item, "amoCRM недоступен: "+cause.Error(), cause)
	if errors.Is(err, ErrRunFailed) {
		return nil
	}
	return err
}

// MessageRunLost is the error of a run FailIdle gave up on.
const MessageRunLost = "Автонастройка прервана: задача потеряна; запустите её снова"

// FailIdle fails the runs whose task was lost (Redis flushed, a worker
// killed beyond its retries): every running run with no progress for
// idleFor, which must exceed the longest quiet spell of a live run (an
// attempt's timeout, a retry's delay). Each such run is marked failed with
// MessageRunLost, a running account goes back to failed with that detail,
// and an error event is recorded, in one transaction. A run that moved in
// the meantime is left alone, and a run is failed once however many
// callers race. It returns the runs it failed; a failure to fail one run
// does not stop the others (the errors are joined).
func (r *Runner) FailIdle(ctx context.Context, idleFor time.Duration) ([]Run, error) {
	if r.Store == nil || idleFor <= 0 {
		return nil, errors.New("setup: FailIdle needs Store and idleFor > 0")
	}
	before := r.now().Add(-idleFor)
	idle, err := r.Store.IdleRuns(ctx, before)
	if err != nil {
		return nil, err
	}
	var failed []Run
	var errs []error
	for _, run := range idle {
		lastProgress, item := run.UpdatedAt, run.Progress.Item
		now := r.now()
		run.State, run.UpdatedAt, run.FinishedAt = RunFailed, now, &now
		run.Error, run.ErrorItem = MessageRunLost, ""
		_, err := r.Store.Commit(ctx, run.AccountID, Commit{Run: &run, IdleBefore: before,
			Update: func(st *AccountState) *eventlog.Event {
				if st.Status == StatusRunning {
					st.Status, st.Detail = StatusFailed, MessageRunLost
				}
				return &eventlog.Event{AccountID: run.AccountID, Type: eventlog.TypeSetup, Severity: eventlog.Error,
					Message: MessageRunLost,
					Details: map[string]any{"run_id": run.ID, "item": string(item), "done": run.Progress.Done,
						"total": run.Progress.Total, "last_progress_at": lastProgress.Format(time.RFC3339)}}
			}})
		switch {
		case err == nil:
			failed = append(failed, run)
		case errors.Is(err, ErrRunFinished):
			// Another caller failed it, or its task woke up and moved on.
		default:
			errs = append(errs, fmt.Errorf("setup: fail idle run %s: %w", run.ID, err))
		}
	}
	return failed, errors.Join(errs...)
}

// fail marks the run and the account failed, records the event and returns
// an error wrapping ErrRunFailed and cause.
func (r *Runner) fail(ctx context.Context, run *Run, item ItemKey, message string, cause error) error {
	now := r.now()
	run.State, run.UpdatedAt, run.FinishedAt = RunFailed, now, &now
	run.Error, run.ErrorItem = message, item
	what := itemLabel(r.plan(), item, run.Renames)
	detail := message
	if what != "" {
		detail = what + ": " + message
	}
	_, err := r.Store.Commit(context.WithoutCancel(ctx), run.AccountID, Commit{Run: run,
		Update: func(st *AccountState) *eventlog.Event {
			st.Status, st.Detail = StatusFailed, detail
			return &eventlog.Event{AccountID: run.AccountID, Type: eventlog.TypeSetup, Severity: eventlog.Error,
				Message: "Автонастройка не удалась: " + detail,
				Details: map[string]any{"run_id": run.ID, "item": string(item), "error": cause.Error()}}
		}})
	if err != nil {
		return errors.Join(cause, err)
	}
	return fmt.Errorf("%w: %s: %w", ErrRunFailed, detail, cause)
}

func itemOf(err error) ItemKey {
	var ie *ItemError
	if errors.As(err, &ie) {
		return ie.Item
	}
	return ""
}

func messageOf(err error) string {
	var ie *ItemError
	if errors.As(err, &ie) {
		return ie.Message
	}
	return err.Error()
}

// itemLabel names an item in messages: «Воронка «Повторный приём»».
func itemLabel(plan Plan, item ItemKey, renames map[ItemKey]string) string {
	if item == "" {
		return ""
	}
	name := func(def string) string {
		if r, ok := renames[item]; ok {
			return r
		}
		return def
	}
	for _, ps := range plan.Pipelines {
		if ps.Item() == item {
			return fmt.Sprintf("воронка «%s»", name(ps.Name))
		}
		for _, st := range ps.Stages {
			if StageItem(ps.Key, st.State) == item {
				return fmt.Sprintf("этап «%s» воронки «%s»", name(st.Name), ps.Name)
			}
		}
	}
	for _, fs := range append(slices.Clone(plan.Contact), plan.Lead...) {
		if fs.Item() == item {
			return fmt.Sprintf("поле «%s» (%s)", name(fs.Name), fs.Entity.Label())
		}
	}
	return string(item)
}

// Decisions lists every decision of a proposal in ToCreate's order of
// kinds: pipelines, their stages, contact fields, lead fields.
func Decisions(p Proposal) []Decision {
	var out []Decision
	for _, pp := range p.Pipelines {
		out = append(out, pp.Decision)
	}
	for _, pp := range p.Pipelines {
		for _, sp := range pp.Stages {
			out = append(out, sp.Decision)
		}
	}
	for _, fields := range [][]FieldProposal{p.Contact, p.Lead} {
		for _, fp := range fields {
			out = append(out, fp.Decision)
		}
	}
	return out
}

// CheckDrift validates the account's current mapping against a fresh
// snapshot. New problems (or a changed set of them) mark the account drift
// with an error event «Данные не передаются: …» naming what is missing —
// once per change, never repeated for the same problems; when the problems
// are gone a drifted account is configured again with an event. Accounts
// without a mapping, or with a run running or failed, are left alone. It
// returns the problems found.
func (r *Runner) CheckDrift(ctx context.Context, accountID int64) ([]Problem, error) {
	if err := r.check(); err != nil {
		return nil, err
	}
	st, err := r.Store.State(ctx, accountID)
	if err != nil {
		return nil, err
	}
	if st.Status != StatusConfigured && st.Status != StatusDrift {
		return nil, nil
	}
	mv, ok, err := r.Store.Mapping(ctx, accountID)
	if err != nil || !ok {
		return nil, err
	}
	crm, err := r.CRM(ctx, accountID)
	if err != nil {
		return nil, err
	}
	snap, err := crm.Snapshot(ctx)
	if err != nil {
		return nil, fmt.Errorf("setup: drift check (account %d): read amoCRM: %w", accountID, err)
	}
	problems := r.plan().Validate(mv.Mapping, snap)
	_, err = r.Store.Commit(ctx, accountID, Commit{Update: driftUpdate(accountID, mv.Version, problems)})
	return problems, err
}

// DriftDetail is the stored detail of a drifted mapping: every problem's
// message, joined.
func DriftDetail(problems []Problem) string {
	msgs := make([]string, 0, len(problems))
	for _, p := range problems {
		msgs = append(msgs, p.Message)
	}
	return strings.Join(msgs, "; ")
}

// driftUpdate moves configured ↔ drift by the problems, with one event per
// change; any other status is left as it is.
func driftUpdate(accountID int64, version int, problems []Problem) func(*AccountState) *eventlog.Event {
	return func(st *AccountState) *eventlog.Event {
		if st.Status != StatusConfigured && st.Status != StatusDrift {
			return nil
		}
		detail := DriftDetail(problems)
		switch {
		case len(problems) > 0 && (st.Status != StatusDrift || st.Detail != detail):
			st.Status, st.Detail = StatusDrift, detail
			items := make([]string, 0, len(problems))
			for _, p := range problems {
				items = append(items, string(p.Item))
			}
			return &eventlog.Event{AccountID: accountID, Type: eventlog.TypeSetup, Severity: eventlog.Error,
				Message: "Данные не передаются: " + detail,
				Details: map[string]any{"items": items, "mapping_version": version}}
		case len(problems) == 0 && st.Status == StatusDrift:
			st.Status, st.Detail = StatusConfigured, ""
			return &eventlog.Event{AccountID: accountID, Type: eventlog.TypeSetup, Severity: eventlog.Info,
				Message: "Связка настроена: сопоставление снова соответствует amoCRM, данные передаются",
				Details: map[string]any{"mapping_version": version}}
		}
		return nil
	}
}
