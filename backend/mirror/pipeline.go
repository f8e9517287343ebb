package mirror

import (
	"fmt"
	"strings"
	"time"

	"github.com/svyazka/svyazka/connector/protocol"
)

// Pipeline is the amoCRM pipeline a reception's lead belongs to. The values
// are the keys a pipeline mapping uses.
type Pipeline string

// The pipelines.
const (
	PipelinePrimary Pipeline = "primary"
	PipelineRepeat  Pipeline = "repeat"
)

// Valid reports whether p is PipelinePrimary or PipelineRepeat.
func (p Pipeline) Valid() bool { return p == PipelinePrimary || p == PipelineRepeat }

// Title is the pipeline's default name in amoCRM, or "" when p is invalid.
func (p Pipeline) Title() string {
	switch p {
	case PipelinePrimary:
		return "Первичный приём"
	case PipelineRepeat:
		return "Повторный приём"
	}
	return ""
}

// PipelineOf says whether rec is the patient's first visit. It is primary
// when the patient has no completed reception (see Completed) ordered before
// it, so cancelled or missed attempts before the first completed visit are
// primary as well; the first completed visit itself is primary; everything
// after it is repeat. The order is (PlanStart, reception id as a number),
// and the first completed visit is patient.FirstVisitReceptionID /
// FirstVisitPlanStart, which the connector computes over the full history.
// Errors wrap ErrInvalid: an unreadable plan start on either side.
func PipelineOf(rec Reception, patient protocol.IdentPatient) (Pipeline, error) {
	if patient.FirstVisitReceptionID == "" || rec.ID == patient.FirstVisitReceptionID {
		return PipelinePrimary, nil
	}
	start, err := parseNaive(rec.PlanStart)
	if err != nil {
		return "", fmt.Errorf("reception %s: plan_start: %w", rec.ID, err)
	}
	first, err := parseNaive(patient.FirstVisitPlanStart)
	if err != nil {
		return "", fmt.Errorf("patient: first_visit_plan_start: %w", err)
	}
	// Both are wall-clock times of one clinic, so they order as naive times.
	if start.Before(first) || (start.Equal(first) && compareIDs(rec.ID, patient.FirstVisitReceptionID) < 0) {
		return PipelinePrimary, nil
	}
	return PipelineRepeat, nil
}

// parseNaive reads a naive local time as if it were UTC, for ordering only.
func parseNaive(s string) (time.Time, error) {
	return ParseLocal(s, time.UTC)
}

// compareIDs orders IDENT ids as numbers (they are decimal, possibly of
// different lengths), falling back to text order for anything else so the
// order stays total.
func compareIDs(a, b string) int {
	ta, tb := strings.TrimLeft(a, "0"), strings.TrimLeft(b, "0")
	if len(ta) != len(tb) && protocol.ValidSourceID(a) && protocol.ValidSourceID(b) {
		if len(ta) < len(tb) {
			return -1
		}
		return 1
	}
	if c := strings.Compare(ta, tb); c != 0 {
		return c
	}
	return strings.Compare(a, b)
}
