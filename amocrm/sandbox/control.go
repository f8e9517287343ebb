package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

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
// injection off. The control API refuses rates outside 0…1 and a latency
// over MaxFaultLatency; this Go helper takes f as it is.
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
		body, err := readLimited(r.Body, maxControlBody)
		if err != nil {
			reply(http.StatusBadRequest, map[string]any{"error": "cannot read the body: " + err.Error()})
			return false
		}
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
		if err := f.validate(); err != nil {
			fail(err)
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
		if in.Seconds < 0 || in.Seconds > MaxClockAdvance.Seconds() {
			reply(http.StatusBadRequest, map[string]any{"error": fmt.Sprintf("seconds must be between 0 and %.0f, got %v", MaxClockAdvance.Seconds(), in.Seconds)})
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
