package sandbox

import (
	"encoding/json"
	"slices"
	"strings"
)

type tagRef struct {
	ID    *int64  `json:"id"`
	Name  *string `json:"name"`
	Color *string `json:"color"`
}

// tagChange is the parsed tag part of an item.
type tagChange struct {
	replace    bool
	replaceSet []tagRef
	add, del   []tagRef
}

func parseTagChange(embedded json.RawMessage, add, del []tagRef) (tagChange, *fieldError) {
	tc := tagChange{add: add, del: del}
	if len(embedded) > 0 {
		tc.replace = true
		if string(embedded) != "null" {
			if err := json.Unmarshal(embedded, &tc.replaceSet); err != nil {
				return tc, &fieldError{Code: "InvalidType", Path: "_embedded.tags", Detail: "This value should be of type array."}
			}
		}
	}
	return tc, nil
}

// resolveTag finds a tag by id or name, creating a named one.
func (c *call) resolveTag(entity string, ref tagRef, create bool) *tag {
	for _, t := range c.acc.Tags[entity] {
		if (ref.ID != nil && t.ID == *ref.ID) || (ref.ID == nil && ref.Name != nil && strings.EqualFold(t.Name, *ref.Name)) {
			return t
		}
	}
	if !create || ref.Name == nil || *ref.Name == "" {
		return nil
	}
	t := &tag{ID: c.s.st.nextID(), Name: *ref.Name}
	if entity == "leads" && ref.Color != nil {
		t.Color = *ref.Color
	}
	c.acc.Tags[entity] = append(c.acc.Tags[entity], t)
	return t
}

func (c *call) applyTags(entity string, tags []int64, tc tagChange) []int64 {
	if tc.replace {
		tags = nil
		for _, ref := range tc.replaceSet {
			if t := c.resolveTag(entity, ref, true); t != nil && !slices.Contains(tags, t.ID) {
				tags = append(tags, t.ID)
			}
		}
	}
	for _, ref := range tc.add {
		if t := c.resolveTag(entity, ref, true); t != nil && !slices.Contains(tags, t.ID) {
			tags = append(tags, t.ID)
		}
	}
	for _, ref := range tc.del {
		if t := c.resolveTag(entity, ref, false); t != nil {
			tags = slices.DeleteFunc(tags, func(id int64) bool { return id == t.ID })
		}
	}
	return tags
}

func (c *call) renderTags(entity string, ids []int64) []map[string]any {
	out := []map[string]any{}
	for _, id := range ids {
		for _, t := range c.acc.Tags[entity] {
			if t.ID == id {
				out = append(out, map[string]any{"id": t.ID, "name": t.Name, "color": nilIfEmpty(t.Color)})
			}
		}
	}
	return out
}

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
