// Package amoerr translates the amoCRM client's errors into application
// error codes, so the amocrm package knows nothing of the backend and the
// backend has one table for what an amoCRM failure means to its callers.
package amoerr

import (
	"errors"

	"github.com/svyazka/svyazka/amocrm"
	"github.com/svyazka/svyazka/backend/apperr"
)

// Code maps an amoCRM error to the application error code the HTTP layer
// shows: validation → invalid, revoked/unauthorized/rejected grant →
// unauthorized, unpaid → payment_required, forbidden/blocked → forbidden,
// rate limited → rate_limited, not found → not_found, transient/malformed →
// unavailable. It returns apperr.Internal for errors that match none of
// amocrm's sentinels, "" for nil.
func Code(err error) apperr.Code {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, amocrm.ErrValidation):
		return apperr.Invalid
	case errors.Is(err, amocrm.ErrRevoked), errors.Is(err, amocrm.ErrUnauthorized), errors.Is(err, amocrm.ErrInvalidGrant):
		return apperr.Unauthorized
	case errors.Is(err, amocrm.ErrPaymentRequired):
		return apperr.PaymentRequired
	case errors.Is(err, amocrm.ErrForbidden), errors.Is(err, amocrm.ErrBlocked):
		return apperr.Forbidden
	case errors.Is(err, amocrm.ErrRateLimited):
		return apperr.RateLimited
	case errors.Is(err, amocrm.ErrNotFound):
		return apperr.NotFound
	case errors.Is(err, amocrm.ErrTransient), errors.Is(err, amocrm.ErrMalformed):
		return apperr.Unavailable
	}
	return apperr.Internal
}
