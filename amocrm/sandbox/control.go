package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

func (s *Sandbox) apiRoutes() []route {
	r := func(method, pattern string, h func(*call)) route {
		return route{method: method, pattern: pattern, segs: strings.Split(strings.Trim(pattern, "/"), "/"), h: h}
	}
	pub := func(method, pattern string, h func(*call)) route {
		rt := r(method, pattern, h)
		rt.public = true
		return rt
	}
	notesOf := func(patch bool) func(*call) { return func(c *call) { c.writeNotes(patch) } }
	links := func(unlink bool) func(*call) { return func(c *call) { c.changeLinks(unlink) } }
	onlyEntities := func(allowed []string, h func(*call)) func(*call) {
		return func(c *call) {
			if !slices.Contains(allowed, c.params["entity"]) {
				c.fail(http.StatusNotFound, "Not found")
				return
			}
			h(c)
		}
	}
	crm := []string{"leads", "contacts", "companies", "customers"}
	linked := []string{"leads", "contacts"}
	withFields := []string{"leads", "contacts", "companies", "customers"}
	return []route{
		pub(http.MethodPost, "/oauth2/access_token", func(c *call) { c.s.accessToken(c) }),
		pub(http.MethodGet, "/oauth2/account/current/subdomain", func(c *call) { c.s.currentSubdomain(c) }),

		r(http.MethodGet, "/api/v4/account", (*call).getAccount),
		r(http.MethodGet, "/api/v4/users", (*call).listUsers),
		r(http.MethodPost, "/api/v4/users", (*call).createUsers),
		r(http.MethodGet, "/api/v4/users/{id}", (*call).getUser),

		r(http.MethodGet, "/api/v4/leads/pipelines", (*call).listPipelines),
		r(http.MethodPost, "/api/v4/leads/pipelines", (*call).createPipelines),
		r(http.MethodGet, "/api/v4/leads/pipelines/{id}", (*call).getPipeline),
		r(http.MethodPatch, "/api/v4/leads/pipelines/{id}", (*call).patchPipeline),
		r(http.MethodDelete, "/api/v4/leads/pipelines/{id}", (*call).deletePipeline),
		r(http.MethodGet, "/api/v4/leads/pipelines/{pipeline_id}/statuses", (*call).listStatuses),
		r(http.MethodPost, "/api/v4/leads/pipelines/{pipeline_id}/statuses", (*call).createStatuses),
		r(http.MethodGet, "/api/v4/leads/pipelines/{pipeline_id}/statuses/{id}", (*call).getStatus),
		r(http.MethodPatch, "/api/v4/leads/pipelines/{pipeline_id}/statuses/{id}", (*call).patchStatus),
		r(http.MethodDelete, "/api/v4/leads/pipelines/{pipeline_id}/statuses/{id}", (*call).deleteStatus),

		r(http.MethodPost, "/api/v4/leads/complex", (*call).complexLeads),
		r(http.MethodGet, "/api/v4/leads", (*call).listLeads),
		r(http.MethodPost, "/api/v4/leads", (*call).createLeads),
		r(http.MethodPatch, "/api/v4/leads", (*call).patchLeads),
		r(http.MethodGet, "/api/v4/leads/{id}", (*call).getLead),
		r(http.MethodPatch, "/api/v4/leads/{id}", (*call).patchLeads),
		r(http.MethodGet, "/api/v4/contacts", (*call).listContacts),
		r(http.MethodPost, "/api/v4/contacts", (*call).createContacts),
		r(http.MethodPatch, "/api/v4/contacts", (*call).patchContacts),
		r(http.MethodGet, "/api/v4/contacts/{id}", (*call).getContact),
		r(http.MethodPatch, "/api/v4/contacts/{id}", (*call).patchContacts),

		r(http.MethodGet, "/api/v4/{entity}/custom_fields", onlyEntities(withFields, (*call).listFields)),
		r(http.MethodPost, "/api/v4/{entity}/custom_fields", onlyEntities(withFields, (*call).createFields)),
		r(http.MethodPatch, "/api/v4/{entity}/custom_fields", onlyEntities(withFields, (*call).patchFields)),
		r(http.MethodGet, "/api/v4/{entity}/custom_fields/{id}", onlyEntities(withFields, (*call).getField)),
		r(http.MethodPatch, "/api/v4/{entity}/custom_fields/{id}", onlyEntities(withFields, (*call).patchFields)),
		r(http.MethodDelete, "/api/v4/{entity}/custom_fields/{id}", onlyEntities(withFields, (*call).deleteField)),

		r(http.MethodGet, "/api/v4/{entity}/links", onlyEntities(linked, (*call).listLinks)),
		r(http.MethodPost, "/api/v4/{entity}/link", onlyEntities(linked, links(false))),
		r(http.MethodPost, "/api/v4/{entity}/unlink", onlyEntities(linked, links(true))),
		r(http.MethodGet, "/api/v4/{entity}/{id}/links", onlyEntities(linked, (*call).listLinks)),
		r(http.MethodPost, "/api/v4/{entity}/{id}/link", onlyEntities(linked, links(false))),
		r(http.MethodPost, "/api/v4/{entity}/{id}/unlink", onlyEntities(linked, links(true))),

		r(http.MethodGet, "/api/v4/{entity}/notes", onlyEntities(linked, (*call).listNotes)),
		r(http.MethodPost, "/api/v4/{entity}/notes", onlyEntities(linked, notesOf(false))),
		r(http.MethodPatch, "/api/v4/{entity}/notes", onlyEntities(linked, notesOf(true))),
		r(http.MethodGet, "/api/v4/{entity}/notes/{id}", onlyEntities(linked, (*call).getNote)),
		r(http.MethodPatch, "/api/v4/{entity}/notes/{id}", onlyEntities(linked, notesOf(true))),
		r(http.MethodGet, "/api/v4/{entity}/{entity_id}/notes", onlyEntities(linked, (*call).listNotes)),
		r(http.MethodPost, "/api/v4/{entity}/{entity_id}/notes", onlyEntities(linked, notesOf(false))),
		r(http.MethodGet, "/api/v4/{entity}/{entity_id}/notes/{id}", onlyEntities(linked, (*call).getNote)),
		r(http.MethodPatch, "/api/v4/{entity}/{entity_id}/notes/{id}", onlyEntities(linked, notesOf(true))),

		r(http.MethodGet, "/api/v4/{entity}/tags", onlyEntities(crm, (*call).listTags)),
		r(http.MethodPost, "/api/v4/{entity}/tags", onlyEntities(crm, (*call).createTags)),

		r(http.MethodGet, "/api/v4/webhooks", (*call).listWebhooks),
		r(http.MethodPost, "/api/v4/webhooks", (*call).subscribeWebhook),
		r(http.MethodDelete, "/api/v4/webhooks", (*call).unsubscribeWebhook),
	}
}

// Stats are the counters a test can read.
type Stats struct {
	Requests []RequestCount `json:"requests"`
	// RateLimited counts 429s served, injected ones included.
	RateLimited int `json:"rate_limited"`
	// Blocks counts sticky 403 blocks imposed.
	Blocks    int                `json:"blocks"`
	Integrity []AccountIntegrity `json:"integrity"`
}

// AccountIntegrity reports data problems our product must not cause.
type AccountIntegrity struct {
	AccountID int64 `json:"account_id"`
	// ContactsSharingExternalID counts contacts whose external-id field
	// value is shared with another contact.
	ContactsSharingExternalID int              `json:"contacts_sharing_external_id"`
	DuplicateExternalIDs      []DuplicateValue `json:"duplicate_external_ids"`
	LeadsWithoutContact       int              `json:"leads_without_contact"`
}

// DuplicateValue is one external-id value held by several contacts.
type DuplicateValue struct {
	FieldID    int64   `json:"field_id"`
	Value      string  `json:"value"`
	ContactIDs []int64 `json:"contact_ids"`
}

// Count is the number of requests to endpoint (method and route pattern,
// e.g. "POST /api/v4/leads") that ended with status.
func (st Stats) Count(endpoint string, status int) int {
	for _, r := range st.Requests {
		if r.Endpoint == endpoint && r.Status == status {
			return r.Count
		}
	}
	return 0
}

// Stats returns the request counters and the integrity checks.
func (s *Sandbox) Stats() Stats {
	reqs, limited, blocks := s.stats.snapshot()
	out := Stats{Requests: reqs, RateLimited: limited, Blocks: blocks, Integrity: []AccountIntegrity{}}
	if out.Requests == nil {
		out.Requests = []RequestCount{}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range sortedIDs(s.st.Accounts) {
		out.Integrity = append(out.Integrity, s.integrity(s.st.Accounts[id]))
	}
	return out
}

func (s *Sandbox) isExternalIDField(f *field) bool {
	if len(s.cfg.ExternalIDFields) == 0 {
		return strings.EqualFold(f.Code, "EXTERNAL_ID") || strings.Contains(strings.ToLower(f.Name), strings.ToLower("ID пациента"))
	}
	for _, name := range s.cfg.ExternalIDFields {
		if (f.Code != "" && strings.EqualFold(f.Code, name)) || strings.Contains(strings.ToLower(f.Name), strings.ToLower(name)) {
			return true
		}
	}
	return false
}

func (s *Sandbox) integrity(acc *account) AccountIntegrity {
	out := AccountIntegrity{AccountID: acc.ID, DuplicateExternalIDs: []DuplicateValue{}}
	type key struct {
		field int64
		value string
	}
	holders := map[key][]int64{}
	for _, f := range acc.Fields["contacts"] {
		if !s.isExternalIDField(f) {
			continue
		}
		for _, id := range sortedIDs(acc.Contacts) {
			seen := map[string]bool{}
			for _, fv := range acc.Contacts[id].Fields {
				if fv.FieldID != f.ID {
					continue
				}
				for _, v := range fv.Values {
					text := strings.TrimSpace(fieldValueText(v))
					if text != "" && !seen[text] {
						seen[text] = true
						holders[key{f.ID, text}] = append(holders[key{f.ID, text}], id)
					}
				}
			}
		}
	}
	sharing := map[int64]bool{}
	for k, ids := range holders {
		if len(ids) < 2 {
			continue
		}
		out.DuplicateExternalIDs = append(out.DuplicateExternalIDs, DuplicateValue{FieldID: k.field, Value: k.value, ContactIDs: ids})
		for _, id := range ids {
			sharing[id] = true
		}
	}
	sort.Slice(out.DuplicateExternalIDs, func(i, j int) bool {
		a, b := out.DuplicateExternalIDs[i], out.DuplicateExternalIDs[j]
		return a.FieldID < b.FieldID || (a.FieldID == b.FieldID && a.Value < b.Value)
	})
	out.ContactsSharingExternalID = len(sharing)
	for _, l := range acc.Leads {
		if len(l.Contacts) == 0 {
			out.LeadsWithoutContact++
		}
	}
	return out
}

// SetFaults replaces the fault-injection settings; the zero Faults turns
// injection off.
func (s *Sandbox) SetFaults(f Faults) {
	if f == (Faults{}) {
		s.faults.mu.Lock()
		s.faults.cfg, s.faults.rnd = f, nil
		s.faults.mu.Unlock()
		return
	}
	s.faults.set(f)
}

// ResetBlock lifts every sticky 403 block and refills the rate buckets, as
// amoCRM support would.
func (s *Sandbox) ResetBlock() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.st.Blocked = map[int64]time.Time{}
	s.limits.reset()
}

// AdvanceClock moves a ManualClock forward and delivers the webhooks that
// became due. It returns ErrNotManualClock for any other clock.
func (s *Sandbox) AdvanceClock(ctx context.Context, d time.Duration) error {
	mc, ok := s.clock.(*ManualClock)
	if !ok {
		return ErrNotManualClock
	}
	mc.Advance(d)
	s.DeliverWebhooks(ctx)
	return nil
}

// serveControl serves the JSON control API under /_sandbox/.
func (s *Sandbox) serveControl(w http.ResponseWriter, r *http.Request) {
	path := strings.Trim(strings.TrimPrefix(r.URL.Path, "/_sandbox"), "/")
	parts := strings.Split(path, "/")
	reply := func(status int, v any) { writeJSON(w, status, "application/json", v) }
	fail := func(err error) {
		status := http.StatusBadRequest
		if errors.Is(err, ErrAccountNotFound) {
			status = http.StatusNotFound
		}
		reply(status, map[string]any{"error": err.Error()})
	}
	decode := func(v any) bool {
		body, _ := io.ReadAll(io.LimitReader(r.Body, maxBody))
		if len(strings.TrimSpace(string(body))) == 0 {
			return true
		}
		if err := json.Unmarshal(body, v); err != nil {
			reply(http.StatusBadRequest, map[string]any{"error": "invalid JSON: " + err.Error()})
			return false
		}
		return true
	}
	var accountID int64
	if len(parts) >= 2 && parts[0] == "accounts" {
		accountID, _ = strconv.ParseInt(parts[1], 10, 64)
	}
	route := r.Method + " " + parts[0]
	if len(parts) >= 3 && parts[0] == "accounts" {
		route = r.Method + " accounts/" + strings.Join(parts[2:], "/")
	}
	switch route {
	case "POST accounts":
		var opts AccountOptions
		if !decode(&opts) {
			return
		}
		info, err := s.CreateAccount(opts)
		if err != nil {
			fail(err)
			return
		}
		reply(http.StatusCreated, info)
	case "GET accounts":
		s.mu.Lock()
		list := []map[string]any{}
		for _, id := range sortedIDs(s.st.Accounts) {
			a := s.st.Accounts[id]
			list = append(list, map[string]any{"account_id": a.ID, "subdomain": a.Subdomain, "paid": !a.Unpaid, "users": len(a.Users)})
		}
		s.mu.Unlock()
		reply(http.StatusOK, list)
	case "POST accounts/install":
		res, err := s.Install(r.Context(), accountID)
		if err != nil {
			fail(err)
			return
		}
		reply(http.StatusOK, res)
	case "POST accounts/uninstall":
		res, err := s.Uninstall(r.Context(), accountID)
		if err != nil {
			fail(err)
			return
		}
		reply(http.StatusOK, res)
	case "POST accounts/code":
		code, err := s.IssueCode(accountID)
		if err != nil {
			fail(err)
			return
		}
		reply(http.StatusOK, map[string]any{"code": code})
	case "POST accounts/widget-token":
		var opts WidgetTokenOptions
		if !decode(&opts) {
			return
		}
		token, err := s.WidgetToken(accountID, opts)
		if err != nil {
			fail(err)
			return
		}
		reply(http.StatusOK, map[string]any{"token": token})
	case "POST accounts/users":
		opts := UserOptions{IsActive: true}
		if !decode(&opts) {
			return
		}
		u, err := s.AddUser(accountID, opts)
		if err != nil {
			fail(err)
			return
		}
		reply(http.StatusCreated, u)
	case "POST accounts/state":
		var in struct {
			Paid *bool `json:"paid"`
		}
		if !decode(&in) {
			return
		}
		if in.Paid == nil {
			reply(http.StatusBadRequest, map[string]any{"error": "paid is required"})
			return
		}
		if err := s.SetPaid(accountID, *in.Paid); err != nil {
			fail(err)
			return
		}
		reply(http.StatusOK, map[string]any{"paid": *in.Paid})
	case "DELETE accounts/leads", "DELETE accounts/contacts":
		if len(parts) != 4 {
			reply(http.StatusNotFound, map[string]any{"error": "not found"})
			return
		}
		id, _ := strconv.ParseInt(parts[3], 10, 64)
		if err := s.deleteEntity(accountID, parts[2], id); err != nil {
			fail(err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	case "POST reset-block":
		s.ResetBlock()
		reply(http.StatusOK, map[string]any{"ok": true})
	case "GET stats":
		reply(http.StatusOK, s.Stats())
	case "GET deliveries":
		reply(http.StatusOK, s.Deliveries())
	case "POST faults":
		var f Faults
		if !decode(&f) {
			return
		}
		s.SetFaults(f)
		reply(http.StatusOK, f)
	case "POST clock":
		if len(parts) != 2 || parts[1] != "advance" {
			reply(http.StatusNotFound, map[string]any{"error": "not found"})
			return
		}
		var in struct {
			Seconds float64 `json:"seconds"`
		}
		if !decode(&in) {
			return
		}
		if err := s.AdvanceClock(r.Context(), time.Duration(in.Seconds*float64(time.Second))); err != nil {
			reply(http.StatusConflict, map[string]any{"error": err.Error()})
			return
		}
		reply(http.StatusOK, map[string]any{"now": s.clock.Now().UTC().Format(time.RFC3339)})
	default:
		reply(http.StatusNotFound, map[string]any{"error": "unknown control endpoint"})
	}
}
