package mirror

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/svyazka/svyazka/connector/protocol"
)

// ErrInvalid is wrapped by every error of this package: a time that is not in
// protocol.LocalTimeLayout, a missing zone, an unknown state or pipeline, or
// a bad Rules value. The message names the field and the record.
var ErrInvalid = errors.New("mirror: invalid input")

// Reception is an IDENT reception with its id (the record's SourceID; the
// payload does not carry it).
type Reception struct {
	ID string
	protocol.IdentReception
}

// Patient is an IDENT patient with its id (the record's SourceID).
type Patient struct {
	ID string
	protocol.IdentPatient
}

// State is what happened to a reception, derived from IDENT's event stamps.
// The values are the keys a stage mapping uses and are stored as they are.
type State string

// The reception states, in the order a visit usually passes them.
const (
	StatePlanned   State = "planned"
	StateArrived   State = "arrived"
	StateCompleted State = "completed"
	StateNoShow    State = "no_show"
	StateCancelled State = "cancelled"
)

// States lists every State in display order.
func States() []State {
	return []State{StatePlanned, StateArrived, StateCompleted, StateNoShow, StateCancelled}
}

// Valid reports whether s is one of the States.
func (s State) Valid() bool { return slices.Contains(States(), s) }

// Title is the state's status text and default stage name in amoCRM, or ""
// for an invalid state.
func (s State) Title() string {
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
	return ""
}

// Defaults of Rules.
const (
	DefaultNoShowReasonID = "8" // «Пациент не пришел», written by IDENT itself
	DefaultMovedReasonID  = "6" // «Перенос по просьбе пациента»
	DefaultNoShowGrace    = 24 * time.Hour
)

// MinReceptionLength is the length assumed for a reception whose plan end is
// missing or not after its plan start (IDENT has such rows).
const MinReceptionLength = 15 * time.Minute

// Rules is a clinic's configuration of the state rules. The zero value has
// no reason ids and no grace; start from DefaultRules.
type Rules struct {
	// NoShowReasonIDs are the cancel reasons that mean "the patient did not
	// come".
	NoShowReasonIDs []string
	// MovedReasonIDs are the cancel reasons that mean "moved to another
	// reception".
	MovedReasonIDs []string
	// NoShowGrace is how long after its plan end a reception with no stamp
	// at all still counts as planned.
	NoShowGrace time.Duration
}

// DefaultRules returns the rules of a clinic that changed nothing: no-show
// reason 8, moved reason 6, a 24-hour grace.
func DefaultRules() Rules {
	return Rules{
		NoShowReasonIDs: []string{DefaultNoShowReasonID},
		MovedReasonIDs:  []string{DefaultMovedReasonID},
		NoShowGrace:     DefaultNoShowGrace,
	}
}

// Validate reports an error wrapping ErrInvalid when a reason id is not an
// IDENT id, an id is both no-show and moved, or the grace is negative.
func (r Rules) Validate() error {
	if r.NoShowGrace < 0 {
		return fmt.Errorf("%w: no-show grace %v is negative", ErrInvalid, r.NoShowGrace)
	}
	for _, id := range append(slices.Clone(r.NoShowReasonIDs), r.MovedReasonIDs...) {
		if !protocol.ValidSourceID(id) {
			return fmt.Errorf("%w: cancel reason %q is not an id", ErrInvalid, id)
		}
	}
	for _, id := range r.NoShowReasonIDs {
		if slices.Contains(r.MovedReasonIDs, id) {
			return fmt.Errorf("%w: cancel reason %s is both no-show and moved", ErrInvalid, id)
		}
	}
	return nil
}

// Cancelled reports whether IDENT cancelled rec: ReceptionCanceled or a
// cancel reason is set. IDENT normally sets both; either alone counts.
func Cancelled(rec protocol.IdentReception) bool {
	return rec.ReceptionCanceled != "" || rec.CancelReasonID != ""
}

// Completed reports whether rec is a completed visit in the sense of the
// first-visit rule: not cancelled, and ReceptionEnded or CheckIssued set.
func Completed(rec protocol.IdentReception) bool {
	return !Cancelled(rec) && (rec.ReceptionEnded != "" || rec.CheckIssued != "")
}

// MarkedNoShow reports whether rec is cancelled with one of the no-show
// reasons.
func (r Rules) MarkedNoShow(rec protocol.IdentReception) bool {
	return Cancelled(rec) && rec.CancelReasonID != "" && slices.Contains(r.NoShowReasonIDs, rec.CancelReasonID)
}

// MovedAway reports whether rec is cancelled with one of the moved reasons.
// Such a reception is normally superseded by its successor (see
// ResolveChains); when it is the current reception of its chain the
// successor has not arrived yet, and the caller leaves the lead as it is
// rather than showing the move as a cancellation.
func (r Rules) MovedAway(rec protocol.IdentReception) bool {
	return Cancelled(rec) && rec.CancelReasonID != "" && slices.Contains(r.MovedReasonIDs, rec.CancelReasonID)
}

// ReceptionState derives rec's state at now (any zone) with its naive times
// read in loc. Errors wrap ErrInvalid: a nil loc, or a plan start or plan
// end that is not a local time.
func (r Rules) ReceptionState(rec Reception, loc *time.Location, now time.Time) (State, error) {
	switch {
	case r.MarkedNoShow(rec.IdentReception):
		return StateNoShow, nil
	case Cancelled(rec.IdentReception):
		return StateCancelled, nil
	case rec.ReceptionEnded != "" || rec.CheckIssued != "":
		return StateCompleted, nil
	case rec.ReceptionStarted != "" || rec.PatientAppeared != "":
		return StateArrived, nil
	}
	deadline, err := r.noShowDeadline(rec, loc)
	if err != nil {
		return "", err
	}
	if !now.Before(deadline) {
		return StateNoShow, nil
	}
	return StatePlanned, nil
}

// NextReevaluation returns the instant (UTC) at which rec, planned at now,
// becomes a no-show by the grace rule, and true; ReceptionState called at or
// after that instant returns StateNoShow. It returns false when rec is not
// planned at now (a stamp is set or the grace has already run out) or when
// its times cannot be read; ReceptionState reports that error.
func (r Rules) NextReevaluation(rec Reception, loc *time.Location, now time.Time) (time.Time, bool) {
	state, err := r.ReceptionState(rec, loc, now)
	if err != nil || state != StatePlanned {
		return time.Time{}, false
	}
	deadline, err := r.noShowDeadline(rec, loc)
	if err != nil {
		return time.Time{}, false
	}
	return deadline.UTC(), true
}

// noShowDeadline is the plan end plus the grace. The boundary counts as
// expired, so a timer set to it sees the no-show.
func (r Rules) noShowDeadline(rec Reception, loc *time.Location) (time.Time, error) {
	_, end, err := PlanTimes(rec, loc)
	if err != nil {
		return time.Time{}, err
	}
	return end.Add(r.NoShowGrace), nil
}

// PlanTimes returns rec's planned start and end as instants in loc. A
// missing plan end, or one not after the start, is read as start +
// MinReceptionLength. Errors wrap ErrInvalid.
func PlanTimes(rec Reception, loc *time.Location) (start, end time.Time, err error) {
	start, err = ParseLocal(rec.PlanStart, loc)
	if err != nil {
		return time.Time{}, time.Time{}, fmt.Errorf("reception %s: plan_start: %w", rec.ID, err)
	}
	end = start.Add(MinReceptionLength)
	if rec.PlanEnd != "" {
		planEnd, err := ParseLocal(rec.PlanEnd, loc)
		if err != nil {
			return time.Time{}, time.Time{}, fmt.Errorf("reception %s: plan_end: %w", rec.ID, err)
		}
		if planEnd.After(start) {
			end = planEnd
		}
	}
	return start, end, nil
}

// ParseLocal reads an IDENT naive wall-clock time (protocol.LocalTimeLayout,
// optionally with a fractional second) as a time in loc. A wall-clock time
// that a DST change skips or repeats resolves as time.Date does. Errors wrap
// ErrInvalid: a nil loc or text in another layout.
func ParseLocal(s string, loc *time.Location) (time.Time, error) {
	if loc == nil {
		return time.Time{}, fmt.Errorf("%w: no clinic time zone", ErrInvalid)
	}
	t, err := time.ParseInLocation(protocol.LocalTimeLayout, s, loc)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: %q is not a local time %s", ErrInvalid, s, protocol.LocalTimeLayout)
	}
	return t, nil
}
