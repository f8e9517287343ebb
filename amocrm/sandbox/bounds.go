package sandbox

import (
	"errors"
	"fmt"
	"io"
	"time"
)

// Bounds on what the control API and the API emulation accept. Anything
// above them is refused with a 400 in the surface's own error shape
// (problem+json on the API, OAuth problem on /oauth2, {"error": …} on
// /_sandbox), so a typo in a test cannot make the emulator allocate
// without limit or hang.
const (
	// MaxUsersPerAccount bounds an account's users: those CreateAccount
	// makes in one call and those AddUser adds later.
	MaxUsersPerAccount = 1000
	// MaxNameLength bounds account and user names and e-mails, in bytes.
	MaxNameLength = 255
	// MaxFaultLatency bounds Faults.LatencyMS.
	MaxFaultLatency = 30 * time.Second
	// MaxClockAdvance bounds one /_sandbox/clock/advance step.
	MaxClockAdvance = 366 * 24 * time.Hour

	maxBody        = 8 << 20 // an API request body
	maxOAuthBody   = 64 << 10
	maxControlBody = 1 << 20
	maxPerPage     = 250 // items per batch and the page limit, as amoCRM documents
	defaultLimit   = 50
)

// errBodyTooLarge: a request body longer than its surface's limit.
var errBodyTooLarge = errors.New("request body too large")

// readLimited reads all of r, failing with errBodyTooLarge (rather than
// truncating) when it holds more than limit bytes.
func readLimited(r io.Reader, limit int64) ([]byte, error) {
	body, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(body)) > limit {
		return nil, fmt.Errorf("%w: over %d bytes", errBodyTooLarge, limit)
	}
	return body, nil
}

// validate reports the first field of f outside its range.
func (f Faults) validate() error {
	for name, rate := range map[string]float64{"rate_429": f.Rate429, "rate_5xx": f.Rate5xx, "rate_timeout": f.RateTimeout} {
		if rate < 0 || rate > 1 {
			return fmt.Errorf("sandbox: faults: %s must be between 0 and 1, got %v: %w", name, rate, ErrInvalid)
		}
	}
	if f.LatencyMS < 0 || int64(f.LatencyMS) > MaxFaultLatency.Milliseconds() {
		return fmt.Errorf("sandbox: faults: latency_ms must be between 0 and %d, got %d: %w", MaxFaultLatency.Milliseconds(), f.LatencyMS, ErrInvalid)
	}
	return nil
}

// checkName fails for a name or e-mail longer than MaxNameLength.
func checkName(what, v string) error {
	if len(v) > MaxNameLength {
		return fmt.Errorf("sandbox: %s is %d bytes, over %d: %w", what, len(v), MaxNameLength, ErrInvalid)
	}
	return nil
}
