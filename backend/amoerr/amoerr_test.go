package amoerr_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/svyazka/svyazka/amocrm"
	"github.com/svyazka/svyazka/backend/amoerr"
	"github.com/svyazka/svyazka/backend/apperr"
)

func TestCode(t *testing.T) {
	t.Parallel()
	wrapped := func(kind error) error {
		return fmt.Errorf("amocrm: get account (1): %w", &amocrm.Error{Kind: kind, Method: "GET", Path: "/api/v4/account", Status: 400})
	}
	tests := []struct {
		name string
		err  error
		want apperr.Code
	}{
		{name: "Nil", err: nil, want: ""},
		{name: "ValidationError", err: &amocrm.ValidationError{Method: "POST", Path: "/api/v4/contacts", Status: 400,
			Items: []amocrm.ItemErrors{{RequestID: "0", Errors: []amocrm.FieldError{{Code: "NotSupportedChoice", Path: "custom_fields_values.0.field_id"}}}}},
			want: apperr.Invalid},
		{name: "ErrValidation", err: wrapped(amocrm.ErrValidation), want: apperr.Invalid},
		{name: "ErrRevoked", err: fmt.Errorf("amocrm: refresh token (account 1): %w: %w", amocrm.ErrRevoked, wrapped(amocrm.ErrInvalidGrant)), want: apperr.Unauthorized},
		{name: "ErrUnauthorized", err: wrapped(amocrm.ErrUnauthorized), want: apperr.Unauthorized},
		{name: "ErrInvalidGrant", err: wrapped(amocrm.ErrInvalidGrant), want: apperr.Unauthorized},
		{name: "ErrPaymentRequired", err: wrapped(amocrm.ErrPaymentRequired), want: apperr.PaymentRequired},
		{name: "ErrForbidden", err: wrapped(amocrm.ErrForbidden), want: apperr.Forbidden},
		{name: "ErrBlocked", err: wrapped(amocrm.ErrBlocked), want: apperr.Forbidden},
		{name: "ErrRateLimited", err: wrapped(amocrm.ErrRateLimited), want: apperr.RateLimited},
		{name: "ErrNotFound", err: wrapped(amocrm.ErrNotFound), want: apperr.NotFound},
		{name: "ErrTransient", err: wrapped(amocrm.ErrTransient), want: apperr.Unavailable},
		{name: "ErrMalformed", err: wrapped(amocrm.ErrMalformed), want: apperr.Unavailable},
		{name: "Foreign", err: errors.New("disk full"), want: apperr.Internal},
		{name: "ContextCanceled", err: fmt.Errorf("amocrm: get account (1): %w", context.Canceled), want: apperr.Internal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, amoerr.Code(tt.err))
		})
	}
}
