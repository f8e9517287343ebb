package engine

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/svyazka/svyazka/backend/setup"
)

func TestResponsibleOf(t *testing.T) {
	t.Parallel()
	matches := map[string]setup.Match{"1": {UserID: 11, Kind: setup.MatchFullName}, "2": {Kind: setup.MatchAmbiguous}}
	for _, tc := range []struct {
		name    string
		policy  setup.ResponsiblePolicy
		staffID string
		want    int64
	}{
		{"FixedIgnoresTheDoctor", setup.ResponsiblePolicy{Mode: setup.ResponsibleFixed, UserID: 5, Overrides: map[string]int64{"1": 7}}, "1", 5},
		{"OverrideWins", setup.ResponsiblePolicy{Mode: setup.ResponsibleDoctor, UserID: 5, Overrides: map[string]int64{"1": 7}}, "1", 7},
		{"NameMatch", setup.ResponsiblePolicy{Mode: setup.ResponsibleDoctor, UserID: 5}, "1", 11},
		{"ZeroModeIsDoctor", setup.ResponsiblePolicy{}, "1", 11},
		{"AmbiguousFallsBack", setup.ResponsiblePolicy{Mode: setup.ResponsibleDoctor, UserID: 5}, "2", 5},
		{"NoDoctorFallsBack", setup.ResponsiblePolicy{Mode: setup.ResponsibleDoctor, UserID: 5}, "", 5},
		{"NoFallbackIsAmoDefault", setup.ResponsiblePolicy{Mode: setup.ResponsibleDoctor}, "3", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, responsibleOf(tc.policy, matches, tc.staffID))
		})
	}
}

func TestDriftSuspect(t *testing.T) {
	t.Parallel()
	for reason, want := range map[string]bool{
		"amoCRM отклонил: NotSupportedChoice (custom_fields_values.0.field_id)": true,
		"amoCRM отклонил: InvalidType (status_id)":                              true,
		"amoCRM отклонил: InvalidType (name): too long":                         false,
		"amoCRM отклонил запрос: Bad Request":                                   false,
	} {
		require.Equal(t, want, driftSuspect(reason), reason)
	}
}

func TestPhoneQuery(t *testing.T) {
	t.Parallel()
	require.Equal(t, "9001112233", phoneQuery("+79001112233"))
	require.Equal(t, "4930123456", phoneQuery("+494930123456"))
	require.Equal(t, "12345", phoneQuery("+12345"))
}
