package phone_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/svyazka/svyazka/backend/phone"
)

func TestNormalize(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"8 (916) 123-45-67": "+79161234567",
		"+7 916 123 45 67":  "+79161234567",
		"79161234567":       "+79161234567",
		"9161234567":        "+79161234567",
		"8-495-123-45-67":   "+74951234567",
		"+375 29 123 45 67": "+375291234567",
		" +7(916)1234567 ":  "+79161234567",
		"+49 30 1234567":    "+49301234567",
	} {
		got, err := phone.Normalize(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	for _, bad := range []string{"", "abc", "12345", "916 123 45", "8916123456789", "+0123456789", "phone: 89161234567"} {
		_, err := phone.Normalize(bad)
		require.ErrorIs(t, err, phone.ErrInvalid, bad)
	}
}
