package setup_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/svyazka/svyazka/backend/setup"
)

// account returns a fresh amoCRM account: the default pipeline and the
// predefined contact fields.
func account() setup.Snapshot {
	return setup.Snapshot{
		Pipelines: []setup.Pipeline{pipeline(1, "Воронка", "Первичный контакт", "Переговоры")},
		ContactFields: []setup.Field{
			{ID: 11, Name: "Телефон", Code: setup.CodePhone, Type: setup.FieldMultitext},
			{ID: 12, Name: "Email", Code: setup.CodeEmail, Type: setup.FieldMultitext},
			{ID: 13, Name: "Должность", Code: "POSITION", Type: setup.FieldText},
		},
	}
}

// pipeline is a pipeline as amoCRM lists it: unsorted first, then the named
// stages (ids id*100+1…), then won and lost.
func pipeline(id int64, name string, stages ...string) setup.Pipeline {
	p := setup.Pipeline{ID: id, Name: name, Stages: []setup.Stage{{ID: id * 100, Name: "Неразобранное", Unsorted: true}}}
	for i, s := range stages {
		p.Stages = append(p.Stages, setup.Stage{ID: id*100 + int64(i) + 1, Name: s})
	}
	p.Stages = append(p.Stages,
		setup.Stage{ID: setup.StageWon, Name: "Успешно реализовано"},
		setup.Stage{ID: setup.StageLost, Name: "Закрыто и не реализовано"})
	return p
}

func clone(s setup.Snapshot) setup.Snapshot {
	out := s
	out.Pipelines = nil
	for _, p := range s.Pipelines {
		p.Stages = append([]setup.Stage(nil), p.Stages...)
		out.Pipelines = append(out.Pipelines, p)
	}
	out.ContactFields = append([]setup.Field(nil), s.ContactFields...)
	out.LeadFields = append([]setup.Field(nil), s.LeadFields...)
	return out
}

// apply does what the apply step does against amoCRM: it creates what the
// proposal creates and returns the new snapshot and the created ids.
func apply(t *testing.T, snap setup.Snapshot, prop setup.Proposal) (setup.Snapshot, map[setup.ItemKey]setup.Created) {
	t.Helper()
	snap = clone(snap)
	next := int64(5000)
	id := func() int64 { next++; return next }
	created := map[setup.ItemKey]setup.Created{}
	for _, pp := range prop.Pipelines {
		idx := -1
		for i, p := range snap.Pipelines {
			if p.ID == pp.ExistingID {
				idx = i
			}
		}
		if pp.Action == setup.ActionCreate {
			pid := id()
			created[pp.Item] = setup.Created{ID: pid}
			snap.Pipelines = append(snap.Pipelines, pipeline(pid, pp.Name))
			idx = len(snap.Pipelines) - 1
		}
		require.GreaterOrEqual(t, idx, 0, "pipeline %s", pp.Item)
		p := &snap.Pipelines[idx]
		for _, sp := range pp.Stages {
			if sp.Action != setup.ActionCreate {
				continue
			}
			sid := id()
			created[sp.Item] = setup.Created{ID: sid}
			// Before won and lost, as amoCRM sorts them.
			n := len(p.Stages)
			p.Stages = append(p.Stages[:n-2:n-2], append([]setup.Stage{{ID: sid, Name: sp.Name}}, p.Stages[n-2:]...)...)
		}
	}
	for _, fp := range append(append([]setup.FieldProposal(nil), prop.Contact...), prop.Lead...) {
		if fp.Action != setup.ActionCreate {
			continue
		}
		f := setup.Field{ID: id(), Name: fp.Name, Type: fp.Type}
		for _, v := range fp.Values {
			f.Enums = append(f.Enums, setup.Enum{ID: id(), Value: v.Name})
		}
		created[fp.Item] = setup.Created{ID: f.ID, Enums: f.Enums}
		if fp.Entity == setup.EntityContact {
			snap.ContactFields = append(snap.ContactFields, f)
		} else {
			snap.LeadFields = append(snap.LeadFields, f)
		}
	}
	return snap, created
}

// configured runs autosetup on the snapshot end to end and returns the
// resulting snapshot and mapping.
func configured(t *testing.T, snap setup.Snapshot) (setup.Snapshot, setup.Mapping) {
	t.Helper()
	prop, err := setup.Propose(setup.DefaultPlan(), snap, setup.AllBlocks(), nil)
	require.NoError(t, err)
	after, created := apply(t, snap, prop)
	m, err := setup.MappingFromProposal(setup.Mapping{}, prop, created)
	require.NoError(t, err)
	return after, m
}

func findPipeline(t *testing.T, prop setup.Proposal, key setup.PipelineKey) setup.PipelineProposal {
	t.Helper()
	for _, pp := range prop.Pipelines {
		if pp.Key == key {
			return pp
		}
	}
	t.Fatalf("no pipeline %s in proposal", key)
	return setup.PipelineProposal{}
}

func findStage(t *testing.T, pp setup.PipelineProposal, s setup.State) setup.StageProposal {
	t.Helper()
	for _, sp := range pp.Stages {
		if sp.State == s {
			return sp
		}
	}
	t.Fatalf("no stage %s in pipeline %s", s, pp.Key)
	return setup.StageProposal{}
}

func findField(t *testing.T, prop setup.Proposal, e setup.Entity, d setup.Datum) setup.FieldProposal {
	t.Helper()
	for _, fp := range prop.Fields(e) {
		if fp.Datum == d {
			return fp
		}
	}
	t.Fatalf("no field %s/%s in proposal", e, d)
	return setup.FieldProposal{}
}
