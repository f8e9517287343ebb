package ident

// Every IDENT table and column name the reader uses lives in this file, so a
// real schema dump (INFORMATION_SCHEMA.COLUMNS of a clinic) can correct them
// in one place. Tags follow the spec (docs: ident-schema.md): [C] two or more
// real sources agree, [1] one real source, [G] a guess.
//
// Required columns fail Check loudly; optional ones are probed and, when
// missing, read as NULL (the payload field stays empty).

// schemaName is the SQL schema of IDENT's tables on both SQL Server and the
// PostgreSQL stand-in.
const schemaName = "dbo"

// Table names.
const (
	tblPersons       = "Persons"                // [C]
	tblPatients      = "Patients"               // [C]
	tblStaffs        = "Staffs"                 // [C]
	tblReceptions    = "Receptions"             // [C]
	tblArmchairs     = "Armchairs"              // [C]
	tblOwnCompanies  = "OwnCompanies"           // [C]
	tblCancelReasons = "ReceptionCancelReasons" // [C] table name, columns [G]
)

// Persons columns (every human: patients and staff share the ID sequence).
const (
	colPersonsID         = "ID"          // [C]
	colPersonsSurname    = "Surname"     // [C]
	colPersonsName       = "Name"        // [C]
	colPersonsPatronymic = "Patronymic"  // [C]
	colPersonsBirthday   = "Birthday"    // [1] column, type unknown: read as text
	colPersonsMobile     = "MobilePhone" // [1]
	colPersonsPhone      = "Phone"       // [1]
	colPersonsEmail      = "Email"       // [G]
	colPersonsSex        = "Sex"         // [G]
)

// Patients columns; the patient id is the person id.
const (
	colPatientsPerson            = "ID_Persons"          // [C]
	colPatientsCardNumber        = "CardNumber"          // [C]
	colPatientsParentSNP         = "ParentSNP"           // [C]
	colPatientsArchivingReason   = "ID_ArchivingReasons" // [1]
	colPatientsFirstConsultation = "FirstConsultation"   // [1]
	colPatientsDateTimeChanged   = "DateTimeChanged"     // [1]
)

// Staffs columns.
const (
	colStaffsPerson  = "ID_Persons" // [C]
	colStaffsArchive = "Archive"    // [1]
)

// Receptions columns.
const (
	colReceptionsID                = "ID"                         // [C]
	colReceptionsPatient           = "ID_Patients"                // [C]
	colReceptionsStaff             = "ID_Staffs"                  // [C]
	colReceptionsChair             = "ID_Armchairs"               // [C]
	colReceptionsPlanStart         = "PlanStart"                  // [C]
	colReceptionsPlanEnd           = "PlanEnd"                    // [C]
	colReceptionsPatientAppeared   = "PatientAppeared"            // [C]
	colReceptionsReceptionStarted  = "ReceptionStarted"           // [C]
	colReceptionsReceptionEnded    = "ReceptionEnded"             // [C]
	colReceptionsCheckIssued       = "CheckIssued"                // [C]
	colReceptionsReceptionCanceled = "ReceptionCanceled"          // [C]
	colReceptionsCancelReason      = "ID_ReceptionCancelReasons"  // [C]
	colReceptionsCancelComment     = "CancelReasonComment"        // [1]
	colReceptionsCanceledBy        = "ID_StaffsReceptionCanceled" // [1]
	colReceptionsTransferFrom      = "ID_ReceptionsTransferFrom"  // [1]
	colReceptionsComment           = "Comment"                    // [C]
	colReceptionsRowVersion        = "RowVersion"                 // [1] rowversion / bytea(8)
	colReceptionsDateTimeAdded     = "DateTimeAdded"              // [C]
	colReceptionsDateTimeChanged   = "DateTimeChanged"            // [C]
)

// Armchairs columns (a chair belongs to a branch).
const (
	colArmchairsID      = "ID"              // [C]
	colArmchairsName    = "NameArmchair"    // [C]
	colArmchairsBranch  = "ID_OwnCompanies" // [C]
	colArmchairsArchive = "Archive"         // [1]
)

// OwnCompanies columns (branches).
const (
	colOwnCompaniesID         = "ID"         // [C]
	colOwnCompaniesName       = "Name"       // [C]
	colOwnCompaniesBranchName = "BranchName" // [1]
)

// ReceptionCancelReasons columns.
const (
	colCancelReasonsID   = "ID"   // [C] (it is the FK target)
	colCancelReasonsName = "Name" // [G]
)

// column is one probed column.
type column struct {
	table, name string
	required    bool
}

// columns lists every column the reader selects, with whether Check fails
// without it.
var columns = []column{
	{tblPersons, colPersonsID, true},
	{tblPersons, colPersonsSurname, true},
	{tblPersons, colPersonsName, true},
	{tblPersons, colPersonsPatronymic, true},
	{tblPersons, colPersonsBirthday, false},
	{tblPersons, colPersonsMobile, false},
	{tblPersons, colPersonsPhone, false},
	{tblPersons, colPersonsEmail, false},
	{tblPersons, colPersonsSex, false},

	{tblPatients, colPatientsPerson, true},
	{tblPatients, colPatientsCardNumber, true},
	{tblPatients, colPatientsParentSNP, false},
	{tblPatients, colPatientsArchivingReason, false},
	{tblPatients, colPatientsFirstConsultation, false},
	{tblPatients, colPatientsDateTimeChanged, false},

	{tblStaffs, colStaffsPerson, true},
	{tblStaffs, colStaffsArchive, false},

	{tblReceptions, colReceptionsID, true},
	{tblReceptions, colReceptionsPatient, true},
	{tblReceptions, colReceptionsStaff, true},
	{tblReceptions, colReceptionsChair, true},
	{tblReceptions, colReceptionsPlanStart, true},
	{tblReceptions, colReceptionsPlanEnd, true},
	{tblReceptions, colReceptionsPatientAppeared, true},
	{tblReceptions, colReceptionsReceptionStarted, true},
	{tblReceptions, colReceptionsReceptionEnded, true},
	{tblReceptions, colReceptionsCheckIssued, true},
	{tblReceptions, colReceptionsReceptionCanceled, true},
	{tblReceptions, colReceptionsCancelReason, true},
	{tblReceptions, colReceptionsCancelComment, false},
	{tblReceptions, colReceptionsCanceledBy, false},
	{tblReceptions, colReceptionsTransferFrom, false},
	{tblReceptions, colReceptionsComment, true},
	{tblReceptions, colReceptionsRowVersion, false},
	{tblReceptions, colReceptionsDateTimeAdded, true},
	{tblReceptions, colReceptionsDateTimeChanged, true},

	{tblArmchairs, colArmchairsID, true},
	{tblArmchairs, colArmchairsName, true},
	{tblArmchairs, colArmchairsBranch, true},
	{tblArmchairs, colArmchairsArchive, false},

	{tblOwnCompanies, colOwnCompaniesID, true},
	{tblOwnCompanies, colOwnCompaniesName, true},
	{tblOwnCompanies, colOwnCompaniesBranchName, false},

	{tblCancelReasons, colCancelReasonsID, true},
	{tblCancelReasons, colCancelReasonsName, false},
}

// tables lists the distinct tables of columns, in order.
func tables() []string {
	var out []string
	seen := map[string]bool{}
	for _, c := range columns {
		if !seen[c.table] {
			seen[c.table] = true
			out = append(out, c.table)
		}
	}
	return out
}
