package amocrm

import (
	"bytes"
	"encoding/json"
)

// AccountInfo is GET /api/v4/account.
type AccountInfo struct {
	ID                      int64  `json:"id"`
	Name                    string `json:"name"`
	Subdomain               string `json:"subdomain"`
	CurrentUserID           int64  `json:"current_user_id"`
	Country                 string `json:"country"`
	CustomersMode           string `json:"customers_mode"`
	IsUnsortedOn            bool   `json:"is_unsorted_on"`
	IsLossReasonEnabled     bool   `json:"is_loss_reason_enabled"`
	IsHelpbotEnabled        bool   `json:"is_helpbot_enabled"`
	IsTechnicalAccount      bool   `json:"is_technical_account"`
	ContactNameDisplayOrder int    `json:"contact_name_display_order"`
	AmojoID                 string `json:"amojo_id,omitempty"`
}

// User is an amoCRM user (GET /api/v4/users).
type User struct {
	ID     int64      `json:"id"`
	Name   string     `json:"name"`
	Email  string     `json:"email"`
	Lang   string     `json:"lang"`
	Rights UserRights `json:"rights"`
}

// UserRights are the user's rights; only the flags seat counting and
// responsible-user matching need are typed.
type UserRights struct {
	IsAdmin  bool   `json:"is_admin"`
	IsFree   bool   `json:"is_free"`
	IsActive bool   `json:"is_active"`
	GroupID  *int64 `json:"group_id"`
	RoleID   *int64 `json:"role_id"`
}

// Pipeline is a leads pipeline with its statuses.
type Pipeline struct {
	ID           int64  `json:"id,omitempty"`
	Name         string `json:"name"`
	Sort         int    `json:"sort"`
	IsMain       bool   `json:"is_main"`
	IsUnsortedOn bool   `json:"is_unsorted_on"`
	IsArchive    bool   `json:"is_archive,omitempty"`
	AccountID    int64  `json:"account_id,omitempty"`
	RequestID    string `json:"request_id,omitempty"`
	Embedded     struct {
		Statuses []Status `json:"statuses,omitempty"`
	} `json:"_embedded"`
}

// Status is a pipeline stage. StatusWon and StatusLost are the same in
// every pipeline.
type Status struct {
	ID           int64               `json:"id,omitempty"`
	Name         string              `json:"name"`
	Sort         int                 `json:"sort"`
	IsEditable   bool                `json:"is_editable,omitempty"`
	PipelineID   int64               `json:"pipeline_id,omitempty"`
	Color        string              `json:"color,omitempty"`
	Type         int                 `json:"type,omitempty"`
	AccountID    int64               `json:"account_id,omitempty"`
	Descriptions []StatusDescription `json:"descriptions,omitempty"`
	RequestID    string              `json:"request_id,omitempty"`
}

// StatusDescription is a stage hint for one level (newbie, candidate, master).
type StatusDescription struct {
	Level       string `json:"level"`
	Description string `json:"description"`
}

// System status ids.
const (
	StatusWon  int64 = 142
	StatusLost int64 = 143
)

// Entity types for custom fields, links, notes and tags.
const (
	EntityLeads     = "leads"
	EntityContacts  = "contacts"
	EntityCompanies = "companies"
	EntityCustomers = "customers"
)

// CustomField is a custom field definition of an entity type.
type CustomField struct {
	ID           int64  `json:"id,omitempty"`
	Name         string `json:"name"`
	Code         string `json:"code,omitempty"`
	Sort         int    `json:"sort,omitempty"`
	Type         string `json:"type"`
	EntityType   string `json:"entity_type,omitempty"`
	IsPredefined bool   `json:"is_predefined,omitempty"`
	IsDeletable  bool   `json:"is_deletable,omitempty"`
	IsAPIOnly    bool   `json:"is_api_only,omitempty"`
	Enums        []Enum `json:"enums,omitempty"`
	RequestID    string `json:"request_id,omitempty"`
}

// Enum is a choice of a select, multiselect, radiobutton or multitext field.
type Enum struct {
	ID    int64  `json:"id,omitempty"`
	Value string `json:"value"`
	Sort  int    `json:"sort,omitempty"`
	Code  string `json:"code,omitempty"`
}

// Custom field types the product uses.
const (
	FieldText        = "text"
	FieldNumeric     = "numeric"
	FieldCheckbox    = "checkbox"
	FieldSelect      = "select"
	FieldMultiselect = "multiselect"
	FieldDate        = "date"
	FieldDateTime    = "date_time"
	FieldBirthday    = "birthday"
	FieldTextarea    = "textarea"
	FieldURL         = "url"
	FieldMultitext   = "multitext"
)

// FieldValues is one entry of custom_fields_values: FieldID or FieldCode
// (PHONE, EMAIL) with its values. FieldName and FieldType come only in
// answers.
type FieldValues struct {
	FieldID   int64        `json:"field_id,omitempty"`
	FieldCode string       `json:"field_code,omitempty"`
	FieldName string       `json:"field_name,omitempty"`
	FieldType string       `json:"field_type,omitempty"`
	Values    []FieldValue `json:"values"`
}

// FieldValue is one value: Value (string, bool, json.Number), and for
// enumerated and multitext fields EnumID or EnumCode (WORK, MOB, PRIV, …).
type FieldValue struct {
	Value    any    `json:"value,omitempty"`
	EnumID   int64  `json:"enum_id,omitempty"`
	EnumCode string `json:"enum_code,omitempty"`
}

// UnmarshalJSON keeps numbers as json.Number, so unix dates and big
// numerics survive without float rounding.
func (v *FieldValue) UnmarshalJSON(data []byte) error {
	var raw struct {
		Value    json.RawMessage `json:"value"`
		EnumID   int64           `json:"enum_id"`
		EnumCode string          `json:"enum_code"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return err
	}
	*v = FieldValue{EnumID: raw.EnumID, EnumCode: raw.EnumCode}
	if len(raw.Value) == 0 || string(raw.Value) == "null" {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw.Value))
	dec.UseNumber()
	return dec.Decode(&v.Value)
}

// TextValue is a text-like field value (text, numeric, textarea, url, …).
func TextValue(fieldID int64, value string) FieldValues {
	return FieldValues{FieldID: fieldID, Values: []FieldValue{{Value: value}}}
}

// EnumValue is a select or radiobutton value by enum id.
func EnumValue(fieldID, enumID int64) FieldValues {
	return FieldValues{FieldID: fieldID, Values: []FieldValue{{EnumID: enumID}}}
}

// MultitextValue is a PHONE or EMAIL value: each entry under enumCode
// (PHONE: WORK WORKDD MOB FAX HOME OTHER; EMAIL: WORK PRIV OTHER).
func MultitextValue(fieldCode, enumCode string, values ...string) FieldValues {
	fv := FieldValues{FieldCode: fieldCode}
	for _, v := range values {
		fv.Values = append(fv.Values, FieldValue{Value: v, EnumCode: enumCode})
	}
	return fv
}

// TagRef names a tag by id or name (tags_to_add, tags_to_delete, _embedded.tags).
type TagRef struct {
	ID    int64  `json:"id,omitempty"`
	Name  string `json:"name,omitempty"`
	Color string `json:"color,omitempty"`
}

// Tag is an entry of an entity type's tag dictionary.
type Tag struct {
	ID        int64  `json:"id,omitempty"`
	Name      string `json:"name"`
	Color     string `json:"color,omitempty"`
	RequestID string `json:"request_id,omitempty"`
}

// EntityRef is a linked entity in _embedded (companies, contacts).
type EntityRef struct {
	ID     int64 `json:"id"`
	IsMain bool  `json:"is_main,omitempty"`
}

// Contact is an amoCRM contact. On create and update only the set fields
// are sent. CustomFieldsValues nil means "unchanged".
type Contact struct {
	ID                 int64            `json:"id,omitempty"`
	Name               string           `json:"name,omitempty"`
	FirstName          string           `json:"first_name,omitempty"`
	LastName           string           `json:"last_name,omitempty"`
	ResponsibleUserID  int64            `json:"responsible_user_id,omitempty"`
	GroupID            int64            `json:"group_id,omitempty"`
	CreatedBy          int64            `json:"created_by,omitempty"`
	UpdatedBy          int64            `json:"updated_by,omitempty"`
	CreatedAt          int64            `json:"created_at,omitempty"`
	UpdatedAt          int64            `json:"updated_at,omitempty"`
	IsDeleted          bool             `json:"is_deleted,omitempty"`
	ClosestTaskAt      int64            `json:"closest_task_at,omitempty"`
	AccountID          int64            `json:"account_id,omitempty"`
	CustomFieldsValues []FieldValues    `json:"custom_fields_values,omitempty"`
	TagsToAdd          []TagRef         `json:"tags_to_add,omitempty"`
	TagsToDelete       []TagRef         `json:"tags_to_delete,omitempty"`
	RequestID          string           `json:"request_id,omitempty"`
	Embedded           *ContactEmbedded `json:"_embedded,omitempty"`
}

// ContactEmbedded is a contact's _embedded.
type ContactEmbedded struct {
	Tags      []TagRef    `json:"tags,omitempty"`
	Companies []EntityRef `json:"companies,omitempty"`
	Leads     []EntityRef `json:"leads,omitempty"`
}

// Lead is an amoCRM lead (deal). Price is in whole currency units, as amoCRM
// keeps it.
type Lead struct {
	ID                 int64         `json:"id,omitempty"`
	Name               string        `json:"name,omitempty"`
	Price              int64         `json:"price,omitempty"`
	ResponsibleUserID  int64         `json:"responsible_user_id,omitempty"`
	GroupID            int64         `json:"group_id,omitempty"`
	StatusID           int64         `json:"status_id,omitempty"`
	PipelineID         int64         `json:"pipeline_id,omitempty"`
	LossReasonID       int64         `json:"loss_reason_id,omitempty"`
	CreatedBy          int64         `json:"created_by,omitempty"`
	UpdatedBy          int64         `json:"updated_by,omitempty"`
	CreatedAt          int64         `json:"created_at,omitempty"`
	UpdatedAt          int64         `json:"updated_at,omitempty"`
	ClosedAt           int64         `json:"closed_at,omitempty"`
	ClosestTaskAt      int64         `json:"closest_task_at,omitempty"`
	IsDeleted          bool          `json:"is_deleted,omitempty"`
	AccountID          int64         `json:"account_id,omitempty"`
	CustomFieldsValues []FieldValues `json:"custom_fields_values,omitempty"`
	TagsToAdd          []TagRef      `json:"tags_to_add,omitempty"`
	TagsToDelete       []TagRef      `json:"tags_to_delete,omitempty"`
	RequestID          string        `json:"request_id,omitempty"`
	Embedded           *LeadEmbedded `json:"_embedded,omitempty"`
}

// LeadEmbedded is a lead's _embedded.
type LeadEmbedded struct {
	Tags      []TagRef    `json:"tags,omitempty"`
	Contacts  []EntityRef `json:"contacts,omitempty"`
	Companies []EntityRef `json:"companies,omitempty"`
	Source    *LeadSource `json:"source,omitempty"`
}

// LeadSource marks a lead as created by the widget.
type LeadSource struct {
	ExternalID string `json:"external_id,omitempty"`
	Type       string `json:"type,omitempty"`
}

// Saved is amoCRM's answer for one item of a batch create or update.
type Saved struct {
	ID        int64  `json:"id"`
	RequestID string `json:"request_id,omitempty"`
	UpdatedAt int64  `json:"updated_at,omitempty"`
}

// Link connects an entity to another (to_entity_type contacts, companies,
// catalog_elements).
type Link struct {
	ToEntityID   int64         `json:"to_entity_id"`
	ToEntityType string        `json:"to_entity_type"`
	Metadata     *LinkMetadata `json:"metadata,omitempty"`
	EntityID     int64         `json:"entity_id,omitempty"`
	EntityType   string        `json:"entity_type,omitempty"`
}

// LinkMetadata qualifies a link (main contact, catalog quantity).
type LinkMetadata struct {
	IsMain      bool  `json:"is_main,omitempty"`
	MainContact bool  `json:"main_contact,omitempty"`
	Quantity    int   `json:"quantity,omitempty"`
	CatalogID   int64 `json:"catalog_id,omitempty"`
	PriceID     int64 `json:"price_id,omitempty"`
	UpdatedBy   int64 `json:"updated_by,omitempty"`
}

// Note is an entity note; Params depend on NoteType (common: {"text": …}).
type Note struct {
	ID                int64          `json:"id,omitempty"`
	EntityID          int64          `json:"entity_id"`
	NoteType          string         `json:"note_type"`
	Params            map[string]any `json:"params,omitempty"`
	CreatedBy         int64          `json:"created_by,omitempty"`
	ResponsibleUserID int64          `json:"responsible_user_id,omitempty"`
	RequestID         string         `json:"request_id,omitempty"`
}

// CommonNote is a plain text note on the entity.
func CommonNote(entityID int64, text string) Note {
	return Note{EntityID: entityID, NoteType: "common", Params: map[string]any{"text": text}}
}

// Webhook is an API webhook subscription.
type Webhook struct {
	ID          int64    `json:"id,omitempty"`
	Destination string   `json:"destination"`
	Settings    []string `json:"settings"`
	Sort        int      `json:"sort,omitempty"`
	Disabled    bool     `json:"disabled,omitempty"`
	CreatedAt   int64    `json:"created_at,omitempty"`
	UpdatedAt   int64    `json:"updated_at,omitempty"`
}
