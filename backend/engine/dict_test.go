package engine_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/svyazka/svyazka/amocrm"
	"github.com/svyazka/svyazka/backend/setup"
	"github.com/svyazka/svyazka/connector/protocol"
)

// fieldText is the text of field fieldID on the lead ("" when absent).
func fieldText(l amocrm.Lead, fieldID int64) string {
	for _, fv := range l.CustomFieldsValues {
		if fv.FieldID == fieldID && len(fv.Values) > 0 {
			return fmt.Sprint(fv.Values[0].Value)
		}
	}
	return ""
}

func TestRenamedDoctorAndBranchRefreshTheirLeads(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tomorrow := time.Now().Truncate(time.Hour).Add(24 * time.Hour)
	e.ingest(t,
		rec(t, protocol.KindDoctor, "1", protocol.IdentDoctor{Surname: "Иванов", Name: "Иван"}),
		rec(t, protocol.KindDoctor, "2", protocol.IdentDoctor{Surname: "Сидоров", Name: "Олег"}),
		rec(t, protocol.KindBranch, "1", protocol.IdentBranch{Name: "Центр"}),
		rec(t, protocol.KindPatient, "1", protocol.IdentPatient{Surname: "Петров", Name: "Пётр"}),
		rec(t, protocol.KindReception, "11", protocol.IdentReception{PatientID: "1", StaffID: "1", BranchID: "1", PlanStart: local(tomorrow)}),
		rec(t, protocol.KindPatient, "2", protocol.IdentPatient{Surname: "Орлова", Name: "Анна"}),
		rec(t, protocol.KindReception, "21", protocol.IdentReception{PatientID: "2", StaffID: "2", PlanStart: local(tomorrow)}),
	)
	e.start(t, "")
	e.process(t)
	doctor := e.mv.Mapping.Lead[setup.DatumDoctor].FieldID
	branch := e.mv.Mapping.Lead[setup.DatumBranch].FieldID
	require.NotZero(t, doctor)
	leads := e.leads(t)
	require.Equal(t, "Иванов Иван", fieldText(leads["11"][0], doctor))
	require.Equal(t, "Центр", fieldText(leads["11"][0], branch))
	untouched := leads["21"][0].UpdatedAt

	// IDENT fixes the doctor's surname and renames the branch.
	e.ingest(t,
		rec(t, protocol.KindDoctor, "1", protocol.IdentDoctor{Surname: "Иваненко", Name: "Иван"}),
		rec(t, protocol.KindBranch, "1", protocol.IdentBranch{Name: "Центральный"}))
	res := e.process(t)
	require.Equal(t, 1, res.LeadsUpdated, "only the renamed doctor's lead")
	require.Zero(t, res.ContactsUpdated)
	leads = e.leads(t)
	require.Equal(t, "Иваненко Иван", fieldText(leads["11"][0], doctor))
	require.Equal(t, "Центральный", fieldText(leads["11"][0], branch))
	require.Equal(t, untouched, leads["21"][0].UpdatedAt, "another doctor's lead is not written")

	// The same dictionary again changes nothing.
	before := e.requests()
	e.ingest(t, rec(t, protocol.KindDoctor, "2", protocol.IdentDoctor{Surname: "Сидоров", Name: "Олег"}))
	e.process(t)
	require.Equal(t, before, e.requests())
}
