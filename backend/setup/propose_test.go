package setup_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/svyazka/svyazka/backend/apperr"
	"github.com/svyazka/svyazka/backend/setup"
)

func TestProposeEmptyAccountCreatesEverything(t *testing.T) {
	t.Parallel()
	snap := account()
	prop, err := setup.Propose(setup.DefaultPlan(), snap, setup.AllBlocks(), nil)
	require.NoError(t, err)

	want := []setup.ItemKey{
		"pipeline:primary", "pipeline:repeat",
		"stage:primary:planned", "stage:primary:arrived", "stage:primary:completed", "stage:primary:no_show", "stage:primary:cancelled",
		"stage:repeat:planned", "stage:repeat:arrived", "stage:repeat:completed", "stage:repeat:no_show", "stage:repeat:cancelled",
		"field:contact:patient_id", "field:contact:birth_date", "field:contact:sex", "field:contact:card_number",
		"field:lead:reception_id", "field:lead:appointment_at", "field:lead:doctor", "field:lead:branch", "field:lead:appointment_status",
	}
	require.Equal(t, want, prop.ToCreate())

	primary := findPipeline(t, prop, setup.PipelinePrimary)
	require.Equal(t, "Первичный приём", primary.Name)
	require.Equal(t, "Не пришёл", findStage(t, primary, setup.StateNoShow).Name)
	phone := findField(t, prop, setup.EntityContact, setup.DatumPhone)
	require.Equal(t, setup.ActionReuse, phone.Action, "PHONE is found by code")
	require.Equal(t, int64(11), phone.ExistingID)
	birth := findField(t, prop, setup.EntityContact, setup.DatumBirthDate)
	require.Equal(t, setup.FieldBirthday, birth.Type)
	sex := findField(t, prop, setup.EntityContact, setup.DatumSex)
	require.Equal(t, []setup.ValueProposal{{Key: "male", Name: "Мужской"}, {Key: "female", Name: "Женский"}}, sex.Values)
	require.Equal(t, setup.FieldDateTime, findField(t, prop, setup.EntityLead, setup.DatumAppointmentAt).Type)

	// Applying and re-running proposes nothing: idempotence is the planner
	// seeing what it created.
	after, created := apply(t, snap, prop)
	m, err := setup.MappingFromProposal(setup.Mapping{}, prop, created)
	require.NoError(t, err)
	require.Empty(t, setup.Validate(m, after))
	again, err := setup.Propose(setup.DefaultPlan(), after, setup.AllBlocks(), nil)
	require.NoError(t, err)
	require.Empty(t, again.ToCreate())
	m2, err := setup.MappingFromProposal(m, again, nil)
	require.NoError(t, err)
	require.Equal(t, m, m2, "a re-run maps to the same items")

	require.Equal(t, []int64{setup.StageWon, setup.StageLost}, m.Pipelines[setup.PipelinePrimary].Exceptions)
	require.Equal(t, int64(11), m.Contact[setup.DatumPhone].FieldID)
	require.Equal(t, setup.CodePhone, m.Contact[setup.DatumPhone].Code)
	require.Len(t, m.Contact[setup.DatumSex].Enums, 2)
	require.Len(t, m.Lead[setup.DatumAppointmentStatus].Enums, 5)
}

func TestProposeReusesSimilarItems(t *testing.T) {
	t.Parallel()
	snap := account()
	snap.Pipelines = append(snap.Pipelines, pipeline(2, "Первичный прием", "записан на прием", "Думает"))
	snap.LeadFields = []setup.Field{
		{ID: 21, Name: "дата и время приема", Type: setup.FieldDateTime},
		// A checkbox called «Врач» cannot carry a doctor's name.
		{ID: 22, Name: "Врач", Type: setup.FieldCheckbox},
		{ID: 23, Name: "Филиал", Type: setup.FieldSelect, Enums: []setup.Enum{{ID: 231, Value: "Центр"}}},
		{ID: 24, Name: "ID записи IDENT", Type: setup.FieldNumeric},
	}
	snap.ContactFields = append(snap.ContactFields,
		setup.Field{ID: 31, Name: "Пол", Type: setup.FieldRadiobutton, Enums: []setup.Enum{{ID: 311, Value: "М"}, {ID: 312, Value: "Ж"}}},
		// The date field and the birthday field of one name: birthday is preferred.
		setup.Field{ID: 32, Name: "Дата рождения", Type: setup.FieldDate},
		setup.Field{ID: 33, Name: "Дата рождения", Type: setup.FieldBirthday},
	)
	prop, err := setup.Propose(setup.DefaultPlan(), snap, setup.AllBlocks(), nil)
	require.NoError(t, err)

	primary := findPipeline(t, prop, setup.PipelinePrimary)
	require.Equal(t, setup.Decision{Item: "pipeline:primary", Action: setup.ActionReuse, Name: "Первичный прием", ExistingID: 2}, primary.Decision)
	planned := findStage(t, primary, setup.StatePlanned)
	require.Equal(t, setup.ActionReuse, planned.Action)
	require.Equal(t, int64(201), planned.ExistingID)
	require.Equal(t, setup.ActionCreate, findStage(t, primary, setup.StateArrived).Action)
	require.Equal(t, setup.ActionCreate, findPipeline(t, prop, setup.PipelineRepeat).Action)

	at := findField(t, prop, setup.EntityLead, setup.DatumAppointmentAt)
	require.Equal(t, setup.ActionReuse, at.Action, "same normalised name and a compatible type")
	require.Equal(t, int64(21), at.ExistingID)

	doctor := findField(t, prop, setup.EntityLead, setup.DatumDoctor)
	require.Equal(t, setup.ActionCreate, doctor.Action, "an incompatible field is never reused")
	require.Equal(t, "Врач (IDENT)", doctor.Name)
	require.Equal(t, setup.FieldText, doctor.Type)
	require.Equal(t, "Поле «Врач» в amoCRM имеет неподходящий тип «Флаг», создадим поле «Врач (IDENT)»", doctor.Note)

	branch := findField(t, prop, setup.EntityLead, setup.DatumBranch)
	require.Equal(t, setup.ActionReuse, branch.Action, "an open select fits a branch")
	require.Empty(t, branch.Values)
	key := findField(t, prop, setup.EntityLead, setup.DatumReceptionID)
	require.Equal(t, setup.ActionReuse, key.Action)
	require.Equal(t, setup.FieldNumeric, key.Type)

	sex := findField(t, prop, setup.EntityContact, setup.DatumSex)
	require.Equal(t, setup.ActionReuse, sex.Action)
	require.Equal(t, []setup.ValueProposal{{Key: "male", Name: "М", EnumID: 311}, {Key: "female", Name: "Ж", EnumID: 312}}, sex.Values)
	require.Equal(t, int64(33), findField(t, prop, setup.EntityContact, setup.DatumBirthDate).ExistingID)

	after, created := apply(t, snap, prop)
	m, err := setup.MappingFromProposal(setup.Mapping{}, prop, created)
	require.NoError(t, err)
	require.Empty(t, setup.Validate(m, after))
	require.Equal(t, map[string]int64{"male": 311, "female": 312}, m.Contact[setup.DatumSex].Enums)

	again, err := setup.Propose(setup.DefaultPlan(), after, setup.AllBlocks(), nil)
	require.NoError(t, err)
	require.Empty(t, again.ToCreate(), "the fallback name is found on the re-run")
	doctor = findField(t, again, setup.EntityLead, setup.DatumDoctor)
	require.Equal(t, setup.ActionReuse, doctor.Action)
	require.Equal(t, "Врач (IDENT)", doctor.Name)
	require.Contains(t, doctor.Note, "используем поле «Врач (IDENT)»")
}

func TestProposeSelectNeedsEveryValue(t *testing.T) {
	t.Parallel()
	snap := account()
	snap.ContactFields = append(snap.ContactFields,
		setup.Field{ID: 31, Name: "Пол", Type: setup.FieldSelect, Enums: []setup.Enum{{ID: 311, Value: "Мужчина"}}})
	prop, err := setup.Propose(setup.DefaultPlan(), snap, []setup.Block{setup.BlockContact}, nil)
	require.NoError(t, err)
	sex := findField(t, prop, setup.EntityContact, setup.DatumSex)
	require.Equal(t, setup.ActionCreate, sex.Action)
	require.Equal(t, "Пол (IDENT)", sex.Name)
}

func TestProposeSystemStageName(t *testing.T) {
	t.Parallel()
	snap := account()
	p := pipeline(2, "Первичный приём")
	p.Stages[len(p.Stages)-1].Name = "Отменён" // someone renamed lost
	snap.Pipelines = append(snap.Pipelines, p)
	prop, err := setup.Propose(setup.DefaultPlan(), snap, []setup.Block{setup.BlockPipelines}, nil)
	require.NoError(t, err)
	cancelled := findStage(t, findPipeline(t, prop, setup.PipelinePrimary), setup.StateCancelled)
	require.Equal(t, setup.ActionCreate, cancelled.Action, "a state never lands in a system stage by autosetup")
	require.Equal(t, "Отменён (IDENT)", cancelled.Name)

	_, err = setup.Propose(setup.DefaultPlan(), snap, []setup.Block{setup.BlockPipelines},
		map[setup.ItemKey]string{"stage:primary:no_show": "Успешно реализовано"})
	require.ErrorIs(t, err, setup.ErrNameCollision)
}

func TestProposeBlocks(t *testing.T) {
	t.Parallel()
	prop, err := setup.Propose(setup.DefaultPlan(), account(), []setup.Block{setup.BlockLead}, nil)
	require.NoError(t, err)
	require.Empty(t, prop.Pipelines)
	require.Empty(t, prop.Contact)
	require.Len(t, prop.Lead, 5)
	require.Equal(t, []setup.Block{setup.BlockLead}, prop.Blocks)

	// Unticked blocks keep what the base mapping had.
	base := setup.Mapping{Contact: map[setup.Datum]setup.FieldMapping{setup.DatumPatientID: {FieldID: 77, Type: setup.FieldText}}}
	after, created := apply(t, account(), prop)
	m, err := setup.MappingFromProposal(base, prop, created)
	require.NoError(t, err)
	require.Equal(t, base.Contact, m.Contact)
	require.Nil(t, m.Pipelines)
	require.Len(t, m.Lead, 5)
	problems := setup.Validate(m, after)
	require.NotEmpty(t, problems, "the pipelines are not mapped yet")
	require.Equal(t, "Воронка «Первичный приём» не выбрана", problems[0].Message)

	for _, blocks := range [][]setup.Block{nil, {"tasks"}} {
		_, err := setup.Propose(setup.DefaultPlan(), account(), blocks, nil)
		require.ErrorIs(t, err, setup.ErrUnknownBlock)
	}
}

func TestProposeRenames(t *testing.T) {
	t.Parallel()
	snap := account()
	snap.LeadFields = []setup.Field{{ID: 41, Name: "Доктор", Type: setup.FieldSelect}}
	renames := map[setup.ItemKey]string{
		"pipeline:repeat":           "  Повторные   визиты ",
		"stage:primary:no_show":     "Неявка",
		"field:lead:doctor":         "доктор", // an existing compatible field: reused
		"field:contact:card_number": "№ амбулаторной карты",
	}
	prop, err := setup.Propose(setup.DefaultPlan(), snap, setup.AllBlocks(), renames)
	require.NoError(t, err)
	repeat := findPipeline(t, prop, setup.PipelineRepeat)
	require.Equal(t, setup.ActionCreate, repeat.Action)
	require.Equal(t, "Повторные визиты", repeat.Name)
	require.Equal(t, "Неявка", findStage(t, findPipeline(t, prop, setup.PipelinePrimary), setup.StateNoShow).Name)
	require.Equal(t, "Не пришёл", findStage(t, repeat, setup.StateNoShow).Name, "renames are per item")
	doctor := findField(t, prop, setup.EntityLead, setup.DatumDoctor)
	require.Equal(t, setup.Decision{Item: "field:lead:doctor", Action: setup.ActionReuse, Name: "Доктор", ExistingID: 41}, doctor.Decision)
	require.Equal(t, "№ амбулаторной карты", findField(t, prop, setup.EntityContact, setup.DatumCardNumber).Name)

	after, _ := apply(t, snap, prop)
	again, err := setup.Propose(setup.DefaultPlan(), after, setup.AllBlocks(), renames)
	require.NoError(t, err)
	require.Empty(t, again.ToCreate(), "the same renames find what they created")
}

func TestProposeErrors(t *testing.T) {
	t.Parallel()
	nearCap := func(have int) setup.Snapshot {
		s := account()
		for i := len(s.Pipelines); i < have; i++ {
			s.Pipelines = append(s.Pipelines, pipeline(int64(100+i), fmt.Sprintf("Воронка %d", i)))
		}
		return s
	}
	fullPrimary := func(stages int) setup.Snapshot {
		s := account()
		names := []string{"Записан на приём"}
		for i := len(names); i < stages-3; i++ {
			names = append(names, fmt.Sprintf("Этап %d", i))
		}
		s.Pipelines = append(s.Pipelines, pipeline(2, "Первичный приём", names...))
		return s
	}
	withLead := func(fields ...setup.Field) setup.Snapshot {
		s := account()
		s.LeadFields = fields
		return s
	}
	tests := []struct {
		name    string
		snap    setup.Snapshot
		renames map[setup.ItemKey]string
		limits  setup.Limits
		kind    error
		item    setup.ItemKey
		message string
	}{
		{
			name: "ErrCapExceededPipelines", snap: nearCap(49), kind: setup.ErrCapExceeded, item: "pipeline:repeat",
			message: "Нельзя создать воронку «Повторный приём»: в аккаунте 49 воронок из 50 возможных, свободно 1, а нужно создать 2. Удалите лишние воронки или выберите существующие в гибкой настройке",
		},
		{
			name: "ErrCapExceededNoRoomAtAll", snap: nearCap(50), kind: setup.ErrCapExceeded, item: "pipeline:primary",
		},
		{
			name: "ErrCapExceededCustomLimit", snap: nearCap(3), limits: setup.Limits{MaxPipelines: 3}, kind: setup.ErrCapExceeded, item: "pipeline:primary",
		},
		{
			name: "ErrCapExceededStages", snap: fullPrimary(97), kind: setup.ErrCapExceeded, item: "stage:primary:cancelled",
			message: "Нельзя создать этап «Отменён» в воронке «Первичный приём»: в ней 97 этапов из 100 возможных, свободно 3, а нужно создать 4",
		},
		{
			name: "ErrCapExceededFields",
			snap: withLead(setup.Field{ID: 1, Name: "Источник", Type: setup.FieldText}, setup.Field{ID: 2, Name: "Кресло", Type: setup.FieldText},
				setup.Field{ID: 3, Name: "Услуги", Type: setup.FieldTextarea}),
			limits: setup.Limits{MaxFieldsPerEntity: 7}, kind: setup.ErrCapExceeded, item: "field:lead:appointment_status",
			message: "Нельзя создать поле «Статус записи» (сделка): в карточке 3 поля из 7 возможных, свободно 4, а нужно создать 5",
		},
		{
			name: "ErrNameCollisionRenamesEachOther", snap: account(),
			renames: map[setup.ItemKey]string{"field:lead:doctor": "Кабинет", "field:lead:branch": "кабинет"},
			kind:    setup.ErrNameCollision, item: "field:lead:branch",
		},
		{
			name: "ErrNameCollisionRenameTakesDefault", snap: account(),
			renames: map[setup.ItemKey]string{"stage:repeat:arrived": "Приём завершен"},
			kind:    setup.ErrNameCollision, item: "stage:repeat:arrived",
			message: "Название «Приём завершен» уже занято: этап «Приём завершён» воронки «Повторный приём»",
		},
		{
			name: "ErrNameCollisionPipelines", snap: account(),
			renames: map[setup.ItemKey]string{"pipeline:primary": "Повторный прием"},
			kind:    setup.ErrNameCollision, item: "pipeline:primary",
		},
		{
			name: "ErrNameCollisionIncompatibleExisting", snap: withLead(setup.Field{ID: 5, Name: "Кабинет", Type: setup.FieldNumeric}),
			renames: map[setup.ItemKey]string{"field:lead:doctor": "Кабинет"},
			kind:    setup.ErrNameCollision, item: "field:lead:doctor",
			message: "Название «Кабинет» занято полем amoCRM типа «Число», которое не подходит для «Врач» (нужен тип «Текст» или «Список»): выберите другое",
		},
		{
			name: "ErrNameCollisionRenameToPhone", snap: account(),
			renames: map[setup.ItemKey]string{"field:contact:card_number": "Телефон"},
			kind:    setup.ErrNameCollision, item: "field:contact:card_number",
		},
		{
			name: "ErrNameCollisionFallbackTaken",
			snap: withLead(setup.Field{ID: 5, Name: "Врач", Type: setup.FieldNumeric}, setup.Field{ID: 6, Name: "Врач (IDENT)", Type: setup.FieldCheckbox}),
			kind: setup.ErrNameCollision, item: "field:lead:doctor",
		},
		{
			name: "ErrNotRenamable", snap: account(), renames: map[setup.ItemKey]string{"field:contact:phone": "Мобильный"},
			kind: setup.ErrNotRenamable, item: "field:contact:phone",
		},
		{
			name: "ErrInvalidName", snap: account(), renames: map[setup.ItemKey]string{"field:lead:doctor": " «» "},
			kind: setup.ErrInvalidName, item: "field:lead:doctor",
		},
		{
			name: "ErrUnknownItem", snap: account(), renames: map[setup.ItemKey]string{"field:lead:chair": "Кресло"},
			kind: setup.ErrUnknownItem, item: "field:lead:chair",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			snap := tt.snap
			snap.Limits = tt.limits
			_, err := setup.Propose(setup.DefaultPlan(), snap, setup.AllBlocks(), tt.renames)
			require.ErrorIs(t, err, tt.kind)
			var ie *setup.ItemError
			require.ErrorAs(t, err, &ie)
			require.Equal(t, tt.item, ie.Item)
			if tt.message != "" {
				require.Equal(t, tt.message, ie.Message)
			}
			var ae *apperr.Error
			require.ErrorAs(t, err, &ae)
			require.Equal(t, ie.Message, ae.Message)
		})
	}
}

func TestProposeCapFitsWhenReusing(t *testing.T) {
	t.Parallel()
	snap := account()
	snap.Pipelines = append(snap.Pipelines, pipeline(2, "Первичный приём"))
	for i := len(snap.Pipelines); i < 49; i++ {
		snap.Pipelines = append(snap.Pipelines, pipeline(int64(100+i), fmt.Sprintf("Воронка %d", i)))
	}
	prop, err := setup.Propose(setup.DefaultPlan(), snap, setup.AllBlocks(), nil)
	require.NoError(t, err, "one pipeline to create, one free")
	require.Equal(t, setup.ActionReuse, findPipeline(t, prop, setup.PipelinePrimary).Action)

	// Several problems are reported together.
	snap.Limits = setup.Limits{MaxPipelines: 49, MaxFieldsPerEntity: 3}
	_, err = setup.Propose(setup.DefaultPlan(), snap, setup.AllBlocks(), nil)
	require.ErrorIs(t, err, setup.ErrCapExceeded)
	var items []setup.ItemKey
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var ie *setup.ItemError
		require.True(t, errors.As(e, &ie))
		items = append(items, ie.Item)
	}
	require.Equal(t, []setup.ItemKey{"pipeline:repeat", "field:contact:patient_id", "field:lead:branch"}, items)
	require.Equal(t, apperr.Conflict, apperr.CodeOf(err))
}
