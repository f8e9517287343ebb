package protocol

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// The Data payloads of the IDENT source, one type per Kind. They carry facts
// as IDENT stores them: ids as decimal strings, phones as the raw text staff
// typed, and times as naive local wall-clock strings in LocalTimeLayout (the
// clinic's zone is a backend setting; the connector never converts). Empty
// strings mean "not set" (IDENT uses both NULL and '' for that).
//
// Validate on each type is what the backend calls before storing a record; it
// returns an error naming the first bad field.

// LocalTimeLayout is the layout of IDENT's naive local wall-clock times on the
// wire: no zone, no offset. Parsing also accepts a fractional second.
const LocalTimeLayout = "2006-01-02T15:04:05"

// DateLayout is the layout of calendar dates (a birth date) on the wire.
const DateLayout = "2006-01-02"

// Bounds Validate enforces on text fields, in runes.
const (
	MaxIDLen    = 19 // an int64 in decimal
	MaxNameLen  = 200
	MaxPhoneLen = 200
	MaxTextLen  = 4000
)

// ErrInvalidData is wrapped by every Validate and DecodeIdentData error.
var ErrInvalidData = errors.New("protocol: invalid data")

// IdentPatient is the Data of a KindPatient record: a Patients row joined with
// its Persons row, plus the first-visit facts the connector computes over the
// patient's full reception history (not only the receptions it sends).
type IdentPatient struct {
	Surname    string `json:"surname"`
	Name       string `json:"name"`
	Patronymic string `json:"patronymic,omitempty"`
	CardNumber string `json:"card_number,omitempty"`
	// MobilePhone and Phone are Persons.MobilePhone and Persons.Phone as typed
	// (any format, possibly two numbers or a note); the backend normalises.
	MobilePhone string `json:"mobile_phone,omitempty"`
	Phone       string `json:"phone,omitempty"`
	// Email is set only when the database has a Persons.Email column.
	Email string `json:"email,omitempty"`
	// BirthDate is the parsed birth date (DateLayout), empty when BirthdayRaw
	// is empty, unparseable or a placeholder such as 01.01.1900.
	BirthDate   string `json:"birth_date,omitempty"`
	BirthdayRaw string `json:"birthday_raw,omitempty"`
	// Sex is "male" or "female" when known, else empty; SexRaw is the source
	// value when the database has such a column.
	Sex    string `json:"sex,omitempty"`
	SexRaw string `json:"sex_raw,omitempty"`
	// ParentName is Patients.ParentSNP: a child's parent or guardian.
	ParentName string `json:"parent_name,omitempty"`
	// Archived is true when Patients.ID_ArchivingReasons is set.
	Archived          bool   `json:"archived"`
	ArchivingReasonID string `json:"archiving_reason_id,omitempty"`
	// FirstConsultation is Patients.FirstConsultation (system-set, semantics
	// unverified): a cross-check for the computed facts below.
	FirstConsultation string `json:"first_consultation,omitempty"`
	// DateTimeChanged is Patients.DateTimeChanged.
	DateTimeChanged string `json:"date_time_changed,omitempty"`
	// FirstVisitReceptionID and FirstVisitPlanStart name the earliest (by
	// PlanStart, then ID) completed reception of the patient over the whole
	// history: not cancelled (no ReceptionCanceled, no cancel reason) and
	// ReceptionEnded or CheckIssued set. Empty when there is none yet.
	FirstVisitReceptionID string `json:"first_visit_reception_id,omitempty"`
	FirstVisitPlanStart   string `json:"first_visit_plan_start,omitempty"`
	// CompletedReceptions counts such completed receptions over the history.
	CompletedReceptions int `json:"completed_receptions"`
}

// Validate reports whether p is well-formed.
func (p *IdentPatient) Validate() error {
	return firstErr(
		text("surname", p.Surname, MaxNameLen),
		text("name", p.Name, MaxNameLen),
		text("patronymic", p.Patronymic, MaxNameLen),
		text("card_number", p.CardNumber, MaxNameLen),
		text("mobile_phone", p.MobilePhone, MaxPhoneLen),
		text("phone", p.Phone, MaxPhoneLen),
		text("email", p.Email, MaxNameLen),
		date("birth_date", p.BirthDate),
		text("birthday_raw", p.BirthdayRaw, MaxNameLen),
		oneOf("sex", p.Sex, "", "male", "female"),
		text("sex_raw", p.SexRaw, MaxNameLen),
		text("parent_name", p.ParentName, MaxNameLen),
		optID("archiving_reason_id", p.ArchivingReasonID),
		localTime("first_consultation", p.FirstConsultation),
		localTime("date_time_changed", p.DateTimeChanged),
		optID("first_visit_reception_id", p.FirstVisitReceptionID),
		localTime("first_visit_plan_start", p.FirstVisitPlanStart),
		pair("first_visit_reception_id", p.FirstVisitReceptionID, "first_visit_plan_start", p.FirstVisitPlanStart),
		nonNegative("completed_receptions", p.CompletedReceptions),
	)
}

// IdentReception is the Data of a KindReception record: a Receptions row with
// the branch of its chair. Status is not sent; the backend derives it from
// the event stamps (spec §5).
type IdentReception struct {
	PatientID string `json:"patient_id"`
	// StaffID is Receptions.ID_Staffs (the doctor), ChairID ID_Armchairs and
	// BranchID the chair's Armchairs.ID_OwnCompanies.
	StaffID  string `json:"staff_id,omitempty"`
	ChairID  string `json:"chair_id,omitempty"`
	BranchID string `json:"branch_id,omitempty"`
	// PlanStart and PlanEnd are naive local wall-clock times (LocalTimeLayout).
	// PlanEnd may equal or precede PlanStart in IDENT data.
	PlanStart string `json:"plan_start"`
	PlanEnd   string `json:"plan_end,omitempty"`
	// The event stamps, naive local; empty until the event happened.
	PatientAppeared   string `json:"patient_appeared,omitempty"`
	ReceptionStarted  string `json:"reception_started,omitempty"`
	ReceptionEnded    string `json:"reception_ended,omitempty"`
	CheckIssued       string `json:"check_issued,omitempty"`
	ReceptionCanceled string `json:"reception_canceled,omitempty"`
	// CancelReasonID is ID_ReceptionCancelReasons; which ids mean "no-show"
	// or "moved" is clinic configuration.
	CancelReasonID      string `json:"cancel_reason_id,omitempty"`
	CancelReasonComment string `json:"cancel_reason_comment,omitempty"`
	CanceledByStaffID   string `json:"canceled_by_staff_id,omitempty"`
	// TransferFromID is ID_ReceptionsTransferFrom: the reception this one was
	// moved from.
	TransferFromID string `json:"transfer_from_id,omitempty"`
	Comment        string `json:"comment,omitempty"`
	// AmountKopecks is the reception's bill in kopecks where the connector
	// knows it; nil when unknown.
	AmountKopecks   *int64 `json:"amount_kopecks,omitempty"`
	DateTimeAdded   string `json:"date_time_added,omitempty"`
	DateTimeChanged string `json:"date_time_changed,omitempty"`
}

// Validate reports whether r is well-formed.
func (r *IdentReception) Validate() error {
	var amount error
	if r.AmountKopecks != nil && *r.AmountKopecks < 0 {
		amount = invalid("amount_kopecks", "is negative")
	}
	return firstErr(
		reqID("patient_id", r.PatientID),
		optID("staff_id", r.StaffID),
		optID("chair_id", r.ChairID),
		optID("branch_id", r.BranchID),
		reqLocalTime("plan_start", r.PlanStart),
		localTime("plan_end", r.PlanEnd),
		localTime("patient_appeared", r.PatientAppeared),
		localTime("reception_started", r.ReceptionStarted),
		localTime("reception_ended", r.ReceptionEnded),
		localTime("check_issued", r.CheckIssued),
		localTime("reception_canceled", r.ReceptionCanceled),
		optID("cancel_reason_id", r.CancelReasonID),
		text("cancel_reason_comment", r.CancelReasonComment, MaxTextLen),
		optID("canceled_by_staff_id", r.CanceledByStaffID),
		optID("transfer_from_id", r.TransferFromID),
		text("comment", r.Comment, MaxTextLen),
		amount,
		localTime("date_time_added", r.DateTimeAdded),
		localTime("date_time_changed", r.DateTimeChanged),
	)
}

// IdentDoctor is the Data of a KindDoctor record: a Staffs row with its
// Persons names. Every staff member is sent (administrators too); IDENT keeps
// roles elsewhere.
type IdentDoctor struct {
	Surname    string `json:"surname"`
	Name       string `json:"name"`
	Patronymic string `json:"patronymic,omitempty"`
	// Archived is Staffs.Archive.
	Archived bool `json:"archived"`
}

// Validate reports whether d is well-formed.
func (d *IdentDoctor) Validate() error {
	return firstErr(
		text("surname", d.Surname, MaxNameLen),
		text("name", d.Name, MaxNameLen),
		text("patronymic", d.Patronymic, MaxNameLen),
	)
}

// IdentBranch is the Data of a KindBranch record: an OwnCompanies row. The
// display name is BranchName, else Name, else "Филиал <id>" (the backend's
// choice).
type IdentBranch struct {
	Name       string `json:"name"`
	BranchName string `json:"branch_name,omitempty"`
}

// Validate reports whether b is well-formed.
func (b *IdentBranch) Validate() error {
	return firstErr(
		text("name", b.Name, MaxNameLen),
		text("branch_name", b.BranchName, MaxNameLen),
	)
}

// IdentChair is the Data of a KindChair record: an Armchairs row.
type IdentChair struct {
	Name     string `json:"name"`
	BranchID string `json:"branch_id,omitempty"`
	Archived bool   `json:"archived"`
}

// Validate reports whether c is well-formed.
func (c *IdentChair) Validate() error {
	return firstErr(
		text("name", c.Name, MaxNameLen),
		optID("branch_id", c.BranchID),
	)
}

// IdentCancelReason is the Data of a KindCancelReason record: a
// ReceptionCancelReasons row. Name is empty when the column is missing.
type IdentCancelReason struct {
	Name string `json:"name"`
}

// Validate reports whether c is well-formed.
func (c *IdentCancelReason) Validate() error {
	return text("name", c.Name, MaxNameLen)
}

// IdentData is implemented by every IDENT payload type.
type IdentData interface {
	Validate() error
}

// NewIdentData returns an empty payload of the type Kind k carries, or an
// error wrapping ErrInvalidData for an unknown kind.
func NewIdentData(k Kind) (IdentData, error) {
	switch k {
	case KindPatient:
		return &IdentPatient{}, nil
	case KindReception:
		return &IdentReception{}, nil
	case KindDoctor:
		return &IdentDoctor{}, nil
	case KindBranch:
		return &IdentBranch{}, nil
	case KindChair:
		return &IdentChair{}, nil
	case KindCancelReason:
		return &IdentCancelReason{}, nil
	}
	return nil, fmt.Errorf("%w: unknown kind %q", ErrInvalidData, k)
}

// DecodeIdentData decodes and validates the Data of an IDENT record of kind
// k. Unknown fields are refused, so a misspelt field is caught. Errors wrap
// ErrInvalidData.
func DecodeIdentData(k Kind, data json.RawMessage) (IdentData, error) {
	v, err := NewIdentData(k)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrInvalidData, k, err)
	}
	if err := v.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", k, err)
	}
	return v, nil
}

// ValidSourceID reports whether id is an IDENT id: 1 to MaxIDLen decimal
// digits.
func ValidSourceID(id string) bool {
	if id == "" || len(id) > MaxIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] < '0' || id[i] > '9' {
			return false
		}
	}
	return true
}

func invalid(field, why string) error {
	return fmt.Errorf("%w: %s %s", ErrInvalidData, field, why)
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func text(field, v string, max int) error {
	if !utf8.ValidString(v) {
		return invalid(field, "is not valid UTF-8")
	}
	if utf8.RuneCountInString(v) > max {
		return invalid(field, fmt.Sprintf("is longer than %d characters", max))
	}
	return nil
}

func reqID(field, v string) error {
	if !ValidSourceID(v) {
		return invalid(field, fmt.Sprintf("%q is not an id", v))
	}
	return nil
}

func optID(field, v string) error {
	if v == "" {
		return nil
	}
	return reqID(field, v)
}

func localTime(field, v string) error {
	if v == "" {
		return nil
	}
	return reqLocalTime(field, v)
}

func reqLocalTime(field, v string) error {
	if _, err := time.Parse(LocalTimeLayout, v); err != nil || len(v) > len(LocalTimeLayout)+10 {
		return invalid(field, fmt.Sprintf("%q is not a local time %s", v, LocalTimeLayout))
	}
	return nil
}

func date(field, v string) error {
	if v == "" {
		return nil
	}
	if _, err := time.Parse(DateLayout, v); err != nil {
		return invalid(field, fmt.Sprintf("%q is not a date %s", v, DateLayout))
	}
	return nil
}

func oneOf(field, v string, allowed ...string) error {
	for _, a := range allowed {
		if v == a {
			return nil
		}
	}
	return invalid(field, fmt.Sprintf("%q is not one of %q", v, allowed))
}

func pair(fieldA, a, fieldB, b string) error {
	if (a == "") != (b == "") {
		return invalid(fieldA, "and "+fieldB+" must be set together")
	}
	return nil
}

func nonNegative(field string, v int) error {
	if v < 0 {
		return invalid(field, "is negative")
	}
	return nil
}
