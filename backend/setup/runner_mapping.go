package setup

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/svyazka/svyazka/backend/apperr"
	"github.com/svyazka/svyazka/backend/eventlog"
)

// ExceptionsItem is the key of a pipeline's exception stages in flexible
// setup: "exceptions:primary".
func ExceptionsItem(p PipelineKey) ItemKey { return ItemKey("exceptions:" + string(p)) }

// ItemValue is what flexible setup chose for one item: ID is the amoCRM
// pipeline, stage or field (0 for a field: «Не передавать»), Exceptions the
// exception stages of a pipeline, Responsible the responsible-user policy.
type ItemValue struct {
	ID          int64
	Exceptions  []int64
	Responsible *ResponsiblePolicy
}

// SaveMappingItem changes one item of the account's mapping, checked
// against a fresh snapshot, and saves the result as a new mapping version
// by who. Choosing a pipeline re-matches its stages by name and resets its
// exceptions to won and lost. Afterwards the whole mapping is validated: a
// configured or drifted account becomes configured or drift by the result
// (with an event on change); an account not yet configured becomes
// configured once nothing is missing.
//
// Errors: apperr Invalid naming the problem (an unknown item or id, a field
// of an incompatible type, a required item set to «Не передавать», a
// stage or field chosen twice, a missing user); ErrRunActive while autosetup
// runs; read errors of amoCRM as they are.
func (r *Runner) SaveMappingItem(ctx context.Context, accountID int64, item ItemKey, v ItemValue, by string) (MappingVersion, []Problem, error) {
	if err := r.check(); err != nil {
		return MappingVersion{}, nil, err
	}
	st, err := r.Store.State(ctx, accountID)
	if err != nil {
		return MappingVersion{}, nil, err
	}
	if st.Status == StatusRunning {
		return MappingVersion{}, nil, ErrRunActive
	}
	cur, _, err := r.Store.Mapping(ctx, accountID)
	if err != nil {
		return MappingVersion{}, nil, err
	}
	crm, err := r.CRM(ctx, accountID)
	if err != nil {
		return MappingVersion{}, nil, err
	}
	snap, err := crm.Snapshot(ctx)
	if err != nil {
		return MappingVersion{}, nil, fmt.Errorf("setup: save mapping (account %d): read amoCRM: %w", accountID, err)
	}
	plan := r.plan()
	m := cloneMapping(cur.Mapping)
	if err := plan.setItem(&m, snap, item, v); err != nil {
		return MappingVersion{}, nil, err
	}
	problems := plan.Validate(m, snap)
	drift := driftUpdate(accountID, cur.Version+1, problems)
	mv, err := r.Store.Commit(ctx, accountID, Commit{Mapping: &m, By: by, Update: func(st *AccountState) *eventlog.Event {
		if (st.Status == StatusNotConfigured || st.Status == StatusFailed) && len(problems) == 0 {
			st.Status, st.Detail = StatusConfigured, ""
			return &eventlog.Event{AccountID: accountID, Type: eventlog.TypeSetup, Severity: eventlog.Info,
				Message: "Связка настроена вручную (гибкая настройка)", Details: map[string]any{"by": by}}
		}
		return drift(st)
	}})
	if err != nil {
		return MappingVersion{}, nil, err
	}
	return mv, problems, nil
}

func cloneMapping(m Mapping) Mapping {
	out := Mapping{Pipelines: map[PipelineKey]PipelineMapping{}, Contact: map[Datum]FieldMapping{}, Lead: map[Datum]FieldMapping{},
		Responsible: m.Responsible}
	for k, p := range m.Pipelines {
		p.Stages = maps.Clone(p.Stages)
		p.Exceptions = slices.Clone(p.Exceptions)
		out.Pipelines[k] = p
	}
	for k, f := range m.Contact {
		f.Enums = maps.Clone(f.Enums)
		out.Contact[k] = f
	}
	for k, f := range m.Lead {
		f.Enums = maps.Clone(f.Enums)
		out.Lead[k] = f
	}
	out.Responsible.Overrides = maps.Clone(m.Responsible.Overrides)
	return out
}

func invalid(format string, args ...any) error { return apperr.New(apperr.Invalid, format, args...) }

// setItem applies one flexible-setup choice to m, checked against snap.
func (p Plan) setItem(m *Mapping, snap Snapshot, item ItemKey, v ItemValue) error {
	parts := strings.Split(string(item), ":")
	switch {
	case item == ResponsibleItem:
		if v.Responsible == nil {
			return invalid("Укажите способ выбора ответственного")
		}
		if problems := p.validateResponsible(*v.Responsible, snap); len(problems) > 0 {
			return invalid("%s", problems[0].Message)
		}
		m.Responsible = *v.Responsible
		m.Responsible.Overrides = maps.Clone(v.Responsible.Overrides)
		return nil
	case len(parts) == 2 && parts[0] == "pipeline":
		ps, ok := p.pipelineSpec(PipelineKey(parts[1]))
		if !ok {
			break
		}
		pipe, ok := snap.pipeline(v.ID)
		switch {
		case !ok:
			return invalid("Воронка (id %d) не найдена в amoCRM", v.ID)
		case pipe.Archived:
			return invalid("Воронка «%s» в архиве amoCRM: выберите другую", pipe.Name)
		}
		for key, other := range m.Pipelines {
			if key != ps.Key && other.PipelineID == v.ID {
				return invalid("Воронка «%s» уже выбрана для «%s»", pipe.Name, key.Label())
			}
		}
		old := m.Pipelines[ps.Key]
		if old.PipelineID == v.ID {
			return nil
		}
		pm := PipelineMapping{PipelineID: v.ID, Stages: map[State]int64{}, Exceptions: DefaultExceptions()}
		for _, st := range ps.Stages {
			for _, s := range pipe.Stages {
				if !s.System() && SameName(s.Name, st.Name) && !slices.Contains(slices.Collect(maps.Values(pm.Stages)), s.ID) {
					pm.Stages[st.State] = s.ID
					break
				}
			}
		}
		m.Pipelines[ps.Key] = pm
		return nil
	case len(parts) == 3 && parts[0] == "stage":
		ps, ok := p.pipelineSpec(PipelineKey(parts[1]))
		if !ok || !slices.Contains(States(), State(parts[2])) {
			break
		}
		state := State(parts[2])
		pm, ok := m.Pipelines[ps.Key]
		if !ok || pm.PipelineID == 0 {
			return invalid("Сначала выберите воронку «%s»", ps.Name)
		}
		pipe, ok := snap.pipeline(pm.PipelineID)
		if !ok {
			return invalid("Воронка «%s» удалена в amoCRM: выберите другую", ps.Name)
		}
		stage, ok := pipe.stage(v.ID)
		switch {
		case !ok || v.ID == 0:
			return invalid("Этап (id %d) не найден в воронке «%s»", v.ID, pipe.Name)
		case stage.System():
			return invalid("Системный этап amoCRM нельзя выбрать для состояния записи")
		}
		for other, id := range pm.Stages {
			if other != state && id == v.ID {
				return invalid("Этап «%s» уже выбран для «%s»", stage.Name, other.Label())
			}
		}
		pm.Stages = maps.Clone(pm.Stages)
		if pm.Stages == nil {
			pm.Stages = map[State]int64{}
		}
		pm.Stages[state] = v.ID
		m.Pipelines[ps.Key] = pm
		return nil
	case len(parts) == 2 && parts[0] == "exceptions":
		ps, ok := p.pipelineSpec(PipelineKey(parts[1]))
		if !ok {
			break
		}
		pm, ok := m.Pipelines[ps.Key]
		if !ok || pm.PipelineID == 0 {
			return invalid("Сначала выберите воронку «%s»", ps.Name)
		}
		pipe, ok := snap.pipeline(pm.PipelineID)
		if !ok {
			return invalid("Воронка «%s» удалена в amoCRM: выберите другую", ps.Name)
		}
		for _, id := range v.Exceptions {
			if _, ok := pipe.stage(id); !ok {
				return invalid("Этап (id %d) не найден в воронке «%s»", id, pipe.Name)
			}
		}
		pm.Exceptions = slices.Compact(slices.Sorted(slices.Values(v.Exceptions)))
		if pm.Exceptions == nil {
			pm.Exceptions = []int64{}
		}
		m.Pipelines[ps.Key] = pm
		return nil
	case len(parts) == 3 && parts[0] == "field":
		e := Entity(parts[1])
		if e != EntityContact && e != EntityLead {
			break
		}
		fs, ok := p.Field(e, Datum(parts[2]))
		if !ok {
			break
		}
		fields := m.Contact
		if e == EntityLead {
			fields = m.Lead
		}
		fm, err := p.fieldChoice(fs, fields, snap, v.ID)
		if err != nil {
			return err
		}
		if fm.Sent() {
			fields[fs.Datum] = fm
		} else {
			delete(fields, fs.Datum)
		}
		return nil
	}
	return invalid("Нет такого элемента настройки: %s", item)
}

func (p Plan) pipelineSpec(key PipelineKey) (PipelineSpec, bool) {
	for _, ps := range p.Pipelines {
		if ps.Key == key {
			return ps, true
		}
	}
	return PipelineSpec{}, false
}

// fieldChoice checks that the field id can carry the datum and returns its
// mapping; id 0 is «Не передавать».
func (p Plan) fieldChoice(fs FieldSpec, mapped map[Datum]FieldMapping, snap Snapshot, id int64) (FieldMapping, error) {
	what := fmt.Sprintf("«%s» (%s)", fs.Name, fs.Entity.Label())
	if id == 0 {
		if fs.Required {
			return NotSent, invalid("Поле %s обязательно: выберите поле amoCRM", what)
		}
		return NotSent, nil
	}
	f, ok := snap.field(fs.Entity, id, "")
	switch {
	case !ok:
		return NotSent, invalid("Поле (id %d) не найдено в карточке «%s»", id, fs.Entity.Label())
	case fs.Code != "" && f.Code != fs.Code:
		return NotSent, invalid("Для %s подходит только стандартное поле amoCRM «%s»", what, fs.Name)
	case !fs.Accepts(f.Type):
		return NotSent, invalid("Поле «%s» имеет тип «%s», а для %s нужен %s", f.Name, f.Type.Label(), what, typeList(fs.Compatible))
	}
	for d, other := range mapped {
		if d != fs.Datum && other.FieldID == f.ID {
			name := string(d)
			if os, ok := p.Field(fs.Entity, d); ok {
				name = os.Name
			}
			return NotSent, invalid("Поле «%s» уже выбрано для «%s»", f.Name, name)
		}
	}
	fm := FieldMapping{FieldID: f.ID, Type: f.Type}
	if fs.Code != "" {
		fm.Code = fs.Code
	}
	if f.Type.HasEnums() && len(fs.Values) > 0 {
		fm.Enums = map[string]int64{}
		var missing []string
		for _, v := range fs.Values {
			en, ok := matchEnum(v, f.Enums)
			if !ok {
				missing = append(missing, "«"+v.Name+"»")
				continue
			}
			fm.Enums[v.Key] = en.ID
		}
		if len(missing) > 0 {
			return NotSent, invalid("В поле «%s» нет значений %s: добавьте их в amoCRM или выберите другое поле", f.Name, strings.Join(missing, ", "))
		}
	}
	return fm, nil
}

// Overview is what the settings tab shows: the stored state, the current
// mapping with its problems, the latest run, and — when amoCRM could be
// read — what autosetup would do now and what amoCRM has.
type Overview struct {
	State    AccountState
	Plan     Plan
	Mapping  *MappingVersion
	Problems []Problem
	Run      *Run
	// Snapshot is nil when amoCRM could not be read (SnapshotErr says why).
	Snapshot    *Snapshot
	SnapshotErr error
	// Proposal is nil when Propose refused (ProposalErr, an *ItemError) or
	// amoCRM could not be read.
	Proposal    *Proposal
	ProposalErr error
}

// Overview gathers the settings tab for an account. Only storage errors
// fail it; amoCRM errors land in SnapshotErr.
func (r *Runner) Overview(ctx context.Context, accountID int64) (Overview, error) {
	if err := r.check(); err != nil {
		return Overview{}, err
	}
	st, err := r.Store.State(ctx, accountID)
	if err != nil {
		return Overview{}, err
	}
	ov := Overview{State: st, Plan: r.plan()}
	if mv, ok, err := r.Store.Mapping(ctx, accountID); err != nil {
		return Overview{}, err
	} else if ok {
		ov.Mapping = &mv
	}
	if run, ok, err := r.Store.LatestRun(ctx, accountID); err != nil {
		return Overview{}, err
	} else if ok {
		ov.Run = &run
	}
	crm, err := r.CRM(ctx, accountID)
	if err == nil {
		var snap Snapshot
		if snap, err = crm.Snapshot(ctx); err == nil {
			ov.Snapshot = &snap
		}
	}
	if err != nil {
		ov.SnapshotErr = err
		return ov, nil
	}
	if ov.Mapping != nil {
		ov.Problems = ov.Plan.Validate(ov.Mapping.Mapping, *ov.Snapshot)
	}
	prop, err := Propose(ov.Plan, *ov.Snapshot, AllBlocks(), nil)
	if err != nil {
		ov.ProposalErr = err
	} else {
		ov.Proposal = &prop
	}
	return ov, nil
}

// AccountRun returns a run of the account (store.ErrNotFound-style
// not_found for a run of another account, so ids cannot be probed).
func (r *Runner) AccountRun(ctx context.Context, accountID int64, runID string) (Run, error) {
	if err := r.check(); err != nil {
		return Run{}, err
	}
	run, err := r.Store.Run(ctx, runID)
	if err != nil {
		return Run{}, err
	}
	if run.AccountID != accountID {
		return Run{}, apperr.New(apperr.NotFound, "Автонастройка не найдена.")
	}
	return run, nil
}

// State returns the account's stored setup state.
func (r *Runner) State(ctx context.Context, accountID int64) (AccountState, error) {
	if err := r.check(); err != nil {
		return AccountState{}, err
	}
	return r.Store.State(ctx, accountID)
}
