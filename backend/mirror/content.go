package mirror

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/svyazka/svyazka/connector/protocol"
)

// Dictionaries are the IDENT reference rows a lead's text refers to, by id.
type Dictionaries struct {
	Doctors  map[string]protocol.IdentDoctor
	Branches map[string]protocol.IdentBranch
}

// DoctorName is the doctor's full name "Фамилия Имя Отчество" (empty parts
// left out), or "" when staffID is empty or not in the dictionary.
func (d Dictionaries) DoctorName(staffID string) string {
	doc, ok := d.Doctors[staffID]
	if staffID == "" || !ok {
		return ""
	}
	return joinNonEmpty(doc.Surname, doc.Name, doc.Patronymic)
}

// BranchName is the branch's BranchName, else its Name, else "Филиал <id>";
// "" when branchID is empty or not in the dictionary.
func (d Dictionaries) BranchName(branchID string) string {
	b, ok := d.Branches[branchID]
	if branchID == "" || !ok {
		return ""
	}
	if s := strings.TrimSpace(b.BranchName); s != "" {
		return s
	}
	if s := strings.TrimSpace(b.Name); s != "" {
		return s
	}
	return "Филиал " + branchID
}

// LeadInput is what BuildLead needs: the chain's current reception, its
// patient, the decisions already taken for it, and the clinic's context.
type LeadInput struct {
	Reception    Reception
	Patient      Patient
	State        State
	Pipeline     Pipeline
	Dictionaries Dictionaries
	// Location is the clinic's IANA zone the naive times are read in.
	Location *time.Location
}

// LeadFacts are the facts a lead carries in amoCRM.
type LeadFacts struct {
	// ReceptionID is the current reception of the chain.
	ReceptionID string
	PatientID   string
	// Name is "Фамилия И. О. — 02.01.2006 15:04" in the clinic's time.
	Name     string
	Pipeline Pipeline
	State    State
	// StatusText is State.Title(): «Записан на приём» and so on.
	StatusText string
	// Start and End are the planned times in UTC; StartLocal is Start in the
	// clinic's zone. End follows PlanTimes (a zero-length reception lasts
	// MinReceptionLength).
	Start      time.Time
	StartLocal time.Time
	End        time.Time
	DoctorName string
	BranchName string
	// AmountKopecks is the bill, nil when unknown.
	AmountKopecks *int64
	// Hash is a hex SHA-256 of every field above: equal hashes mean there is
	// nothing to send.
	Hash string
}

// BuildLead returns the lead's facts. Errors wrap ErrInvalid: an invalid
// State or Pipeline, a nil Location or unreadable plan times.
func BuildLead(in LeadInput) (LeadFacts, error) {
	rec := in.Reception
	if !in.State.Valid() {
		return LeadFacts{}, fmt.Errorf("%w: reception %s: state %q", ErrInvalid, rec.ID, in.State)
	}
	if !in.Pipeline.Valid() {
		return LeadFacts{}, fmt.Errorf("%w: reception %s: pipeline %q", ErrInvalid, rec.ID, in.Pipeline)
	}
	start, end, err := PlanTimes(rec, in.Location)
	if err != nil {
		return LeadFacts{}, err
	}
	f := LeadFacts{
		ReceptionID:   rec.ID,
		PatientID:     in.Patient.ID,
		Name:          shortName(in.Patient) + " — " + start.Format("02.01.2006 15:04"),
		Pipeline:      in.Pipeline,
		State:         in.State,
		StatusText:    in.State.Title(),
		Start:         start.UTC(),
		StartLocal:    start,
		End:           end.UTC(),
		DoctorName:    in.Dictionaries.DoctorName(rec.StaffID),
		BranchName:    in.Dictionaries.BranchName(rec.BranchID),
		AmountKopecks: cloneInt64(rec.AmountKopecks),
	}
	f.Hash = contentHash("lead/v1", struct {
		ReceptionID, PatientID, Name string
		Pipeline                     Pipeline
		State                        State
		StatusText                   string
		Start, End                   time.Time
		StartLocal                   string
		DoctorName, BranchName       string
		AmountKopecks                *int64
	}{f.ReceptionID, f.PatientID, f.Name, f.Pipeline, f.State, f.StatusText, f.Start, f.End,
		f.StartLocal.Format(time.RFC3339), f.DoctorName, f.BranchName, f.AmountKopecks})
	return f, nil
}

// Sex is a patient's sex as the contact card shows it.
type Sex string

// The sexes; SexUnknown when IDENT does not say.
const (
	SexUnknown Sex = ""
	SexMale    Sex = "male"
	SexFemale  Sex = "female"
)

// ContactFacts are the facts a contact carries in amoCRM.
type ContactFacts struct {
	// PatientID is IDENT's patient id.
	PatientID string
	// Name is "Фамилия Имя Отчество", or "Пациент <id>" when IDENT has no
	// name at all.
	Name string
	// Phones are E.164, mobile first (see Phones).
	Phones []string
	// Email is the trimmed e-mail, "" when missing or not shaped like one.
	Email string
	// BirthDate is protocol.DateLayout, "" when unknown.
	BirthDate  string
	Sex        Sex
	CardNumber string
	// Hash is a hex SHA-256 of every field above.
	Hash string
}

// BuildContact returns the contact's facts for p. It cannot fail: IDENT's
// patient fields are free text and unusable text is left out.
func BuildContact(p Patient) ContactFacts {
	f := ContactFacts{
		PatientID:  p.ID,
		Name:       joinNonEmpty(p.Surname, p.Name, p.Patronymic),
		Phones:     Phones(p.IdentPatient),
		Email:      email(p.Email),
		CardNumber: strings.TrimSpace(p.CardNumber),
	}
	if f.Name == "" {
		f.Name = "Пациент " + p.ID
	}
	if _, err := time.Parse(protocol.DateLayout, p.BirthDate); err == nil {
		f.BirthDate = p.BirthDate
	}
	switch Sex(p.Sex) {
	case SexMale, SexFemale:
		f.Sex = Sex(p.Sex)
	}
	f.Hash = contentHash("contact/v1", struct {
		PatientID, Name  string
		Phones           []string
		Email, BirthDate string
		Sex              Sex
		CardNumber       string
	}{f.PatientID, f.Name, f.Phones, f.Email, f.BirthDate, f.Sex, f.CardNumber})
	return f
}

// shortName is "Фамилия И. О."; without a surname the other parts in full,
// and without any name "Пациент <id>".
func shortName(p Patient) string {
	surname := strings.TrimSpace(p.Surname)
	if surname == "" {
		if name := joinNonEmpty(p.Name, p.Patronymic); name != "" {
			return name
		}
		return "Пациент " + p.ID
	}
	var initials []string
	for _, part := range []string{p.Name, p.Patronymic} {
		if r, _ := utf8.DecodeRuneInString(strings.TrimSpace(part)); r != utf8.RuneError {
			initials = append(initials, string(unicode.ToUpper(r))+".")
		}
	}
	return joinNonEmpty(append([]string{surname}, initials...)...)
}

func joinNonEmpty(parts ...string) string {
	var kept []string
	for _, p := range parts {
		if p = strings.Join(strings.Fields(p), " "); p != "" {
			kept = append(kept, p)
		}
	}
	return strings.Join(kept, " ")
}

// email keeps s when it looks like one address: something@something.tld
// without spaces; amoCRM refuses anything else and would fail the request.
func email(s string) string {
	s = strings.TrimSpace(s)
	at := strings.LastIndexByte(s, '@')
	if at <= 0 || at == len(s)-1 || strings.ContainsAny(s, " \t\r\n,;") || !strings.Contains(s[at+1:], ".") {
		return ""
	}
	return s
}

func cloneInt64(p *int64) *int64 {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

// contentHash hashes a versioned canonical JSON encoding of v. Bumping the
// version makes every record look changed once, which is what a change of
// what is sent needs.
func contentHash(version string, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		// v is a fixed struct of strings, times and ints; Marshal cannot fail.
		panic(fmt.Sprintf("mirror: hash %s: %v", version, err))
	}
	sum := sha256.Sum256(append([]byte(version+"\n"), b...))
	return hex.EncodeToString(sum[:])
}
