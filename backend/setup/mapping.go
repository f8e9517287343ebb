package setup

import (
	"fmt"
	"maps"
	"slices"
)

// Mapping says where the sync writes: for each of our pipelines the amoCRM
// pipeline and the stage per state, the exception stages, for each datum the
// amoCRM field, and who becomes responsible. It is what flexible setup edits
// and autosetup produces; the store keeps it as JSON.
type Mapping struct {
	Pipelines map[PipelineKey]PipelineMapping `json:"pipelines"`
	// Contact and Lead map a datum to its field. A datum that is absent, or
	// whose FieldMapping is not Sent, is «Не передавать» (allowed only for
	// data that are not required).
	Contact     map[Datum]FieldMapping `json:"contact"`
	Lead        map[Datum]FieldMapping `json:"lead"`
	Responsible ResponsiblePolicy      `json:"responsible"`
}

// PipelineMapping is one pipeline: its amoCRM id, the stage id per state and
// the exception stages, which the sync never moves a lead out of (won and lost
// by default).
type PipelineMapping struct {
	PipelineID int64           `json:"pipeline_id"`
	Stages     map[State]int64 `json:"stages"`
	Exceptions []int64         `json:"exceptions"`
}

// IsException reports whether the sync must leave a lead in the stage.
func (p PipelineMapping) IsException(stageID int64) bool {
	return slices.Contains(p.Exceptions, stageID)
}

// DefaultExceptions are the exception stages of a newly mapped pipeline.
func DefaultExceptions() []int64 { return []int64{StageWon, StageLost} }

// FieldMapping is the amoCRM field a datum goes to, with its type as it was
// when mapped (the sync shapes values by it). Code is set for predefined
// fields (PHONE, EMAIL). Enums maps each value key of an enumerated datum to
// its enum id when the field's type has enums.
type FieldMapping struct {
	FieldID int64            `json:"field_id,omitempty"`
	Code    string           `json:"code,omitempty"`
	Type    FieldType        `json:"type,omitempty"`
	Enums   map[string]int64 `json:"enums,omitempty"`
}

// NotSent is the mapping of a datum that is not sent («Не передавать»).
var NotSent = FieldMapping{}

// Sent reports whether the datum is written to a field.
func (f FieldMapping) Sent() bool { return f.FieldID != 0 || f.Code != "" }

// ResponsibleMode is how a lead's responsible user is chosen.
type ResponsibleMode string

// Responsible user modes.
const (
	// ResponsibleDoctor: the appointment's doctor, matched to an amoCRM user
	// by name (MatchDoctors) or by the override table; UserID, if set, is
	// used when a doctor matches nobody (0: amoCRM's default).
	ResponsibleDoctor ResponsibleMode = "doctor"
	// ResponsibleFixed: always UserID.
	ResponsibleFixed ResponsibleMode = "fixed"
)

// ResponsiblePolicy is the responsible-user rule; the zero value is
// ResponsibleDoctor with amoCRM's default as fallback. Overrides maps an
// IDENT doctor id to an amoCRM user id and wins over name matching.
type ResponsiblePolicy struct {
	Mode      ResponsibleMode  `json:"mode"`
	UserID    int64            `json:"user_id,omitempty"`
	Overrides map[string]int64 `json:"overrides,omitempty"`
}

// Created is what amoCRM answered for one item the apply step created: its
// id and, for an enumerated field, its enums.
type Created struct {
	ID    int64
	Enums []Enum
}

// MappingFromProposal builds the mapping after a proposal was applied:
// reused items keep their ids, created ones take theirs from created. Blocks
// the proposal did not cover keep base's mapping, and so does the responsible
// policy; a pipeline that keeps its amoCRM id keeps its exceptions, a newly
// mapped one gets DefaultExceptions. Skipped fields are not sent.
//
// Errors (*ItemError): ErrNotCreated when a created item has no id or an
// enumerated field lacks an enum for a value, ErrUnknownItem when created
// names an item the proposal does not create.
func MappingFromProposal(base Mapping, p Proposal, created map[ItemKey]Created) (Mapping, error) {
	creates := map[ItemKey]bool{}
	for _, item := range p.ToCreate() {
		creates[item] = true
	}
	for _, item := range slices.Sorted(maps.Keys(created)) {
		if !creates[item] {
			return Mapping{}, newItemError(item, ErrUnknownItem, fmt.Sprintf("Элемент %s не создавался", item))
		}
	}
	id := func(d Decision) (int64, error) {
		if d.Action == ActionReuse {
			return d.ExistingID, nil
		}
		c, ok := created[d.Item]
		if !ok || c.ID == 0 {
			return 0, newItemError(d.Item, ErrNotCreated, fmt.Sprintf("«%s» не создан в amoCRM", d.Name))
		}
		return c.ID, nil
	}
	m := Mapping{
		Pipelines:   maps.Clone(base.Pipelines),
		Contact:     maps.Clone(base.Contact),
		Lead:        maps.Clone(base.Lead),
		Responsible: base.Responsible,
	}
	if p.Has(BlockPipelines) {
		m.Pipelines = map[PipelineKey]PipelineMapping{}
		for _, pp := range p.Pipelines {
			pid, err := id(pp.Decision)
			if err != nil {
				return Mapping{}, err
			}
			pm := PipelineMapping{PipelineID: pid, Stages: map[State]int64{}, Exceptions: DefaultExceptions()}
			if old, ok := base.Pipelines[pp.Key]; ok && old.PipelineID == pid && old.Exceptions != nil {
				pm.Exceptions = slices.Clone(old.Exceptions)
			}
			for _, sp := range pp.Stages {
				sid, err := id(sp.Decision)
				if err != nil {
					return Mapping{}, err
				}
				pm.Stages[sp.State] = sid
			}
			m.Pipelines[pp.Key] = pm
		}
	}
	for _, e := range []Entity{EntityContact, EntityLead} {
		if !p.Has(e.Block()) {
			continue
		}
		fields := map[Datum]FieldMapping{}
		for _, fp := range p.Fields(e) {
			if fp.Action == ActionSkip {
				fields[fp.Datum] = NotSent
				continue
			}
			fid, err := id(fp.Decision)
			if err != nil {
				return Mapping{}, err
			}
			fm := FieldMapping{FieldID: fid, Code: fp.Code, Type: fp.Type}
			if len(fp.Values) > 0 {
				fm.Enums = map[string]int64{}
				for _, v := range fp.Values {
					enumID := v.EnumID
					if fp.Action == ActionCreate {
						enumID = createdEnum(created[fp.Item].Enums, v.Name)
					}
					if enumID == 0 {
						return Mapping{}, newItemError(fp.Item, ErrNotCreated, fmt.Sprintf("У поля «%s» нет значения «%s»", fp.Name, v.Name))
					}
					fm.Enums[v.Key] = enumID
				}
			}
			fields[fp.Datum] = fm
		}
		if e == EntityContact {
			m.Contact = fields
		} else {
			m.Lead = fields
		}
	}
	return m, nil
}

func createdEnum(enums []Enum, name string) int64 {
	for _, en := range enums {
		if SameName(en.Value, name) {
			return en.ID
		}
	}
	return 0
}

// Problem is one thing wrong with a mapping: Item names it, Kind classifies
// it and Message says it in Russian for the settings page and the event log
// («Данные не передаются: …»).
type Problem struct {
	Item    ItemKey
	Kind    ProblemKind
	Message string
}

// ProblemKind classifies a Problem.
type ProblemKind string

// Problem kinds.
const (
	// ProblemUnmapped: a required item has no amoCRM item chosen.
	ProblemUnmapped ProblemKind = "unmapped"
	// ProblemDeleted: the mapped amoCRM item no longer exists.
	ProblemDeleted ProblemKind = "deleted"
	// ProblemArchived: the mapped pipeline is archived.
	ProblemArchived ProblemKind = "archived"
	// ProblemRetyped: the mapped field's type changed.
	ProblemRetyped ProblemKind = "retyped"
	// ProblemEnumDeleted: an enum an enumerated datum maps to is gone, or a
	// value has no enum.
	ProblemEnumDeleted ProblemKind = "enum_deleted"
	// ProblemDuplicate: two data are mapped to one field.
	ProblemDuplicate ProblemKind = "duplicate"
	// ProblemUser: the responsible-user policy names a missing or inactive user.
	ProblemUser ProblemKind = "user"
)

// Validate checks the mapping against a snapshot with the default plan's
// rules; see Plan.Validate.
func Validate(m Mapping, s Snapshot) []Problem { return DefaultPlan().Validate(m, s) }

// Validate lists everything that keeps the mapping from working on the
// snapshot, in plan order: unmapped pipelines, stages and required fields;
// mapped pipelines, stages, exception stages, fields and enums that amoCRM no
// longer has; fields whose type changed (incompatible, or compatible but not
// the type the mapping shapes values for); two data sharing a field; and,
// when the snapshot has users, a responsible policy naming a missing or
// inactive user. Run on a fresh snapshot it is the drift check; nil means
// the mapping is sound.
func (p Plan) Validate(m Mapping, s Snapshot) []Problem {
	var out []Problem
	add := func(item ItemKey, kind ProblemKind, format string, args ...any) {
		out = append(out, Problem{Item: item, Kind: kind, Message: fmt.Sprintf(format, args...)})
	}
	for _, ps := range p.Pipelines {
		item := ps.Item()
		pm, ok := m.Pipelines[ps.Key]
		if !ok || pm.PipelineID == 0 {
			add(item, ProblemUnmapped, "Воронка «%s» не выбрана", ps.Name)
			continue
		}
		pipe, ok := s.pipeline(pm.PipelineID)
		if !ok {
			add(item, ProblemDeleted, "Воронка «%s» удалена в amoCRM", ps.Name)
			continue
		}
		if pipe.Archived {
			add(item, ProblemArchived, "Воронка «%s» в архиве amoCRM", ps.Name)
		}
		for _, st := range ps.Stages {
			sitem := StageItem(ps.Key, st.State)
			sid := pm.Stages[st.State]
			if sid == 0 {
				add(sitem, ProblemUnmapped, "Этап «%s» воронки «%s» не выбран", st.Name, ps.Name)
				continue
			}
			if _, ok := pipe.stage(sid); !ok {
				add(sitem, ProblemDeleted, "Этап «%s» воронки «%s» не найден", st.Name, ps.Name)
			}
		}
		for _, sid := range pm.Exceptions {
			if _, ok := pipe.stage(sid); !ok {
				add(item, ProblemDeleted, "Этап-исключение (id %d) воронки «%s» не найден", sid, ps.Name)
			}
		}
	}
	for _, e := range []Entity{EntityContact, EntityLead} {
		mapped := m.Contact
		if e == EntityLead {
			mapped = m.Lead
		}
		usedBy := map[int64]FieldSpec{}
		for _, fs := range p.Fields(e) {
			fm := mapped[fs.Datum]
			if !fm.Sent() {
				if fs.Required {
					add(fs.Item(), ProblemUnmapped, "Поле «%s» (%s) обязательно: выберите поле amoCRM", fs.Name, e.Label())
				}
				continue
			}
			f, ok := s.field(e, fm.FieldID, fm.Code)
			if !ok {
				add(fs.Item(), ProblemDeleted, "Поле «%s» (%s) удалено в amoCRM", fs.Name, e.Label())
				continue
			}
			if other, dup := usedBy[f.ID]; dup {
				add(fs.Item(), ProblemDuplicate, "Поле «%s» (%s) выбрано и для «%s»: выберите разные поля", fs.Name, e.Label(), other.Name)
			}
			usedBy[f.ID] = fs
			switch {
			case !fs.Accepts(f.Type):
				add(fs.Item(), ProblemRetyped, "Поле «%s» (%s): в amoCRM тип «%s», нужен %s", fs.Name, e.Label(), f.Type.Label(), typeList(fs.Compatible))
				continue
			case fm.Type != f.Type:
				add(fs.Item(), ProblemRetyped, "Поле «%s» (%s): тип изменён в amoCRM с «%s» на «%s», сохраните сопоставление заново", fs.Name, e.Label(), fm.Type.Label(), f.Type.Label())
				continue
			}
			if !f.Type.HasEnums() {
				continue
			}
			for _, v := range fs.Values {
				enumID := fm.Enums[v.Key]
				switch {
				case enumID == 0:
					add(fs.Item(), ProblemEnumDeleted, "Поле «%s» (%s): значение «%s» не сопоставлено", fs.Name, e.Label(), v.Name)
				case !slices.ContainsFunc(f.Enums, func(en Enum) bool { return en.ID == enumID }):
					add(fs.Item(), ProblemEnumDeleted, "Поле «%s» (%s): значение «%s» удалено в amoCRM", fs.Name, e.Label(), v.Name)
				}
			}
		}
	}
	out = append(out, p.validateResponsible(m.Responsible, s)...)
	return out
}

func (p Plan) validateResponsible(r ResponsiblePolicy, s Snapshot) []Problem {
	var out []Problem
	add := func(format string, args ...any) {
		out = append(out, Problem{Item: ResponsibleItem, Kind: ProblemUser, Message: fmt.Sprintf(format, args...)})
	}
	switch r.Mode {
	case "", ResponsibleDoctor:
	case ResponsibleFixed:
		if r.UserID == 0 {
			add("Ответственный пользователь не выбран")
			return out
		}
	default:
		add("Неизвестный способ выбора ответственного «%s»", r.Mode)
		return out
	}
	if s.Users == nil {
		return out
	}
	check := func(id int64, what string) {
		u, ok := s.user(id)
		switch {
		case !ok:
			add("%s: пользователь amoCRM (id %d) не найден", what, id)
		case !u.Active:
			add("%s: пользователь amoCRM «%s» неактивен", what, u.Name)
		}
	}
	if r.UserID != 0 {
		check(r.UserID, "Ответственный")
	}
	for _, doctor := range slices.Sorted(maps.Keys(r.Overrides)) {
		check(r.Overrides[doctor], fmt.Sprintf("Ответственный за врача %s", doctor))
	}
	return out
}
