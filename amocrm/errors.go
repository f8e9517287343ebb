package amocrm

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors. Every error a Client returns for an amoCRM answer wraps
// exactly one of them (through *Error or *ValidationError), so callers check
// with errors.Is and read details with errors.As.
var (
	// ErrValidation: amoCRM rejected the request body (400, 422). The
	// per-item details are in a *ValidationError.
	ErrValidation = errors.New("amocrm: validation failed")
	// ErrUnauthorized: amoCRM refused the access token (401) even after a refresh.
	ErrUnauthorized = errors.New("amocrm: unauthorized")
	// ErrRevoked: the integration's access was revoked (uninstalled, or the
	// refresh token was rejected); the account must install the widget again.
	ErrRevoked = errors.New("amocrm: access revoked")
	// ErrInvalidGrant: the OAuth endpoint rejected an authorization code or
	// refresh token (400/401).
	ErrInvalidGrant = errors.New("amocrm: authorization code or refresh token rejected")
	// ErrPaymentRequired: the amoCRM account is unpaid or its trial is over (402).
	ErrPaymentRequired = errors.New("amocrm: account unpaid")
	// ErrForbidden: the token's user lacks the rights for the method (403 JSON).
	ErrForbidden = errors.New("amocrm: forbidden")
	// ErrBlocked: amoCRM blocked API access for the account (403 HTML page or
	// 403 after rate-limit violations). Every Client refuses calls for the
	// account until the block record in Redis expires.
	ErrBlocked = errors.New("amocrm: API access blocked")
	// ErrRateLimited: amoCRM answered 429 on every attempt.
	ErrRateLimited = errors.New("amocrm: rate limited")
	// ErrNotFound: the entity does not exist (204 on a get by id).
	ErrNotFound = errors.New("amocrm: not found")
	// ErrTransient: 5xx, timeout or connection failure on every attempt.
	ErrTransient = errors.New("amocrm: temporarily unavailable")
	// ErrMalformed: amoCRM answered with a body that is not the documented shape.
	ErrMalformed = errors.New("amocrm: malformed response")
)

// Error describes a failed amoCRM call. Kind is one of the sentinel errors
// above and is what errors.Is matches. It never contains a token.
type Error struct {
	Kind      error
	Method    string // HTTP method
	Path      string // URL path without the query
	Status    int    // HTTP status; 0 when no response arrived
	Title     string // problem+json title, if any
	Detail    string // problem+json detail or a short reason
	RequestID string // amoCRM's X-Request-Id, for support
	Attempts  int    // HTTP attempts made
}

// Error implements error.
func (e *Error) Error() string {
	var b strings.Builder
	if e.Kind != nil {
		b.WriteString(e.Kind.Error())
	} else {
		b.WriteString("amocrm: error")
	}
	fmt.Fprintf(&b, ": %s %s", e.Method, e.Path)
	if e.Status != 0 {
		fmt.Fprintf(&b, ": status %d", e.Status)
	}
	if e.Title != "" {
		b.WriteString(": " + e.Title)
	}
	if e.Detail != "" {
		b.WriteString(": " + e.Detail)
	}
	if e.RequestID != "" {
		b.WriteString(" (x-request-id " + e.RequestID + ")")
	}
	if e.Attempts > 1 {
		fmt.Fprintf(&b, " after %d attempts", e.Attempts)
	}
	return b.String()
}

// Unwrap returns Kind.
func (e *Error) Unwrap() error { return e.Kind }

// ValidationError is amoCRM's 400/422 answer with its per-item
// validation-errors. It matches ErrValidation. Request ids are the ones the
// Client sent: for batch writes, the item's index in the caller's slice
// unless the caller set its own.
type ValidationError struct {
	Method string
	Path   string
	Status int
	Title  string
	Detail string
	Items  []ItemErrors
}

// ItemErrors are the validation errors of one batch item.
type ItemErrors struct {
	RequestID string       `json:"request_id"`
	Errors    []FieldError `json:"errors"`
}

// FieldError is one rejected value: Code such as NotSupportedChoice or
// InvalidType, Path such as custom_fields_values.0.field_id.
type FieldError struct {
	Code   string `json:"code"`
	Path   string `json:"path"`
	Detail string `json:"detail"`
}

// Error implements error.
func (e *ValidationError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s %s: status %d", ErrValidation, e.Method, e.Path, e.Status)
	if e.Detail != "" {
		b.WriteString(": " + e.Detail)
	}
	for i, item := range e.Items {
		if i == 3 {
			fmt.Fprintf(&b, "; and %d more items", len(e.Items)-i)
			break
		}
		for _, fe := range item.Errors {
			fmt.Fprintf(&b, "; item %s: %s at %s", item.RequestID, fe.Code, fe.Path)
		}
	}
	return b.String()
}

// Unwrap returns ErrValidation.
func (e *ValidationError) Unwrap() error { return ErrValidation }

// Retryable reports whether err is worth retrying later (rate limit or a
// transient failure); revoked, blocked, unpaid and validation errors are not.
func Retryable(err error) bool {
	return errors.Is(err, ErrRateLimited) || errors.Is(err, ErrTransient)
}
