package setup

import (
	"slices"
	"strings"
)

// Doctor is a source doctor (performer): its IDENT id and full name,
// surname first («Иванов Иван Иванович»).
type Doctor struct {
	ID   string
	Name string
}

// MatchKind says how a doctor was matched to an amoCRM user.
type MatchKind string

// Match kinds.
const (
	MatchNone      MatchKind = ""           // nobody fits
	MatchOverride  MatchKind = "override"   // the manual override table
	MatchFullName  MatchKind = "full_name"  // the same words, in any order
	MatchShortName MatchKind = "short_name" // surname and first name only
	// MatchAmbiguous: more than one user fits, or one user fits more than one
	// doctor (MatchDoctors); nobody is chosen.
	MatchAmbiguous MatchKind = "ambiguous"
)

// Match is the result of matching one doctor; UserID is 0 unless Kind is
// MatchOverride, MatchFullName or MatchShortName.
type Match struct {
	UserID int64
	Kind   MatchKind
}

// Matched reports whether a user was chosen.
func (m Match) Matched() bool { return m.UserID != 0 }

// MatchResponsible finds the amoCRM user for a doctor, conservatively:
//  1. an override for the doctor's id wins, whatever the names;
//  2. otherwise an active user whose name has the same words as the doctor's
//     after Normalize, in any order, at least two of them (MatchFullName):
//     «Иванов Иван Иванович» = «Иван Иванович Иванов»;
//  3. otherwise an active user whose name is exactly two words equal to the
//     doctor's surname and first name, in either order (MatchShortName):
//     «Иванов Иван Иванович» = «Иван Иванов» = «Иванов Иван». It works the
//     other way too: a doctor «Иванов Иван» and a user «Иванов Иван Иванович».
//
// Initials («Иванов И.И.»), a surname alone or a different patronymic never
// match. Two users fitting at the same step are ambiguous: nobody is chosen.
// Inactive users are never matched by name.
func MatchResponsible(d Doctor, users []User, overrides map[string]int64) Match {
	if id, ok := overrides[d.ID]; ok && id != 0 {
		return Match{UserID: id, Kind: MatchOverride}
	}
	dw := nameWords(d.Name)
	if len(dw) < 2 {
		return Match{}
	}
	for _, step := range []struct {
		kind MatchKind
		fits func(uw []string) bool
	}{
		{MatchFullName, func(uw []string) bool { return sameWords(dw, uw) }},
		{MatchShortName, func(uw []string) bool { return shortNameOf(dw, uw) || shortNameOf(uw, dw) }},
	} {
		var found []int64
		for _, u := range users {
			if u.Active && step.fits(nameWords(u.Name)) {
				found = append(found, u.ID)
			}
		}
		switch len(found) {
		case 0:
			continue
		case 1:
			return Match{UserID: found[0], Kind: step.kind}
		default:
			return Match{Kind: MatchAmbiguous}
		}
	}
	return Match{}
}

// MatchDoctors matches every doctor with MatchResponsible and then drops, as
// ambiguous, the name matches that give one user to several doctors (two
// doctors «Иванов Иван Иванович» and «Иванов Иван Петрович» against a user
// «Иван Иванов»). Overrides are kept as they are. The result is keyed by
// doctor id.
func MatchDoctors(doctors []Doctor, users []User, overrides map[string]int64) map[string]Match {
	out := make(map[string]Match, len(doctors))
	byUser := map[int64][]string{}
	for _, d := range doctors {
		m := MatchResponsible(d, users, overrides)
		out[d.ID] = m
		if m.Kind == MatchFullName || m.Kind == MatchShortName {
			byUser[m.UserID] = append(byUser[m.UserID], d.ID)
		}
	}
	for _, ids := range byUser {
		if len(ids) > 1 {
			for _, id := range ids {
				out[id] = Match{Kind: MatchAmbiguous}
			}
		}
	}
	return out
}

func nameWords(name string) []string { return strings.Fields(Normalize(name)) }

func sameWords(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	a, b = slices.Sorted(slices.Values(a)), slices.Sorted(slices.Values(b))
	return slices.Equal(a, b)
}

// shortNameOf reports whether short is the first two words of full (surname
// and first name) in either order.
func shortNameOf(full, short []string) bool {
	return len(short) == 2 && len(full) >= 3 && sameWords(full[:2], short)
}
