package mirror_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/stretchr/testify/require"

	"github.com/svyazka/svyazka/backend/mirror"
	"github.com/svyazka/svyazka/connector/protocol"
)

func ptr[T any](v T) *T { return &v }

func leadInput(t *testing.T) mirror.LeadInput {
	t.Helper()
	rec := reception("501", "2026-12-12T10:00:00", "2026-12-12T10:45:00")
	rec.StaffID, rec.BranchID, rec.AmountKopecks = "7", "2", ptr(int64(350000))
	return mirror.LeadInput{
		Reception: rec,
		Patient:   mirror.Patient{ID: "100", IdentPatient: protocol.IdentPatient{Surname: "Иванов", Name: "иван", Patronymic: "Иванович"}},
		State:     mirror.StatePlanned,
		Pipeline:  mirror.PipelinePrimary,
		Dictionaries: mirror.Dictionaries{
			Doctors:  map[string]protocol.IdentDoctor{"7": {Surname: "Петрова", Name: "Анна", Patronymic: "Сергеевна"}},
			Branches: map[string]protocol.IdentBranch{"2": {Name: "ООО Улыбка", BranchName: "Улыбка на Ленина"}, "3": {}},
		},
		Location: zone(t, "Asia/Yekaterinburg"),
	}
}

func TestBuildLead(t *testing.T) {
	t.Parallel()
	in := leadInput(t)
	got, err := mirror.BuildLead(in)
	require.NoError(t, err)
	want := mirror.LeadFacts{
		ReceptionID:   "501",
		PatientID:     "100",
		Name:          "Иванов И. И. — 12.12.2026 10:00",
		Pipeline:      mirror.PipelinePrimary,
		State:         mirror.StatePlanned,
		StatusText:    "Записан на приём",
		Start:         time.Date(2026, 12, 12, 5, 0, 0, 0, time.UTC),
		StartLocal:    time.Date(2026, 12, 12, 10, 0, 0, 0, in.Location),
		End:           time.Date(2026, 12, 12, 5, 45, 0, 0, time.UTC),
		DoctorName:    "Петрова Анна Сергеевна",
		BranchName:    "Улыбка на Ленина",
		AmountKopecks: ptr(int64(350000)),
	}
	if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(mirror.LeadFacts{}, "Hash")); diff != "" {
		t.Fatalf("BuildLead (-want +got):\n%s", diff)
	}
	require.Equal(t, in.Location, got.StartLocal.Location())
	require.Len(t, got.Hash, 64)
	again, err := mirror.BuildLead(leadInput(t))
	require.NoError(t, err)
	require.Equal(t, got.Hash, again.Hash, "unchanged facts, unchanged hash")
}

func TestBuildLeadHashChanges(t *testing.T) {
	t.Parallel()
	base, err := mirror.BuildLead(leadInput(t))
	require.NoError(t, err)
	tests := []struct {
		name   string
		change func(*mirror.LeadInput)
	}{
		{"State", func(in *mirror.LeadInput) { in.State = mirror.StateArrived }},
		{"Pipeline", func(in *mirror.LeadInput) { in.Pipeline = mirror.PipelineRepeat }},
		{"Moved", func(in *mirror.LeadInput) { in.Reception.PlanStart = "2026-12-13T10:00:00" }},
		{"Longer", func(in *mirror.LeadInput) { in.Reception.PlanEnd = "2026-12-12T11:00:00" }},
		{"CurrentReception", func(in *mirror.LeadInput) { in.Reception.ID = "502" }},
		{"Doctor", func(in *mirror.LeadInput) { in.Reception.StaffID = "8" }},
		{"DoctorRenamed", func(in *mirror.LeadInput) {
			in.Dictionaries.Doctors = map[string]protocol.IdentDoctor{"7": {Surname: "Петрова-Ильина", Name: "Анна"}}
		}},
		{"Branch", func(in *mirror.LeadInput) { in.Reception.BranchID = "3" }},
		{"Amount", func(in *mirror.LeadInput) { in.Reception.AmountKopecks = ptr(int64(350001)) }},
		{"AmountUnknown", func(in *mirror.LeadInput) { in.Reception.AmountKopecks = nil }},
		{"AmountZero", func(in *mirror.LeadInput) { in.Reception.AmountKopecks = ptr(int64(0)) }},
		{"PatientName", func(in *mirror.LeadInput) { in.Patient.Surname = "Сидоров" }},
		{"Zone", func(in *mirror.LeadInput) { in.Location = zone(t, "Europe/Moscow") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			in := leadInput(t)
			tt.change(&in)
			got, err := mirror.BuildLead(in)
			require.NoError(t, err)
			require.NotEqual(t, base.Hash, got.Hash)
		})
	}
	t.Run("UnsentFieldsKeepHash", func(t *testing.T) {
		t.Parallel()
		in := leadInput(t)
		in.Reception.Comment = "позвонить накануне"
		in.Reception.DateTimeChanged = "2026-12-01T10:00:00"
		in.Reception.ChairID = "4"
		in.Patient.MobilePhone = "89161234567"
		got, err := mirror.BuildLead(in)
		require.NoError(t, err)
		require.Equal(t, base.Hash, got.Hash)
	})
}

func TestBuildLeadEdges(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name                 string
		change               func(*mirror.LeadInput)
		wantName             string
		wantDoctor, wantBran string
		wantMinutes          int
	}{
		{"ZeroLength", func(in *mirror.LeadInput) { in.Reception.PlanEnd = in.Reception.PlanStart },
			"Иванов И. И. — 12.12.2026 10:00", "Петрова Анна Сергеевна", "Улыбка на Ленина", 15},
		{"NoPatronymic", func(in *mirror.LeadInput) { in.Patient.Patronymic = "" },
			"Иванов И. — 12.12.2026 10:00", "Петрова Анна Сергеевна", "Улыбка на Ленина", 45},
		{"NoSurname", func(in *mirror.LeadInput) { in.Patient.Surname = " " },
			"иван Иванович — 12.12.2026 10:00", "Петрова Анна Сергеевна", "Улыбка на Ленина", 45},
		{"NoName", func(in *mirror.LeadInput) { in.Patient.IdentPatient = protocol.IdentPatient{} },
			"Пациент 100 — 12.12.2026 10:00", "Петрова Анна Сергеевна", "Улыбка на Ленина", 45},
		{"UnknownDoctorAndBranch", func(in *mirror.LeadInput) { in.Reception.StaffID, in.Reception.BranchID = "99", "" },
			"Иванов И. И. — 12.12.2026 10:00", "", "", 45},
		{"BranchWithoutNames", func(in *mirror.LeadInput) { in.Reception.BranchID = "3" },
			"Иванов И. И. — 12.12.2026 10:00", "Петрова Анна Сергеевна", "Филиал 3", 45},
		{"BranchOnlyLegalName", func(in *mirror.LeadInput) {
			in.Dictionaries.Branches = map[string]protocol.IdentBranch{"2": {Name: "ООО Улыбка"}}
		}, "Иванов И. И. — 12.12.2026 10:00", "Петрова Анна Сергеевна", "ООО Улыбка", 45},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			in := leadInput(t)
			tt.change(&in)
			got, err := mirror.BuildLead(in)
			require.NoError(t, err)
			require.Equal(t, tt.wantName, got.Name)
			require.Equal(t, tt.wantDoctor, got.DoctorName)
			require.Equal(t, tt.wantBran, got.BranchName)
			require.Equal(t, time.Duration(tt.wantMinutes)*time.Minute, got.End.Sub(got.Start))
		})
	}
}

func TestBuildLeadErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		change func(*mirror.LeadInput)
	}{
		{"ErrState", func(in *mirror.LeadInput) { in.State = "moved" }},
		{"ErrPipeline", func(in *mirror.LeadInput) { in.Pipeline = "" }},
		{"ErrNoZone", func(in *mirror.LeadInput) { in.Location = nil }},
		{"ErrPlanStart", func(in *mirror.LeadInput) { in.Reception.PlanStart = "" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			in := leadInput(t)
			tt.change(&in)
			_, err := mirror.BuildLead(in)
			require.ErrorIs(t, err, mirror.ErrInvalid)
		})
	}
}

func TestBuildContact(t *testing.T) {
	t.Parallel()
	full := mirror.Patient{ID: "100", IdentPatient: protocol.IdentPatient{
		Surname: "Иванов", Name: " Иван ", Patronymic: "Иванович", CardNumber: " 1234 ",
		MobilePhone: "8 916 123-45-67 (моб.)", Phone: "8 (343) 123-45-67, 89161234567",
		Email: " ivanov@example.ru ", BirthDate: "1980-05-17", BirthdayRaw: "17.05.1980", Sex: "male",
	}}
	tests := []struct {
		name string
		in   mirror.Patient
		want mirror.ContactFacts
	}{
		{"Full", full, mirror.ContactFacts{
			PatientID: "100", Name: "Иванов Иван Иванович", Phones: []string{"+79161234567", "+73431234567"},
			Email: "ivanov@example.ru", BirthDate: "1980-05-17", Sex: mirror.SexMale, CardNumber: "1234",
		}},
		{"Sparse", mirror.Patient{ID: "101", IdentPatient: protocol.IdentPatient{Surname: "Сидорова", Sex: "female", Email: "not an email"}},
			mirror.ContactFacts{PatientID: "101", Name: "Сидорова", Sex: mirror.SexFemale}},
		{"Nameless", mirror.Patient{ID: "102"}, mirror.ContactFacts{PatientID: "102", Name: "Пациент 102"}},
		{"BadBirthDateAndSex", mirror.Patient{ID: "103", IdentPatient: protocol.IdentPatient{Surname: "Ким", BirthDate: "17.05.1980", Sex: "м"}},
			mirror.ContactFacts{PatientID: "103", Name: "Ким"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := mirror.BuildContact(tt.in)
			if diff := cmp.Diff(tt.want, got, cmpopts.IgnoreFields(mirror.ContactFacts{}, "Hash")); diff != "" {
				t.Fatalf("BuildContact (-want +got):\n%s", diff)
			}
			require.Len(t, got.Hash, 64)
		})
	}
	t.Run("Hash", func(t *testing.T) {
		t.Parallel()
		base := mirror.BuildContact(full).Hash
		same := full
		same.DateTimeChanged = "2026-12-01T10:00:00"
		same.Phone = "+7 343 123 45 67; 8-916-123-45-67"
		require.Equal(t, base, mirror.BuildContact(same).Hash, "the same facts written differently")
		other := full
		other.CardNumber = "1235"
		require.NotEqual(t, base, mirror.BuildContact(other).Hash)
		reordered := full
		reordered.MobilePhone, reordered.Phone = full.Phone, full.MobilePhone
		require.NotEqual(t, base, mirror.BuildContact(reordered).Hash, "phone order is what amoCRM shows")
	})
}
