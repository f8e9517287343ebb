package mirror_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/svyazka/svyazka/backend/mirror"
	"github.com/svyazka/svyazka/connector/protocol"
)

func TestPipelineOf(t *testing.T) {
	t.Parallel()
	// The patient's first completed visit is reception 50 on 10 Dec at 10:00.
	veteran := protocol.IdentPatient{Surname: "Иванов", Name: "Иван",
		FirstVisitReceptionID: "50", FirstVisitPlanStart: "2026-12-10T10:00:00", CompletedReceptions: 3}
	newcomer := protocol.IdentPatient{Surname: "Петров", Name: "Пётр"}
	cancelled := func(r mirror.Reception) mirror.Reception {
		r.ReceptionCanceled, r.CancelReasonID = "2026-12-01T09:00:00", "3"
		return r
	}
	tests := []struct {
		name    string
		rec     mirror.Reception
		patient protocol.IdentPatient
		want    mirror.Pipeline
	}{
		{"NewPatientPlanned", reception("7", "2026-12-20T10:00:00", ""), newcomer, mirror.PipelinePrimary},
		{"NewPatientCancelledAttempt", cancelled(reception("7", "2026-12-01T10:00:00", "")), newcomer, mirror.PipelinePrimary},
		{"CancelledAttemptBeforeFirstVisit", cancelled(reception("40", "2026-12-01T10:00:00", "")), veteran, mirror.PipelinePrimary},
		{"MissedAttemptBeforeFirstVisit", reception("45", "2026-12-05T10:00:00", ""), veteran, mirror.PipelinePrimary},
		{"TheFirstVisitItself", reception("50", "2026-12-10T10:00:00", ""), veteran, mirror.PipelinePrimary},
		// Dragged after the connector computed the facts: still the first visit.
		{"TheFirstVisitMovedLater", reception("50", "2026-12-12T10:00:00", ""), veteran, mirror.PipelinePrimary},
		{"RepeatVisit", reception("60", "2026-12-20T10:00:00", ""), veteran, mirror.PipelineRepeat},
		{"CancelledAfterFirstVisit", cancelled(reception("61", "2026-12-20T10:00:00", "")), veteran, mirror.PipelineRepeat},
		{"BookedEarlierCreatedLater", reception("90", "2026-12-09T10:00:00", ""), veteran, mirror.PipelinePrimary},
		{"SameStartLowerID", reception("49", "2026-12-10T10:00:00", ""), veteran, mirror.PipelinePrimary},
		{"SameStartHigherID", reception("51", "2026-12-10T10:00:00", ""), veteran, mirror.PipelineRepeat},
		{"SameStartIDsCompareAsNumbers", reception("100", "2026-12-10T10:00:00", ""), veteran, mirror.PipelineRepeat},
		{"FractionalSeconds", reception("51", "2026-12-10T09:59:59.997", ""), veteran, mirror.PipelinePrimary},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := mirror.PipelineOf(tt.rec, tt.patient)
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
	t.Run("ErrBadPlanStart", func(t *testing.T) {
		t.Parallel()
		_, err := mirror.PipelineOf(reception("60", "20.12.2026", ""), veteran)
		require.ErrorIs(t, err, mirror.ErrInvalid)
	})
	t.Run("Titles", func(t *testing.T) {
		t.Parallel()
		require.Equal(t, "Первичный приём", mirror.PipelinePrimary.Title())
		require.Equal(t, "Повторный приём", mirror.PipelineRepeat.Title())
		require.False(t, mirror.Pipeline("other").Valid())
	})
}
