package sandbox

import (
	"sort"
	"strings"
	"time"
)

// state is everything the snapshot keeps. Guarded by Sandbox.mu.
type state struct {
	Seq        int64               `json:"seq"`
	AccountSeq int64               `json:"account_seq"`
	SigningKey string              `json:"signing_key"`
	Accounts   map[int64]*account  `json:"accounts"`
	Codes      map[string]*grant   `json:"codes"`
	Refresh    map[string]*grant   `json:"refresh_tokens"`
	Access     map[string]*grant   `json:"access_tokens"`
	Blocked    map[int64]time.Time `json:"blocked"`
}

func newState() *state {
	return &state{
		Seq:        1000,
		AccountSeq: 31000000,
		SigningKey: randomHex(32),
		Accounts:   map[int64]*account{},
		Codes:      map[string]*grant{},
		Refresh:    map[string]*grant{},
		Access:     map[string]*grant{},
		Blocked:    map[int64]time.Time{},
	}
}

func (st *state) nextID() int64 {
	// Starting above 1000 keeps generated ids clear of the system statuses 142 and 143.
	st.Seq++
	return st.Seq
}

// grant is an authorization code, access token or refresh token.
type grant struct {
	AccountID int64     `json:"account_id"`
	UserID    int64     `json:"user_id"`
	ExpiresAt time.Time `json:"expires_at"`
	Used      bool      `json:"used"`
	Revoked   bool      `json:"revoked"`
}

type account struct {
	ID        int64               `json:"id"`
	Subdomain string              `json:"subdomain"`
	Name      string              `json:"name"`
	Unpaid    bool                `json:"unpaid"`
	CreatedAt time.Time           `json:"created_at"`
	Users     []*user             `json:"users"`
	Pipelines []*pipeline         `json:"pipelines"`
	Fields    map[string][]*field `json:"fields"`
	Contacts  map[int64]*contact  `json:"contacts"`
	Leads     map[int64]*lead     `json:"leads"`
	Notes     map[int64]*note     `json:"notes"`
	Tags      map[string][]*tag   `json:"tags"`
	Webhooks  []*webhook          `json:"webhooks"`
	Companies map[int64]*company  `json:"companies"`
}

type company struct {
	ID   int64  `json:"id"`
	Name string `json:"name"`
}

type user struct {
	ID       int64  `json:"id"`
	Name     string `json:"name"`
	Email    string `json:"email"`
	IsAdmin  bool   `json:"is_admin"`
	IsActive bool   `json:"is_active"`
	IsFree   bool   `json:"is_free"`
}

type pipeline struct {
	ID           int64     `json:"id"`
	Name         string    `json:"name"`
	Sort         int       `json:"sort"`
	IsMain       bool      `json:"is_main"`
	IsUnsortedOn bool      `json:"is_unsorted_on"`
	IsArchive    bool      `json:"is_archive"`
	Statuses     []*status `json:"statuses"`
}

type status struct {
	ID           int64         `json:"id"`
	Name         string        `json:"name"`
	Sort         int           `json:"sort"`
	IsEditable   bool          `json:"is_editable"`
	Color        string        `json:"color"`
	Type         int           `json:"type"`
	Descriptions []description `json:"descriptions"`
}

type description struct {
	Level       string `json:"level"`
	Description string `json:"description"`
}

type field struct {
	ID           int64      `json:"id"`
	Name         string     `json:"name"`
	Code         string     `json:"code"`
	Sort         int        `json:"sort"`
	Type         string     `json:"type"`
	EntityType   string     `json:"entity_type"`
	IsPredefined bool       `json:"is_predefined"`
	IsDeletable  bool       `json:"is_deletable"`
	IsAPIOnly    bool       `json:"is_api_only"`
	Enums        []enumItem `json:"enums"`
}

type enumItem struct {
	ID    int64  `json:"id"`
	Value string `json:"value"`
	Sort  int    `json:"sort"`
	Code  string `json:"code"`
}

// fieldValue is one entry of custom_fields_values, normalized.
type fieldValue struct {
	FieldID int64       `json:"field_id"`
	Values  []valueItem `json:"values"`
}

type valueItem struct {
	Value    any    `json:"value"`
	EnumID   int64  `json:"enum_id,omitempty"`
	EnumCode string `json:"enum_code,omitempty"`
}

// record is what contacts and leads share. Embedded, its fields keep their
// JSON names in the snapshot.
type record struct {
	ID                int64        `json:"id"`
	Name              string       `json:"name"`
	ResponsibleUserID int64        `json:"responsible_user_id"`
	CreatedBy         int64        `json:"created_by"`
	UpdatedBy         int64        `json:"updated_by"`
	CreatedAt         int64        `json:"created_at"`
	UpdatedAt         int64        `json:"updated_at"`
	Fields            []fieldValue `json:"custom_fields_values"`
	Tags              []int64      `json:"tags"`
}

type contact struct {
	record
	FirstName string `json:"first_name"`
	LastName  string `json:"last_name"`
}

type lead struct {
	record
	Price        int64      `json:"price"`
	StatusID     int64      `json:"status_id"`
	PipelineID   int64      `json:"pipeline_id"`
	LossReasonID int64      `json:"loss_reason_id"`
	ClosedAt     int64      `json:"closed_at"`
	Contacts     []leadLink `json:"contacts"`
	Companies    []int64    `json:"companies"`
}

type leadLink struct {
	ID     int64 `json:"id"`
	IsMain bool  `json:"is_main"`
}

type note struct {
	ID                int64          `json:"id"`
	EntityType        string         `json:"entity_type"`
	EntityID          int64          `json:"entity_id"`
	NoteType          string         `json:"note_type"`
	Params            map[string]any `json:"params"`
	CreatedBy         int64          `json:"created_by"`
	UpdatedBy         int64          `json:"updated_by"`
	ResponsibleUserID int64          `json:"responsible_user_id"`
	CreatedAt         int64          `json:"created_at"`
	UpdatedAt         int64          `json:"updated_at"`
}

type tag struct {
	ID    int64  `json:"id"`
	Name  string `json:"name"`
	Color string `json:"color,omitempty"`
}

type webhook struct {
	ID          int64       `json:"id"`
	Destination string      `json:"destination"`
	Settings    []string    `json:"settings"`
	Sort        int         `json:"sort"`
	Disabled    bool        `json:"disabled"`
	CreatedBy   int64       `json:"created_by"`
	CreatedAt   int64       `json:"created_at"`
	UpdatedAt   int64       `json:"updated_at"`
	Failures    []time.Time `json:"failures"`
}

func (a *account) user(id int64) *user {
	for _, u := range a.Users {
		if u.ID == id {
			return u
		}
	}
	return nil
}

func (a *account) admin() *user {
	for _, u := range a.Users {
		if u.IsAdmin && u.IsActive {
			return u
		}
	}
	return a.Users[0]
}

func (a *account) pipeline(id int64) *pipeline {
	for _, p := range a.Pipelines {
		if p.ID == id {
			return p
		}
	}
	return nil
}

func (a *account) mainPipeline() *pipeline {
	for _, p := range a.Pipelines {
		if p.IsMain {
			return p
		}
	}
	return a.Pipelines[0]
}

func (p *pipeline) status(id int64) *status {
	for _, s := range p.Statuses {
		if s.ID == id {
			return s
		}
	}
	return nil
}

// firstStage is the first non-unsorted status by sort: where new leads land.
func (p *pipeline) firstStage() *status {
	p.sortStatuses()
	for _, s := range p.Statuses {
		if s.Type == 0 && s.ID != statusWon && s.ID != statusLost {
			return s
		}
	}
	return p.status(statusWon)
}

func (p *pipeline) sortStatuses() {
	sort.SliceStable(p.Statuses, func(i, j int) bool { return p.Statuses[i].Sort < p.Statuses[j].Sort })
}

func (a *account) field(entity string, id int64) *field {
	for _, f := range a.Fields[entity] {
		if f.ID == id {
			return f
		}
	}
	return nil
}

func (a *account) fieldByCode(entity, code string) *field {
	for _, f := range a.Fields[entity] {
		if f.Code != "" && strings.EqualFold(f.Code, code) {
			return f
		}
	}
	return nil
}

func sortedIDs[T any](m map[int64]T) []int64 {
	ids := make([]int64, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids
}
