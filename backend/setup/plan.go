// Package setup decides what an amoCRM account needs before the sync can
// write into it, and whether what it has still fits.
//
// It is pure: it takes plain values read from amoCRM (a Snapshot) and returns
// plain values. Reading amoCRM, applying a proposal, storing the mapping and
// running the task are the callers' business.
//
// What it promises:
//   - Plan describes what the sync needs: two pipelines with a stage per
//     appointment state, contact fields and lead fields, each with the datum it
//     carries, whether it is required, the amoCRM field types it accepts and the
//     type autosetup creates. DefaultPlan holds the names promised to clinics.
//   - Normalize compares names the way people read them (case, spaces, ё/е,
//     punctuation and quotes do not matter).
//   - Propose turns a plan and a snapshot into a Proposal: for every item of the
//     ticked blocks, reuse an existing amoCRM item (same normalised name and a
//     compatible type) or create one (under the user's name if renamed). It
//     refuses up front, with an *ItemError naming the item, what amoCRM would
//     refuse later (caps on pipelines, stages and fields) and renames that
//     collide. On a snapshot that already has everything it proposes nothing
//     to create, so re-running autosetup after a crash never duplicates.
//   - MappingFromProposal builds the Mapping once a proposal has been applied;
//     Validate checks a mapping against a snapshot and lists, in Russian, every
//     item that is missing, deleted, retyped or unmapped (the drift check).
//   - MatchResponsible and MatchDoctors match doctors to amoCRM users by name,
//     conservatively; DeriveStatus gives the setup status shown to support.
package setup

import "fmt"

// Block is a part of the setup the user can tick or untick in autosetup.
type Block string

// The autosetup blocks, in the order they are shown.
const (
	BlockPipelines Block = "pipelines" // «Воронки и этапы»
	BlockContact   Block = "contact"   // «Карточка контакта»
	BlockLead      Block = "lead"      // «Карточка сделки»
)

// AllBlocks returns every block, the autosetup default.
func AllBlocks() []Block { return []Block{BlockPipelines, BlockContact, BlockLead} }

// Label is the block's name in the settings page.
func (b Block) Label() string {
	switch b {
	case BlockPipelines:
		return "Воронки и этапы"
	case BlockContact:
		return "Карточка контакта"
	case BlockLead:
		return "Карточка сделки"
	}
	return string(b)
}

// Entity is the amoCRM card a field belongs to.
type Entity string

// The entities the sync writes custom fields of. The amoCRM adapter maps them
// to its entity types (contacts, leads).
const (
	EntityContact Entity = "contact"
	EntityLead    Entity = "lead"
)

// Label is the entity as it appears in messages: «контакт», «сделка».
func (e Entity) Label() string {
	switch e {
	case EntityContact:
		return "контакт"
	case EntityLead:
		return "сделка"
	}
	return string(e)
}

// Block is the autosetup block that holds the entity's fields.
func (e Entity) Block() Block {
	if e == EntityContact {
		return BlockContact
	}
	return BlockLead
}

// PipelineKey names one of our pipelines independently of its amoCRM name.
type PipelineKey string

// Our pipelines.
const (
	PipelinePrimary PipelineKey = "primary" // «Первичный приём»
	PipelineRepeat  PipelineKey = "repeat"  // «Повторный приём»
)

// Label is the pipeline's contract name.
func (p PipelineKey) Label() string {
	switch p {
	case PipelinePrimary:
		return "Первичный приём"
	case PipelineRepeat:
		return "Повторный приём"
	}
	return string(p)
}

// State is an appointment state; each has a stage in every pipeline.
type State string

// Appointment states (the exact strings are stored in mappings).
const (
	StatePlanned   State = "planned"   // «Записан на приём»
	StateArrived   State = "arrived"   // «Пациент пришёл» (arrived or in the chair)
	StateCompleted State = "completed" // «Приём завершён»
	StateNoShow    State = "no_show"   // «Не пришёл»
	StateCancelled State = "cancelled" // «Отменён»
)

// States returns every state in pipeline order.
func States() []State {
	return []State{StatePlanned, StateArrived, StateCompleted, StateNoShow, StateCancelled}
}

// Label is the state's contract stage name.
func (s State) Label() string {
	switch s {
	case StatePlanned:
		return "Записан на приём"
	case StateArrived:
		return "Пациент пришёл"
	case StateCompleted:
		return "Приём завершён"
	case StateNoShow:
		return "Не пришёл"
	case StateCancelled:
		return "Отменён"
	}
	return string(s)
}

// Datum is a piece of source data the sync may send to a custom field.
type Datum string

// The data of the default plan. DatumAmount is not a custom field: the
// appointment amount always goes to the lead's built-in price.
const (
	DatumPatientID         Datum = "patient_id" // IDENT patient id, digits; our contact key
	DatumPhone             Datum = "phone"
	DatumEmail             Datum = "email"
	DatumBirthDate         Datum = "birth_date"
	DatumSex               Datum = "sex"
	DatumCardNumber        Datum = "card_number"
	DatumReceptionID       Datum = "reception_id" // IDENT reception id, digits; our lead key
	DatumAppointmentAt     Datum = "appointment_at"
	DatumDoctor            Datum = "doctor"
	DatumBranch            Datum = "branch"
	DatumAppointmentStatus Datum = "appointment_status"
	DatumAmount            Datum = "amount"
)

// FieldType is an amoCRM custom field type, spelled as amoCRM's API spells it.
type FieldType string

// The amoCRM field types the plan uses or may meet.
const (
	FieldText        FieldType = "text"
	FieldNumeric     FieldType = "numeric"
	FieldTextarea    FieldType = "textarea"
	FieldCheckbox    FieldType = "checkbox"
	FieldSelect      FieldType = "select"
	FieldMultiselect FieldType = "multiselect"
	FieldRadiobutton FieldType = "radiobutton"
	FieldDate        FieldType = "date"
	FieldDateTime    FieldType = "date_time"
	FieldBirthday    FieldType = "birthday"
	FieldURL         FieldType = "url"
	FieldMultitext   FieldType = "multitext"
)

// Label is the type as amoCRM's interface names it («Тип поля» in the UI).
func (t FieldType) Label() string {
	switch t {
	case FieldText:
		return "Текст"
	case FieldNumeric:
		return "Число"
	case FieldTextarea:
		return "Текстовая область"
	case FieldCheckbox:
		return "Флаг"
	case FieldSelect:
		return "Список"
	case FieldMultiselect:
		return "Мультисписок"
	case FieldRadiobutton:
		return "Переключатель"
	case FieldDate:
		return "Дата"
	case FieldDateTime:
		return "Дата и время"
	case FieldBirthday:
		return "День рождения"
	case FieldURL:
		return "Ссылка"
	case FieldMultitext:
		return "Мультиполе"
	}
	return string(t)
}

// HasEnums reports whether values of the type are chosen from enums.
func (t FieldType) HasEnums() bool {
	return t == FieldSelect || t == FieldMultiselect || t == FieldRadiobutton
}

// Predefined field codes of amoCRM contacts (multitext).
const (
	CodePhone = "PHONE"
	CodeEmail = "EMAIL"
)

// amoCRM system stage ids, the same in every pipeline.
const (
	StageWon  int64 = 142
	StageLost int64 = 143
)

// amoCRM caps (spec/amocrm-api.md §4, §5).
const (
	MaxPipelines           = 50
	MaxStagesPerPipeline   = 100 // including the unsorted, won and lost stages
	SystemStagesInPipeline = 3   // unsorted, won, lost: created with every pipeline
	// MaxFieldValuesPerEntity is how many custom field values one entity may
	// carry in /leads/complex; the plan never maps more fields than that.
	MaxFieldValuesPerEntity = 40
)

// FallbackSuffix is appended to a default field or stage name when amoCRM
// already has an item of that name that cannot be reused (incompatible type,
// or a system stage). The fallback name is deterministic, so a re-run finds
// the item it created instead of creating it again.
const FallbackSuffix = " (IDENT)"

// Plan is what the sync needs in amoCRM.
type Plan struct {
	Pipelines []PipelineSpec
	Contact   []FieldSpec
	Lead      []FieldSpec
}

// PipelineSpec is one pipeline and its stages.
type PipelineSpec struct {
	Key    PipelineKey
	Name   string
	Stages []StageSpec
}

// Item is the pipeline's item key.
func (p PipelineSpec) Item() ItemKey { return PipelineItem(p.Key) }

// StageSpec is the stage for one appointment state. Every stage is required.
type StageSpec struct {
	State State
	Name  string
}

// FieldSpec is one custom field of a card.
type FieldSpec struct {
	Entity Entity
	Datum  Datum
	// Name is the name autosetup looks for and creates.
	Name string
	// Code is set for amoCRM's predefined fields (PHONE, EMAIL): they are found
	// by code, never created and never renamed.
	Code     string
	Required bool
	// Compatible lists the field types the datum can be written to, the
	// preferred first.
	Compatible []FieldType
	// Create is the type autosetup creates; empty for predefined fields.
	Create FieldType
	// Values is the closed set of values of an enumerated datum (sex,
	// appointment status). A select or radiobutton field is compatible only if
	// it has an enum for each value; autosetup creates them.
	Values []ValueSpec
}

// Item is the field's item key.
func (f FieldSpec) Item() ItemKey { return FieldItem(f.Entity, f.Datum) }

// Accepts reports whether a field of type t can carry the datum.
func (f FieldSpec) Accepts(t FieldType) bool {
	for _, c := range f.Compatible {
		if c == t {
			return true
		}
	}
	return false
}

// ValueSpec is one value of an enumerated datum: Key is what the source
// sends, Name the enum autosetup creates, Aliases other enum texts that mean
// the same (matched after Normalize).
type ValueSpec struct {
	Key     string
	Name    string
	Aliases []string
}

// ItemKey names one item of a plan: a pipeline, a stage or a field. Renames,
// created ids and problems are keyed by it.
type ItemKey string

// PipelineItem is the key of a pipeline: "pipeline:primary".
func PipelineItem(p PipelineKey) ItemKey { return ItemKey("pipeline:" + string(p)) }

// StageItem is the key of a stage: "stage:primary:planned".
func StageItem(p PipelineKey, s State) ItemKey {
	return ItemKey("stage:" + string(p) + ":" + string(s))
}

// FieldItem is the key of a field: "field:lead:doctor".
func FieldItem(e Entity, d Datum) ItemKey {
	return ItemKey("field:" + string(e) + ":" + string(d))
}

// ResponsibleItem is the key problems of the responsible-user policy carry.
const ResponsibleItem ItemKey = "responsible"

// DefaultPlan returns the plan promised to clinics: the names are a contract
// with clinics and support scripts.
func DefaultPlan() Plan {
	stages := func() []StageSpec {
		out := make([]StageSpec, 0, 5)
		for _, s := range States() {
			out = append(out, StageSpec{State: s, Name: s.Label()})
		}
		return out
	}
	statusValues := make([]ValueSpec, 0, 5)
	for _, s := range States() {
		statusValues = append(statusValues, ValueSpec{Key: string(s), Name: s.Label()})
	}
	// Keys are text when created: ids are shown digit for digit (no thousands
	// separators) and found by amoCRM's query search; a numeric field someone
	// already has is reused too.
	key := []FieldType{FieldText, FieldNumeric}
	return Plan{
		Pipelines: []PipelineSpec{
			{Key: PipelinePrimary, Name: PipelinePrimary.Label(), Stages: stages()},
			{Key: PipelineRepeat, Name: PipelineRepeat.Label(), Stages: stages()},
		},
		Contact: []FieldSpec{
			{Entity: EntityContact, Datum: DatumPatientID, Name: "ID пациента IDENT", Required: true,
				Compatible: key, Create: FieldText},
			{Entity: EntityContact, Datum: DatumPhone, Name: "Телефон", Code: CodePhone,
				Compatible: []FieldType{FieldMultitext}},
			{Entity: EntityContact, Datum: DatumEmail, Name: "Email", Code: CodeEmail,
				Compatible: []FieldType{FieldMultitext}},
			{Entity: EntityContact, Datum: DatumBirthDate, Name: "Дата рождения",
				Compatible: []FieldType{FieldBirthday, FieldDate}, Create: FieldBirthday},
			{Entity: EntityContact, Datum: DatumSex, Name: "Пол",
				Compatible: []FieldType{FieldSelect, FieldRadiobutton, FieldText}, Create: FieldSelect,
				Values: []ValueSpec{
					{Key: "male", Name: "Мужской", Aliases: []string{"Мужчина", "Муж", "М"}},
					{Key: "female", Name: "Женский", Aliases: []string{"Женщина", "Жен", "Ж"}},
				}},
			{Entity: EntityContact, Datum: DatumCardNumber, Name: "Номер карты",
				Compatible: []FieldType{FieldText, FieldNumeric}, Create: FieldText},
		},
		Lead: []FieldSpec{
			{Entity: EntityLead, Datum: DatumReceptionID, Name: "ID записи IDENT", Required: true,
				Compatible: key, Create: FieldText},
			{Entity: EntityLead, Datum: DatumAppointmentAt, Name: "Дата и время приёма",
				Compatible: []FieldType{FieldDateTime, FieldDate}, Create: FieldDateTime},
			{Entity: EntityLead, Datum: DatumDoctor, Name: "Врач",
				Compatible: []FieldType{FieldText, FieldSelect}, Create: FieldText},
			{Entity: EntityLead, Datum: DatumBranch, Name: "Филиал",
				Compatible: []FieldType{FieldText, FieldSelect}, Create: FieldText},
			{Entity: EntityLead, Datum: DatumAppointmentStatus, Name: "Статус записи",
				Compatible: []FieldType{FieldSelect, FieldText}, Create: FieldSelect, Values: statusValues},
		},
	}
}

// Fields returns the plan's fields of the entity.
func (p Plan) Fields(e Entity) []FieldSpec {
	if e == EntityContact {
		return p.Contact
	}
	return p.Lead
}

// Field returns the spec of the datum on the entity.
func (p Plan) Field(e Entity, d Datum) (FieldSpec, bool) {
	for _, f := range p.Fields(e) {
		if f.Datum == d {
			return f, true
		}
	}
	return FieldSpec{}, false
}

// check reports a plan that cannot be proposed: duplicate keys, empty names,
// a create type the spec does not accept, a required field that can never be
// mapped, or more fields than an entity can carry.
func (p Plan) check() error {
	invalid := func(item ItemKey, format string, args ...any) error {
		return newItemError(item, ErrInvalidPlan, fmt.Sprintf(format, args...))
	}
	seen := map[ItemKey]bool{}
	for _, ps := range p.Pipelines {
		if ps.Key == "" || Normalize(ps.Name) == "" || seen[ps.Item()] {
			return invalid(ps.Item(), "Воронка «%s» описана неверно", ps.Name)
		}
		seen[ps.Item()] = true
		for _, st := range ps.Stages {
			item := StageItem(ps.Key, st.State)
			if st.State == "" || Normalize(st.Name) == "" || seen[item] {
				return invalid(item, "Этап «%s» воронки «%s» описан неверно", st.Name, ps.Name)
			}
			seen[item] = true
		}
	}
	for _, e := range []Entity{EntityContact, EntityLead} {
		fields := p.Fields(e)
		if len(fields) > MaxFieldValuesPerEntity {
			return invalid(FieldItem(e, fields[MaxFieldValuesPerEntity].Datum),
				"Карточка «%s»: больше %d полей", e.Label(), MaxFieldValuesPerEntity)
		}
		for _, f := range fields {
			bad := f.Entity != e || f.Datum == "" || Normalize(f.Name) == "" || seen[f.Item()] || len(f.Compatible) == 0 ||
				(f.Create != "" && !f.Accepts(f.Create)) || (f.Create == "" && f.Code == "") ||
				(f.Required && f.Create == "")
			if bad {
				return invalid(f.Item(), "Поле «%s» (%s) описано неверно", f.Name, e.Label())
			}
			seen[f.Item()] = true
		}
	}
	return nil
}
