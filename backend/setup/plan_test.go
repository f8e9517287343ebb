package setup_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"

	"github.com/svyazka/svyazka/backend/setup"
)

func TestDefaultPlanNames(t *testing.T) {
	t.Parallel()
	plan := setup.DefaultPlan()

	type pipe struct {
		Name   string
		Stages map[setup.State]string
	}
	stages := map[setup.State]string{
		setup.StatePlanned:   "Записан на приём",
		setup.StateArrived:   "Пациент пришёл",
		setup.StateCompleted: "Приём завершён",
		setup.StateNoShow:    "Не пришёл",
		setup.StateCancelled: "Отменён",
	}
	wantPipes := map[setup.PipelineKey]pipe{
		setup.PipelinePrimary: {"Первичный приём", stages},
		setup.PipelineRepeat:  {"Повторный приём", stages},
	}
	gotPipes := map[setup.PipelineKey]pipe{}
	for _, ps := range plan.Pipelines {
		p := pipe{Name: ps.Name, Stages: map[setup.State]string{}}
		for _, st := range ps.Stages {
			p.Stages[st.State] = st.Name
		}
		gotPipes[ps.Key] = p
	}
	if diff := cmp.Diff(wantPipes, gotPipes); diff != "" {
		t.Fatalf("pipelines (-want +got):\n%s", diff)
	}

	type field struct {
		Name     string
		Required bool
		Create   setup.FieldType
	}
	want := map[setup.ItemKey]field{
		"field:contact:patient_id":      {"ID пациента IDENT", true, setup.FieldText},
		"field:contact:phone":           {"Телефон", false, ""},
		"field:contact:email":           {"Email", false, ""},
		"field:contact:birth_date":      {"Дата рождения", false, setup.FieldBirthday},
		"field:contact:sex":             {"Пол", false, setup.FieldSelect},
		"field:contact:card_number":     {"Номер карты", false, setup.FieldText},
		"field:lead:reception_id":       {"ID записи IDENT", true, setup.FieldText},
		"field:lead:appointment_at":     {"Дата и время приёма", false, setup.FieldDateTime},
		"field:lead:doctor":             {"Врач", false, setup.FieldText},
		"field:lead:branch":             {"Филиал", false, setup.FieldText},
		"field:lead:appointment_status": {"Статус записи", false, setup.FieldSelect},
	}
	got := map[setup.ItemKey]field{}
	for _, fs := range append(append([]setup.FieldSpec(nil), plan.Contact...), plan.Lead...) {
		got[fs.Item()] = field{fs.Name, fs.Required, fs.Create}
		if fs.Create != "" {
			require.True(t, fs.Accepts(fs.Create), "%s creates a type it does not accept", fs.Item())
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("fields (-want +got):\n%s", diff)
	}

	compat := func(e setup.Entity, d setup.Datum) []setup.FieldType {
		fs, ok := plan.Field(e, d)
		require.True(t, ok)
		return fs.Compatible
	}
	require.Equal(t, []setup.FieldType{setup.FieldText, setup.FieldNumeric}, compat(setup.EntityContact, setup.DatumPatientID))
	require.Equal(t, []setup.FieldType{setup.FieldBirthday, setup.FieldDate}, compat(setup.EntityContact, setup.DatumBirthDate))
	require.Equal(t, []setup.FieldType{setup.FieldSelect, setup.FieldRadiobutton, setup.FieldText}, compat(setup.EntityContact, setup.DatumSex))
	require.Equal(t, []setup.FieldType{setup.FieldDateTime, setup.FieldDate}, compat(setup.EntityLead, setup.DatumAppointmentAt))
	require.Equal(t, []setup.FieldType{setup.FieldText, setup.FieldSelect}, compat(setup.EntityLead, setup.DatumDoctor))
	require.Equal(t, []setup.FieldType{setup.FieldSelect, setup.FieldText}, compat(setup.EntityLead, setup.DatumAppointmentStatus))
}

func TestNormalize(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		a, b string
		same bool
	}{
		{"YoIsYe", "Первичный прием", "Первичный приём", true},
		{"CaseAndYo", "дата и время приема", "Дата и время приёма", true},
		{"Spaces", "  Дата\u00a0и   время\tприёма ", "Дата и время приёма", true},
		{"Quotes", "«Пол»", `"пол"`, true},
		{"Punctuation", "Дата-рождения:", "дата рождения", true},
		{"Brackets", "ID пациента (IDENT)", "ID пациента IDENT", true},
		{"DecomposedShortI", "Повторный приём", "Повторны\u0438\u0306 прие\u0308м", true},
		{"UpperYo", "ЁЛКА", "елка", true},
		{"DifferentWords", "Номер карты", "№ карты", false},
		{"PunctuationSeparates", "Номер.карты", "Номеркарты", false},
		{"ShortIIsNotI", "мой", "мои", false},
		{"EmptyNeverMatches", " «» ", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.same, setup.SameName(tt.a, tt.b), "%q vs %q: %q, %q", tt.a, tt.b, setup.Normalize(tt.a), setup.Normalize(tt.b))
		})
	}
	require.Equal(t, "дата и время приема", setup.Normalize(" Дата  и время «приёма»: "))
}

func TestProposeRejectsInvalidPlan(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		mutate func(p *setup.Plan)
		item   setup.ItemKey
	}{
		{"DuplicateStageName", func(p *setup.Plan) { p.Pipelines[0].Stages[1].Name = "Записан на прием" }, "stage:primary:arrived"},
		{"CreateNotAccepted", func(p *setup.Plan) { p.Lead[2].Create = setup.FieldCheckbox }, "field:lead:doctor"},
		{"RequiredNeverCreated", func(p *setup.Plan) { p.Contact[0].Create = ""; p.Contact[0].Code = "X" }, "field:contact:patient_id"},
		{"EmptyName", func(p *setup.Plan) { p.Pipelines[1].Name = " " }, "pipeline:repeat"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			plan := setup.DefaultPlan()
			tt.mutate(&plan)
			_, err := setup.Propose(plan, account(), setup.AllBlocks(), nil)
			require.ErrorIs(t, err, setup.ErrInvalidPlan)
			var ie *setup.ItemError
			require.ErrorAs(t, err, &ie)
			require.Equal(t, tt.item, ie.Item)
		})
	}
}
