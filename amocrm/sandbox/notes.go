package sandbox

import (
	"slices"
	"strconv"
)

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
