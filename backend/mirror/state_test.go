package mirror_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"

	"github.com/svyazka/svyazka/backend/mirror"
	"github.com/svyazka/svyazka/connector/protocol"
)

func zone(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	require.NoError(t, err)
	return loc
}

func reception(id, start, end string) mirror.Reception {
	return mirror.Reception{ID: id, IdentReception: protocol.IdentReception{PatientID: "100", PlanStart: start, PlanEnd: end}}
}

func TestReceptionState(t *testing.T) {
	t.Parallel()
	moscow := zone(t, "Europe/Moscow")
	rules := mirror.DefaultRules()
	// 12:00 in Moscow on 10 Dec 2026 is 09:00 UTC.
	now := time.Date(2026, 12, 10, 9, 0, 0, 0, time.UTC)
	with := func(f func(*protocol.IdentReception)) mirror.Reception {
		r := reception("1", "2026-12-10T10:00:00", "2026-12-10T10:30:00")
		f(&r.IdentReception)
		return r
	}
	tests := []struct {
		name string
		rec  mirror.Reception
		want mirror.State
	}{
		{"PlannedInFuture", reception("1", "2026-12-11T10:00:00", "2026-12-11T10:30:00"), mirror.StatePlanned},
		{"PlannedJustEnded", reception("1", "2026-12-10T10:00:00", "2026-12-10T10:30:00"), mirror.StatePlanned},
		{"Arrived", with(func(r *protocol.IdentReception) { r.PatientAppeared = "2026-12-10T09:55:00" }), mirror.StateArrived},
		{"ArrivedByStart", with(func(r *protocol.IdentReception) { r.ReceptionStarted = "2026-12-10T10:01:00" }), mirror.StateArrived},
		{"CompletedByEnd", with(func(r *protocol.IdentReception) {
			r.PatientAppeared, r.ReceptionStarted, r.ReceptionEnded = "2026-12-10T09:55:00", "2026-12-10T10:01:00", "2026-12-10T10:29:00"
		}), mirror.StateCompleted},
		{"CompletedByCheckOnly", with(func(r *protocol.IdentReception) { r.CheckIssued = "2026-12-10T10:31:00.997" }), mirror.StateCompleted},
		{"Cancelled", with(func(r *protocol.IdentReception) { r.ReceptionCanceled, r.CancelReasonID = "2026-12-09T18:00:00", "3" }), mirror.StateCancelled},
		{"CancelledByStampOnly", with(func(r *protocol.IdentReception) { r.ReceptionCanceled = "2026-12-09T18:00:00" }), mirror.StateCancelled},
		{"CancelledByReasonOnly", with(func(r *protocol.IdentReception) { r.CancelReasonID = "3" }), mirror.StateCancelled},
		{"CancelledWinsOverEnded", with(func(r *protocol.IdentReception) {
			r.ReceptionEnded, r.ReceptionCanceled, r.CancelReasonID = "2026-12-10T10:29:00", "2026-12-10T11:00:00", "3"
		}), mirror.StateCancelled},
		{"MovedIsCancelled", with(func(r *protocol.IdentReception) { r.ReceptionCanceled, r.CancelReasonID = "2026-12-09T18:00:00", "6" }), mirror.StateCancelled},
		// IDENT's own job marks a no-show with reason 8 and ReceptionCanceled = PlanEnd.
		{"NoShowMarkedByIdent", with(func(r *protocol.IdentReception) { r.ReceptionCanceled, r.CancelReasonID = r.PlanEnd, "8" }), mirror.StateNoShow},
		{"NoShowReasonWithoutStamp", with(func(r *protocol.IdentReception) { r.CancelReasonID = "8" }), mirror.StateNoShow},
		{"NoShowByGrace", reception("1", "2026-12-09T10:00:00", "2026-12-09T11:00:00"), mirror.StateNoShow},
		{"GraceBoundaryIsNoShow", reception("1", "2026-12-09T11:00:00", "2026-12-09T12:00:00"), mirror.StateNoShow},
		{"OneSecondBeforeBoundary", reception("1", "2026-12-09T11:00:00", "2026-12-09T12:00:01"), mirror.StatePlanned},
		{"ArrivedNeverClosedIsNotNoShow", func() mirror.Reception {
			r := reception("1", "2026-11-01T10:00:00", "2026-11-01T10:30:00")
			r.PatientAppeared = "2026-11-01T09:58:00"
			return r
		}(), mirror.StateArrived},
		// Zero-length and inverted rows end 15 minutes after their start.
		{"ZeroLengthExpires", reception("1", "2026-12-09T11:45:00", "2026-12-09T11:45:00"), mirror.StateNoShow},
		{"ZeroLengthWithinGrace", reception("1", "2026-12-09T11:46:00", "2026-12-09T11:46:00"), mirror.StatePlanned},
		{"InvertedEnd", reception("1", "2026-12-09T11:45:00", "2026-12-09T08:00:00"), mirror.StateNoShow},
		{"MissingEnd", reception("1", "2026-12-09T11:46:00", ""), mirror.StatePlanned},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := rules.ReceptionState(tt.rec, moscow, now)
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestReceptionStateConfiguredReasons(t *testing.T) {
	t.Parallel()
	rules := mirror.Rules{NoShowReasonIDs: []string{"11", "12"}, MovedReasonIDs: []string{"8"}, NoShowGrace: time.Hour}
	require.NoError(t, rules.Validate())
	now := time.Date(2026, 12, 10, 9, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		reason string
		want   mirror.State
	}{
		{"ConfiguredNoShow", "12", mirror.StateNoShow},
		{"DefaultNoShowIdNowMoved", "8", mirror.StateCancelled},
		{"OtherReason", "3", mirror.StateCancelled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := reception("1", "2026-12-10T10:00:00", "2026-12-10T10:30:00")
			r.ReceptionCanceled, r.CancelReasonID = r.PlanEnd, tt.reason
			got, err := rules.ReceptionState(r, time.UTC, now)
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
	t.Run("ShortGrace", func(t *testing.T) {
		t.Parallel()
		got, err := rules.ReceptionState(reception("1", "2026-12-10T07:00:00", "2026-12-10T08:00:00"), time.UTC, now)
		require.NoError(t, err)
		require.Equal(t, mirror.StateNoShow, got)
	})
}

func TestReceptionStateZones(t *testing.T) {
	t.Parallel()
	rules := mirror.DefaultRules()
	// The same naive row, 10:00–10:30 on 9 Dec, seen at one instant from clinics
	// in different zones: the grace ends at 10:30 local on 10 Dec.
	rec := reception("1", "2026-12-09T10:00:00", "2026-12-09T10:30:00")
	now := time.Date(2026, 12, 10, 6, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		zone string
		want mirror.State
	}{
		{"YekaterinburgExpired", "Asia/Yekaterinburg", mirror.StateNoShow}, // UTC+5: deadline 05:30 UTC
		{"MoscowNotYet", "Europe/Moscow", mirror.StatePlanned},             // UTC+3: deadline 07:30 UTC
		{"VladivostokExpired", "Asia/Vladivostok", mirror.StateNoShow},     // UTC+10
		{"KaliningradNotYet", "Europe/Kaliningrad", mirror.StatePlanned},   // UTC+2
		{"UTCNotYet", "UTC", mirror.StatePlanned},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := rules.ReceptionState(rec, zone(t, tt.zone), now)
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
	t.Run("NowInAnotherZone", func(t *testing.T) {
		t.Parallel()
		// The same instant as now, written in Moscow time: same answer.
		got, err := rules.ReceptionState(rec, zone(t, "Asia/Yekaterinburg"), now.In(zone(t, "Europe/Moscow")))
		require.NoError(t, err)
		require.Equal(t, mirror.StateNoShow, got)
	})
}

func TestReceptionStateErrors(t *testing.T) {
	t.Parallel()
	rules := mirror.DefaultRules()
	now := time.Date(2026, 12, 10, 9, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		rec  mirror.Reception
		loc  *time.Location
	}{
		{"ErrNoZone", reception("1", "2026-12-10T10:00:00", ""), nil},
		{"ErrBadStart", reception("1", "10.12.2026 10:00", ""), time.UTC},
		{"ErrBadEnd", reception("1", "2026-12-10T10:00:00", "soon"), time.UTC},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := rules.ReceptionState(tt.rec, tt.loc, now)
			require.ErrorIs(t, err, mirror.ErrInvalid)
			_, ok := rules.NextReevaluation(tt.rec, tt.loc, now)
			require.False(t, ok)
		})
	}
	t.Run("StampedNeedsNoTimes", func(t *testing.T) {
		t.Parallel()
		r := reception("1", "garbage", "")
		r.CheckIssued = "2026-12-10T10:00:00"
		got, err := rules.ReceptionState(r, nil, now)
		require.NoError(t, err)
		require.Equal(t, mirror.StateCompleted, got)
	})
}

func TestNextReevaluation(t *testing.T) {
	t.Parallel()
	rules := mirror.DefaultRules()
	ekb := zone(t, "Asia/Yekaterinburg")
	now := time.Date(2026, 12, 10, 6, 0, 0, 0, time.UTC)
	type result struct {
		At time.Time
		OK bool
	}
	tests := []struct {
		name string
		rec  mirror.Reception
		want result
	}{
		// 11:00–11:30 local on 10 Dec = 06:30 UTC; + 24 h.
		{"Planned", reception("1", "2026-12-10T11:00:00", "2026-12-10T11:30:00"), result{time.Date(2026, 12, 11, 6, 30, 0, 0, time.UTC), true}},
		{"ZeroLength", reception("1", "2026-12-10T11:00:00", "2026-12-10T11:00:00"), result{time.Date(2026, 12, 11, 6, 15, 0, 0, time.UTC), true}},
		{"AlreadyNoShow", reception("1", "2026-12-08T11:00:00", "2026-12-08T11:30:00"), result{}},
		{"Arrived", func() mirror.Reception {
			r := reception("1", "2026-12-10T11:00:00", "2026-12-10T11:30:00")
			r.PatientAppeared = "2026-12-10T10:50:00"
			return r
		}(), result{}},
		{"Cancelled", func() mirror.Reception {
			r := reception("1", "2026-12-10T11:00:00", "2026-12-10T11:30:00")
			r.ReceptionCanceled, r.CancelReasonID = "2026-12-09T12:00:00", "3"
			return r
		}(), result{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			at, ok := rules.NextReevaluation(tt.rec, ekb, now)
			if diff := cmp.Diff(tt.want, result{at, ok}); diff != "" {
				t.Fatalf("NextReevaluation (-want +got):\n%s", diff)
			}
			if !ok {
				return
			}
			require.Equal(t, time.UTC, at.Location())
			before, err := rules.ReceptionState(tt.rec, ekb, at.Add(-time.Nanosecond))
			require.NoError(t, err)
			require.Equal(t, mirror.StatePlanned, before)
			after, err := rules.ReceptionState(tt.rec, ekb, at)
			require.NoError(t, err)
			require.Equal(t, mirror.StateNoShow, after, "a timer set to the answer sees the no-show")
		})
	}
	t.Run("DSTZone", func(t *testing.T) {
		t.Parallel()
		// New York springs forward on 8 Mar 2026: 09:00 EST on the 7th is 14:00
		// UTC; 24 real hours later it is 10:00 EDT.
		ny := zone(t, "America/New_York")
		at, ok := rules.NextReevaluation(reception("1", "2026-03-07T08:45:00", "2026-03-07T09:00:00"), ny, time.Date(2026, 3, 7, 0, 0, 0, 0, time.UTC))
		require.True(t, ok)
		require.Equal(t, time.Date(2026, 3, 8, 14, 0, 0, 0, time.UTC), at)
	})
}

func TestRulesValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		rules mirror.Rules
		ok    bool
	}{
		{"Defaults", mirror.DefaultRules(), true},
		{"ZeroGrace", mirror.Rules{NoShowGrace: 0}, true},
		{"ErrNegativeGrace", mirror.Rules{NoShowGrace: -time.Second}, false},
		{"ErrBadID", mirror.Rules{NoShowReasonIDs: []string{"eight"}}, false},
		{"ErrBothMeanings", mirror.Rules{NoShowReasonIDs: []string{"8"}, MovedReasonIDs: []string{"8"}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.rules.Validate()
			if tt.ok {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, mirror.ErrInvalid)
		})
	}
}

func TestStateTitles(t *testing.T) {
	t.Parallel()
	got := map[mirror.State]string{}
	for _, s := range mirror.States() {
		require.True(t, s.Valid())
		got[s] = s.Title()
	}
	want := map[mirror.State]string{
		mirror.StatePlanned:   "Записан на приём",
		mirror.StateArrived:   "Пациент пришёл",
		mirror.StateCompleted: "Приём завершён",
		mirror.StateNoShow:    "Не пришёл",
		mirror.StateCancelled: "Отменён",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("titles (-want +got):\n%s", diff)
	}
	require.False(t, mirror.State("moved").Valid())
	require.Empty(t, mirror.State("moved").Title())
}

func TestMovedAway(t *testing.T) {
	t.Parallel()
	rules := mirror.DefaultRules()
	tests := []struct {
		name              string
		canceled, reason  string
		moved, markedGone bool
	}{
		{"MovedReason", "2026-12-09T12:00:00", "6", true, false},
		{"NoShowReason", "2026-12-09T12:00:00", "8", false, true},
		{"OtherReason", "2026-12-09T12:00:00", "3", false, false},
		{"StampWithoutReason", "2026-12-09T12:00:00", "", false, false},
		{"NotCancelled", "", "", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := protocol.IdentReception{ReceptionCanceled: tt.canceled, CancelReasonID: tt.reason}
			require.Equal(t, tt.moved, rules.MovedAway(r))
			require.Equal(t, tt.markedGone, rules.MarkedNoShow(r))
		})
	}
}
