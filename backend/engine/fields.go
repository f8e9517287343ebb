package engine

import (
	"encoding/json"
	"strconv"
	"time"

	"github.com/svyazka/svyazka/amocrm"
	"github.com/svyazka/svyazka/backend/mirror"
	"github.com/svyazka/svyazka/backend/setup"
	"github.com/svyazka/svyazka/connector/protocol"
)

// fieldValue shapes one datum for the mapped field's type; ok is false when
// the datum is not sent, empty, or cannot be written to that type (a doctor
// into a select field: its enums are not ours to map).
func fieldValue(fm setup.FieldMapping, text string, enumKey string, at *time.Time) (amocrm.FieldValues, bool) {
	if !fm.Sent() || (text == "" && enumKey == "" && at == nil) {
		return amocrm.FieldValues{}, false
	}
	switch fm.Type {
	case setup.FieldSelect, setup.FieldRadiobutton:
		id := fm.Enums[enumKey]
		if id == 0 {
			return amocrm.FieldValues{}, false
		}
		return amocrm.EnumValue(fm.FieldID, id), true
	case setup.FieldDate, setup.FieldDateTime, setup.FieldBirthday:
		if at == nil {
			return amocrm.FieldValues{}, false
		}
		return amocrm.FieldValues{FieldID: fm.FieldID, Values: []amocrm.FieldValue{{Value: json.Number(itoa(at.Unix()))}}}, true
	case setup.FieldNumeric:
		if text == "" {
			return amocrm.FieldValues{}, false
		}
		return amocrm.FieldValues{FieldID: fm.FieldID, Values: []amocrm.FieldValue{{Value: json.Number(text)}}}, true
	case setup.FieldText, setup.FieldTextarea, "":
		if text == "" {
			return amocrm.FieldValues{}, false
		}
		return amocrm.TextValue(fm.FieldID, text), true
	}
	return amocrm.FieldValues{}, false
}

// sexLabels are the texts of the sex datum in a text field.
var sexLabels = map[mirror.Sex]string{mirror.SexMale: "Мужской", mirror.SexFemale: "Женский"}

// contactFields are the custom field values of a contact: the patient id
// always, the rest as mapped.
func contactFields(m setup.Mapping, f mirror.ContactFacts) []amocrm.FieldValues {
	var out []amocrm.FieldValues
	add := func(v amocrm.FieldValues, ok bool) {
		if ok {
			out = append(out, v)
		}
	}
	add(fieldValue(m.Contact[setup.DatumPatientID], f.PatientID, "", nil))
	if pm := m.Contact[setup.DatumPhone]; pm.Sent() && len(f.Phones) > 0 {
		out = append(out, multitext(pm, setup.CodePhone, "MOB", f.Phones...))
	}
	if em := m.Contact[setup.DatumEmail]; em.Sent() && f.Email != "" {
		out = append(out, multitext(em, setup.CodeEmail, "WORK", f.Email))
	}
	if f.BirthDate != "" {
		if t, err := time.Parse(protocol.DateLayout, f.BirthDate); err == nil {
			add(fieldValue(m.Contact[setup.DatumBirthDate], f.BirthDate, "", &t))
		}
	}
	if f.Sex != mirror.SexUnknown {
		add(fieldValue(m.Contact[setup.DatumSex], sexLabels[f.Sex], string(f.Sex), nil))
	}
	add(fieldValue(m.Contact[setup.DatumCardNumber], f.CardNumber, "", nil))
	return out
}

// multitext is a PHONE or EMAIL value: by code when the mapping has one,
// else by field id.
func multitext(fm setup.FieldMapping, code, enumCode string, values ...string) amocrm.FieldValues {
	if fm.Code == "" {
		code = ""
	}
	v := amocrm.MultitextValue(code, enumCode, values...)
	if code == "" {
		v.FieldID = fm.FieldID
	}
	return v
}

// leadFields are the custom field values of a lead: the reception id
// always, the rest as mapped.
func leadFields(m setup.Mapping, f mirror.LeadFacts) []amocrm.FieldValues {
	var out []amocrm.FieldValues
	add := func(v amocrm.FieldValues, ok bool) {
		if ok {
			out = append(out, v)
		}
	}
	add(fieldValue(m.Lead[setup.DatumReceptionID], f.ReceptionID, "", nil))
	at := f.Start
	add(fieldValue(m.Lead[setup.DatumAppointmentAt], f.StartLocal.Format("02.01.2006 15:04"), "", &at))
	add(fieldValue(m.Lead[setup.DatumDoctor], f.DoctorName, "", nil))
	add(fieldValue(m.Lead[setup.DatumBranch], f.BranchName, "", nil))
	add(fieldValue(m.Lead[setup.DatumAppointmentStatus], f.StatusText, string(f.State), nil))
	return out
}

// priceOf is the lead's price in whole roubles (amoCRM keeps no kopecks),
// rounded half up; 0 when the amount is unknown.
func priceOf(kopecks *int64) int64 {
	if kopecks == nil || *kopecks <= 0 {
		return 0
	}
	return (*kopecks + 50) / 100
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
