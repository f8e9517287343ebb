package sandbox

import (
	"encoding/json"
	"net/http"
)

// complexLeads serves POST /leads/complex: ≤50 leads, each with at most one
// contact and one company given by id or as a full model; bare-array reply.
func (c *call) complexLeads() {
	items, ok := c.readBatch(50, false)
	if !ok {
		return
	}
	type part struct {
		lead     leadPlan
		contact  *contactPlan
		linkID   int64
		company  *company
		rawLinks bool
	}
	parts := make([]part, len(items))
	var errs []itemErrors
	for i, raw := range items {
		var probe struct {
			Embedded *struct {
				Contacts  []json.RawMessage `json:"contacts"`
				Companies []json.RawMessage `json:"companies"`
			} `json:"_embedded"`
		}
		_ = json.Unmarshal(raw, &probe)
		// Contacts inside complex are models, not links: strip them before
		// planning the lead itself.
		var leadOnly map[string]json.RawMessage
		_ = json.Unmarshal(raw, &leadOnly)
		var embedded map[string]json.RawMessage
		if e, ok := leadOnly["_embedded"]; ok {
			_ = json.Unmarshal(e, &embedded)
			delete(embedded, "contacts")
			delete(embedded, "companies")
			leadOnly["_embedded"], _ = json.Marshal(embedded)
		}
		stripped, _ := json.Marshal(leadOnly)
		p, fe := c.planLead(stripped, i, false, 0)
		p.requestID = requestID(raw, i)
		parts[i].lead = p
		if probe.Embedded != nil {
			if len(probe.Embedded.Contacts) > 1 || len(probe.Embedded.Companies) > 1 {
				fe = append(fe, fieldError{Code: "LimitExceeded", Path: "_embedded", Detail: "A complex lead takes at most one contact and one company."})
			}
			if len(probe.Embedded.Contacts) == 1 {
				cp, cfe := c.planContact(probe.Embedded.Contacts[0], i, false, 0)
				for _, e := range cfe {
					e.Path = "_embedded.contacts.0." + e.Path
					fe = append(fe, e)
				}
				if cp.in.ID != nil {
					if c.acc.Contacts[*cp.in.ID] == nil {
						fe = append(fe, fieldError{Code: "NotSupportedChoice", Path: "_embedded.contacts.0.id", Detail: detailChoice})
					}
					parts[i].linkID = *cp.in.ID
				} else {
					parts[i].contact = &cp
				}
			}
			if len(probe.Embedded.Companies) == 1 {
				var co struct {
					ID   int64  `json:"id"`
					Name string `json:"name"`
				}
				_ = json.Unmarshal(probe.Embedded.Companies[0], &co)
				parts[i].company = &company{ID: co.ID, Name: co.Name}
			}
		}
		if fe != nil {
			errs = append(errs, itemErrors{RequestID: p.requestID, Errors: fe})
		}
	}
	if errs != nil {
		c.validation(errs)
		return
	}
	out := make([]map[string]any, 0, len(parts))
	for _, pt := range parts {
		l := leadKind.add(c, pt.lead)
		var contactID, companyOut any
		if pt.contact != nil {
			pt.linkID = contactKind.add(c, *pt.contact).ID
		}
		if pt.linkID != 0 {
			c.linkContact(l, pt.linkID, true)
			contactID = pt.linkID
		}
		if pt.company != nil {
			if c.acc.Companies[pt.company.ID] == nil {
				pt.company.ID = c.s.st.nextID()
				c.acc.Companies[pt.company.ID] = pt.company
			}
			l.Companies = []int64{pt.company.ID}
			companyOut = pt.company.ID
		}
		out = append(out, map[string]any{"id": l.ID, "contact_id": contactID, "company_id": companyOut, "request_id": []string{pt.lead.requestID}, "merged": false})
	}
	writeJSON(c.w, http.StatusOK, contentHAL, out)
}
