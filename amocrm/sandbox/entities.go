package sandbox

import (
	"encoding/json"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
)

type tagRef struct {
	ID    *int64  `json:"id"`
	Name  *string `json:"name"`
	Color *string `json:"color"`
}

type linkInput struct {
	ID     int64 `json:"id"`
	IsMain bool  `json:"is_main"`
}

type contactInput struct {
	ID                 *int64          `json:"id"`
	Name               *string         `json:"name"`
	FirstName          *string         `json:"first_name"`
	LastName           *string         `json:"last_name"`
	ResponsibleUserID  *int64          `json:"responsible_user_id"`
	CreatedBy          *int64          `json:"created_by"`
	UpdatedBy          *int64          `json:"updated_by"`
	CreatedAt          *int64          `json:"created_at"`
	UpdatedAt          *int64          `json:"updated_at"`
	CustomFieldsValues json.RawMessage `json:"custom_fields_values"`
	TagsToAdd          []tagRef        `json:"tags_to_add"`
	TagsToDelete       []tagRef        `json:"tags_to_delete"`
	Embedded           *struct {
		Tags json.RawMessage `json:"tags"`
	} `json:"_embedded"`
	RequestID any `json:"request_id"`
}

type leadInput struct {
	ID                 *int64          `json:"id"`
	Name               *string         `json:"name"`
	Price              *int64          `json:"price"`
	StatusID           *int64          `json:"status_id"`
	PipelineID         *int64          `json:"pipeline_id"`
	ResponsibleUserID  *int64          `json:"responsible_user_id"`
	LossReasonID       *int64          `json:"loss_reason_id"`
	CreatedBy          *int64          `json:"created_by"`
	UpdatedBy          *int64          `json:"updated_by"`
	CreatedAt          *int64          `json:"created_at"`
	UpdatedAt          *int64          `json:"updated_at"`
	ClosedAt           *int64          `json:"closed_at"`
	CustomFieldsValues json.RawMessage `json:"custom_fields_values"`
	TagsToAdd          []tagRef        `json:"tags_to_add"`
	TagsToDelete       []tagRef        `json:"tags_to_delete"`
	Embedded           *struct {
		Tags      json.RawMessage   `json:"tags"`
		Contacts  []json.RawMessage `json:"contacts"`
		Companies []json.RawMessage `json:"companies"`
	} `json:"_embedded"`
	RequestID any `json:"request_id"`
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

func (c *call) checkUser(path string, id *int64) []fieldError {
	if id != nil && *id != 0 && c.acc.user(*id) == nil {
		return []fieldError{{Code: "NotSupportedChoice", Path: path, Detail: detailChoice}}
	}
	return nil
}

// ---- contacts ----

type contactPlan struct {
	in        contactInput
	target    *contact
	set       []fieldValue
	clear     []int64
	tags      tagChange
	requestID string
}

func (c *call) planContact(raw json.RawMessage, index int, patch bool, fixedID int64) (contactPlan, []fieldError) {
	p := contactPlan{requestID: requestID(raw, index)}
	if fe := decodeItem(raw, &p.in); fe != nil {
		return p, []fieldError{*fe}
	}
	var errs []fieldError
	if patch {
		id := fixedID
		if id == 0 && p.in.ID != nil {
			id = *p.in.ID
		}
		p.target = c.acc.Contacts[id]
		if p.target == nil {
			return p, []fieldError{{Code: "NotFound", Path: "id", Detail: "Entity not found."}}
		}
	}
	var cfErrs []fieldError
	p.set, p.clear, cfErrs = c.parseFieldValues("contacts", p.in.CustomFieldsValues)
	errs = append(errs, cfErrs...)
	errs = append(errs, c.checkUser("responsible_user_id", p.in.ResponsibleUserID)...)
	var embedded json.RawMessage
	if p.in.Embedded != nil {
		embedded = p.in.Embedded.Tags
	}
	tc, fe := parseTagChange(embedded, p.in.TagsToAdd, p.in.TagsToDelete)
	if fe != nil {
		errs = append(errs, *fe)
	}
	p.tags = tc
	return p, errs
}

func (c *call) applyContact(ct *contact, p contactPlan) {
	in := p.in
	now := c.now()
	if in.FirstName != nil {
		ct.FirstName = *in.FirstName
	}
	if in.LastName != nil {
		ct.LastName = *in.LastName
	}
	if in.Name != nil {
		ct.Name = *in.Name
	} else if in.FirstName != nil || in.LastName != nil {
		ct.Name = strings.TrimSpace(ct.FirstName + " " + ct.LastName)
	}
	if in.ResponsibleUserID != nil {
		ct.ResponsibleUserID = *in.ResponsibleUserID
	}
	ct.UpdatedBy = c.user.ID
	if in.UpdatedBy != nil {
		ct.UpdatedBy = *in.UpdatedBy
	}
	ct.UpdatedAt = now
	if in.UpdatedAt != nil {
		ct.UpdatedAt = *in.UpdatedAt
	}
	ct.Fields = mergeFieldValues(ct.Fields, p.set, p.clear)
	ct.Tags = c.applyTags("contacts", ct.Tags, p.tags)
}

func (c *call) newContact(p contactPlan) *contact {
	now := c.now()
	ct := &contact{ID: c.s.st.nextID(), ResponsibleUserID: c.user.ID, CreatedBy: c.user.ID, CreatedAt: now}
	if p.in.CreatedBy != nil {
		ct.CreatedBy = *p.in.CreatedBy
	}
	if p.in.CreatedAt != nil {
		ct.CreatedAt = *p.in.CreatedAt
	}
	c.applyContact(ct, p)
	c.acc.Contacts[ct.ID] = ct
	c.emit("contacts", "add", c.contactForm(ct))
	return ct
}

// planBatch reads a create (patch=false) or patch batch and plans every item
// with plan. When any item is invalid it answers 400 with every item's errors
// and returns false, so nothing of the batch is applied.
func planBatch[P any](c *call, single bool, plan func(raw json.RawMessage, index int, patch bool, fixedID int64) (P, []fieldError), requestID func(P) string) ([]P, bool) {
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
		plans[i], fe = plan(raw, i, patch, fixed)
		if fe != nil {
			errs = append(errs, itemErrors{RequestID: requestID(plans[i]), Errors: fe})
		}
	}
	if errs != nil {
		c.validation(errs)
		return nil, false
	}
	return plans, true
}

func (c *call) createContacts() {
	plans, ok := planBatch(c, false, c.planContact, func(p contactPlan) string { return p.requestID })
	if !ok {
		return
	}
	out := make([]map[string]any, 0, len(plans))
	for _, p := range plans {
		ct := c.newContact(p)
		out = append(out, map[string]any{"id": ct.ID, "request_id": p.requestID, "is_deleted": false, "is_unsorted": false, "_links": c.entityLinks("contacts", ct.ID)})
	}
	c.ok(map[string]any{"_links": c.selfLinks(), "_embedded": map[string]any{"contacts": out}})
}

func (c *call) patchContacts() {
	single := c.params["id"] != ""
	plans, ok := planBatch(c, single, c.planContact, func(p contactPlan) string { return p.requestID })
	if !ok {
		return
	}
	out := make([]map[string]any, 0, len(plans))
	for _, p := range plans {
		old := *p.target
		c.applyContact(p.target, p)
		c.emit("contacts", "update", c.contactForm(p.target))
		if old.ResponsibleUserID != p.target.ResponsibleUserID {
			c.emit("contacts", "responsible", c.contactForm(p.target))
		}
		out = append(out, map[string]any{"id": p.target.ID, "updated_at": p.target.UpdatedAt, "request_id": p.requestID, "_links": c.entityLinks("contacts", p.target.ID)})
	}
	if single {
		delete(out[0], "request_id")
		c.ok(out[0])
		return
	}
	c.ok(map[string]any{"_links": c.selfLinks(), "_embedded": map[string]any{"contacts": out}})
}

func (c *call) entityLinks(entity string, id int64) map[string]any {
	return map[string]any{"self": c.href("/api/v4/" + entity + "/" + strconv.FormatInt(id, 10))}
}

func (c *call) renderContact(ct *contact, with map[string]bool) map[string]any {
	embedded := map[string]any{"tags": c.renderTags("contacts", ct.Tags), "companies": []any{}}
	if with["leads"] {
		leads := []map[string]any{}
		for _, id := range sortedIDs(c.acc.Leads) {
			l := c.acc.Leads[id]
			if slices.ContainsFunc(l.Contacts, func(x leadLink) bool { return x.ID == ct.ID }) {
				leads = append(leads, map[string]any{"id": l.ID, "_links": c.entityLinks("leads", l.ID)})
			}
		}
		embedded["leads"] = leads
	}
	if with["customers"] {
		embedded["customers"] = []any{}
	}
	if with["catalog_elements"] {
		embedded["catalog_elements"] = []any{}
	}
	return map[string]any{
		"id": ct.ID, "name": ct.Name, "first_name": ct.FirstName, "last_name": ct.LastName,
		"responsible_user_id": ct.ResponsibleUserID, "group_id": 0,
		"created_by": ct.CreatedBy, "updated_by": ct.UpdatedBy,
		"created_at": ct.CreatedAt, "updated_at": ct.UpdatedAt,
		"closest_task_at": nil, "is_deleted": false, "is_unsorted": false,
		"custom_fields_values": c.renderFieldValues("contacts", ct.Fields),
		"account_id":           c.acc.ID,
		"_links":               c.entityLinks("contacts", ct.ID),
		"_embedded":            embedded,
	}
}

func (c *call) getContact() {
	ct := c.acc.Contacts[c.id("id")]
	if ct == nil {
		c.noContent()
		return
	}
	c.ok(c.renderContact(ct, withSet(c.r)))
}

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

// commonFilter applies filters shared by contacts and leads.
type listItem struct {
	id, createdAt, updatedAt int64
	name                     string
	responsible, createdBy   int64
	updatedBy                int64
	fields                   []fieldValue
}

func (c *call) keep(it listItem) bool {
	q := c.r.URL.Query()
	if ids := queryInts(q, "filter[id]"); len(ids) > 0 && !slices.Contains(ids, it.id) {
		return false
	}
	if names := q["filter[name]"]; len(names) > 0 && !slices.Contains(names, it.name) {
		return false
	}
	for key, val := range map[string]int64{"filter[responsible_user_id]": it.responsible, "filter[created_by]": it.createdBy, "filter[updated_by]": it.updatedBy} {
		if ids := queryInts(q, key); len(ids) > 0 && !slices.Contains(ids, val) {
			return false
		}
	}
	for key, val := range map[string]int64{"filter[created_at]": it.createdAt, "filter[updated_at]": it.updatedAt} {
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
		for _, fv := range it.fields {
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

// orderItems sorts by order[id|created_at|updated_at]=asc|desc, id asc by default.
func (c *call) orderItems(items []listItem) {
	q := c.r.URL.Query()
	key, dir := "id", "asc"
	for _, k := range []string{"id", "created_at", "updated_at"} {
		if v := q.Get("order[" + k + "]"); v != "" {
			key, dir = k, strings.ToLower(v)
		}
	}
	val := func(it listItem) int64 {
		switch key {
		case "created_at":
			return it.createdAt
		case "updated_at":
			return it.updatedAt
		}
		return it.id
	}
	sort.SliceStable(items, func(i, j int) bool {
		a, b := val(items[i]), val(items[j])
		if a == b {
			a, b = items[i].id, items[j].id
		}
		if dir == "desc" {
			return a > b
		}
		return a < b
	})
}

func (c *call) listContacts() {
	page, limit, ok := c.paging()
	if !ok {
		return
	}
	query := c.r.URL.Query().Get("query")
	var items []listItem
	for _, ct := range c.acc.Contacts {
		it := listItem{id: ct.ID, createdAt: ct.CreatedAt, updatedAt: ct.UpdatedAt, name: ct.Name, responsible: ct.ResponsibleUserID, createdBy: ct.CreatedBy, updatedBy: ct.UpdatedBy, fields: ct.Fields}
		if c.keep(it) && matchesQuery(query, []string{ct.Name, ct.FirstName, ct.LastName}, ct.Fields) {
			items = append(items, it)
		}
	}
	c.orderItems(items)
	from, to, more := window(len(items), page, limit)
	if from == to {
		c.noContent()
		return
	}
	with := withSet(c.r)
	out := make([]map[string]any, 0, to-from)
	for _, it := range items[from:to] {
		out = append(out, c.renderContact(c.acc.Contacts[it.id], with))
	}
	c.ok(map[string]any{"_page": page, "_links": c.pageLinks(page, limit, more), "_embedded": map[string]any{"contacts": out}})
}

// ---- leads ----

type leadPlan struct {
	in         leadInput
	target     *lead
	set        []fieldValue
	clear      []int64
	tags       tagChange
	contacts   []linkInput
	hasLinks   bool
	pipelineID int64
	statusID   int64
	requestID  string
}

func (c *call) planLead(raw json.RawMessage, index int, patch bool, fixedID int64) (leadPlan, []fieldError) {
	p := leadPlan{requestID: requestID(raw, index)}
	if fe := decodeItem(raw, &p.in); fe != nil {
		return p, []fieldError{*fe}
	}
	if patch {
		id := fixedID
		if id == 0 && p.in.ID != nil {
			id = *p.in.ID
		}
		p.target = c.acc.Leads[id]
		if p.target == nil {
			return p, []fieldError{{Code: "NotFound", Path: "id", Detail: "Entity not found."}}
		}
	}
	var errs []fieldError
	var cfErrs []fieldError
	p.set, p.clear, cfErrs = c.parseFieldValues("leads", p.in.CustomFieldsValues)
	errs = append(errs, cfErrs...)
	errs = append(errs, c.checkUser("responsible_user_id", p.in.ResponsibleUserID)...)
	errs = append(errs, c.resolveStage(&p)...)
	var embeddedTags json.RawMessage
	if p.in.Embedded != nil {
		embeddedTags = p.in.Embedded.Tags
		for j, raw := range p.in.Embedded.Contacts {
			var l linkInput
			if json.Unmarshal(raw, &l) != nil || c.acc.Contacts[l.ID] == nil {
				errs = append(errs, fieldError{Code: "NotSupportedChoice", Path: "_embedded.contacts." + strconv.Itoa(j) + ".id", Detail: detailChoice})
				continue
			}
			p.contacts = append(p.contacts, l)
		}
		p.hasLinks = p.in.Embedded.Contacts != nil
	}
	tc, fe := parseTagChange(embeddedTags, p.in.TagsToAdd, p.in.TagsToDelete)
	if fe != nil {
		errs = append(errs, *fe)
	}
	p.tags = tc
	return p, errs
}

// resolveStage picks pipeline and status: a status alone finds its
// pipeline (142/143 stay in the lead's or the main pipeline), a pipeline
// alone its first stage, nothing the main pipeline's first stage.
func (c *call) resolveStage(p *leadPlan) []fieldError {
	choice := func(path string) []fieldError {
		return []fieldError{{Code: "NotSupportedChoice", Path: path, Detail: detailChoice}}
	}
	var pl *pipeline
	switch {
	case p.in.PipelineID != nil:
		pl = c.acc.pipeline(*p.in.PipelineID)
		if pl == nil {
			return choice("pipeline_id")
		}
	case p.target != nil:
		pl = c.acc.pipeline(p.target.PipelineID)
	default:
		pl = c.acc.mainPipeline()
	}
	if p.in.StatusID != nil {
		if st := pl.status(*p.in.StatusID); st != nil {
			p.pipelineID, p.statusID = pl.ID, st.ID
			return nil
		}
		if p.in.PipelineID != nil {
			return choice("status_id")
		}
		for _, other := range c.acc.Pipelines {
			if other.status(*p.in.StatusID) != nil {
				p.pipelineID, p.statusID = other.ID, *p.in.StatusID
				return nil
			}
		}
		return choice("status_id")
	}
	if p.target != nil && p.in.PipelineID == nil {
		p.pipelineID, p.statusID = p.target.PipelineID, p.target.StatusID
		return nil
	}
	if p.target != nil && p.target.PipelineID == pl.ID {
		p.pipelineID, p.statusID = pl.ID, p.target.StatusID
		return nil
	}
	p.pipelineID, p.statusID = pl.ID, pl.firstStage().ID
	return nil
}

func (c *call) applyLead(l *lead, p leadPlan) {
	in := p.in
	now := c.now()
	if in.Name != nil {
		l.Name = *in.Name
	}
	if in.Price != nil {
		l.Price = *in.Price
	}
	if in.ResponsibleUserID != nil {
		l.ResponsibleUserID = *in.ResponsibleUserID
	}
	if in.LossReasonID != nil {
		l.LossReasonID = *in.LossReasonID
	}
	wasClosed := l.StatusID == statusWon || l.StatusID == statusLost
	l.PipelineID, l.StatusID = p.pipelineID, p.statusID
	isClosed := l.StatusID == statusWon || l.StatusID == statusLost
	switch {
	case in.ClosedAt != nil:
		l.ClosedAt = *in.ClosedAt
	case isClosed && !wasClosed:
		l.ClosedAt = now
	case !isClosed:
		l.ClosedAt = 0
	}
	l.UpdatedBy = c.user.ID
	if in.UpdatedBy != nil {
		l.UpdatedBy = *in.UpdatedBy
	}
	l.UpdatedAt = now
	if in.UpdatedAt != nil {
		l.UpdatedAt = *in.UpdatedAt
	}
	l.Fields = mergeFieldValues(l.Fields, p.set, p.clear)
	l.Tags = c.applyTags("leads", l.Tags, p.tags)
	if p.hasLinks {
		for _, link := range p.contacts {
			c.linkContact(l, link.ID, link.IsMain)
		}
	}
}

// linkContact adds a contact to a lead; the first contact becomes main.
func (c *call) linkContact(l *lead, contactID int64, isMain bool) {
	if len(l.Contacts) == 0 {
		isMain = true
	}
	if isMain {
		for i := range l.Contacts {
			l.Contacts[i].IsMain = false
		}
	}
	for i := range l.Contacts {
		if l.Contacts[i].ID == contactID {
			l.Contacts[i].IsMain = l.Contacts[i].IsMain || isMain
			return
		}
	}
	l.Contacts = append(l.Contacts, leadLink{ID: contactID, IsMain: isMain})
}

func (c *call) newLead(p leadPlan) *lead {
	now := c.now()
	l := &lead{ID: c.s.st.nextID(), ResponsibleUserID: c.user.ID, CreatedBy: c.user.ID, CreatedAt: now}
	if p.in.CreatedBy != nil {
		l.CreatedBy = *p.in.CreatedBy
	}
	if p.in.CreatedAt != nil {
		l.CreatedAt = *p.in.CreatedAt
	}
	c.applyLead(l, p)
	if l.Name == "" {
		l.Name = "Сделка #" + strconv.FormatInt(l.ID, 10)
	}
	c.acc.Leads[l.ID] = l
	c.emit("leads", "add", c.leadForm(l, nil))
	return l
}

func (c *call) createLeads() {
	plans, ok := planBatch(c, false, c.planLead, func(p leadPlan) string { return p.requestID })
	if !ok {
		return
	}
	out := make([]map[string]any, 0, len(plans))
	for _, p := range plans {
		l := c.newLead(p)
		out = append(out, map[string]any{"id": l.ID, "request_id": p.requestID, "_links": c.entityLinks("leads", l.ID)})
	}
	c.ok(map[string]any{"_links": c.selfLinks(), "_embedded": map[string]any{"leads": out}})
}

func (c *call) patchLeads() {
	single := c.params["id"] != ""
	plans, ok := planBatch(c, single, c.planLead, func(p leadPlan) string { return p.requestID })
	if !ok {
		return
	}
	out := make([]map[string]any, 0, len(plans))
	for _, p := range plans {
		old := *p.target
		old.Contacts = slices.Clone(p.target.Contacts)
		c.applyLead(p.target, p)
		c.leadChanged(&old, p.target)
		out = append(out, map[string]any{"id": p.target.ID, "updated_at": p.target.UpdatedAt, "request_id": p.requestID, "_links": c.entityLinks("leads", p.target.ID)})
	}
	if single {
		delete(out[0], "request_id")
		c.ok(out[0])
		return
	}
	c.ok(map[string]any{"_links": c.selfLinks(), "_embedded": map[string]any{"leads": out}})
}

// leadChanged emits update, and status/responsible when those moved.
func (c *call) leadChanged(old, l *lead) {
	c.emit("leads", "update", c.leadForm(l, nil))
	if old.StatusID != l.StatusID || old.PipelineID != l.PipelineID {
		c.emit("leads", "status", c.leadForm(l, old))
	}
	if old.ResponsibleUserID != l.ResponsibleUserID {
		c.emit("leads", "responsible", c.leadForm(l, old))
	}
}

func (c *call) renderLead(l *lead, with map[string]bool) map[string]any {
	embedded := map[string]any{"tags": c.renderTags("leads", l.Tags), "companies": []map[string]any{}}
	for _, id := range l.Companies {
		embedded["companies"] = append(embedded["companies"].([]map[string]any), map[string]any{"id": id})
	}
	if with["contacts"] {
		contacts := []map[string]any{}
		for _, link := range l.Contacts {
			contacts = append(contacts, map[string]any{"id": link.ID, "is_main": link.IsMain, "_links": c.entityLinks("contacts", link.ID)})
		}
		embedded["contacts"] = contacts
	}
	if with["loss_reason"] {
		embedded["loss_reason"] = []any{}
	}
	if with["catalog_elements"] {
		embedded["catalog_elements"] = []any{}
	}
	var lossReason, closedAt any
	if l.LossReasonID != 0 {
		lossReason = l.LossReasonID
	}
	if l.ClosedAt != 0 {
		closedAt = l.ClosedAt
	}
	return map[string]any{
		"id": l.ID, "name": l.Name, "price": l.Price, "responsible_user_id": l.ResponsibleUserID,
		"group_id": 0, "status_id": l.StatusID, "pipeline_id": l.PipelineID, "loss_reason_id": lossReason,
		"created_by": l.CreatedBy, "updated_by": l.UpdatedBy, "created_at": l.CreatedAt, "updated_at": l.UpdatedAt,
		"closed_at": closedAt, "closest_task_at": nil, "is_deleted": false,
		"custom_fields_values": c.renderFieldValues("leads", l.Fields),
		"score":                nil, "account_id": c.acc.ID, "labor_cost": nil,
		"_links":    c.entityLinks("leads", l.ID),
		"_embedded": embedded,
	}
}

func (c *call) getLead() {
	l := c.acc.Leads[c.id("id")]
	if l == nil {
		c.noContent()
		return
	}
	c.ok(c.renderLead(l, withSet(c.r)))
}

func (c *call) keepLead(l *lead) bool {
	q := c.r.URL.Query()
	if ids := queryInts(q, "filter[pipeline_id]"); len(ids) > 0 && !slices.Contains(ids, l.PipelineID) {
		return false
	}
	if !inRange(q.Get("filter[price][from]"), q.Get("filter[price][to]"), l.Price) {
		return false
	}
	if !inRange(q.Get("filter[closed_at][from]"), q.Get("filter[closed_at][to]"), l.ClosedAt) {
		return false
	}
	type pair struct{ pipeline, status int64 }
	statuses := map[string]*pair{}
	for key, vs := range q {
		rest, ok := strings.CutPrefix(key, "filter[statuses][")
		if !ok || len(vs) == 0 {
			continue
		}
		idx, attr, _ := strings.Cut(rest, "][")
		attr = strings.TrimSuffix(attr, "]")
		if statuses[idx] == nil {
			statuses[idx] = &pair{}
		}
		v, _ := strconv.ParseInt(vs[0], 10, 64)
		if attr == "pipeline_id" {
			statuses[idx].pipeline = v
		} else {
			statuses[idx].status = v
		}
	}
	if len(statuses) > 0 {
		match := false
		for _, p := range statuses {
			if (p.pipeline == 0 || p.pipeline == l.PipelineID) && p.status == l.StatusID {
				match = true
			}
		}
		return match
	}
	return true
}

func (c *call) listLeads() {
	page, limit, ok := c.paging()
	if !ok {
		return
	}
	query := c.r.URL.Query().Get("query")
	var items []listItem
	for _, l := range c.acc.Leads {
		it := listItem{id: l.ID, createdAt: l.CreatedAt, updatedAt: l.UpdatedAt, name: l.Name, responsible: l.ResponsibleUserID, createdBy: l.CreatedBy, updatedBy: l.UpdatedBy, fields: l.Fields}
		if c.keep(it) && c.keepLead(l) && matchesQuery(query, []string{l.Name, strconv.FormatInt(l.ID, 10)}, l.Fields) {
			items = append(items, it)
		}
	}
	c.orderItems(items)
	from, to, more := window(len(items), page, limit)
	if from == to {
		c.noContent()
		return
	}
	with := withSet(c.r)
	out := make([]map[string]any, 0, to-from)
	for _, it := range items[from:to] {
		out = append(out, c.renderLead(c.acc.Leads[it.id], with))
	}
	c.ok(map[string]any{"_page": page, "_links": c.pageLinks(page, limit, more), "_embedded": map[string]any{"leads": out}})
}

// complexLeads serves POST /leads/complex: ≤50 leads, each with at most one
// contact and one company given by id or as a full model; bare-array reply.
func (c *call) complexLeads() {
	items, ok := c.readBatch(50, false)
	if !ok {
		return
	}
	type part struct {
		lead     leadPlan
		contact  *contactPlan
		linkID   int64
		company  *company
		rawLinks bool
	}
	parts := make([]part, len(items))
	var errs []itemErrors
	for i, raw := range items {
		var probe struct {
			Embedded *struct {
				Contacts  []json.RawMessage `json:"contacts"`
				Companies []json.RawMessage `json:"companies"`
			} `json:"_embedded"`
		}
		_ = json.Unmarshal(raw, &probe)
		// Contacts inside complex are models, not links: strip them before
		// planning the lead itself.
		var leadOnly map[string]json.RawMessage
		_ = json.Unmarshal(raw, &leadOnly)
		var embedded map[string]json.RawMessage
		if e, ok := leadOnly["_embedded"]; ok {
			_ = json.Unmarshal(e, &embedded)
			delete(embedded, "contacts")
			delete(embedded, "companies")
			leadOnly["_embedded"], _ = json.Marshal(embedded)
		}
		stripped, _ := json.Marshal(leadOnly)
		p, fe := c.planLead(stripped, i, false, 0)
		p.requestID = requestID(raw, i)
		parts[i].lead = p
		if probe.Embedded != nil {
			if len(probe.Embedded.Contacts) > 1 || len(probe.Embedded.Companies) > 1 {
				fe = append(fe, fieldError{Code: "LimitExceeded", Path: "_embedded", Detail: "A complex lead takes at most one contact and one company."})
			}
			if len(probe.Embedded.Contacts) == 1 {
				cp, cfe := c.planContact(probe.Embedded.Contacts[0], i, false, 0)
				for _, e := range cfe {
					e.Path = "_embedded.contacts.0." + e.Path
					fe = append(fe, e)
				}
				if cp.in.ID != nil {
					if c.acc.Contacts[*cp.in.ID] == nil {
						fe = append(fe, fieldError{Code: "NotSupportedChoice", Path: "_embedded.contacts.0.id", Detail: detailChoice})
					}
					parts[i].linkID = *cp.in.ID
				} else {
					parts[i].contact = &cp
				}
			}
			if len(probe.Embedded.Companies) == 1 {
				var co struct {
					ID   int64  `json:"id"`
					Name string `json:"name"`
				}
				_ = json.Unmarshal(probe.Embedded.Companies[0], &co)
				parts[i].company = &company{ID: co.ID, Name: co.Name}
			}
		}
		if fe != nil {
			errs = append(errs, itemErrors{RequestID: p.requestID, Errors: fe})
		}
	}
	if errs != nil {
		c.validation(errs)
		return
	}
	out := make([]map[string]any, 0, len(parts))
	for _, pt := range parts {
		l := c.newLead(pt.lead)
		var contactID, companyOut any
		if pt.contact != nil {
			pt.linkID = c.newContact(*pt.contact).ID
		}
		if pt.linkID != 0 {
			c.linkContact(l, pt.linkID, true)
			contactID = pt.linkID
		}
		if pt.company != nil {
			if c.acc.Companies[pt.company.ID] == nil {
				pt.company.ID = c.s.st.nextID()
				c.acc.Companies[pt.company.ID] = pt.company
			}
			l.Companies = []int64{pt.company.ID}
			companyOut = pt.company.ID
		}
		out = append(out, map[string]any{"id": l.ID, "contact_id": contactID, "company_id": companyOut, "request_id": []string{pt.lead.requestID}, "merged": false})
	}
	writeJSON(c.w, http.StatusOK, contentHAL, out)
}
