// Package billing holds the subscription rules: statuses, seat math and the
// state machine. It is pure: no I/O, no clock of its own (callers pass now).
package billing

import "time"

// Status is a subscription's state as shown to the clinic.
type Status string

// Subscription statuses (product.md §4).
const (
	StatusTrial     Status = "trial"
	StatusActive    Status = "active"
	StatusExpiring  Status = "expiring"
	StatusExpired   Status = "expired"
	StatusSuspended Status = "suspended"
)

// ExpiringWindow is how long before the end an active subscription shows as expiring.
const ExpiringWindow = 14 * 24 * time.Hour

// Subscription is an account's subscription state.
type Subscription struct {
	Status      Status
	TrialEndsAt *time.Time
	PaidUntil   *time.Time
	PaidSeats   int
}

// NewTrial starts a free trial of days from now.
func NewTrial(now time.Time, days int) Subscription {
	end := now.UTC().AddDate(0, 0, days)
	return Subscription{Status: StatusTrial, TrialEndsAt: &end}
}

// Effective returns the status at now: a trial or paid period that has run
// out reads as expired, a paid one close to its end as expiring. Suspension
// is decided elsewhere (seat counting) and kept as stored.
func (s Subscription) Effective(now time.Time) Status {
	switch s.Status {
	case StatusSuspended:
		return StatusSuspended
	case StatusTrial:
		if s.TrialEndsAt == nil || !now.Before(*s.TrialEndsAt) {
			return StatusExpired
		}
		return StatusTrial
	case StatusActive, StatusExpiring, StatusExpired:
		if s.PaidUntil == nil || !now.Before(*s.PaidUntil) {
			return StatusExpired
		}
		if s.PaidUntil.Sub(now) < ExpiringWindow {
			return StatusExpiring
		}
		return StatusActive
	}
	return s.Status
}

// AllowsWork reports whether the sync may run at now.
func (s Subscription) AllowsWork(now time.Time) bool {
	switch s.Effective(now) {
	case StatusTrial, StatusActive, StatusExpiring:
		return true
	}
	return false
}

// Label is the Russian status text of seed 004.
func (st Status) Label() string {
	switch st {
	case StatusTrial:
		return "Бесплатный пробный период"
	case StatusActive:
		return "Активная"
	case StatusExpiring:
		return "Срок действия истекает"
	case StatusExpired:
		return "Срок действия истёк"
	case StatusSuspended:
		return "Приостановлена"
	}
	return string(st)
}
