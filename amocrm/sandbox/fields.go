package sandbox

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
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

type valueInput struct {
	FieldID   *json.Number    `json:"field_id"`
	FieldCode *string         `json:"field_code"`
	Values    json.RawMessage `json:"values"`
}

// parseFieldValues validates custom_fields_values against the entity's
// fields. Errors point at custom_fields_values.{i}.field_id, as amoCRM
// reports them. Entries with values null clear the field (clear lists them).
func (c *call) parseFieldValues(entity string, raw json.RawMessage) (set []fieldValue, clear []int64, errs []fieldError) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil, nil
	}
	var entries []json.RawMessage
	if json.Unmarshal(raw, &entries) != nil {
		return nil, nil, []fieldError{{Code: "InvalidType", Path: "custom_fields_values", Detail: "This value should be of type array."}}
	}
	for i, entryRaw := range entries {
		path := "custom_fields_values." + strconv.Itoa(i) + ".field_id"
		invalid := func(detail string) {
			errs = append(errs, fieldError{Code: "InvalidType", Path: path, Detail: detail})
		}
		choice := func() {
			errs = append(errs, fieldError{Code: "NotSupportedChoice", Path: path, Detail: detailChoice})
		}
		var in valueInput
		dec := json.NewDecoder(bytes.NewReader(entryRaw))
		dec.UseNumber()
		if dec.Decode(&in) != nil {
			invalid("This value should be of type object.")
			continue
		}
		var f *field
		switch {
		case in.FieldID != nil:
			id, err := in.FieldID.Int64()
			if err == nil {
				f = c.acc.field(entity, id)
			}
		case in.FieldCode != nil:
			f = c.acc.fieldByCode(entity, *in.FieldCode)
		}
		if f == nil {
			choice()
			continue
		}
		if len(in.Values) == 0 || string(in.Values) == "null" {
			clear = append(clear, f.ID)
			continue
		}
		var items []map[string]any
		dec = json.NewDecoder(bytes.NewReader(in.Values))
		dec.UseNumber()
		if dec.Decode(&items) != nil {
			invalid("This value should be of type array.")
			continue
		}
		fv := fieldValue{FieldID: f.ID}
		ok := true
		for _, item := range items {
			v, kind := normalizeValue(f, item)
			switch kind {
			case valueInvalid:
				invalid("This value should be of type " + expectedType(f.Type) + ".")
				ok = false
			case valueNoChoice:
				choice()
				ok = false
			}
			if !ok {
				break
			}
			fv.Values = append(fv.Values, v)
		}
		if ok {
			if len(fv.Values) == 0 {
				clear = append(clear, f.ID)
			} else {
				set = append(set, fv)
			}
		}
	}
	return set, clear, errs
}

type valueVerdict int

const (
	valueOK valueVerdict = iota
	valueInvalid
	valueNoChoice
)

func expectedType(t string) string {
	switch t {
	case "checkbox":
		return "bool"
	case "numeric":
		return "numeric"
	case "date", "date_time", "birthday":
		return "int"
	}
	return "string"
}

func normalizeValue(f *field, item map[string]any) (valueItem, valueVerdict) {
	raw, hasValue := item["value"]
	if isEnumType(f.Type) {
		var e *enumItem
		switch {
		case item["enum_id"] != nil:
			id, ok := jsonNumberToInt(item["enum_id"])
			if !ok {
				return valueItem{}, valueInvalid
			}
			e = findEnum(f, func(x enumItem) bool { return x.ID == id })
		case item["enum_code"] != nil:
			code, _ := item["enum_code"].(string)
			e = findEnum(f, func(x enumItem) bool { return x.Code != "" && strings.EqualFold(x.Code, code) })
		case item["enum"] != nil && f.Type == "multitext":
			code, _ := item["enum"].(string)
			e = findEnum(f, func(x enumItem) bool { return strings.EqualFold(x.Code, code) })
		case f.Type == "multitext":
			e = &f.Enums[0]
		case hasValue:
			s, ok := raw.(string)
			if !ok {
				return valueItem{}, valueInvalid
			}
			e = findEnum(f, func(x enumItem) bool { return x.Value == s })
		}
		if e == nil {
			return valueItem{}, valueNoChoice
		}
		if f.Type == "multitext" || f.Type == "smart_address" {
			s, ok := stringish(raw)
			if !ok || s == "" {
				return valueItem{}, valueInvalid
			}
			return valueItem{Value: s, EnumID: e.ID, EnumCode: e.Code}, valueOK
		}
		return valueItem{Value: e.Value, EnumID: e.ID, EnumCode: e.Code}, valueOK
	}
	if !hasValue {
		return valueItem{}, valueInvalid
	}
	switch f.Type {
	case "checkbox":
		b, ok := raw.(bool)
		if !ok {
			return valueItem{}, valueInvalid
		}
		return valueItem{Value: b}, valueOK
	case "numeric":
		s, ok := stringish(raw)
		if _, err := strconv.ParseFloat(s, 64); !ok || err != nil {
			return valueItem{}, valueInvalid
		}
		return valueItem{Value: s}, valueOK
	case "date", "date_time", "birthday":
		if n, ok := jsonNumberToInt(raw); ok {
			return valueItem{Value: n}, valueOK
		}
		if s, ok := raw.(string); ok {
			if t, err := time.Parse(time.RFC3339, s); err == nil {
				return valueItem{Value: t.Unix()}, valueOK
			}
		}
		return valueItem{}, valueInvalid
	case "url":
		s, ok := raw.(string)
		if !ok {
			return valueItem{}, valueInvalid
		}
		return valueItem{Value: s}, valueOK
	case "text", "textarea", "price", "streetaddress", "tracking_data", "monetary":
		s, ok := stringish(raw)
		if !ok {
			return valueItem{}, valueInvalid
		}
		return valueItem{Value: s}, valueOK
	}
	// Complex types (legal_entity, items, file, …) are kept as given.
	return valueItem{Value: raw}, valueOK
}

func stringish(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case json.Number:
		return x.String(), true
	}
	return "", false
}

func findEnum(f *field, match func(enumItem) bool) *enumItem {
	for i := range f.Enums {
		if match(f.Enums[i]) {
			return &f.Enums[i]
		}
	}
	return nil
}

// mergeFieldValues replaces the listed fields' values and drops cleared ones.
func mergeFieldValues(current []fieldValue, set []fieldValue, clear []int64) []fieldValue {
	out := slices.DeleteFunc(slices.Clone(current), func(fv fieldValue) bool {
		if slices.Contains(clear, fv.FieldID) {
			return true
		}
		return slices.ContainsFunc(set, func(n fieldValue) bool { return n.FieldID == fv.FieldID })
	})
	return append(out, set...)
}

func (c *call) renderFieldValues(entity string, values []fieldValue) any {
	if len(values) == 0 {
		return nil
	}
	out := make([]map[string]any, 0, len(values))
	for _, fv := range values {
		f := c.acc.field(entity, fv.FieldID)
		if f == nil {
			continue
		}
		items := make([]map[string]any, 0, len(fv.Values))
		for _, v := range fv.Values {
			m := map[string]any{"value": v.Value}
			if v.EnumID != 0 {
				m["enum_id"] = v.EnumID
				m["enum_code"] = nilIfEmpty(v.EnumCode)
			}
			items = append(items, m)
		}
		out = append(out, map[string]any{
			"field_id": f.ID, "field_name": f.Name, "field_code": nilIfEmpty(f.Code),
			"field_type": f.Type, "values": items,
		})
	}
	return out
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// fieldValueText is a value's text for search and integrity checks.
func fieldValueText(v valueItem) string {
	if v.Value == nil {
		return ""
	}
	return fmt.Sprint(v.Value)
}
