package sandbox

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

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
