package engine_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/svyazka/svyazka/backend/mirror"
	"github.com/svyazka/svyazka/connector/protocol"
)

func TestChainSplitByADeletedReceptionKeepsItsLead(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	now := time.Now().Truncate(time.Hour)
	d1, d2, d3 := now.Add(24*time.Hour), now.Add(48*time.Hour), now.Add(72*time.Hour)
	moved := func(id, from string, at time.Time) protocol.Record {
		return rec(t, protocol.KindReception, id, protocol.IdentReception{PatientID: "1", PlanStart: local(at), TransferFromID: from,
			ReceptionCanceled: local(now), CancelReasonID: mirror.DefaultMovedReasonID})
	}
	e.ingest(t,
		rec(t, protocol.KindPatient, "1", protocol.IdentPatient{Surname: "Петров", Name: "Пётр"}),
		moved("30", "", d1), moved("31", "30", d2),
		rec(t, protocol.KindReception, "32", protocol.IdentReception{PatientID: "1", PlanStart: local(d3), TransferFromID: "31"}))
	e.start(t, "")
	res := e.process(t)
	require.Equal(t, 1, res.LeadsCreated, "one lead per chain")
	lead := e.leads(t)["32"][0].ID

	// IDENT deletes the middle reception: 32 no longer reaches 30.
	e.ingest(t, protocol.Record{Kind: protocol.KindReception, SourceID: "31", Deleted: true})
	e.process(t)
	// The next change of the patient resolves 32 as a chain of its own; it
	// keeps the lead it had.
	e.ingest(t, rec(t, protocol.KindReception, "32", protocol.IdentReception{PatientID: "1", PlanStart: local(d3), TransferFromID: "31",
		PatientAppeared: local(d3)}))
	res = e.process(t)
	require.Zero(t, res.LeadsCreated)
	leads := e.leads(t)
	require.Len(t, leads["32"], 1)
	require.Equal(t, lead, leads["32"][0].ID)
}
