package setup

// Status is the setup state shown to support (`svyazka admin status`) and
// behind «Связка настроена» on the settings page.
type Status string

// Setup statuses; the strings are printed and stored as they are.
const (
	StatusNotConfigured Status = "not_configured"
	StatusRunning       Status = "running"
	StatusConfigured    Status = "configured"
	StatusFailed        Status = "failed"
	StatusDrift         Status = "drift"
)

// Label is the status in the words of the settings page.
func (s Status) Label() string {
	switch s {
	case StatusNotConfigured:
		return "Связка не настроена"
	case StatusRunning:
		return "Выполняется автонастройка"
	case StatusConfigured:
		return "Связка настроена"
	case StatusFailed:
		return "Автонастройка не удалась"
	case StatusDrift:
		return "Данные не передаются"
	}
	return string(s)
}

// StatusFacts are what the setup status is derived from: whether a mapping
// is stored, whether an apply task is running, whether the latest apply
// failed, and the problems Validate found on the latest snapshot.
type StatusFacts struct {
	HasMapping      bool
	ApplyRunning    bool
	LastApplyFailed bool
	Drift           []Problem
}

// DeriveStatus applies the rule, first match wins:
//  1. an apply is running → running;
//  2. the latest apply failed → failed, even if an older mapping exists:
//     support must see the failure until an apply succeeds;
//  3. no mapping → not_configured;
//  4. Validate found problems → drift;
//  5. otherwise → configured.
func DeriveStatus(f StatusFacts) Status {
	switch {
	case f.ApplyRunning:
		return StatusRunning
	case f.LastApplyFailed:
		return StatusFailed
	case !f.HasMapping:
		return StatusNotConfigured
	case len(f.Drift) > 0:
		return StatusDrift
	}
	return StatusConfigured
}
