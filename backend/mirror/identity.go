package mirror

import (
	"cmp"
	"slices"
	"strings"
	"unicode"

	"github.com/svyazka/svyazka/backend/phone"
	"github.com/svyazka/svyazka/connector/protocol"
)

// SplitPhones returns every valid phone number in raw, in E.164 (see
// phone.Normalize), in order of appearance, without duplicates. Staff type
// anything into a phone field: two numbers, "доб. 12", "(мама)". Any
// character that cannot be part of a written number (a letter, comma,
// semicolon, slash, …) separates numbers, and so does a "+" after a digit.
// A piece that is not one number as a whole is read as several numbers
// separated by spaces, each the longest run of words that is a number.
// Text with no valid number gives nil.
func SplitPhones(raw string) []string {
	var out []string
	add := func(e164 string) {
		if !slices.Contains(out, e164) {
			out = append(out, e164)
		}
	}
	for _, piece := range phonePieces(raw) {
		if n, err := phone.Normalize(piece); err == nil {
			add(n)
			continue
		}
		words := strings.Fields(piece)
		for i := 0; i < len(words); {
			next := i + 1
			for j := len(words); j > i; j-- {
				if n, err := phone.Normalize(strings.Join(words[i:j], " ")); err == nil {
					add(n)
					next = j
					break
				}
			}
			i = next
		}
	}
	return out
}

// phonePieces splits raw into runs of characters a written number consists
// of, with every kind of white space read as a plain space.
func phonePieces(raw string) []string {
	var pieces []string
	var cur strings.Builder
	digits := false
	flush := func() {
		if digits {
			pieces = append(pieces, cur.String())
		}
		cur.Reset()
		digits = false
	}
	for _, r := range raw {
		switch {
		case r >= '0' && r <= '9':
			cur.WriteRune(r)
			digits = true
		case r == '+':
			if digits {
				flush()
			}
			cur.WriteRune(r)
		case unicode.IsSpace(r):
			cur.WriteRune(' ')
		case strings.ContainsRune("-().", r):
			cur.WriteRune(r)
		default:
			flush()
		}
	}
	flush()
	return pieces
}

// Phones returns the patient's phones in E.164: MobilePhone's numbers first,
// then Phone's, without duplicates. Unreadable text is skipped.
func Phones(p protocol.IdentPatient) []string {
	out := SplitPhones(p.MobilePhone)
	for _, n := range SplitPhones(p.Phone) {
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

// CandidateContact is an amoCRM contact Svyazka did not create that might be
// a patient's.
type CandidateContact struct {
	ID int64
	// Phones as amoCRM holds them, any format; each is read by SplitPhones.
	Phones []string
	// Linked is true when the contact is already linked to a patient.
	Linked bool
}

// PatientPhones is a patient and its phones for Adopt. Pass every patient of
// the database, linked ones too: a phone that a linked patient shares is
// still a shared phone.
type PatientPhones struct {
	PatientID string
	// Phones in any format (typically Phones of the patient); each is read
	// by SplitPhones.
	Phones []string
	// Linked is true when the patient already has a contact.
	Linked bool
}

// Adoption pairs a contact with the patient it is adopted for.
type Adoption struct {
	ContactID int64
	PatientID string
}

// NotAdoptedReason says why a candidate contact was not adopted.
type NotAdoptedReason string

// The reasons, checked in this order.
const (
	// ReasonContactLinked: the contact is linked to a patient already.
	ReasonContactLinked NotAdoptedReason = "contact_linked"
	// ReasonNoPhone: the contact has no valid phone.
	ReasonNoPhone NotAdoptedReason = "no_phone"
	// ReasonNoMatch: no patient has any of its phones.
	ReasonNoMatch NotAdoptedReason = "no_match"
	// ReasonSharedPhone: its phones belong to more than one patient (a family
	// phone); one phone never merges two patients.
	ReasonSharedPhone NotAdoptedReason = "shared_phone"
	// ReasonPatientLinked: the one patient it matches has a contact already.
	ReasonPatientLinked NotAdoptedReason = "patient_linked"
	// ReasonPatientContested: another candidate matches the same patient;
	// neither is adopted, since which duplicate is the clinic's is not ours
	// to guess.
	ReasonPatientContested NotAdoptedReason = "patient_contested"
)

// NotAdopted is a candidate contact left alone, with why and the patients
// its phones matched (in id order).
type NotAdopted struct {
	ContactID  int64
	Reason     NotAdoptedReason
	PatientIDs []string
}

// AdoptResult is the outcome of Adopt, both lists in contact id order.
type AdoptResult struct {
	Adopted    []Adoption
	NotAdopted []NotAdopted
}

// Adopt decides which existing contacts become patients' contacts. A
// contact is adopted for a patient only when: the contact is linked to
// nobody; the union of the patients that have any of its phones is exactly
// that one patient; the patient has no contact; and no other candidate is
// adopted for the same patient. Every other candidate is in NotAdopted with
// the first reason that applies. Nothing is merged by name or e-mail.
func Adopt(contacts []CandidateContact, patients []PatientPhones) AdoptResult {
	byPhone := map[string][]string{}
	linked := map[string]bool{}
	for _, p := range patients {
		if p.Linked {
			linked[p.PatientID] = true
		}
		for _, raw := range p.Phones {
			for _, n := range SplitPhones(raw) {
				if !slices.Contains(byPhone[n], p.PatientID) {
					byPhone[n] = append(byPhone[n], p.PatientID)
				}
			}
		}
	}

	sorted := slices.Clone(contacts)
	slices.SortStableFunc(sorted, func(a, b CandidateContact) int { return cmp.Compare(a.ID, b.ID) })

	var out AdoptResult
	type pending struct {
		contact int64
		patient string
	}
	var candidates []pending
	claims := map[string]int{}
	for _, c := range sorted {
		if c.Linked {
			out.NotAdopted = append(out.NotAdopted, NotAdopted{ContactID: c.ID, Reason: ReasonContactLinked})
			continue
		}
		var phones []string
		for _, raw := range c.Phones {
			phones = append(phones, SplitPhones(raw)...)
		}
		if len(phones) == 0 {
			out.NotAdopted = append(out.NotAdopted, NotAdopted{ContactID: c.ID, Reason: ReasonNoPhone})
			continue
		}
		var matched []string
		for _, n := range phones {
			for _, id := range byPhone[n] {
				if !slices.Contains(matched, id) {
					matched = append(matched, id)
				}
			}
		}
		slices.SortFunc(matched, compareIDs)
		switch {
		case len(matched) == 0:
			out.NotAdopted = append(out.NotAdopted, NotAdopted{ContactID: c.ID, Reason: ReasonNoMatch})
		case len(matched) > 1:
			out.NotAdopted = append(out.NotAdopted, NotAdopted{ContactID: c.ID, Reason: ReasonSharedPhone, PatientIDs: matched})
		case linked[matched[0]]:
			out.NotAdopted = append(out.NotAdopted, NotAdopted{ContactID: c.ID, Reason: ReasonPatientLinked, PatientIDs: matched})
		default:
			candidates = append(candidates, pending{c.ID, matched[0]})
			claims[matched[0]]++
		}
	}
	for _, p := range candidates {
		if claims[p.patient] > 1 {
			out.NotAdopted = append(out.NotAdopted, NotAdopted{ContactID: p.contact, Reason: ReasonPatientContested, PatientIDs: []string{p.patient}})
			continue
		}
		out.Adopted = append(out.Adopted, Adoption{ContactID: p.contact, PatientID: p.patient})
	}
	slices.SortStableFunc(out.NotAdopted, func(a, b NotAdopted) int { return cmp.Compare(a.ContactID, b.ContactID) })
	return out
}
