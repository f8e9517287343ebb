package sandbox

import (
	"encoding/json"
	"maps"
	"net/http"
	"strconv"
)

// Contacts and leads share one path for create, patch, get and list; a
// kind says what differs: the entity's own fields, its webhook events, its
// rendering and its filters.

// recordInput is the part of a contact or lead item both kinds read.
type recordInput struct {
	ID                 *int64          `json:"id"`
	Name               *string         `json:"name"`
	ResponsibleUserID  *int64          `json:"responsible_user_id"`
	CreatedBy          *int64          `json:"created_by"`
	UpdatedBy          *int64          `json:"updated_by"`
	CreatedAt          *int64          `json:"created_at"`
	UpdatedAt          *int64          `json:"updated_at"`
	CustomFieldsValues json.RawMessage `json:"custom_fields_values"`
	TagsToAdd          []tagRef        `json:"tags_to_add"`
	TagsToDelete       []tagRef        `json:"tags_to_delete"`
	RequestID          any             `json:"request_id"`
}

// planBase is what a contact or lead plan shares.
type planBase[E any] struct {
	requestID string
	in        *recordInput // the item's shared fields, inside the kind's input
	target    *E           // the patched entity; nil for a create
	set       []fieldValue
	clear     []int64
	tags      tagChange
}

func (b planBase[E]) base() planBase[E] { return b }

// planned is a kind's plan of one item.
type planned[E any] interface {
	base() planBase[E]
}

// kind describes contacts or leads to the shared path; P is its plan of one item.
type kind[E any, P planned[E]] struct {
	entity  string // path segment, _embedded key, tag and field dictionary
	records func(*account) map[int64]*E
	record  func(*E) *record
	plan    func(c *call, raw json.RawMessage, index int, patch bool, fixedID int64) (P, []fieldError)
	// apply writes the kind's own fields of p to e; write adds the shared ones.
	apply func(c *call, e *E, p P)
	// defaultName names a new entity created without a name; nil keeps it empty.
	defaultName func(id int64) string
	// created holds the kind's extra keys of an item in a create answer.
	created map[string]any
	form    func(c *call, e *E) map[string]string
	// changed emits a patch's webhook events, given e as it was before.
	changed func(c *call, before, e *E)
	render  func(c *call, e *E, with map[string]bool) map[string]any
	// matches applies the kind's own list filters and the query search.
	matches func(c *call, e *E, query string) bool
}

// planItem decodes raw into in, whose shared fields are r, and plans what
// contacts and leads share: for a patch the target in records (by fixedID,
// else the item's id), then the custom fields, the responsible user, the
// kind's own checks (own, given the target; it also returns the item's
// _embedded.tags) and the tags, collecting errors in that order.
func planItem[E any](c *call, entity string, records map[int64]*E, raw json.RawMessage, index int, patch bool, fixedID int64,
	in any, r *recordInput, own func(target *E) ([]fieldError, json.RawMessage)) (planBase[E], []fieldError) {
	b := planBase[E]{requestID: requestID(raw, index), in: r}
	if fe := decodeItem(raw, in); fe != nil {
		return b, []fieldError{*fe}
	}
	if patch {
		id := fixedID
		if id == 0 && r.ID != nil {
			id = *r.ID
		}
		b.target = records[id]
		if b.target == nil {
			return b, []fieldError{{Code: "NotFound", Path: "id", Detail: "Entity not found."}}
		}
	}
	var errs []fieldError
	var cfErrs []fieldError
	b.set, b.clear, cfErrs = c.parseFieldValues(entity, r.CustomFieldsValues)
	errs = append(errs, cfErrs...)
	errs = append(errs, c.checkUser("responsible_user_id", r.ResponsibleUserID)...)
	ownErrs, embeddedTags := own(b.target)
	errs = append(errs, ownErrs...)
	tc, fe := parseTagChange(embeddedTags, r.TagsToAdd, r.TagsToDelete)
	if fe != nil {
		errs = append(errs, *fe)
	}
	b.tags = tc
	return b, errs
}

// assign copies *v to dst when the item carries the field (v non-nil).
func assign[T any](dst *T, v *T) {
	if v != nil {
		*dst = *v
	}
}

func (c *call) checkUser(path string, id *int64) []fieldError {
	if id != nil && *id != 0 && c.acc.user(*id) == nil {
		return []fieldError{{Code: "NotSupportedChoice", Path: path, Detail: detailChoice}}
	}
	return nil
}

// planBatch reads a create (patch=false) or patch batch and plans every item
// with plan. When any item is invalid it answers 400 with every item's errors
// and returns false, so nothing of the batch is applied.
func planBatch[E any, P planned[E]](c *call, single bool, plan func(c *call, raw json.RawMessage, index int, patch bool, fixedID int64) (P, []fieldError)) ([]P, bool) {
	patch := c.r.Method == http.MethodPatch
	items, ok := c.readBatch(maxPerPage, single)
	if !ok {
		return nil, false
	}
	plans := make([]P, len(items))
	var errs []itemErrors
	for i, raw := range items {
		var fe []fieldError
		var fixed int64
		if patch {
			fixed = c.id("id")
		}
		plans[i], fe = plan(c, raw, i, patch, fixed)
		if fe != nil {
			errs = append(errs, itemErrors{RequestID: plans[i].base().requestID, Errors: fe})
		}
	}
	if errs != nil {
		c.validation(errs)
		return nil, false
	}
	return plans, true
}

// write applies p to e: the kind's own fields, then the shared ones.
func (k *kind[E, P]) write(c *call, e *E, p P) {
	k.apply(c, e, p)
	b := p.base()
	r, in := k.record(e), b.in
	assign(&r.ResponsibleUserID, in.ResponsibleUserID)
	r.UpdatedBy, r.UpdatedAt = c.user.ID, c.now()
	assign(&r.UpdatedBy, in.UpdatedBy)
	assign(&r.UpdatedAt, in.UpdatedAt)
	r.Fields = mergeFieldValues(r.Fields, b.set, b.clear)
	r.Tags = c.applyTags(k.entity, r.Tags, b.tags)
}

// add creates the entity p plans, owned and created by the calling user
// unless the item says otherwise, and emits its "add" event.
func (k *kind[E, P]) add(c *call, p P) *E {
	e := new(E)
	r := k.record(e)
	*r = record{ID: c.s.st.nextID(), ResponsibleUserID: c.user.ID, CreatedBy: c.user.ID, CreatedAt: c.now()}
	assign(&r.CreatedBy, p.base().in.CreatedBy)
	assign(&r.CreatedAt, p.base().in.CreatedAt)
	k.write(c, e, p)
	if r.Name == "" && k.defaultName != nil {
		r.Name = k.defaultName(r.ID)
	}
	k.records(c.acc)[r.ID] = e
	c.emit(k.entity, "add", k.form(c, e))
	return e
}

// create serves POST /api/v4/{entity}.
func (k *kind[E, P]) create(c *call) {
	plans, ok := planBatch(c, false, k.plan)
	if !ok {
		return
	}
	out := make([]map[string]any, 0, len(plans))
	for _, p := range plans {
		id := k.record(k.add(c, p)).ID
		item := map[string]any{"id": id, "request_id": p.base().requestID, "_links": c.entityLinks(k.entity, id)}
		maps.Copy(item, k.created)
		out = append(out, item)
	}
	c.ok(map[string]any{"_links": c.selfLinks(), "_embedded": map[string]any{k.entity: out}})
}

// patch serves PATCH /api/v4/{entity} and /api/v4/{entity}/{id}; the
// single form answers the bare item.
func (k *kind[E, P]) patch(c *call) {
	single := c.params["id"] != ""
	plans, ok := planBatch(c, single, k.plan)
	if !ok {
		return
	}
	out := make([]map[string]any, 0, len(plans))
	for _, p := range plans {
		e := p.base().target
		before := *e
		k.write(c, e, p)
		k.changed(c, &before, e)
		r := k.record(e)
		out = append(out, map[string]any{"id": r.ID, "updated_at": r.UpdatedAt, "request_id": p.base().requestID, "_links": c.entityLinks(k.entity, r.ID)})
	}
	if single {
		delete(out[0], "request_id")
		c.ok(out[0])
		return
	}
	c.ok(map[string]any{"_links": c.selfLinks(), "_embedded": map[string]any{k.entity: out}})
}

// get serves GET /api/v4/{entity}/{id}: 204 when there is none.
func (k *kind[E, P]) get(c *call) {
	e := k.records(c.acc)[c.id("id")]
	if e == nil {
		c.noContent()
		return
	}
	c.ok(k.render(c, e, withSet(c.r)))
}

// list serves GET /api/v4/{entity}: filtered, searched, ordered and paged.
func (k *kind[E, P]) list(c *call) {
	page, limit, ok := c.paging()
	if !ok {
		return
	}
	query := c.r.URL.Query().Get("query")
	f := c.filter()
	var items []*E
	consider := func(e *E) {
		if f.keep(k.record(e)) && k.matches(c, e, query) {
			items = append(items, e)
		}
	}
	if len(f.ids) > 0 {
		// By id: only the records asked for, not a scan of the account.
		all := k.records(c.acc)
		seen := map[int64]bool{}
		for _, id := range f.ids {
			if e := all[id]; e != nil && !seen[id] {
				seen[id] = true
				consider(e)
			}
		}
	} else {
		for _, e := range k.records(c.acc) {
			consider(e)
		}
	}
	orderRecords(c.r.URL.Query(), items, k.record)
	from, to, more := window(len(items), page, limit)
	if from == to {
		c.noContent()
		return
	}
	with := withSet(c.r)
	out := make([]map[string]any, 0, to-from)
	for _, e := range items[from:to] {
		out = append(out, k.render(c, e, with))
	}
	c.ok(map[string]any{"_page": page, "_links": c.pageLinks(page, limit, more), "_embedded": map[string]any{k.entity: out}})
}

func (c *call) entityLinks(entity string, id int64) map[string]any {
	return map[string]any{"self": c.href("/api/v4/" + entity + "/" + strconv.FormatInt(id, 10))}
}
