package jobs

import "time"

// BackoffDelay exposes the backoff schedule to the tests.
func BackoffDelay(e *BackoffError, n int) time.Duration { return e.delay(n) }
