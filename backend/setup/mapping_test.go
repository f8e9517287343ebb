package setup_test

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"

	"github.com/svyazka/svyazka/backend/setup"
)

func TestValidateDrift(t *testing.T) {
	t.Parallel()
	base, m := configured(t, account())
	require.Empty(t, setup.Validate(m, base))

	leadField := func(s *setup.Snapshot, d setup.Datum) *setup.Field {
		for i := range s.LeadFields {
			if s.LeadFields[i].ID == m.Lead[d].FieldID {
				return &s.LeadFields[i]
			}
		}
		t.Fatalf("no lead field for %s", d)
		return nil
	}
	contactField := func(s *setup.Snapshot, d setup.Datum) *setup.Field {
		for i := range s.ContactFields {
			if s.ContactFields[i].ID == m.Contact[d].FieldID {
				return &s.ContactFields[i]
			}
		}
		t.Fatalf("no contact field for %s", d)
		return nil
	}
	primary := func(s *setup.Snapshot) *setup.Pipeline {
		for i := range s.Pipelines {
			if s.Pipelines[i].ID == m.Pipelines[setup.PipelinePrimary].PipelineID {
				return &s.Pipelines[i]
			}
		}
		t.Fatal("no primary pipeline")
		return nil
	}
	tests := []struct {
		name    string
		drift   func(s *setup.Snapshot, m *setup.Mapping)
		want    []setup.Problem
		ignored bool // the drift is harmless
	}{
		{
			name: "DeletedField",
			drift: func(s *setup.Snapshot, _ *setup.Mapping) {
				f := leadField(s, setup.DatumDoctor)
				f.ID = -1
			},
			want: []setup.Problem{{Item: "field:lead:doctor", Kind: setup.ProblemDeleted, Message: "Поле «Врач» (сделка) удалено в amoCRM"}},
		},
		{
			name: "RetypedIncompatible",
			drift: func(s *setup.Snapshot, _ *setup.Mapping) {
				leadField(s, setup.DatumAppointmentAt).Type = setup.FieldText
			},
			want: []setup.Problem{{Item: "field:lead:appointment_at", Kind: setup.ProblemRetyped,
				Message: "Поле «Дата и время приёма» (сделка): в amoCRM тип «Текст», нужен «Дата и время» или «Дата»"}},
		},
		{
			name: "RetypedCompatible",
			drift: func(s *setup.Snapshot, _ *setup.Mapping) {
				contactField(s, setup.DatumBirthDate).Type = setup.FieldDate
			},
			want: []setup.Problem{{Item: "field:contact:birth_date", Kind: setup.ProblemRetyped,
				Message: "Поле «Дата рождения» (контакт): тип изменён в amoCRM с «День рождения» на «Дата», сохраните сопоставление заново"}},
		},
		{
			name: "DeletedStage",
			drift: func(s *setup.Snapshot, _ *setup.Mapping) {
				p := primary(s)
				sid := m.Pipelines[setup.PipelinePrimary].Stages[setup.StateNoShow]
				for i, st := range p.Stages {
					if st.ID == sid {
						p.Stages = append(p.Stages[:i:i], p.Stages[i+1:]...)
						break
					}
				}
			},
			want: []setup.Problem{{Item: "stage:primary:no_show", Kind: setup.ProblemDeleted, Message: "Этап «Не пришёл» воронки «Первичный приём» не найден"}},
		},
		{
			name: "DeletedEnum",
			drift: func(s *setup.Snapshot, _ *setup.Mapping) {
				f := contactField(s, setup.DatumSex)
				f.Enums = f.Enums[:1]
			},
			want: []setup.Problem{{Item: "field:contact:sex", Kind: setup.ProblemEnumDeleted, Message: "Поле «Пол» (контакт): значение «Женский» удалено в amoCRM"}},
		},
		{
			name: "DeletedPipeline",
			drift: func(s *setup.Snapshot, _ *setup.Mapping) {
				s.Pipelines = s.Pipelines[:1]
			},
			want: []setup.Problem{
				{Item: "pipeline:primary", Kind: setup.ProblemDeleted, Message: "Воронка «Первичный приём» удалена в amoCRM"},
				{Item: "pipeline:repeat", Kind: setup.ProblemDeleted, Message: "Воронка «Повторный приём» удалена в amoCRM"},
			},
		},
		{
			name:  "ArchivedPipeline",
			drift: func(s *setup.Snapshot, _ *setup.Mapping) { primary(s).Archived = true },
			want:  []setup.Problem{{Item: "pipeline:primary", Kind: setup.ProblemArchived, Message: "Воронка «Первичный приём» в архиве amoCRM"}},
		},
		{
			name: "DeletedException",
			drift: func(_ *setup.Snapshot, m *setup.Mapping) {
				pm := m.Pipelines[setup.PipelineRepeat]
				pm.Exceptions = append(pm.Exceptions, 999)
				m.Pipelines[setup.PipelineRepeat] = pm
			},
			want: []setup.Problem{{Item: "pipeline:repeat", Kind: setup.ProblemDeleted, Message: "Этап-исключение (id 999) воронки «Повторный приём» не найден"}},
		},
		{
			name: "RequiredNotSent",
			drift: func(_ *setup.Snapshot, m *setup.Mapping) {
				m.Contact[setup.DatumPatientID] = setup.NotSent
				delete(m.Lead, setup.DatumReceptionID)
				m.Lead[setup.DatumDoctor] = setup.NotSent // optional: fine
			},
			want: []setup.Problem{
				{Item: "field:contact:patient_id", Kind: setup.ProblemUnmapped, Message: "Поле «ID пациента IDENT» (контакт) обязательно: выберите поле amoCRM"},
				{Item: "field:lead:reception_id", Kind: setup.ProblemUnmapped, Message: "Поле «ID записи IDENT» (сделка) обязательно: выберите поле amoCRM"},
			},
		},
		{
			name: "SameFieldTwice",
			drift: func(_ *setup.Snapshot, m *setup.Mapping) {
				m.Lead[setup.DatumBranch] = m.Lead[setup.DatumDoctor]
			},
			want: []setup.Problem{{Item: "field:lead:branch", Kind: setup.ProblemDuplicate, Message: "Поле «Филиал» (сделка) выбрано и для «Врач»: выберите разные поля"}},
		},
		{
			name: "StageUnmapped",
			drift: func(_ *setup.Snapshot, m *setup.Mapping) {
				delete(m.Pipelines[setup.PipelineRepeat].Stages, setup.StateCancelled)
			},
			want: []setup.Problem{{Item: "stage:repeat:cancelled", Kind: setup.ProblemUnmapped, Message: "Этап «Отменён» воронки «Повторный приём» не выбран"}},
		},
		{
			name: "StateInLostIsFine",
			drift: func(s *setup.Snapshot, m *setup.Mapping) {
				m.Pipelines[setup.PipelineRepeat].Stages[setup.StateCancelled] = setup.StageLost
				s.Users = []setup.User{{ID: 7, Name: "Админ", Active: true}}
			},
			ignored: true,
		},
		{
			name: "ResponsibleUsers",
			drift: func(s *setup.Snapshot, m *setup.Mapping) {
				s.Users = []setup.User{{ID: 7, Name: "Админ", Active: true}, {ID: 8, Name: "Уволен", Active: false}}
				m.Responsible = setup.ResponsiblePolicy{Mode: setup.ResponsibleDoctor, UserID: 7,
					Overrides: map[string]int64{"12": 8, "13": 9}}
			},
			want: []setup.Problem{
				{Item: setup.ResponsibleItem, Kind: setup.ProblemUser, Message: "Ответственный за врача 12: пользователь amoCRM «Уволен» неактивен"},
				{Item: setup.ResponsibleItem, Kind: setup.ProblemUser, Message: "Ответственный за врача 13: пользователь amoCRM (id 9) не найден"},
			},
		},
		{
			name: "FixedWithoutUser",
			drift: func(_ *setup.Snapshot, m *setup.Mapping) {
				m.Responsible = setup.ResponsiblePolicy{Mode: setup.ResponsibleFixed}
			},
			want: []setup.Problem{{Item: setup.ResponsibleItem, Kind: setup.ProblemUser, Message: "Ответственный пользователь не выбран"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := clone(base)
			mm := cloneMapping(m)
			tt.drift(&s, &mm)
			got := setup.Validate(mm, s)
			if tt.ignored {
				require.Empty(t, got)
				return
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Fatalf("problems (-want +got):\n%s", diff)
			}
			require.Equal(t, setup.StatusDrift, setup.DeriveStatus(setup.StatusFacts{HasMapping: true, Drift: got}))
		})
	}
}

func cloneMapping(m setup.Mapping) setup.Mapping {
	out := m
	out.Pipelines = map[setup.PipelineKey]setup.PipelineMapping{}
	for k, p := range m.Pipelines {
		stages := map[setup.State]int64{}
		for s, id := range p.Stages {
			stages[s] = id
		}
		p.Stages = stages
		p.Exceptions = append([]int64(nil), p.Exceptions...)
		out.Pipelines[k] = p
	}
	out.Contact = map[setup.Datum]setup.FieldMapping{}
	for k, v := range m.Contact {
		out.Contact[k] = v
	}
	out.Lead = map[setup.Datum]setup.FieldMapping{}
	for k, v := range m.Lead {
		out.Lead[k] = v
	}
	return out
}

func TestMappingFromProposal(t *testing.T) {
	t.Parallel()
	snap := account()
	prop, err := setup.Propose(setup.DefaultPlan(), snap, setup.AllBlocks(), nil)
	require.NoError(t, err)
	_, created := apply(t, snap, prop)

	t.Run("ErrNotCreated", func(t *testing.T) {
		t.Parallel()
		partial := map[setup.ItemKey]setup.Created{}
		for k, v := range created {
			if k != "stage:repeat:arrived" {
				partial[k] = v
			}
		}
		_, err := setup.MappingFromProposal(setup.Mapping{}, prop, partial)
		require.ErrorIs(t, err, setup.ErrNotCreated)
		var ie *setup.ItemError
		require.ErrorAs(t, err, &ie)
		require.Equal(t, setup.ItemKey("stage:repeat:arrived"), ie.Item)
	})
	t.Run("ErrNotCreatedEnum", func(t *testing.T) {
		t.Parallel()
		partial := map[setup.ItemKey]setup.Created{}
		for k, v := range created {
			partial[k] = v
		}
		sex := partial["field:contact:sex"]
		sex.Enums = sex.Enums[:1]
		partial["field:contact:sex"] = sex
		_, err := setup.MappingFromProposal(setup.Mapping{}, prop, partial)
		require.ErrorIs(t, err, setup.ErrNotCreated)
	})
	t.Run("ErrUnknownItem", func(t *testing.T) {
		t.Parallel()
		extra := map[setup.ItemKey]setup.Created{"field:contact:phone": {ID: 1}}
		for k, v := range created {
			extra[k] = v
		}
		_, err := setup.MappingFromProposal(setup.Mapping{}, prop, extra)
		require.ErrorIs(t, err, setup.ErrUnknownItem)
	})
	t.Run("KeepsExceptionsAndResponsible", func(t *testing.T) {
		t.Parallel()
		first, err := setup.MappingFromProposal(setup.Mapping{}, prop, created)
		require.NoError(t, err)
		pm := first.Pipelines[setup.PipelinePrimary]
		pm.Exceptions = []int64{setup.StageWon, 777}
		first.Pipelines[setup.PipelinePrimary] = pm
		first.Responsible = setup.ResponsiblePolicy{Mode: setup.ResponsibleFixed, UserID: 5}

		again, err := setup.MappingFromProposal(first, prop, created)
		require.NoError(t, err)
		require.Equal(t, []int64{setup.StageWon, 777}, again.Pipelines[setup.PipelinePrimary].Exceptions)
		require.Equal(t, setup.DefaultExceptions(), again.Pipelines[setup.PipelineRepeat].Exceptions)
		require.Equal(t, first.Responsible, again.Responsible)
		require.True(t, again.Pipelines[setup.PipelinePrimary].IsException(777))
	})
	t.Run("SkippedPredefinedIsNotSent", func(t *testing.T) {
		t.Parallel()
		s := account()
		s.ContactFields = s.ContactFields[2:] // no PHONE, no EMAIL
		p, err := setup.Propose(setup.DefaultPlan(), s, []setup.Block{setup.BlockContact}, nil)
		require.NoError(t, err)
		phone := findField(t, p, setup.EntityContact, setup.DatumPhone)
		require.Equal(t, setup.ActionSkip, phone.Action)
		require.Equal(t, "В amoCRM нет стандартного поля «Телефон»: данные не будут передаваться", phone.Note)
		after, c := apply(t, s, p)
		m, err := setup.MappingFromProposal(setup.Mapping{}, p, c)
		require.NoError(t, err)
		require.False(t, m.Contact[setup.DatumPhone].Sent())
		for _, pr := range setup.Validate(m, after) {
			require.NotEqual(t, setup.ItemKey("field:contact:phone"), pr.Item, "a datum not sent is no problem")
		}
	})
}

func TestDeriveStatus(t *testing.T) {
	t.Parallel()
	drift := []setup.Problem{{Item: "field:lead:doctor", Kind: setup.ProblemDeleted}}
	tests := []struct {
		name  string
		facts setup.StatusFacts
		want  setup.Status
	}{
		{"NotConfigured", setup.StatusFacts{}, setup.StatusNotConfigured},
		{"Running", setup.StatusFacts{ApplyRunning: true}, setup.StatusRunning},
		{"RunningWinsOverFailed", setup.StatusFacts{ApplyRunning: true, LastApplyFailed: true, HasMapping: true}, setup.StatusRunning},
		{"Failed", setup.StatusFacts{LastApplyFailed: true}, setup.StatusFailed},
		{"FailedWithOldMapping", setup.StatusFacts{LastApplyFailed: true, HasMapping: true, Drift: drift}, setup.StatusFailed},
		{"Configured", setup.StatusFacts{HasMapping: true}, setup.StatusConfigured},
		{"Drift", setup.StatusFacts{HasMapping: true, Drift: drift}, setup.StatusDrift},
		{"DriftNeedsMapping", setup.StatusFacts{Drift: drift}, setup.StatusNotConfigured},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, setup.DeriveStatus(tt.facts))
		})
	}
	for s, want := range map[setup.Status]string{
		setup.StatusNotConfigured: "not_configured",
		setup.StatusRunning:       "running",
		setup.StatusConfigured:    "configured",
		setup.StatusFailed:        "failed",
		setup.StatusDrift:         "drift",
	} {
		require.Equal(t, want, string(s))
	}
	require.Equal(t, "Связка настроена", setup.StatusConfigured.Label())
}

func TestMappingJSONRoundTrip(t *testing.T) {
	t.Parallel()
	_, m := configured(t, account())
	m.Responsible = setup.ResponsiblePolicy{Mode: setup.ResponsibleDoctor, UserID: 3, Overrides: map[string]int64{"12": 4}}
	raw, err := json.Marshal(m)
	require.NoError(t, err)
	var back setup.Mapping
	require.NoError(t, json.Unmarshal(raw, &back))
	if diff := cmp.Diff(m, back); diff != "" {
		t.Fatalf("round trip (-want +got):\n%s", diff)
	}
	require.Contains(t, string(raw), `"no_show":`)
	require.Contains(t, string(raw), `"appointment_at":`)
}
