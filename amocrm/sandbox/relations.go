package sandbox

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"
)

// ---- links ----

type linkItem struct {
	EntityID     int64           `json:"entity_id"`
	ToEntityID   int64           `json:"to_entity_id"`
	ToEntityType string          `json:"to_entity_type"`
	Metadata     json.RawMessage `json:"metadata"`
}

func (c *call) entityExists(entity string, id int64) bool {
	switch entity {
	case "leads":
		return c.acc.Leads[id] != nil
	case "contacts":
		return c.acc.Contacts[id] != nil
	case "companies":
		return c.acc.Companies[id] != nil
	}
	return false
}

// linksOf lists an entity's links: leads link contacts (with main_contact)
// and companies; contacts link leads.
func (c *call) linksOf(entity string, id int64) []map[string]any {
	var out []map[string]any
	switch entity {
	case "leads":
		l := c.acc.Leads[id]
		if l == nil {
			return nil
		}
		for _, link := range l.Contacts {
			out = append(out, map[string]any{"entity_id": id, "entity_type": "leads", "to_entity_id": link.ID, "to_entity_type": "contacts", "metadata": map[string]any{"main_contact": link.IsMain}})
		}
		for _, co := range l.Companies {
			out = append(out, map[string]any{"entity_id": id, "entity_type": "leads", "to_entity_id": co, "to_entity_type": "companies", "metadata": nil})
		}
	case "contacts":
		for _, lid := range sortedIDs(c.acc.Leads) {
			l := c.acc.Leads[lid]
			for _, link := range l.Contacts {
				if link.ID == id {
					out = append(out, map[string]any{"entity_id": id, "entity_type": "contacts", "to_entity_id": lid, "to_entity_type": "leads", "metadata": map[string]any{"main_contact": link.IsMain}})
				}
			}
		}
	}
	return out
}

func (c *call) listLinks() {
	entity := c.params["entity"]
	q := c.r.URL.Query()
	ids := queryInts(q, "filter[entity_id]")
	if c.params["id"] != "" {
		ids = []int64{c.id("id")}
	}
	toID := queryInts(q, "filter[to_entity_id]")
	toType := q.Get("filter[to_entity_type]")
	out := []map[string]any{}
	for _, id := range ids {
		for _, link := range c.linksOf(entity, id) {
			if len(toID) > 0 && !slices.Contains(toID, link["to_entity_id"].(int64)) {
				continue
			}
			if toType != "" && toType != link["to_entity_type"] {
				continue
			}
			out = append(out, link)
		}
	}
	if len(out) == 0 {
		c.noContent()
		return
	}
	if c.params["id"] != "" {
		for _, link := range out {
			delete(link, "entity_id")
			delete(link, "entity_type")
		}
	}
	c.ok(map[string]any{"_total_items": len(out), "_links": c.selfLinks(), "_embedded": map[string]any{"links": out}})
}

// changeLinks serves POST …/link and …/unlink, per entity or in bulk.
func (c *call) changeLinks(unlink bool) {
	entity := c.params["entity"]
	items, ok := c.readBatch(maxPerPage, false)
	if !ok {
		return
	}
	links := make([]linkItem, len(items))
	var errs []itemErrors
	for i, raw := range items {
		var fe []fieldError
		if e := decodeItem(raw, &links[i]); e != nil {
			fe = []fieldError{*e}
		} else {
			if c.params["id"] != "" {
				links[i].EntityID = c.id("id")
			}
			l := links[i]
			if !c.entityExists(entity, l.EntityID) {
				fe = append(fe, fieldError{Code: "NotSupportedChoice", Path: "entity_id", Detail: detailChoice})
			}
			pairOK := (entity == "leads" && (l.ToEntityType == "contacts" || l.ToEntityType == "companies")) ||
				(entity == "contacts" && l.ToEntityType == "leads")
			if !pairOK || !c.entityExists(l.ToEntityType, l.ToEntityID) {
				fe = append(fe, fieldError{Code: "NotSupportedChoice", Path: "to_entity_id", Detail: detailChoice})
			}
		}
		if fe != nil {
			errs = append(errs, itemErrors{RequestID: requestID(raw, i), Errors: fe})
		}
	}
	if errs != nil {
		c.validation(errs)
		return
	}
	out := make([]map[string]any, 0, len(links))
	for _, link := range links {
		leadID, otherType, otherID := link.EntityID, link.ToEntityType, link.ToEntityID
		if entity == "contacts" {
			leadID, otherType, otherID = link.ToEntityID, "contacts", link.EntityID
		}
		l := c.acc.Leads[leadID]
		old := *l
		old.Contacts = slices.Clone(l.Contacts)
		var meta struct {
			IsMain bool `json:"is_main"`
		}
		_ = json.Unmarshal(link.Metadata, &meta)
		switch {
		case otherType == "contacts" && unlink:
			l.Contacts = slices.DeleteFunc(l.Contacts, func(x leadLink) bool { return x.ID == otherID })
			if len(l.Contacts) > 0 && !slices.ContainsFunc(l.Contacts, func(x leadLink) bool { return x.IsMain }) {
				l.Contacts[0].IsMain = true
			}
		case otherType == "contacts":
			c.linkContact(l, otherID, meta.IsMain)
		case unlink:
			l.Companies = slices.DeleteFunc(l.Companies, func(id int64) bool { return id == otherID })
		case !slices.Contains(l.Companies, otherID):
			l.Companies = append(l.Companies, otherID)
		}
		l.UpdatedAt = c.now()
		c.emit("leads", "update", c.leadForm(l, nil))
		var metadata any
		if len(link.Metadata) > 0 && string(link.Metadata) != "null" {
			metadata = link.Metadata
		}
		out = append(out, map[string]any{"entity_id": link.EntityID, "entity_type": entity, "to_entity_id": link.ToEntityID, "to_entity_type": link.ToEntityType, "metadata": metadata})
	}
	if unlink {
		c.noContent()
		return
	}
	c.ok(map[string]any{"_total_items": len(out), "_links": c.selfLinks(), "_embedded": map[string]any{"links": out}})
}

// ---- notes ----

var noteTypes = []string{
	"common", "call_in", "call_out", "service_message", "extended_service_message", "message_cashier",
	"invoice_paid", "geolocation", "sms_in", "sms_out", "attachment", "amomail_message",
}

type noteInput struct {
	ID                *int64          `json:"id"`
	EntityID          *int64          `json:"entity_id"`
	NoteType          *string         `json:"note_type"`
	Params            *map[string]any `json:"params"`
	CreatedBy         *int64          `json:"created_by"`
	ResponsibleUserID *int64          `json:"responsible_user_id"`
}

func (c *call) renderNote(n *note) map[string]any {
	params := n.Params
	if params == nil {
		params = map[string]any{}
	}
	return map[string]any{
		"id": n.ID, "entity_id": n.EntityID, "note_type": n.NoteType, "params": params,
		"created_by": n.CreatedBy, "updated_by": n.UpdatedBy, "created_at": n.CreatedAt, "updated_at": n.UpdatedAt,
		"responsible_user_id": n.ResponsibleUserID, "group_id": 0, "is_needs_to_trigger_digital_pipeline": false,
		"account_id": c.acc.ID,
		"_links":     map[string]any{"self": c.href("/api/v4/" + n.EntityType + "/" + strconv.FormatInt(n.EntityID, 10) + "/notes/" + strconv.FormatInt(n.ID, 10))},
	}
}

func (c *call) listNotes() {
	page, limit, ok := c.paging()
	if !ok {
		return
	}
	entity := c.params["entity"]
	q := c.r.URL.Query()
	entityIDs := queryInts(q, "filter[entity_id]")
	if c.params["entity_id"] != "" {
		entityIDs = []int64{c.id("entity_id")}
	}
	ids := queryInts(q, "filter[id]")
	types := append(q["filter[note_type][]"], q["filter[note_type]"]...)
	var list []*note
	for _, id := range sortedIDs(c.acc.Notes) {
		n := c.acc.Notes[id]
		if n.EntityType != entity ||
			(len(entityIDs) > 0 && !slices.Contains(entityIDs, n.EntityID)) ||
			(len(ids) > 0 && !slices.Contains(ids, n.ID)) ||
			(len(types) > 0 && !slices.Contains(types, n.NoteType)) ||
			!inRange(q.Get("filter[updated_at][from]"), q.Get("filter[updated_at][to]"), n.UpdatedAt) {
			continue
		}
		list = append(list, n)
	}
	if q.Get("order[id]") == "desc" || q.Get("order[updated_at]") == "desc" {
		slices.Reverse(list)
	}
	from, to, more := window(len(list), page, limit)
	if from == to {
		c.noContent()
		return
	}
	out := make([]map[string]any, 0, to-from)
	for _, n := range list[from:to] {
		out = append(out, c.renderNote(n))
	}
	c.ok(map[string]any{"_page": page, "_links": c.pageLinks(page, limit, more), "_embedded": map[string]any{"notes": out}})
}

func (c *call) getNote() {
	n := c.acc.Notes[c.id("id")]
	if n == nil || n.EntityType != c.params["entity"] || (c.params["entity_id"] != "" && n.EntityID != c.id("entity_id")) {
		c.noContent()
		return
	}
	c.ok(c.renderNote(n))
}

func (c *call) writeNotes(patch bool) {
	entity := c.params["entity"]
	single := patch && c.params["id"] != ""
	items, ok := c.readBatch(maxPerPage, single)
	if !ok {
		return
	}
	inputs := make([]noteInput, len(items))
	targets := make([]*note, len(items))
	var errs []itemErrors
	for i, raw := range items {
		var fe []fieldError
		in := &inputs[i]
		if e := decodeItem(raw, in); e != nil {
			fe = []fieldError{*e}
		} else {
			if c.params["entity_id"] != "" {
				id := c.id("entity_id")
				in.EntityID = &id
			}
			if patch {
				id := c.id("id")
				if !single && in.ID != nil {
					id = *in.ID
				}
				targets[i] = c.acc.Notes[id]
				if targets[i] == nil || targets[i].EntityType != entity {
					fe = append(fe, fieldError{Code: "NotFound", Path: "id", Detail: "Entity not found."})
				}
			} else {
				if in.EntityID == nil || !c.entityExists(entity, *in.EntityID) {
					fe = append(fe, fieldError{Code: "NotSupportedChoice", Path: "entity_id", Detail: detailChoice})
				}
				if in.NoteType == nil {
					fe = append(fe, fieldError{Code: "NotBlank", Path: "note_type", Detail: "This value should not be blank."})
				}
			}
			if in.NoteType != nil && !slices.Contains(noteTypes, *in.NoteType) {
				fe = append(fe, fieldError{Code: "NotSupportedChoice", Path: "note_type", Detail: detailChoice})
			}
		}
		if fe != nil {
			errs = append(errs, itemErrors{RequestID: requestID(raw, i), Errors: fe})
		}
	}
	if errs != nil {
		c.validation(errs)
		return
	}
	now := c.now()
	out := make([]map[string]any, 0, len(inputs))
	for i, in := range inputs {
		n := targets[i]
		if n == nil {
			n = &note{ID: c.s.st.nextID(), EntityType: entity, EntityID: *in.EntityID, CreatedBy: c.user.ID, ResponsibleUserID: c.user.ID, CreatedAt: now}
			c.acc.Notes[n.ID] = n
		}
		if in.NoteType != nil {
			n.NoteType = *in.NoteType
		}
		if in.Params != nil {
			n.Params = *in.Params
		}
		if in.CreatedBy != nil && !patch {
			n.CreatedBy = *in.CreatedBy
		}
		if in.ResponsibleUserID != nil {
			n.ResponsibleUserID = *in.ResponsibleUserID
		}
		n.UpdatedBy, n.UpdatedAt = c.user.ID, now
		if !patch {
			c.emit(entity, "note", c.noteForm(n))
		}
		out = append(out, map[string]any{"id": n.ID, "entity_id": n.EntityID, "request_id": requestID(items[i], i), "_links": c.renderNote(n)["_links"]})
	}
	if single {
		delete(out[0], "request_id")
		c.ok(out[0])
		return
	}
	c.ok(map[string]any{"_links": c.selfLinks(), "_embedded": map[string]any{"notes": out}})
}

// ---- tags ----

func (c *call) listTags() {
	page, limit, ok := c.paging()
	if !ok {
		return
	}
	entity := c.params["entity"]
	q := c.r.URL.Query()
	ids := queryInts(q, "filter[id]")
	name := q.Get("filter[name]")
	query := strings.ToLower(q.Get("query"))
	var list []*tag
	for _, t := range c.acc.Tags[entity] {
		if (len(ids) > 0 && !slices.Contains(ids, t.ID)) || (name != "" && t.Name != name) ||
			(query != "" && !strings.Contains(strings.ToLower(t.Name), query)) {
			continue
		}
		list = append(list, t)
	}
	from, to, more := window(len(list), page, limit)
	if from == to {
		c.noContent()
		return
	}
	out := make([]map[string]any, 0, to-from)
	for _, t := range list[from:to] {
		out = append(out, map[string]any{"id": t.ID, "name": t.Name, "color": nilIfEmpty(t.Color)})
	}
	c.ok(map[string]any{"_page": page, "_links": c.pageLinks(page, limit, more), "_embedded": map[string]any{"tags": out}})
}

func (c *call) createTags() {
	entity := c.params["entity"]
	items, ok := c.readBatch(maxPerPage, false)
	if !ok {
		return
	}
	refs := make([]tagRef, len(items))
	var errs []itemErrors
	for i, raw := range items {
		var fe []fieldError
		if e := decodeItem(raw, &refs[i]); e != nil {
			fe = []fieldError{*e}
		} else if refs[i].Name == nil || *refs[i].Name == "" {
			fe = []fieldError{{Code: "NotBlank", Path: "name", Detail: "This value should not be blank."}}
		} else if refs[i].Color != nil && entity != "leads" {
			fe = []fieldError{{Code: "NotSupportedChoice", Path: "color", Detail: "Only lead tags have a colour."}}
		}
		if fe != nil {
			errs = append(errs, itemErrors{RequestID: requestID(raw, i), Errors: fe})
		}
	}
	if errs != nil {
		c.validation(errs)
		return
	}
	out := make([]map[string]any, 0, len(refs))
	for i, ref := range refs {
		ref.ID = nil
		t := c.resolveTag(entity, ref, true)
		out = append(out, map[string]any{"id": t.ID, "name": t.Name, "color": nilIfEmpty(t.Color), "request_id": requestID(items[i], i)})
	}
	c.ok(map[string]any{"_links": c.selfLinks(), "_embedded": map[string]any{"tags": out}})
}

// deleteEntity removes a lead or contact as a user would in the interface;
// the v4 API has no delete for them.
func (s *Sandbox) deleteEntity(accountID int64, entity string, id int64) error {
	s.mu.Lock()
	acc := s.st.Accounts[accountID]
	if acc == nil {
		s.mu.Unlock()
		return ErrAccountNotFound
	}
	c := &call{s: s, acc: acc, user: acc.admin()}
	switch entity {
	case "leads":
		l := acc.Leads[id]
		if l == nil {
			s.mu.Unlock()
			return ErrInvalid
		}
		delete(acc.Leads, id)
		c.emit("leads", "delete", map[string]string{"id": strconv.FormatInt(id, 10), "status_id": strconv.FormatInt(l.StatusID, 10), "pipeline_id": strconv.FormatInt(l.PipelineID, 10)})
	case "contacts":
		if acc.Contacts[id] == nil {
			s.mu.Unlock()
			return ErrInvalid
		}
		delete(acc.Contacts, id)
		for _, l := range acc.Leads {
			l.Contacts = slices.DeleteFunc(l.Contacts, func(x leadLink) bool { return x.ID == id })
		}
		c.emit("contacts", "delete", map[string]string{"id": strconv.FormatInt(id, 10), "type": "contact"})
	}
	s.mu.Unlock()
	s.hooks.enqueue(c.events)
	return nil
}

// DeleteLead deletes a lead as a user would in the interface and fires the
// delete_lead webhook. It returns ErrAccountNotFound or ErrInvalid for an
// unknown lead.
func (s *Sandbox) DeleteLead(accountID, leadID int64) error {
	return s.deleteEntity(accountID, "leads", leadID)
}

// DeleteContact deletes a contact (unlinking it from leads) and fires the
// delete_contact webhook. It returns ErrAccountNotFound or ErrInvalid.
func (s *Sandbox) DeleteContact(accountID, contactID int64) error {
	return s.deleteEntity(accountID, "contacts", contactID)
}
