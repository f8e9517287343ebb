package mirror_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/svyazka/svyazka/backend/mirror"
	"github.com/svyazka/svyazka/connector/protocol"
)

func TestSplitPhones(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		raw  string
		want []string
	}{
		{"One", "8 (916) 123-45-67", []string{"+79161234567"}},
		{"AlreadyE164", "+79161234567", []string{"+79161234567"}},
		{"Empty", "", nil},
		{"OnlyNote", "нет телефона", nil},
		{"TwoWithComma", "8 916 123-45-67, 8 916 765-43-21", []string{"+79161234567", "+79167654321"}},
		{"TwoWithSemicolon", "89161234567;+7 916 765 43 21", []string{"+79161234567", "+79167654321"}},
		{"TwoWithSlash", "8-916-123-45-67/8-495-123-45-67", []string{"+79161234567", "+74951234567"}},
		{"TwoWithWord", "89161234567 или 89167654321", []string{"+79161234567", "+79167654321"}},
		{"TwoWithNewline", "89161234567\n89167654321", []string{"+79161234567", "+79167654321"}},
		{"TwoWithSpaceOnly", "8 916 123 45 67 8 916 765 43 21", []string{"+79161234567", "+79167654321"}},
		{"TwoInternationalWithSpaceOnly", "+7 916 123 45 67 +375 29 123 45 67", []string{"+79161234567", "+375291234567"}},
		{"Extension", "+7 (495) 123-45-67 доб. 123", []string{"+74951234567"}},
		{"ExtensionLatin", "8 495 123 45 67 ext.12", []string{"+74951234567"}},
		{"Note", "89161234567 (мама)", []string{"+79161234567"}},
		{"NoteBefore", "мама: 8 916 123-45-67", []string{"+79161234567"}},
		{"Duplicate", "89161234567, +7 916 123-45-67", []string{"+79161234567"}},
		{"Tab", "8\t916\t123\t45\t67", []string{"+79161234567"}},
		{"NonBreakingSpace", "+7\u00a0916\u00a0123\u00a045\u00a067", []string{"+79161234567"}},
		{"Foreign", "+375 29 123 45 67", []string{"+375291234567"}},
		{"ShortIsNoPhone", "12-34-56", nil},
		{"OneValidOneNot", "123, 89161234567", []string{"+79161234567"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tt.want, mirror.SplitPhones(tt.raw)); diff != "" {
				t.Fatalf("SplitPhones(%q) (-want +got):\n%s", tt.raw, diff)
			}
		})
	}
}

func TestPhones(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		p    protocol.IdentPatient
		want []string
	}{
		{"MobileFirst", protocol.IdentPatient{Phone: "8 495 123 45 67", MobilePhone: "8 916 123 45 67"}, []string{"+79161234567", "+74951234567"}},
		{"SameInBoth", protocol.IdentPatient{Phone: "89161234567", MobilePhone: "+79161234567"}, []string{"+79161234567"}},
		{"TwoInOneField", protocol.IdentPatient{MobilePhone: "89161234567, 89167654321"}, []string{"+79161234567", "+79167654321"}},
		{"None", protocol.IdentPatient{Phone: "-"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tt.want, mirror.Phones(tt.p)); diff != "" {
				t.Fatalf("Phones (-want +got):\n%s", diff)
			}
		})
	}
}

func TestAdopt(t *testing.T) {
	t.Parallel()
	const (
		mum   = "+79160000001"
		child = "+79160000002"
		solo  = "+79160000003"
	)
	// A family: mother 1 and son 2 share the home phone; 2 also has his own.
	// Patient 3 lives alone; patient 4 already has a contact.
	patients := []mirror.PatientPhones{
		{PatientID: "1", Phones: []string{mum}},
		{PatientID: "2", Phones: []string{"8 916 000-00-01", child}},
		{PatientID: "3", Phones: []string{solo}},
		{PatientID: "4", Phones: []string{"+79160000004"}, Linked: true},
		{PatientID: "5", Phones: []string{"+79160000005"}},
		{PatientID: "6", Phones: []string{"+79160000006"}},
	}
	tests := []struct {
		name     string
		contacts []mirror.CandidateContact
		want     mirror.AdoptResult
	}{
		{
			name:     "UniquePhone",
			contacts: []mirror.CandidateContact{{ID: 7, Phones: []string{"8 (916) 000-00-03"}}},
			want:     mirror.AdoptResult{Adopted: []mirror.Adoption{{ContactID: 7, PatientID: "3"}}},
		},
		{
			name:     "FamilySharesPhone",
			contacts: []mirror.CandidateContact{{ID: 7, Phones: []string{mum}}},
			want: mirror.AdoptResult{NotAdopted: []mirror.NotAdopted{
				{ContactID: 7, Reason: mirror.ReasonSharedPhone, PatientIDs: []string{"1", "2"}}}},
		},
		{
			// The son's own phone is unique, but the contact also has the shared
			// one: its phones point at two patients, so it is left alone.
			name:     "OwnAndSharedPhone",
			contacts: []mirror.CandidateContact{{ID: 7, Phones: []string{child, mum}}},
			want: mirror.AdoptResult{NotAdopted: []mirror.NotAdopted{
				{ContactID: 7, Reason: mirror.ReasonSharedPhone, PatientIDs: []string{"1", "2"}}}},
		},
		{
			name:     "PhonesOfTwoPatients",
			contacts: []mirror.CandidateContact{{ID: 7, Phones: []string{solo, "+79160000005"}}},
			want: mirror.AdoptResult{NotAdopted: []mirror.NotAdopted{
				{ContactID: 7, Reason: mirror.ReasonSharedPhone, PatientIDs: []string{"3", "5"}}}},
		},
		{
			name:     "ContactAlreadyLinked",
			contacts: []mirror.CandidateContact{{ID: 7, Phones: []string{solo}, Linked: true}},
			want:     mirror.AdoptResult{NotAdopted: []mirror.NotAdopted{{ContactID: 7, Reason: mirror.ReasonContactLinked}}},
		},
		{
			name:     "PatientAlreadyLinked",
			contacts: []mirror.CandidateContact{{ID: 7, Phones: []string{"+79160000004"}}},
			want: mirror.AdoptResult{NotAdopted: []mirror.NotAdopted{
				{ContactID: 7, Reason: mirror.ReasonPatientLinked, PatientIDs: []string{"4"}}}},
		},
		{
			name:     "TwoContactsOnePatient",
			contacts: []mirror.CandidateContact{{ID: 9, Phones: []string{solo}}, {ID: 7, Phones: []string{"89160000003"}}, {ID: 8, Phones: []string{"+79160000005"}}},
			want: mirror.AdoptResult{
				Adopted: []mirror.Adoption{{ContactID: 8, PatientID: "5"}},
				NotAdopted: []mirror.NotAdopted{
					{ContactID: 7, Reason: mirror.ReasonPatientContested, PatientIDs: []string{"3"}},
					{ContactID: 9, Reason: mirror.ReasonPatientContested, PatientIDs: []string{"3"}},
				},
			},
		},
		{
			name:     "NoMatch",
			contacts: []mirror.CandidateContact{{ID: 7, Phones: []string{"+79169999999"}}},
			want:     mirror.AdoptResult{NotAdopted: []mirror.NotAdopted{{ContactID: 7, Reason: mirror.ReasonNoMatch}}},
		},
		{
			name:     "NoPhone",
			contacts: []mirror.CandidateContact{{ID: 7, Phones: []string{"звонить через секретаря"}}, {ID: 8}},
			want: mirror.AdoptResult{NotAdopted: []mirror.NotAdopted{
				{ContactID: 7, Reason: mirror.ReasonNoPhone}, {ContactID: 8, Reason: mirror.ReasonNoPhone}}},
		},
		{
			name:     "TwoPhonesInOneContactField",
			contacts: []mirror.CandidateContact{{ID: 7, Phones: []string{"+7 916 000-00-06, 8 800 000 00 00"}}},
			want:     mirror.AdoptResult{Adopted: []mirror.Adoption{{ContactID: 7, PatientID: "6"}}},
		},
		{
			name: "Mixed",
			contacts: []mirror.CandidateContact{
				{ID: 3, Phones: []string{"+79160000006"}},
				{ID: 1, Phones: []string{solo}},
				{ID: 2, Phones: []string{mum}},
			},
			want: mirror.AdoptResult{
				Adopted:    []mirror.Adoption{{ContactID: 1, PatientID: "3"}, {ContactID: 3, PatientID: "6"}},
				NotAdopted: []mirror.NotAdopted{{ContactID: 2, Reason: mirror.ReasonSharedPhone, PatientIDs: []string{"1", "2"}}},
			},
		},
		{name: "Nothing", want: mirror.AdoptResult{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tt.want, mirror.Adopt(tt.contacts, patients)); diff != "" {
				t.Fatalf("Adopt (-want +got):\n%s", diff)
			}
		})
	}
}
