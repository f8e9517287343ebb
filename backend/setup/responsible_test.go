package setup_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/svyazka/svyazka/backend/setup"
)

func TestMatchResponsible(t *testing.T) {
	t.Parallel()
	ivanov := setup.Doctor{ID: "12", Name: "Иванов Иван Иванович"}
	u := func(id int64, name string) setup.User { return setup.User{ID: id, Name: name, Active: true} }
	tests := []struct {
		name      string
		doctor    setup.Doctor
		users     []setup.User
		overrides map[string]int64
		want      setup.Match
	}{
		{"FullName", ivanov, []setup.User{u(1, "Петров Пётр"), u(2, "иванов  иван иванович")}, nil, setup.Match{UserID: 2, Kind: setup.MatchFullName}},
		{"FullNameOtherOrder", ivanov, []setup.User{u(2, "Иван Иванович Иванов")}, nil, setup.Match{UserID: 2, Kind: setup.MatchFullName}},
		{"FirstNameSurname", ivanov, []setup.User{u(3, "Иван Иванов")}, nil, setup.Match{UserID: 3, Kind: setup.MatchShortName}},
		{"SurnameFirstName", ivanov, []setup.User{u(3, "Иванов Иван")}, nil, setup.Match{UserID: 3, Kind: setup.MatchShortName}},
		{"YoInName", setup.Doctor{ID: "5", Name: "Семёнов Пётр Ильич"}, []setup.User{u(4, "Петр Семенов")}, nil, setup.Match{UserID: 4, Kind: setup.MatchShortName}},
		{"ShortDoctorFullUser", setup.Doctor{ID: "6", Name: "Иванов Иван"}, []setup.User{u(2, "Иванов Иван Иванович")}, nil, setup.Match{UserID: 2, Kind: setup.MatchShortName}},
		{"FullWinsOverShort", ivanov, []setup.User{u(3, "Иван Иванов"), u(2, "Иванов Иван Иванович")}, nil, setup.Match{UserID: 2, Kind: setup.MatchFullName}},
		{"InitialsNoMatch", ivanov, []setup.User{u(5, "Иванов И.И.")}, nil, setup.Match{}},
		{"SurnameOnlyNoMatch", ivanov, []setup.User{u(5, "Иванов")}, nil, setup.Match{}},
		{"OtherPatronymicNoMatch", ivanov, []setup.User{u(5, "Иванов Иван Петрович")}, nil, setup.Match{}},
		{"InactiveNoMatch", ivanov, []setup.User{{ID: 2, Name: "Иванов Иван Иванович"}}, nil, setup.Match{}},
		{"Ambiguous", ivanov, []setup.User{u(3, "Иван Иванов"), u(4, "Иванов Иван")}, nil, setup.Match{Kind: setup.MatchAmbiguous}},
		{"AmbiguousFull", ivanov, []setup.User{u(2, "Иванов Иван Иванович"), u(4, "Иванов Иван Иванович")}, nil, setup.Match{Kind: setup.MatchAmbiguous}},
		{"OverrideWins", ivanov, []setup.User{u(2, "Иванов Иван Иванович")}, map[string]int64{"12": 9}, setup.Match{UserID: 9, Kind: setup.MatchOverride}},
		{"OverrideOfOtherDoctor", ivanov, []setup.User{u(2, "Иванов Иван Иванович")}, map[string]int64{"13": 9}, setup.Match{UserID: 2, Kind: setup.MatchFullName}},
		{"SingleWordDoctor", setup.Doctor{ID: "7", Name: "Гигиенист"}, []setup.User{u(2, "Гигиенист")}, nil, setup.Match{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, setup.MatchResponsible(tt.doctor, tt.users, tt.overrides))
		})
	}
}

func TestMatchDoctors(t *testing.T) {
	t.Parallel()
	doctors := []setup.Doctor{
		{ID: "1", Name: "Иванов Иван Иванович"},
		{ID: "2", Name: "Иванов Иван Петрович"},
		{ID: "3", Name: "Смирнова Анна Сергеевна"},
		{ID: "4", Name: "Кузнецов Олег"},
	}
	users := []setup.User{
		{ID: 10, Name: "Иван Иванов", Active: true},
		{ID: 11, Name: "Анна Смирнова", Active: true},
	}
	got := setup.MatchDoctors(doctors, users, map[string]int64{"2": 10})
	require.Equal(t, map[string]setup.Match{
		"1": {UserID: 10, Kind: setup.MatchShortName}, // doctor 2 is overridden, so user 10 is not shared by name
		"2": {UserID: 10, Kind: setup.MatchOverride},
		"3": {UserID: 11, Kind: setup.MatchShortName},
		"4": {},
	}, got)

	got = setup.MatchDoctors(doctors, users, nil)
	require.Equal(t, setup.Match{Kind: setup.MatchAmbiguous}, got["1"], "one user, two doctors of that short name")
	require.Equal(t, setup.Match{Kind: setup.MatchAmbiguous}, got["2"])
	require.True(t, got["3"].Matched())
}
