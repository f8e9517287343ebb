package sandbox

import (
	"net/http"
	"slices"
	"sort"
	"strconv"
)

var fieldTypes = []string{
	"text", "numeric", "checkbox", "select", "multiselect", "date", "url", "textarea",
	"radiobutton", "streetaddress", "smart_address", "birthday", "legal_entity", "date_time",
	"price", "category", "items", "tracking_data", "linked_entity", "chained_list",
	"monetary", "file", "payer", "supplier",
}

func isEnumType(t string) bool {
	return t == "select" || t == "multiselect" || t == "radiobutton" || t == "category" || t == "multitext" || t == "smart_address"
}

func (s *Sandbox) predefinedContactFields() []*field {
	mk := func(name, code string, sort int, typ string, enums ...string) *field {
		f := &field{ID: s.st.nextID(), Name: name, Code: code, Sort: sort, Type: typ, EntityType: "contacts", IsPredefined: true}
		for i, e := range enums {
			f.Enums = append(f.Enums, enumItem{ID: s.st.nextID(), Value: e, Sort: 2 * (i + 1), Code: e})
		}
		return f
	}
	return []*field{
		mk("Должность", "POSITION", 2, "text"),
		mk("Телефон", "PHONE", 4, "multitext", "WORK", "WORKDD", "MOB", "FAX", "HOME", "OTHER"),
		mk("Email", "EMAIL", 6, "multitext", "WORK", "PRIV", "OTHER"),
	}
}

func (c *call) renderField(f *field) map[string]any {
	var enums any
	if f.Enums != nil {
		list := make([]map[string]any, 0, len(f.Enums))
		for _, e := range f.Enums {
			var code any
			if e.Code != "" {
				code = e.Code
			}
			list = append(list, map[string]any{"id": e.ID, "value": e.Value, "sort": e.Sort, "code": code})
		}
		enums = list
	}
	var code any
	if f.Code != "" {
		code = f.Code
	}
	return map[string]any{
		"id": f.ID, "name": f.Name, "code": code, "sort": f.Sort, "type": f.Type,
		"entity_type": f.EntityType, "is_predefined": f.IsPredefined, "is_deletable": !f.IsPredefined,
		"is_api_only": f.IsAPIOnly, "group_id": nil, "required_statuses": []any{}, "enums": enums,
		"remind": nil, "currency": nil, "account_id": c.acc.ID,
		"_links": map[string]any{"self": c.href("/api/v4/" + f.EntityType + "/custom_fields/" + strconv.FormatInt(f.ID, 10))},
	}
}

func (c *call) listFields() {
	entity := c.params["entity"]
	page, limit, ok := c.paging()
	if !ok {
		return
	}
	types := c.r.URL.Query()["filter[type][]"]
	var list []*field
	for _, f := range c.acc.Fields[entity] {
		if len(types) == 0 || slices.Contains(types, f.Type) {
			list = append(list, f)
		}
	}
	q := c.r.URL.Query()
	if q.Get("order[id]") != "" {
		sort.SliceStable(list, func(i, j int) bool { return (list[i].ID < list[j].ID) == (q.Get("order[id]") != "desc") })
	} else {
		sort.SliceStable(list, func(i, j int) bool { return (list[i].Sort < list[j].Sort) == (q.Get("order[sort]") != "desc") })
	}
	from, to, more := window(len(list), page, limit)
	if from == to {
		c.noContent()
		return
	}
	out := make([]map[string]any, 0, to-from)
	for _, f := range list[from:to] {
		out = append(out, c.renderField(f))
	}
	c.ok(map[string]any{
		"_total_items": len(list), "_page": page, "_page_count": (len(list) + limit - 1) / limit,
		"_links": c.pageLinks(page, limit, more), "_embedded": map[string]any{"custom_fields": out},
	})
}

func (c *call) getField() {
	f := c.acc.field(c.params["entity"], c.id("id"))
	if f == nil {
		c.noContent()
		return
	}
	c.ok(c.renderField(f))
}

type enumInput struct {
	ID    *int64  `json:"id"`
	Value *string `json:"value"`
	Sort  *int    `json:"sort"`
	Code  *string `json:"code"`
}

type fieldInput struct {
	ID        *int64       `json:"id"`
	Name      *string      `json:"name"`
	Type      *string      `json:"type"`
	Code      *string      `json:"code"`
	Sort      *int         `json:"sort"`
	IsAPIOnly *bool        `json:"is_api_only"`
	Enums     *[]enumInput `json:"enums"`
}

func (c *call) validateField(in fieldInput, existing *field) []fieldError {
	var errs []fieldError
	typ := ""
	if existing != nil {
		typ = existing.Type
	}
	if existing == nil {
		if in.Name == nil || *in.Name == "" {
			errs = append(errs, blank("name"))
		}
		if in.Type == nil {
			errs = append(errs, blank("type"))
		} else if !slices.Contains(fieldTypes, *in.Type) {
			errs = append(errs, fieldError{Code: "NotSupportedChoice", Path: "type", Detail: detailChoice})
		} else {
			typ = *in.Type
		}
		if in.Code != nil && *in.Code != "" && c.acc.fieldByCode(c.params["entity"], *in.Code) != nil {
			errs = append(errs, fieldError{Code: "NotUnique", Path: "code", Detail: "This code is already used."})
		}
	}
	if in.Enums != nil {
		if !isEnumType(typ) {
			errs = append(errs, fieldError{Code: "InvalidType", Path: "enums", Detail: "This field type has no enums."})
		}
		for i, e := range *in.Enums {
			if e.ID == nil && (e.Value == nil || *e.Value == "") {
				errs = append(errs, blank("enums."+strconv.Itoa(i)+".value"))
			}
		}
	} else if existing == nil && typ != "" && (typ == "select" || typ == "multiselect" || typ == "radiobutton") {
		errs = append(errs, blank("enums"))
	}
	return errs
}

func (c *call) applyField(f *field, in fieldInput) {
	if in.Name != nil {
		f.Name = *in.Name
	}
	if in.Code != nil && !f.IsPredefined {
		f.Code = *in.Code
	}
	if in.Sort != nil {
		f.Sort = *in.Sort
	}
	if in.IsAPIOnly != nil {
		f.IsAPIOnly = *in.IsAPIOnly
	}
	if in.Enums != nil {
		var enums []enumItem
		for i, e := range *in.Enums {
			item := enumItem{Sort: (i + 1) * 10}
			if e.ID != nil {
				for _, old := range f.Enums {
					if old.ID == *e.ID {
						item = old
					}
				}
			}
			if item.ID == 0 {
				item.ID = c.s.st.nextID()
			}
			if e.Value != nil {
				item.Value = *e.Value
			}
			if e.Sort != nil {
				item.Sort = *e.Sort
			}
			if e.Code != nil {
				item.Code = *e.Code
			}
			enums = append(enums, item)
		}
		f.Enums = enums
	}
}

// createFields serves POST /{entity}/custom_fields: admin, batch, 201.
func (c *call) createFields() {
	if !c.requireAdmin() {
		return
	}
	items, ok := c.readBatch(maxPerPage, false)
	if !ok {
		return
	}
	inputs := make([]fieldInput, len(items))
	var errs []itemErrors
	for i, raw := range items {
		var fe []fieldError
		if e := decodeItem(raw, &inputs[i]); e != nil {
			fe = []fieldError{*e}
		} else {
			fe = c.validateField(inputs[i], nil)
		}
		if fe != nil {
			errs = append(errs, itemErrors{RequestID: requestID(raw, i), Errors: fe})
		}
	}
	if errs != nil {
		c.validation(errs)
		return
	}
	entity := c.params["entity"]
	out := make([]map[string]any, 0, len(inputs))
	for i, in := range inputs {
		f := &field{ID: c.s.st.nextID(), Type: *in.Type, EntityType: entity, Sort: 500}
		c.applyField(f, in)
		c.acc.Fields[entity] = append(c.acc.Fields[entity], f)
		m := c.renderField(f)
		m["request_id"] = requestID(items[i], i)
		out = append(out, m)
	}
	c.created(map[string]any{"_total_items": len(out), "_embedded": map[string]any{"custom_fields": out}})
}

// patchFields serves PATCH /{entity}/custom_fields (array) and /{id} (object).
func (c *call) patchFields() {
	if !c.requireAdmin() {
		return
	}
	single := c.params["id"] != ""
	items, ok := c.readBatch(maxPerPage, single)
	if !ok {
		return
	}
	entity := c.params["entity"]
	inputs := make([]fieldInput, len(items))
	targets := make([]*field, len(items))
	var errs []itemErrors
	for i, raw := range items {
		var fe []fieldError
		if e := decodeItem(raw, &inputs[i]); e != nil {
			fe = []fieldError{*e}
		} else {
			id := c.id("id")
			if !single && inputs[i].ID != nil {
				id = *inputs[i].ID
			}
			targets[i] = c.acc.field(entity, id)
			if targets[i] == nil {
				fe = []fieldError{{Code: "NotFound", Path: "id", Detail: "Custom field not found."}}
			} else {
				fe = c.validateField(inputs[i], targets[i])
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
	out := make([]map[string]any, 0, len(inputs))
	for i, in := range inputs {
		c.applyField(targets[i], in)
		out = append(out, c.renderField(targets[i]))
	}
	if single {
		c.ok(out[0])
		return
	}
	c.ok(map[string]any{"_total_items": len(out), "_embedded": map[string]any{"custom_fields": out}})
}

func (c *call) deleteField() {
	if !c.requireAdmin() {
		return
	}
	entity := c.params["entity"]
	f := c.acc.field(entity, c.id("id"))
	if f == nil {
		c.fail(http.StatusNotFound, "Custom field not found")
		return
	}
	if f.IsPredefined {
		c.fail(http.StatusForbidden, "Predefined fields can not be deleted")
		return
	}
	c.acc.Fields[entity] = slices.DeleteFunc(c.acc.Fields[entity], func(g *field) bool { return g == f })
	c.noContent()
}
