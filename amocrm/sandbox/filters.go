package sandbox

import (
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// matchesQuery searches names and every custom field value, as amoCRM's
// query does; phones match on digits.
func matchesQuery(q string, names []string, values []fieldValue) bool {
	q = strings.ToLower(strings.TrimSpace(q))
	if q == "" {
		return true
	}
	digits := onlyDigits(q)
	check := func(s string) bool {
		s = strings.ToLower(s)
		if strings.Contains(s, q) {
			return true
		}
		return len(digits) >= 5 && strings.Contains(onlyDigits(s), digits)
	}
	for _, n := range names {
		if check(n) {
			return true
		}
	}
	for _, fv := range values {
		for _, v := range fv.Values {
			if check(fieldValueText(v)) {
				return true
			}
		}
	}
	return false
}

func onlyDigits(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// keep applies the list filters contacts and leads share: id, name, users,
// creation and update time, custom field values.
func (c *call) keep(r *record) bool {
	q := c.r.URL.Query()
	if ids := queryInts(q, "filter[id]"); len(ids) > 0 && !slices.Contains(ids, r.ID) {
		return false
	}
	if names := q["filter[name]"]; len(names) > 0 && !slices.Contains(names, r.Name) {
		return false
	}
	for key, val := range map[string]int64{"filter[responsible_user_id]": r.ResponsibleUserID, "filter[created_by]": r.CreatedBy, "filter[updated_by]": r.UpdatedBy} {
		if ids := queryInts(q, key); len(ids) > 0 && !slices.Contains(ids, val) {
			return false
		}
	}
	for key, val := range map[string]int64{"filter[created_at]": r.CreatedAt, "filter[updated_at]": r.UpdatedAt} {
		if !inRange(q.Get(key+"[from]"), q.Get(key+"[to]"), val) {
			return false
		}
	}
	for key, vs := range q {
		rest, ok := strings.CutPrefix(key, "filter[custom_fields_values][")
		if !ok {
			continue
		}
		fieldID, _ := strconv.ParseInt(rest[:strings.IndexByte(rest+"]", ']')], 10, 64)
		found := false
		for _, fv := range r.Fields {
			if fv.FieldID != fieldID {
				continue
			}
			for _, v := range fv.Values {
				text := fieldValueText(v)
				if slices.Contains(vs, text) || slices.Contains(vs, strconv.FormatInt(v.EnumID, 10)) {
					found = true
				}
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func inRange(from, to string, v int64) bool {
	if f, err := strconv.ParseInt(from, 10, 64); err == nil && v < f {
		return false
	}
	if t, err := strconv.ParseInt(to, 10, 64); err == nil && v > t {
		return false
	}
	return true
}

// orderRecords sorts by order[id|created_at|updated_at]=asc|desc, id asc by default.
func orderRecords[E any](q url.Values, items []*E, recordOf func(*E) *record) {
	key, dir := "id", "asc"
	for _, k := range []string{"id", "created_at", "updated_at"} {
		if v := q.Get("order[" + k + "]"); v != "" {
			key, dir = k, strings.ToLower(v)
		}
	}
	val := func(r *record) int64 {
		switch key {
		case "created_at":
			return r.CreatedAt
		case "updated_at":
			return r.UpdatedAt
		}
		return r.ID
	}
	sort.SliceStable(items, func(i, j int) bool {
		ri, rj := recordOf(items[i]), recordOf(items[j])
		a, b := val(ri), val(rj)
		if a == b {
			a, b = ri.ID, rj.ID
		}
		if dir == "desc" {
			return a > b
		}
		return a < b
	})
}
