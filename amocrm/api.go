package amocrm

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// ListParams select a page of a list. Zero Page means 1, zero Limit means
// DefaultPageLimit (amoCRM's maximum, 250).
type ListParams struct {
	Page  int
	Limit int
	// Query searches filled fields (name, phone, email).
	Query string
	With  []string
	// Extra holds filter[...] and order[...] parameters, sent as given, e.g.
	// {"filter[id][]": {"1", "2"}, "order[updated_at]": {"desc"}}.
	Extra url.Values
}

func (p ListParams) values() url.Values {
	q := url.Values{}
	for k, vs := range p.Extra {
		q[k] = append([]string(nil), vs...)
	}
	page, limit := max(p.Page, 1), p.Limit
	if limit <= 0 || limit > DefaultPageLimit {
		limit = DefaultPageLimit
	}
	q.Set("page", strconv.Itoa(page))
	q.Set("limit", strconv.Itoa(limit))
	if p.Query != "" {
		q.Set("query", p.Query)
	}
	if len(p.With) > 0 {
		q.Set("with", strings.Join(p.With, ","))
	}
	return q
}

// Page is one page of a list. HasNext reports whether amoCRM linked a next
// page; an empty list (204) is a Page with no items.
type Page[T any] struct {
	Items   []T
	Number  int
	HasNext bool
}

// maxPages stops a list that never ends (a misbehaving server).
const maxPages = 10000

// listBody is the HAL envelope of lists and batch answers.
type listBody struct {
	Page  int `json:"_page"`
	Links struct {
		Next *struct {
			Href string `json:"href"`
		} `json:"next"`
	} `json:"_links"`
	Embedded map[string]json.RawMessage `json:"_embedded"`
}

// embedded decodes _embedded[key], which must be present.
func embedded[T any](b listBody, key string) ([]T, error) {
	raw, ok := b.Embedded[key]
	if !ok {
		return nil, fmt.Errorf("%w: no _embedded.%s", ErrMalformed, key)
	}
	var items []T
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, fmt.Errorf("%w: _embedded.%s: %w", ErrMalformed, key, err)
	}
	return items, nil
}

func list[T any](ctx context.Context, a *AccountAPI, path, key string, p ListParams) (Page[T], error) {
	page := Page[T]{Number: max(p.Page, 1)}
	var body listBody
	status, err := a.do(ctx, call{method: http.MethodGet, path: path, query: p.values(), retryAll: true}, &body)
	if err != nil || status == http.StatusNoContent {
		return page, err
	}
	if page.Items, err = embedded[T](body, key); err != nil {
		return page, err
	}
	page.HasNext = body.Links.Next != nil && len(page.Items) > 0
	return page, nil
}

// all pages through a list from p.Page until _links.next is absent or 204.
func all[T any](ctx context.Context, a *AccountAPI, path, key string, p ListParams) ([]T, error) {
	var out []T
	p.Page = max(p.Page, 1)
	for range maxPages {
		page, err := list[T](ctx, a, path, key, p)
		if err != nil {
			return out, fmt.Errorf("page %d: %w", p.Page, err)
		}
		out = append(out, page.Items...)
		if !page.HasNext {
			return out, nil
		}
		p.Page++
	}
	return out, fmt.Errorf("%w: more than %d pages", ErrMalformed, maxPages)
}

// batch writes items in chunks of the configured batch size and returns
// the answers in the order of items. For creates (requestID non-nil) items
// without a request_id get their index in items, so answers and validation
// errors map back to the caller's slice across chunks. On failure it
// returns the answers of the chunks written before it.
func batch[In, Out any](ctx context.Context, a *AccountAPI, method, path, key string, items []In,
	requestID func(*In) *string, answerID func(*Out) string, retryAll bool) ([]Out, error) {
	items = append([]In(nil), items...)
	if requestID != nil {
		for i := range items {
			if id := requestID(&items[i]); *id == "" {
				*id = strconv.Itoa(i)
			}
		}
	}
	size := a.c.cfg.BatchSize
	out := make([]Out, 0, len(items))
	for start := 0; start < len(items); start += size {
		chunk := items[start:min(start+size, len(items))]
		var body listBody
		_, err := a.do(ctx, call{method: method, path: path, body: chunk, retryAll: retryAll}, &body)
		if err == nil {
			var got []Out
			if got, err = embedded[Out](body, key); err == nil {
				got, err = inOrder(chunk, got, requestID, answerID)
			}
			out = append(out, got...)
		}
		if err != nil {
			return out, fmt.Errorf("items %d–%d of %d: %w", start, start+len(chunk)-1, len(items), err)
		}
	}
	return out, nil
}

// inOrder checks that amoCRM answered every item of chunk once and puts
// the answers in the chunk's order by request_id (when both sides have one).
func inOrder[In, Out any](chunk []In, got []Out, requestID func(*In) *string, answerID func(*Out) string) ([]Out, error) {
	if len(got) != len(chunk) {
		return nil, fmt.Errorf("%w: %d answers for %d items", ErrMalformed, len(got), len(chunk))
	}
	if requestID == nil || answerID == nil || answerID(&got[0]) == "" {
		return got, nil
	}
	byID := make(map[string]int, len(got))
	for i := range got {
		byID[answerID(&got[i])] = i
	}
	ordered := make([]Out, len(chunk))
	for i := range chunk {
		j, ok := byID[*requestID(&chunk[i])]
		if !ok {
			return nil, fmt.Errorf("%w: no answer for request_id %q", ErrMalformed, *requestID(&chunk[i]))
		}
		ordered[i] = got[j]
	}
	return ordered, nil
}

var entities = map[string]bool{EntityLeads: true, EntityContacts: true, EntityCompanies: true, EntityCustomers: true}

func checkEntity(entity string) error {
	if !entities[entity] {
		return fmt.Errorf("amocrm: unknown entity type %q", entity)
	}
	return nil
}

// GetAccount returns the account's info (GET /api/v4/account), with the
// optional with= parts.
func (a *AccountAPI) GetAccount(ctx context.Context, with ...string) (AccountInfo, error) {
	q := url.Values{}
	if len(with) > 0 {
		q.Set("with", strings.Join(with, ","))
	}
	var info AccountInfo
	status, err := a.do(ctx, call{method: http.MethodGet, path: "/api/v4/account", query: q, retryAll: true}, &info)
	if err == nil && (status == http.StatusNoContent || info.ID == 0) {
		err = fmt.Errorf("%w: account without id", ErrMalformed)
	}
	if err != nil {
		return AccountInfo{}, fmt.Errorf("amocrm: get account (%d): %w", a.ref.ID, err)
	}
	return info, nil
}

// Users returns one page of the account's users (admin only, else
// ErrForbidden).
func (a *AccountAPI) Users(ctx context.Context, p ListParams) (Page[User], error) {
	page, err := list[User](ctx, a, "/api/v4/users", "users", p)
	if err != nil {
		return page, fmt.Errorf("amocrm: list users (%d): %w", a.ref.ID, err)
	}
	return page, nil
}

// AllUsers returns every user of the account, active or not, paging 250
// at a time (admin only, else ErrForbidden).
func (a *AccountAPI) AllUsers(ctx context.Context) ([]User, error) {
	users, err := all[User](ctx, a, "/api/v4/users", "users", ListParams{})
	if err != nil {
		return nil, fmt.Errorf("amocrm: list users (%d): %w", a.ref.ID, err)
	}
	return users, nil
}

// Pipelines returns the account's leads pipelines with their statuses.
func (a *AccountAPI) Pipelines(ctx context.Context) ([]Pipeline, error) {
	var body listBody
	status, err := a.do(ctx, call{method: http.MethodGet, path: "/api/v4/leads/pipelines", retryAll: true}, &body)
	var out []Pipeline
	if err == nil && status != http.StatusNoContent {
		out, err = embedded[Pipeline](body, "pipelines")
	}
	if err != nil {
		return nil, fmt.Errorf("amocrm: list pipelines (%d): %w", a.ref.ID, err)
	}
	return out, nil
}

// CreatePipelines creates pipelines (with their _embedded.statuses) and
// returns them as created, in order. ErrValidation when amoCRM rejects one
// (for example above 50 pipelines); admin only.
func (a *AccountAPI) CreatePipelines(ctx context.Context, pipelines []Pipeline) ([]Pipeline, error) {
	out, err := batch(ctx, a, http.MethodPost, "/api/v4/leads/pipelines", "pipelines", pipelines,
		func(p *Pipeline) *string { return &p.RequestID }, func(p *Pipeline) string { return p.RequestID }, false)
	if err != nil {
		return out, fmt.Errorf("amocrm: create pipelines (%d): %w", a.ref.ID, err)
	}
	return out, nil
}

// Statuses returns the statuses of a pipeline.
func (a *AccountAPI) Statuses(ctx context.Context, pipelineID int64) ([]Status, error) {
	var body listBody
	path := "/api/v4/leads/pipelines/" + strconv.FormatInt(pipelineID, 10) + "/statuses"
	status, err := a.do(ctx, call{method: http.MethodGet, path: path, retryAll: true}, &body)
	var out []Status
	if err == nil && status != http.StatusNoContent {
		out, err = embedded[Status](body, "statuses")
	}
	if err != nil {
		return nil, fmt.Errorf("amocrm: list statuses (%d, pipeline %d): %w", a.ref.ID, pipelineID, err)
	}
	return out, nil
}

// CreateStatuses adds statuses to a pipeline and returns them as created,
// in order. ErrValidation for a bad colour or above 100 statuses; admin only.
func (a *AccountAPI) CreateStatuses(ctx context.Context, pipelineID int64, statuses []Status) ([]Status, error) {
	path := "/api/v4/leads/pipelines/" + strconv.FormatInt(pipelineID, 10) + "/statuses"
	out, err := batch(ctx, a, http.MethodPost, path, "statuses", statuses,
		func(s *Status) *string { return &s.RequestID }, func(s *Status) string { return s.RequestID }, false)
	if err != nil {
		return out, fmt.Errorf("amocrm: create statuses (%d, pipeline %d): %w", a.ref.ID, pipelineID, err)
	}
	return out, nil
}

// CustomFields returns every custom field of an entity type (leads,
// contacts, companies, customers), predefined PHONE and EMAIL included.
func (a *AccountAPI) CustomFields(ctx context.Context, entity string) ([]CustomField, error) {
	if err := checkEntity(entity); err != nil {
		return nil, err
	}
	out, err := all[CustomField](ctx, a, "/api/v4/"+entity+"/custom_fields", "custom_fields", ListParams{})
	if err != nil {
		return nil, fmt.Errorf("amocrm: list %s custom fields (%d): %w", entity, a.ref.ID, err)
	}
	return out, nil
}

// CreateCustomFields creates custom fields (with enums for select-like
// types) and returns them as created, in order; admin only.
func (a *AccountAPI) CreateCustomFields(ctx context.Context, entity string, fields []CustomField) ([]CustomField, error) {
	if err := checkEntity(entity); err != nil {
		return nil, err
	}
	out, err := batch(ctx, a, http.MethodPost, "/api/v4/"+entity+"/custom_fields", "custom_fields", fields,
		func(f *CustomField) *string { return &f.RequestID }, func(f *CustomField) string { return f.RequestID }, false)
	if err != nil {
		return out, fmt.Errorf("amocrm: create %s custom fields (%d): %w", entity, a.ref.ID, err)
	}
	return out, nil
}

// crmKind describes contacts or leads to the paths they share: a list, a
// get by id, batch creates and patches.
type crmKind[T any] struct {
	entity    string // path segment and _embedded key, e.g. "contacts"
	one       string // the singular, for messages
	id        func(*T) *int64
	requestID func(*T) *string
}

var (
	contactKind = crmKind[Contact]{entity: EntityContacts, one: "contact",
		id: func(c *Contact) *int64 { return &c.ID }, requestID: func(c *Contact) *string { return &c.RequestID }}
	leadKind = crmKind[Lead]{entity: EntityLeads, one: "lead",
		id: func(l *Lead) *int64 { return &l.ID }, requestID: func(l *Lead) *string { return &l.RequestID }}
)

func (k crmKind[T]) path() string { return "/api/v4/" + k.entity }

func (k crmKind[T]) page(ctx context.Context, a *AccountAPI, p ListParams) (Page[T], error) {
	page, err := list[T](ctx, a, k.path(), k.entity, p)
	if err != nil {
		return page, fmt.Errorf("amocrm: list %s (%d): %w", k.entity, a.ref.ID, err)
	}
	return page, nil
}

func (k crmKind[T]) all(ctx context.Context, a *AccountAPI, p ListParams) ([]T, error) {
	out, err := all[T](ctx, a, k.path(), k.entity, p)
	if err != nil {
		return out, fmt.Errorf("amocrm: list %s (%d): %w", k.entity, a.ref.ID, err)
	}
	return out, nil
}

func (k crmKind[T]) get(ctx context.Context, a *AccountAPI, id int64, with []string) (*T, error) {
	var v T
	if err := a.get(ctx, k.path()+"/"+strconv.FormatInt(id, 10), with, &v, k.id(&v)); err != nil {
		return nil, fmt.Errorf("amocrm: get %s %d (%d): %w", k.one, id, a.ref.ID, err)
	}
	return &v, nil
}

func (k crmKind[T]) create(ctx context.Context, a *AccountAPI, items []T) ([]Saved, error) {
	out, err := batch(ctx, a, http.MethodPost, k.path(), k.entity, items, k.requestID, func(s *Saved) string { return s.RequestID }, false)
	if err != nil {
		return out, fmt.Errorf("amocrm: create %s (%d): %w", k.entity, len(items), err)
	}
	return out, nil
}

func (k crmKind[T]) update(ctx context.Context, a *AccountAPI, items []T) ([]Saved, error) {
	for i := range items {
		if *k.id(&items[i]) == 0 {
			return nil, fmt.Errorf("amocrm: patch %s (%d): item %d has no id", k.entity, len(items), i)
		}
	}
	out, err := batch[T, Saved](ctx, a, http.MethodPatch, k.path(), k.entity, items, nil, nil, true)
	if err != nil {
		return out, fmt.Errorf("amocrm: patch %s (%d): %w", k.entity, len(items), err)
	}
	return out, nil
}

// Contacts returns one page of contacts matching p.
func (a *AccountAPI) Contacts(ctx context.Context, p ListParams) (Page[Contact], error) {
	return contactKind.page(ctx, a, p)
}

// AllContacts returns every contact matching p, from page p.Page on.
func (a *AccountAPI) AllContacts(ctx context.Context, p ListParams) ([]Contact, error) {
	return contactKind.all(ctx, a, p)
}

// Contact returns the contact by id, or (nil, ErrNotFound) when amoCRM has
// none (204).
func (a *AccountAPI) Contact(ctx context.Context, id int64, with ...string) (*Contact, error) {
	return contactKind.get(ctx, a, id, with)
}

// CreateContacts creates contacts in batches and returns their ids in the
// order of contacts. On ErrValidation the *ValidationError's request ids are
// indexes into contacts (unless the caller set request ids).
func (a *AccountAPI) CreateContacts(ctx context.Context, contacts []Contact) ([]Saved, error) {
	return contactKind.create(ctx, a, contacts)
}

// UpdateContacts patches contacts (each with its ID) in batches and returns
// the answers in order.
func (a *AccountAPI) UpdateContacts(ctx context.Context, contacts []Contact) ([]Saved, error) {
	return contactKind.update(ctx, a, contacts)
}

// Leads returns one page of leads matching p.
func (a *AccountAPI) Leads(ctx context.Context, p ListParams) (Page[Lead], error) {
	return leadKind.page(ctx, a, p)
}

// AllLeads returns every lead matching p, from page p.Page on.
func (a *AccountAPI) AllLeads(ctx context.Context, p ListParams) ([]Lead, error) {
	return leadKind.all(ctx, a, p)
}

// Lead returns the lead by id, or (nil, ErrNotFound) when amoCRM has none (204).
func (a *AccountAPI) Lead(ctx context.Context, id int64, with ...string) (*Lead, error) {
	return leadKind.get(ctx, a, id, with)
}

// CreateLeads creates leads in batches and returns their ids in the order
// of leads (see CreateContacts for validation errors).
func (a *AccountAPI) CreateLeads(ctx context.Context, leads []Lead) ([]Saved, error) {
	return leadKind.create(ctx, a, leads)
}

// UpdateLeads patches leads (each with its ID) in batches and returns the
// answers in order.
func (a *AccountAPI) UpdateLeads(ctx context.Context, leads []Lead) ([]Saved, error) {
	return leadKind.update(ctx, a, leads)
}

// get fetches one entity; 204 or an answer without id is ErrNotFound.
func (a *AccountAPI) get(ctx context.Context, path string, with []string, out any, id *int64) error {
	q := url.Values{}
	if len(with) > 0 {
		q.Set("with", strings.Join(with, ","))
	}
	status, err := a.do(ctx, call{method: http.MethodGet, path: path, query: q, retryAll: true}, out)
	if err != nil {
		return err
	}
	if status == http.StatusNoContent {
		return ErrNotFound
	}
	if *id == 0 {
		return fmt.Errorf("%w: entity without id", ErrMalformed)
	}
	return nil
}

// Link links the entity (leads, contacts, companies, customers) to others
// and returns the links as amoCRM recorded them.
func (a *AccountAPI) Link(ctx context.Context, entity string, id int64, links []Link) ([]Link, error) {
	if err := checkEntity(entity); err != nil {
		return nil, err
	}
	path := "/api/v4/" + entity + "/" + strconv.FormatInt(id, 10) + "/link"
	out, err := batch[Link, Link](ctx, a, http.MethodPost, path, "links", links, nil, nil, true)
	if err != nil {
		return out, fmt.Errorf("amocrm: link %s %d (%d): %w", entity, id, a.ref.ID, err)
	}
	return out, nil
}

// Links returns the entity's links (none: empty slice).
func (a *AccountAPI) Links(ctx context.Context, entity string, id int64) ([]Link, error) {
	if err := checkEntity(entity); err != nil {
		return nil, err
	}
	path := "/api/v4/" + entity + "/" + strconv.FormatInt(id, 10) + "/links"
	var body listBody
	status, err := a.do(ctx, call{method: http.MethodGet, path: path, retryAll: true}, &body)
	var out []Link
	if err == nil && status != http.StatusNoContent {
		out, err = embedded[Link](body, "links")
	}
	if err != nil {
		return nil, fmt.Errorf("amocrm: links of %s %d (%d): %w", entity, id, a.ref.ID, err)
	}
	return out, nil
}

// AddNotes adds notes (each with EntityID) to entities of one type and
// returns their ids in order.
func (a *AccountAPI) AddNotes(ctx context.Context, entity string, notes []Note) ([]Saved, error) {
	if err := checkEntity(entity); err != nil {
		return nil, err
	}
	out, err := batch(ctx, a, http.MethodPost, "/api/v4/"+entity+"/notes", "notes", notes,
		func(n *Note) *string { return &n.RequestID }, func(s *Saved) string { return s.RequestID }, false)
	if err != nil {
		return out, fmt.Errorf("amocrm: add %s notes (%d): %w", entity, len(notes), err)
	}
	return out, nil
}

// Tags returns the tag dictionary of an entity type (all pages).
func (a *AccountAPI) Tags(ctx context.Context, entity string) ([]Tag, error) {
	if err := checkEntity(entity); err != nil {
		return nil, err
	}
	out, err := all[Tag](ctx, a, "/api/v4/"+entity+"/tags", "tags", ListParams{})
	if err != nil {
		return out, fmt.Errorf("amocrm: list %s tags (%d): %w", entity, a.ref.ID, err)
	}
	return out, nil
}

// CreateTags adds tags to an entity type's dictionary and returns them with
// ids, in order; an existing name returns the existing tag.
func (a *AccountAPI) CreateTags(ctx context.Context, entity string, tags []Tag) ([]Tag, error) {
	if err := checkEntity(entity); err != nil {
		return nil, err
	}
	// Creating a tag is idempotent by name, so transient failures are retried.
	out, err := batch(ctx, a, http.MethodPost, "/api/v4/"+entity+"/tags", "tags", tags,
		func(t *Tag) *string { return &t.RequestID }, func(t *Tag) string { return t.RequestID }, true)
	if err != nil {
		return out, fmt.Errorf("amocrm: create %s tags (%d): %w", entity, len(tags), err)
	}
	return out, nil
}

// SubscribeWebhook subscribes destination to events (status_lead,
// update_contact, …); amoCRM upserts by destination. Admin only; amoCRM
// answers ErrForbidden or ErrPaymentRequired on plans without API webhooks.
func (a *AccountAPI) SubscribeWebhook(ctx context.Context, destination string, events []string) (Webhook, error) {
	if destination == "" || len(events) == 0 {
		return Webhook{}, fmt.Errorf("amocrm: subscribe webhook (%d): destination and events are required", a.ref.ID)
	}
	var w Webhook
	_, err := a.do(ctx, call{method: http.MethodPost, path: "/api/v4/webhooks", retryAll: true,
		body: Webhook{Destination: destination, Settings: events}}, &w)
	if err == nil && w.Destination == "" {
		err = fmt.Errorf("%w: webhook without destination", ErrMalformed)
	}
	if err != nil {
		return Webhook{}, fmt.Errorf("amocrm: subscribe webhook (%d): %w", a.ref.ID, err)
	}
	return w, nil
}
