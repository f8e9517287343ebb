package billing_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/svyazka/svyazka/billing"
)

func TestEffectiveStatus(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *time.Time { t := now.Add(d); return &t }
	day := 24 * time.Hour
	for name, tc := range map[string]struct {
		sub       billing.Subscription
		want      billing.Status
		allowWork bool
	}{
		"TrialRunning":        {billing.NewTrial(now, 14), billing.StatusTrial, true},
		"TrialOver":           {billing.Subscription{Status: billing.StatusTrial, TrialEndsAt: at(-time.Second)}, billing.StatusExpired, false},
		"TrialEndsExactlyNow": {billing.Subscription{Status: billing.StatusTrial, TrialEndsAt: at(0)}, billing.StatusExpired, false},
		"ActiveFarFromEnd":    {billing.Subscription{Status: billing.StatusActive, PaidUntil: at(60 * day)}, billing.StatusActive, true},
		"ActiveUnderTwoWeeks": {billing.Subscription{Status: billing.StatusActive, PaidUntil: at(13 * day)}, billing.StatusExpiring, true},
		"PaidPeriodOver":      {billing.Subscription{Status: billing.StatusActive, PaidUntil: at(-day)}, billing.StatusExpired, false},
		"Suspended":           {billing.Subscription{Status: billing.StatusSuspended, PaidUntil: at(60 * day)}, billing.StatusSuspended, false},
	} {
		t.Run(name, func(t *testing.T) {
			require.Equal(t, tc.want, tc.sub.Effective(now))
			require.Equal(t, tc.allowWork, tc.sub.AllowsWork(now))
		})
	}
	require.Equal(t, now.AddDate(0, 0, 14), *billing.NewTrial(now, 14).TrialEndsAt)
}
