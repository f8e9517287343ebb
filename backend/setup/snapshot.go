package setup

// Snapshot is what was read from amoCRM at one moment: every pipeline with
// its stages, the contact and lead custom fields, the users (when the token
// may read them) and the account's caps. The amoCRM adapter fills it.
type Snapshot struct {
	Pipelines     []Pipeline
	ContactFields []Field
	LeadFields    []Field
	// Users is nil when the users were not read; then the responsible-user
	// policy is not checked.
	Users  []User
	Limits Limits
}

// Limits are the account's caps; zero means the documented amoCRM default
// (MaxPipelines, MaxStagesPerPipeline) or, for MaxFieldsPerEntity, no known cap.
type Limits struct {
	MaxPipelines         int
	MaxStagesPerPipeline int
	MaxFieldsPerEntity   int
}

func (l Limits) pipelines() int {
	if l.MaxPipelines > 0 {
		return l.MaxPipelines
	}
	return MaxPipelines
}

func (l Limits) stagesPerPipeline() int {
	if l.MaxStagesPerPipeline > 0 {
		return l.MaxStagesPerPipeline
	}
	return MaxStagesPerPipeline
}

// Pipeline is an amoCRM leads pipeline with all its stages, system ones
// included, as amoCRM lists them.
type Pipeline struct {
	ID       int64
	Name     string
	Archived bool
	Stages   []Stage
}

// Stage is an amoCRM pipeline status. Unsorted marks «Неразобранное» (type 1).
type Stage struct {
	ID       int64
	Name     string
	Unsorted bool
}

// System reports whether the stage is one amoCRM keeps in every pipeline:
// unsorted, won (142) or lost (143). Autosetup never maps a state to one.
func (s Stage) System() bool { return s.Unsorted || s.ID == StageWon || s.ID == StageLost }

// Field is an amoCRM custom field definition.
type Field struct {
	ID   int64
	Name string
	// Code is set for predefined fields (PHONE, EMAIL).
	Code  string
	Type  FieldType
	Enums []Enum
}

// Enum is one choice of a select, multiselect or radiobutton field.
type Enum struct {
	ID    int64
	Value string
}

// User is an amoCRM user.
type User struct {
	ID     int64
	Name   string
	Active bool
}

// Fields returns the snapshot's fields of the entity.
func (s Snapshot) Fields(e Entity) []Field {
	if e == EntityContact {
		return s.ContactFields
	}
	return s.LeadFields
}

func (s Snapshot) pipeline(id int64) (Pipeline, bool) {
	for _, p := range s.Pipelines {
		if p.ID == id {
			return p, true
		}
	}
	return Pipeline{}, false
}

func (p Pipeline) stage(id int64) (Stage, bool) {
	for _, st := range p.Stages {
		if st.ID == id {
			return st, true
		}
	}
	// Won and lost exist in every pipeline even when a listing leaves them out.
	if id == StageWon || id == StageLost {
		return Stage{ID: id}, true
	}
	return Stage{}, false
}

func (s Snapshot) field(e Entity, id int64, code string) (Field, bool) {
	for _, f := range s.Fields(e) {
		if (id != 0 && f.ID == id) || (id == 0 && code != "" && f.Code == code) {
			return f, true
		}
	}
	return Field{}, false
}

func (s Snapshot) user(id int64) (User, bool) {
	for _, u := range s.Users {
		if u.ID == id {
			return u, true
		}
	}
	return User{}, false
}
