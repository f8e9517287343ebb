package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Delivery rules documented by amoCRM.
const (
	webhookTimeout      = 2 * time.Second
	disableWindow       = 2 * time.Hour
	disableAfterInvalid = 100
)

// retryDelays[i] is the wait before attempt i+2.
var retryDelays = []time.Duration{5 * time.Minute, 15 * time.Minute, 15 * time.Minute, time.Hour}

var webhookEvents = func() []string {
	var out []string
	for _, action := range []string{"add_", "update_", "delete_", "responsible_"} {
		for _, e := range []string{"lead", "contact", "company", "customer", "task"} {
			out = append(out, action+e)
		}
	}
	return append(out, "restore_lead", "restore_contact", "restore_company", "status_lead",
		"note_lead", "note_contact", "note_company", "note_customer", "add_talk", "update_talk", "add_chat_template_review")
}()

// event is one change to report: entity "leads"|"contacts", action
// "add"|"update"|"delete"|"status"|"responsible"|"note".
type event struct {
	accountID int64
	subdomain string
	entity    string
	action    string
	fields    map[string]string
}

func (e event) setting() string {
	singular := strings.TrimSuffix(e.entity, "s")
	if e.action == "status" {
		return "status_lead"
	}
	return e.action + "_" + singular
}

func (c *call) emit(entity, action string, fields map[string]string) {
	c.events = append(c.events, event{accountID: c.acc.ID, subdomain: c.acc.Subdomain, entity: entity, action: action, fields: fields})
}

func (c *call) addCustomFields(m map[string]string, entity string, values []fieldValue) {
	for i, fv := range values {
		f := c.acc.field(entity, fv.FieldID)
		if f == nil {
			continue
		}
		prefix := "custom_fields][" + strconv.Itoa(i) + "]["
		m[prefix+"id"] = strconv.FormatInt(f.ID, 10)
		m[prefix+"name"] = f.Name
		if f.Code != "" {
			m[prefix+"code"] = f.Code
		}
		for j, v := range fv.Values {
			vp := prefix + "values][" + strconv.Itoa(j) + "]["
			m[vp+"value"] = fieldValueText(v)
			if v.EnumID != 0 {
				m[vp+"enum"] = strconv.FormatInt(v.EnumID, 10)
			}
		}
	}
}

func (c *call) leadForm(l *lead, old *lead) map[string]string {
	id := func(v int64) string { return strconv.FormatInt(v, 10) }
	m := map[string]string{
		"id": id(l.ID), "name": l.Name, "status_id": id(l.StatusID), "pipeline_id": id(l.PipelineID),
		"price": id(l.Price), "responsible_user_id": id(l.ResponsibleUserID),
		"last_modified": id(l.UpdatedAt), "modified_user_id": id(l.UpdatedBy),
		"created_user_id": id(l.CreatedBy), "date_create": id(l.CreatedAt), "account_id": id(c.acc.ID),
	}
	if old != nil {
		m["old_status_id"] = id(old.StatusID)
		m["old_pipeline_id"] = id(old.PipelineID)
		m["old_responsible_user_id"] = id(old.ResponsibleUserID)
	}
	c.addCustomFields(m, "leads", l.Fields)
	return m
}

func (c *call) contactForm(ct *contact) map[string]string {
	id := func(v int64) string { return strconv.FormatInt(v, 10) }
	m := map[string]string{
		"id": id(ct.ID), "name": ct.Name, "responsible_user_id": id(ct.ResponsibleUserID),
		"date_create": id(ct.CreatedAt), "last_modified": id(ct.UpdatedAt),
		"created_user_id": id(ct.CreatedBy), "modified_user_id": id(ct.UpdatedBy),
		"account_id": id(c.acc.ID), "type": "contact",
	}
	c.addCustomFields(m, "contacts", ct.Fields)
	return m
}

func (c *call) noteForm(n *note) map[string]string {
	id := func(v int64) string { return strconv.FormatInt(v, 10) }
	elementType := "2"
	if n.EntityType == "contacts" {
		elementType = "1"
	}
	text, _ := n.Params["text"].(string)
	return map[string]string{
		"note][id": id(n.ID), "note][note_type": n.NoteType, "note][text": text,
		"note][element_id": id(n.EntityID), "note][element_type": elementType,
		"note][created_by": id(n.CreatedBy), "note][date_create": id(n.CreatedAt), "note][account_id": id(c.acc.ID),
	}
}

// ---- management ----

func (c *call) renderWebhook(w *webhook) map[string]any {
	return map[string]any{
		"id": w.ID, "destination": w.Destination, "created_at": w.CreatedAt, "updated_at": w.UpdatedAt,
		"account_id": c.acc.ID, "created_by": w.CreatedBy, "sort": w.Sort, "disabled": w.Disabled,
		"settings": w.Settings,
	}
}

func (c *call) listWebhooks() {
	if !c.requireAdmin() {
		return
	}
	dest := c.r.URL.Query().Get("filter[destination]")
	out := []map[string]any{}
	for _, w := range c.acc.Webhooks {
		if dest == "" || w.Destination == dest {
			out = append(out, c.renderWebhook(w))
		}
	}
	if len(out) == 0 {
		c.noContent()
		return
	}
	c.ok(map[string]any{"_total_items": len(out), "_links": c.selfLinks(), "_embedded": map[string]any{"webhooks": out}})
}

// subscribeWebhook serves POST /api/v4/webhooks: upsert by destination,
// ≤100 per account, 201.
func (c *call) subscribeWebhook() {
	if !c.requireAdmin() {
		return
	}
	body, ok := c.readBody()
	if !ok {
		return
	}
	var in struct {
		Destination string   `json:"destination"`
		Settings    []string `json:"settings"`
		Sort        *int     `json:"sort"`
	}
	if fe := decodeItem(body, &in); fe != nil {
		c.validation([]itemErrors{{RequestID: "0", Errors: []fieldError{*fe}}})
		return
	}
	var errs []fieldError
	if u, err := url.Parse(in.Destination); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fieldError{Code: "InvalidUrl", Path: "destination", Detail: "This value is not a valid URL."})
	}
	if len(in.Settings) == 0 {
		errs = append(errs, fieldError{Code: "NotBlank", Path: "settings", Detail: "This value should not be blank."})
	}
	for i, s := range in.Settings {
		if !slices.Contains(webhookEvents, s) {
			errs = append(errs, fieldError{Code: "NotSupportedChoice", Path: "settings." + strconv.Itoa(i), Detail: detailChoice})
		}
	}
	idx := slices.IndexFunc(c.acc.Webhooks, func(w *webhook) bool { return w.Destination == in.Destination })
	if idx < 0 && len(c.acc.Webhooks) >= maxWebhooks {
		errs = append(errs, fieldError{Code: "LimitExceeded", Path: "destination", Detail: "An account can hold at most 100 webhooks."})
	}
	if errs != nil {
		c.validation([]itemErrors{{RequestID: "0", Errors: errs}})
		return
	}
	now := c.now()
	var w *webhook
	if idx >= 0 {
		w = c.acc.Webhooks[idx]
	} else {
		w = &webhook{ID: c.s.st.nextID(), Destination: in.Destination, CreatedBy: c.user.ID, CreatedAt: now, Sort: len(c.acc.Webhooks) + 1}
		c.acc.Webhooks = append(c.acc.Webhooks, w)
	}
	w.Settings = slices.Clone(in.Settings)
	if in.Sort != nil {
		w.Sort = *in.Sort
	}
	w.Disabled = false
	w.Failures = nil
	w.UpdatedAt = now
	c.created(c.renderWebhook(w))
}

func (c *call) unsubscribeWebhook() {
	if !c.requireAdmin() {
		return
	}
	body, ok := c.readBody()
	if !ok {
		return
	}
	var in struct {
		Destination string `json:"destination"`
	}
	_ = json.Unmarshal(body, &in)
	idx := slices.IndexFunc(c.acc.Webhooks, func(w *webhook) bool { return w.Destination == in.Destination })
	if idx < 0 {
		c.fail(http.StatusNotFound, "Webhook not found")
		return
	}
	c.acc.Webhooks = slices.Delete(c.acc.Webhooks, idx, idx+1)
	c.noContent()
}

// ---- delivery ----

type delivery struct {
	accountID int64
	webhookID int64
	url       string
	body      string
	attempt   int // attempts made so far
	due       time.Time
	inFlight  bool
}

// Delivery is one webhook POST the sandbox made, for tests to inspect.
type Delivery struct {
	AccountID   int64     `json:"account_id"`
	Destination string    `json:"destination"`
	Attempt     int       `json:"attempt"`
	At          time.Time `json:"at"`
	Status      int       `json:"status"`
	Error       string    `json:"error,omitempty"`
}

type dispatcher struct {
	s    *Sandbox
	wake chan struct{}

	mu      sync.Mutex
	queue   []*delivery
	log     []Delivery
	running sync.Mutex
}

func newDispatcher(s *Sandbox) *dispatcher {
	return &dispatcher{s: s, wake: make(chan struct{}, 1)}
}

// enqueue groups events by account and webhook into one form POST per
// webhook, due now.
func (d *dispatcher) enqueue(events []event) {
	if len(events) == 0 {
		return
	}
	s := d.s
	s.mu.Lock()
	now := s.clock.Now()
	var batch []*delivery
	byAccount := map[int64][]event{}
	for _, e := range events {
		byAccount[e.accountID] = append(byAccount[e.accountID], e)
	}
	for accID, evs := range byAccount {
		acc := s.st.Accounts[accID]
		if acc == nil {
			continue
		}
		for _, w := range acc.Webhooks {
			if w.Disabled {
				continue
			}
			form := url.Values{}
			counts := map[string]int{}
			for _, e := range evs {
				if !slices.Contains(w.Settings, e.setting()) {
					continue
				}
				section := e.entity + "[" + e.action + "]"
				prefix := section + "[" + strconv.Itoa(counts[section]) + "]["
				counts[section]++
				for k, v := range e.fields {
					form.Set(prefix+k+"]", v)
				}
			}
			if len(form) == 0 {
				continue
			}
			form.Set("account[subdomain]", acc.Subdomain)
			form.Set("account[id]", strconv.FormatInt(acc.ID, 10))
			batch = append(batch, &delivery{accountID: accID, webhookID: w.ID, url: w.Destination, body: form.Encode(), due: now})
		}
	}
	s.mu.Unlock()
	if len(batch) == 0 {
		return
	}
	d.mu.Lock()
	d.queue = append(d.queue, batch...)
	d.mu.Unlock()
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// deliverDue sends every delivery whose time has come, one pass.
func (d *dispatcher) deliverDue(ctx context.Context) {
	d.running.Lock()
	defer d.running.Unlock()
	now := d.s.clock.Now()
	d.mu.Lock()
	var due []*delivery
	for _, dl := range d.queue {
		if !dl.inFlight && !dl.due.After(now) {
			dl.inFlight = true
			due = append(due, dl)
		}
	}
	d.mu.Unlock()
	sort.SliceStable(due, func(i, j int) bool { return due[i].due.Before(due[j].due) })
	for _, dl := range due {
		d.attempt(ctx, dl)
	}
}

func (d *dispatcher) attempt(ctx context.Context, dl *delivery) {
	s := d.s
	dl.attempt++
	status, errText := d.post(ctx, dl)
	at := s.clock.Now()
	valid := status >= 100 && status < 300

	d.mu.Lock()
	d.log = append(d.log, Delivery{AccountID: dl.accountID, Destination: dl.url, Attempt: dl.attempt, At: at, Status: status, Error: errText})
	dl.inFlight = false
	retry := !valid && dl.attempt < 1+len(retryDelays)
	// Attempts 4 and 5 follow only a 499 or 5xx (timeouts count as 499).
	if retry && dl.attempt >= 3 && status != 499 && status < 500 {
		retry = false
	}
	if retry {
		dl.due = at.Add(retryDelays[dl.attempt-1])
	} else {
		d.queue = slices.DeleteFunc(d.queue, func(x *delivery) bool { return x == dl })
	}
	d.mu.Unlock()

	s.mu.Lock()
	defer s.mu.Unlock()
	acc := s.st.Accounts[dl.accountID]
	if acc == nil {
		return
	}
	for _, w := range acc.Webhooks {
		if w.ID != dl.webhookID {
			continue
		}
		if valid {
			return
		}
		kept := w.Failures[:0]
		for _, t := range w.Failures {
			if at.Sub(t) < disableWindow {
				kept = append(kept, t)
			}
		}
		w.Failures = append(kept, at)
		if len(w.Failures) > disableAfterInvalid {
			w.Disabled = true
			s.log.Warn("sandbox: webhook auto-disabled", "account_id", acc.ID, "destination", w.Destination)
		}
	}
}

// post sends one attempt; a timeout reads as 499, a transport error as 0.
func (d *dispatcher) post(ctx context.Context, dl *delivery) (int, string) {
	ctx, cancel := context.WithTimeout(ctx, webhookTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, dl.url, strings.NewReader(dl.body))
	if err != nil {
		return 0, err.Error()
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("User-Agent", "amoCRM-Webhooks/3.0")
	resp, err := d.s.client.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return 499, "timeout after 2s"
		}
		return 0, err.Error()
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	_ = resp.Body.Close()
	if resp.StatusCode >= 300 {
		return resp.StatusCode, fmt.Sprintf("status %d", resp.StatusCode)
	}
	return resp.StatusCode, ""
}

// DeliverWebhooks sends every webhook delivery due by the sandbox clock
// now and returns when they are done; tests call it after AdvanceClock.
func (s *Sandbox) DeliverWebhooks(ctx context.Context) { s.hooks.deliverDue(ctx) }

// Deliveries returns every webhook attempt made so far, oldest first.
func (s *Sandbox) Deliveries() []Delivery {
	s.hooks.mu.Lock()
	defer s.hooks.mu.Unlock()
	return slices.Clone(s.hooks.log)
}

// PendingDeliveries is how many webhook deliveries wait for a retry or a
// first attempt.
func (s *Sandbox) PendingDeliveries() int {
	s.hooks.mu.Lock()
	defer s.hooks.mu.Unlock()
	return len(s.hooks.queue)
}
