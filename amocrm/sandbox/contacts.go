package sandbox

import (
	"encoding/json"
	"slices"
	"strings"
)

// contactKind serves /api/v4/contacts on the shared path.
var contactKind = &kind[contact, contactPlan]{
	created: map[string]any{"is_deleted": false, "is_unsorted": false},
	entity:  "contacts",
	records: func(a *account) map[int64]*contact { return a.Contacts },
	record:  func(ct *contact) *record { return &ct.record },
	plan:    (*call).planContact,
	apply:   (*call).applyContact,
	form:    (*call).contactForm,
	changed: (*call).contactChanged,
	render:  (*call).renderContact,
	matches: func(_ *call, ct *contact, query string) bool {
		return matchesQuery(query, []string{ct.Name, ct.FirstName, ct.LastName}, ct.Fields)
	},
}

type contactInput struct {
	recordInput
	FirstName *string `json:"first_name"`
	LastName  *string `json:"last_name"`
	Embedded  *struct {
		Tags json.RawMessage `json:"tags"`
	} `json:"_embedded"`
}

type contactPlan struct {
	planBase[contact]
	in contactInput
}

func (c *call) planContact(raw json.RawMessage, index int, patch bool, fixedID int64) (contactPlan, []fieldError) {
	var p contactPlan
	var errs []fieldError
	p.planBase, errs = planItem(c, "contacts", c.acc.Contacts, raw, index, patch, fixedID, &p.in, &p.in.recordInput,
		func(*contact) ([]fieldError, json.RawMessage) {
			if p.in.Embedded == nil {
				return nil, nil
			}
			return nil, p.in.Embedded.Tags
		})
	return p, errs
}

// applyContact writes the names; a first or last name alone recomposes the full name.
func (c *call) applyContact(ct *contact, p contactPlan) {
	in := p.in
	assign(&ct.FirstName, in.FirstName)
	assign(&ct.LastName, in.LastName)
	if in.Name != nil {
		ct.Name = *in.Name
	} else if in.FirstName != nil || in.LastName != nil {
		ct.Name = strings.TrimSpace(ct.FirstName + " " + ct.LastName)
	}
}

// contactChanged emits update, and responsible when the owner changed.
func (c *call) contactChanged(old, ct *contact) {
	c.emit("contacts", "update", c.contactForm(ct))
	if old.ResponsibleUserID != ct.ResponsibleUserID {
		c.emit("contacts", "responsible", c.contactForm(ct))
	}
}

func (c *call) renderContact(ct *contact, with map[string]bool) map[string]any {
	embedded := map[string]any{"tags": c.renderTags("contacts", ct.Tags), "companies": []any{}}
	if with["leads"] {
		leads := []map[string]any{}
		for _, id := range sortedIDs(c.acc.Leads) {
			l := c.acc.Leads[id]
			if slices.ContainsFunc(l.Contacts, func(x leadLink) bool { return x.ID == ct.ID }) {
				leads = append(leads, map[string]any{"id": l.ID, "_links": c.entityLinks("leads", l.ID)})
			}
		}
		embedded["leads"] = leads
	}
	if with["customers"] {
		embedded["customers"] = []any{}
	}
	if with["catalog_elements"] {
		embedded["catalog_elements"] = []any{}
	}
	return map[string]any{
		"id": ct.ID, "name": ct.Name, "first_name": ct.FirstName, "last_name": ct.LastName,
		"responsible_user_id": ct.ResponsibleUserID, "group_id": 0,
		"created_by": ct.CreatedBy, "updated_by": ct.UpdatedBy,
		"created_at": ct.CreatedAt, "updated_at": ct.UpdatedAt,
		"closest_task_at": nil, "is_deleted": false, "is_unsorted": false,
		"custom_fields_values": c.renderFieldValues("contacts", ct.Fields),
		"account_id":           c.acc.ID,
		"_links":               c.entityLinks("contacts", ct.ID),
		"_embedded":            embedded,
	}
}
