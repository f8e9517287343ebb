package engine

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/svyazka/svyazka/amocrm"
	"github.com/svyazka/svyazka/backend/eventlog"
	"github.com/svyazka/svyazka/backend/mirror"
	"github.com/svyazka/svyazka/backend/setup"
	"github.com/svyazka/svyazka/backend/store"
	"github.com/svyazka/svyazka/connector/protocol"
)

// RealtimeLookupMax is the most unlinked patients a batch may have to be
// looked up in amoCRM by phone, one search per phone; a batch with more is
// an import, matched against the account's contacts as one full read found
// them (once per start: amoCRM restricts integrations that iterate through
// all data repeatedly).
const RealtimeLookupMax = 5

// adopt links unlinked patients of chunk to contacts that existed before the
// sync, by mirror.Adopt: a contact is adopted only when its phones match
// exactly one patient of the database, it is linked to nobody and nobody
// else claims that patient. Adopted contacts get c.link.CRMID and c.adopted;
// their events and the candidates to drop go to mini.
func (r *dbRun) adopt(ctx context.Context, chunk []*desiredContact, mini *store.SyncCommit) error {
	var unlinked []*desiredContact
	var phones []string
	for _, c := range chunk {
		if c.link.CRMID != 0 || len(c.facts.Phones) == 0 {
			continue
		}
		unlinked = append(unlinked, c)
		for _, p := range c.facts.Phones {
			if !slices.Contains(phones, p) {
				phones = append(phones, p)
			}
		}
	}
	if len(unlinked) == 0 {
		return nil
	}
	st := r.e.cfg.Store
	cands := map[int64]*mirror.CandidateContact{}
	names := map[int64]string{}
	keyed := map[int64]bool{}
	add := func(id int64, name string, phone string, hasKey bool) {
		c := cands[id]
		if c == nil {
			c = &mirror.CandidateContact{ID: id}
			cands[id] = c
		}
		if phone != "" && !slices.Contains(c.Phones, phone) {
			c.Phones = append(c.Phones, phone)
		}
		if name != "" {
			names[id] = name
		}
		keyed[id] = keyed[id] || hasKey
	}
	if len(unlinked) <= RealtimeLookupMax {
		for _, p := range phones {
			page, err := r.crm.Contacts(ctx, amocrm.ListParams{Query: phoneQuery(p), Limit: BatchSize})
			if err != nil {
				return err
			}
			for _, ct := range page.Items {
				ph := r.contactPhones(ct)
				if len(ph) == 0 {
					add(ct.ID, ct.Name, "", r.hasPatientKey(ct))
				}
				for _, n := range ph {
					add(ct.ID, ct.Name, n, r.hasPatientKey(ct))
				}
			}
		}
	} else {
		if err := r.scanAccount(ctx); err != nil {
			return err
		}
		rows, err := st.ScannedContactsByPhone(ctx, r.acc.ID, phones)
		if err != nil {
			return err
		}
		for _, row := range rows {
			add(row.ContactID, "", row.Phone, false)
		}
	}
	if len(cands) == 0 {
		return nil
	}
	ids := slices.Sorted(maps.Keys(cands))
	linked, err := st.LinkedCRMIDs(ctx, r.acc.ID, store.CRMContact, ids)
	if err != nil {
		return err
	}
	// Every patient of the database sharing a phone with a candidate, so a
	// family phone is seen as shared.
	idx, err := r.phoneIndex(ctx)
	if err != nil {
		return err
	}
	var patientIDs []string
	for _, c := range cands {
		for _, p := range c.Phones {
			for _, id := range idx.patients[p] {
				if !slices.Contains(patientIDs, id) {
					patientIDs = append(patientIDs, id)
				}
			}
		}
	}
	for _, c := range unlinked {
		if !slices.Contains(patientIDs, c.facts.PatientID) {
			patientIDs = append(patientIDs, c.facts.PatientID)
		}
	}
	links, err := st.EntityLinks(ctx, r.db.ID, store.LinkPatient, patientIDs)
	if err != nil {
		return err
	}
	var pp []mirror.PatientPhones
	for _, id := range patientIDs {
		ph := idx.phones[id]
		for _, c := range unlinked {
			if c.facts.PatientID == id {
				ph = c.facts.Phones // the page's version is the newest
			}
		}
		pp = append(pp, mirror.PatientPhones{PatientID: id, Phones: ph, Linked: links[id].CRMID != 0})
	}
	var candidates []mirror.CandidateContact
	for _, id := range ids {
		c := *cands[id]
		c.Linked = linked[id] || keyed[id]
		candidates = append(candidates, c)
	}
	out := mirror.Adopt(candidates, pp)
	dbID := r.db.ID
	for _, a := range out.Adopted {
		for _, c := range unlinked {
			if c.facts.PatientID != a.PatientID {
				continue
			}
			c.link.CRMID, c.adopted = a.ContactID, true
			mini.AdoptedContacts = append(mini.AdoptedContacts, a.ContactID)
			contact := fmt.Sprintf("№%d", a.ContactID)
			if n := names[a.ContactID]; n != "" {
				contact = fmt.Sprintf("«%s» (№%d)", n, a.ContactID)
			}
			mini.Events = append(mini.Events, eventlog.Event{AccountID: r.acc.ID, DatabaseID: &dbID, Type: EventSync,
				Message: fmt.Sprintf("«%s»: Контакт %s связан с пациентом «%s» (ID %s) по телефону", r.db.Name, contact, c.facts.Name, c.facts.PatientID),
				Details: map[string]any{"contact_id": a.ContactID, "patient_id": a.PatientID, "kind": string(protocol.KindPatient), "source_id": a.PatientID}})
		}
	}
	return nil
}

// hasPatientKey reports whether the contact carries «ID пациента IDENT»: it
// is some patient's already (maybe of another database).
func (r *dbRun) hasPatientKey(ct amocrm.Contact) bool {
	return len(keysIn(ct.CustomFieldsValues, r.mv.Mapping.Contact[setup.DatumPatientID].FieldID)) > 0
}

// contactPhones are the contact's phones in E.164.
func (r *dbRun) contactPhones(ct amocrm.Contact) []string {
	pm := r.mv.Mapping.Contact[setup.DatumPhone]
	var out []string
	for _, fv := range ct.CustomFieldsValues {
		if fv.FieldCode != setup.CodePhone && (pm.FieldID == 0 || fv.FieldID != pm.FieldID) {
			continue
		}
		for _, v := range fv.Values {
			for _, n := range mirror.SplitPhones(fmt.Sprint(v.Value)) {
				if !slices.Contains(out, n) {
					out = append(out, n)
				}
			}
		}
	}
	return out
}

// scanAccount reads the account once per start, before the start's first
// create: every contact (the phones of those without a patient id, for
// adoption; the patient ids of those with one) and every lead of our
// pipelines (their reception ids). A create whose key the scan found links
// that entity instead: a database added again or restored from a backup
// never doubles what amoCRM has (amoCRM restricts integrations that iterate
// through all data repeatedly, hence once per start).
func (r *dbRun) scanAccount(ctx context.Context) error {
	r.acct.scanMu.Lock()
	defer r.acct.scanMu.Unlock()
	s := r.acct.settings
	if s.ContactsScannedAt != nil && (s.SyncStartedAt == nil || !s.ContactsScannedAt.Before(*s.SyncStartedAt)) {
		return nil
	}
	var scan store.AccountScan
	contactKey := r.mv.Mapping.Contact[setup.DatumPatientID].FieldID
	for pageNo := 1; ; pageNo++ {
		page, err := r.crm.Contacts(ctx, amocrm.ListParams{Page: pageNo, Limit: amocrm.DefaultPageLimit})
		if err != nil {
			return err
		}
		for _, ct := range page.Items {
			if keys := keysIn(ct.CustomFieldsValues, contactKey); len(keys) > 0 {
				for _, k := range keys {
					scan.Keys = append(scan.Keys, store.ScannedKey{CRMEntityType: store.CRMContact, Key: k, CRMID: ct.ID})
				}
				continue
			}
			for _, n := range r.contactPhones(ct) {
				scan.Phones = append(scan.Phones, store.ContactPhone{ContactID: ct.ID, Phone: n})
			}
		}
		if !page.HasNext {
			break
		}
	}
	leadKey := r.mv.Mapping.Lead[setup.DatumReceptionID].FieldID
	var pipelines []string
	for _, k := range []setup.PipelineKey{setup.PipelinePrimary, setup.PipelineRepeat} {
		pipelines = append(pipelines, itoa(r.mv.Mapping.Pipelines[k].PipelineID))
	}
	for pageNo := 1; ; pageNo++ {
		page, err := r.crm.Leads(ctx, amocrm.ListParams{Page: pageNo, Limit: amocrm.DefaultPageLimit, Extra: map[string][]string{"filter[pipeline_id][]": pipelines}})
		if err != nil {
			return err
		}
		for _, l := range page.Items {
			for _, k := range keysIn(l.CustomFieldsValues, leadKey) {
				scan.Keys = append(scan.Keys, store.ScannedKey{CRMEntityType: store.CRMLead, Key: k, CRMID: l.ID})
			}
		}
		if !page.HasNext {
			break
		}
	}
	now := r.e.cfg.Now().UTC()
	if err := r.e.cfg.Store.SaveAccountScan(ctx, r.acc.ID, scan, now); err != nil {
		return err
	}
	s.ContactsScannedAt = &now
	return nil
}

// keysIn returns the values of field fieldID (our key field) in fvs.
func keysIn(fvs []amocrm.FieldValues, fieldID int64) []string {
	var out []string
	for _, fv := range fvs {
		if fv.FieldID != fieldID {
			continue
		}
		for _, v := range fv.Values {
			if k := strings.TrimSpace(fmt.Sprint(v.Value)); k != "" {
				out = append(out, k)
			}
		}
	}
	return out
}

// phoneIndex is the database's patients by phone, read once per Process.
type phoneIndex struct {
	patients map[string][]string // E.164 → patient ids
	phones   map[string][]string // patient id → E.164
}

func (r *dbRun) phoneIndex(ctx context.Context) (*phoneIndex, error) {
	r.phonesMu.Lock()
	defer r.phonesMu.Unlock()
	if r.phones != nil {
		return r.phones, nil
	}
	recs, err := r.e.cfg.Store.SourceRecordsOfKind(ctx, r.db.ID, string(protocol.KindPatient))
	if err != nil {
		return nil, err
	}
	idx := &phoneIndex{patients: map[string][]string{}, phones: map[string][]string{}}
	for _, rec := range recs {
		var p protocol.IdentPatient
		if jsonUnmarshal(rec.Data, &p) != nil {
			continue
		}
		ph := mirror.Phones(p)
		idx.phones[rec.SourceID] = ph
		for _, n := range ph {
			idx.patients[n] = append(idx.patients[n], rec.SourceID)
		}
	}
	r.phones = idx
	return idx, nil
}

// phoneQuery is what amoCRM's search is asked for a phone: its last ten
// digits, so «8 (900) …» and «+7 900 …» are both found (the search matches
// digits within the field; E.164 has the country code, staff often write a
// trunk prefix instead). Adopt then compares the normalised numbers.
func phoneQuery(e164 string) string {
	digits := strings.TrimPrefix(e164, "+")
	if len(digits) > 10 {
		return digits[len(digits)-10:]
	}
	return digits
}
