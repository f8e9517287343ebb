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

// listFilter is a list request's filters, parsed once per request: id,
// name, users, creation and update time, custom field values (contacts and
// leads share them).
type listFilter struct {
	ids    []int64 // nil: any
	names  []string
	users  map[string][]int64
	ranges map[string][2]string
	// fields: custom field id → the values asked for.
	fields map[int64][]string
}

// filter parses the request's list filters.
func (c *call) filter() listFilter {
	q := c.query()
	f := listFilter{ids: queryInts(q, "filter[id]"), names: q["filter[name]"], users: map[string][]int64{}, ranges: map[string][2]string{}, fields: map[int64][]string{}}
	for _, key := range []string{"filter[responsible_user_id]", "filter[created_by]", "filter[updated_by]"} {
		if ids := queryInts(q, key); len(ids) > 0 {
			f.users[key] = ids
		}
	}
	for _, key := range []string{"filter[created_at]", "filter[updated_at]"} {
		f.ranges[key] = [2]string{q.Get(key + "[from]"), q.Get(key + "[to]")}
	}
	for key, vs := range q {
		rest, ok := strings.CutPrefix(key, "filter[custom_fields_values][")
		if !ok {
			continue
		}
		fieldID, _ := strconv.ParseInt(rest[:strings.IndexByte(rest+"]", ']')], 10, 64)
		f.fields[fieldID] = append(f.fields[fieldID], vs...)
	}
	return f
}

// keep reports whether r passes every filter.
func (f listFilter) keep(r *record) bool {
	if len(f.ids) > 0 && !slices.Contains(f.ids, r.ID) {
		return false
	}
	if len(f.names) > 0 && !slices.Contains(f.names, r.Name) {
		return false
	}
	for key, val := range map[string]int64{"filter[responsible_user_id]": r.ResponsibleUserID, "filter[created_by]": r.CreatedBy, "filter[updated_by]": r.UpdatedBy} {
		if ids := f.users[key]; len(ids) > 0 && !slices.Contains(ids, val) {
			return false
		}
	}
	for key, val := range map[string]int64{"filter[created_at]": r.CreatedAt, "filter[updated_at]": r.UpdatedAt} {
		if rg := f.ranges[key]; !inRange(rg[0], rg[1], val) {
			return false
		}
	}
	for fieldID, vs := range f.fields {
		found := false
		for _, fv := range r.Fields {
			if fv.FieldID != fieldID {
				continue
			}
			for _, v := range fv.Values {
				if slices.Contains(vs, fieldValueText(v)) || slices.Contains(vs, strconv.FormatInt(v.EnumID, 10)) {
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
