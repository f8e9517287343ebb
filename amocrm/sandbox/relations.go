package sandbox

import (
	"encoding/json"
	"slices"
	"strconv"
)

// Links between leads and contacts: /api/v4/{entity}[/{id}]/link, unlink, links.

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
