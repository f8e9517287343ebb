package sandbox

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

const (
	contentHAL     = "application/hal+json"
	contentProblem = "application/problem+json"
	maxBody        = 8 << 20
	maxPerPage     = 250
	defaultLimit   = 50
)

// route is one amoCRM endpoint. Wildcards in pattern are written {name};
// {id}-like wildcards ending in "id" match digits only, which keeps
// /leads/pipelines apart from /leads/{id}.
type route struct {
	method  string
	pattern string
	segs    []string
	h       func(*call)
	public  bool // no Bearer token needed
}

// call is one request on the amoCRM surface.
type call struct {
	s      *Sandbox
	w      http.ResponseWriter
	r      *http.Request
	params map[string]string
	acc    *account
	user   *user
	events []event
}

func (s *Sandbox) newMux() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/_sandbox/", s.serveControl)
	mux.HandleFunc("GET /{$}", s.viewIndex)
	mux.HandleFunc("GET /accounts/{id}", s.viewAccount)
	mux.HandleFunc("GET /accounts/{id}/settings/widget", s.viewWidgetSettings)
	mux.Handle("GET /static/", http.FileServerFS(staticFS))
	mux.HandleFunc("/api/", s.serveAPI)
	mux.HandleFunc("/oauth2/", s.serveAPI)
	return mux
}

func (s *Sandbox) match(method, path string) (*route, map[string]string, bool) {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	pathMatched := false
	for i := range s.routes {
		rt := &s.routes[i]
		if len(rt.segs) != len(parts) {
			continue
		}
		params := map[string]string{}
		ok := true
		for j, seg := range rt.segs {
			if strings.HasPrefix(seg, "{") {
				name := strings.Trim(seg, "{}")
				if strings.HasSuffix(name, "id") && !isDigits(parts[j]) {
					ok = false
					break
				}
				params[name] = parts[j]
				continue
			}
			if seg != parts[j] {
				ok = false
				break
			}
		}
		if !ok {
			continue
		}
		pathMatched = true
		if rt.method == method {
			return rt, params, true
		}
	}
	return nil, nil, pathMatched
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (w *statusRecorder) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusRecorder) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// serveAPI runs the gateway steps in amoCRM's order: faults, block, rate
// limit, authentication, payment, then the endpoint.
func (s *Sandbox) serveAPI(w http.ResponseWriter, r *http.Request) {
	rt, params, pathKnown := s.match(r.Method, r.URL.Path)
	endpoint := r.Method + " " + r.URL.Path
	if rt != nil {
		endpoint = rt.method + " " + rt.pattern
	}
	rec := &statusRecorder{ResponseWriter: w}
	defer func() { s.stats.request(endpoint, rec.status) }()
	w = rec

	if !s.applyFaults(w, r) {
		return
	}
	if rt == nil {
		if pathKnown {
			writeProblem(w, http.StatusMethodNotAllowed, "Method not allowed")
			return
		}
		writeProblem(w, http.StatusNotFound, "Not found")
		return
	}
	c := &call{s: s, w: w, r: r, params: params}

	s.mu.Lock()
	if rt.public {
		rt.h(c)
		s.mu.Unlock()
		s.hooks.enqueue(c.events)
		return
	}
	acc, g := s.identify(r)
	if acc != nil {
		if _, blocked := s.st.Blocked[acc.ID]; blocked {
			s.mu.Unlock()
			writeBlocked(w)
			return
		}
		if verdict := s.limits.take(acc.ID, s.clock.Now()); verdict != allow {
			if verdict == blockNow {
				s.st.Blocked[acc.ID] = s.clock.Now()
				s.stats.block()
			}
			s.mu.Unlock()
			s.stats.rateLimited()
			writeProblem(w, http.StatusTooManyRequests, "Too many requests")
			return
		}
	}
	if g == nil || acc == nil {
		s.mu.Unlock()
		writeProblem(w, http.StatusUnauthorized, "Invalid access token")
		return
	}
	if acc.Unpaid {
		s.mu.Unlock()
		writeProblem(w, http.StatusPaymentRequired, "Account is not paid")
		return
	}
	c.acc = acc
	c.user = acc.user(g.UserID)
	if ctxUser := r.Header.Get("X-Context-User-ID"); ctxUser != "" {
		id, _ := strconv.ParseInt(ctxUser, 10, 64)
		u := acc.user(id)
		granter := c.user
		if u == nil || u.IsFree || !u.IsActive || granter == nil || !granter.IsAdmin {
			s.mu.Unlock()
			writeProblem(w, http.StatusForbidden, "Context user is not allowed")
			return
		}
		c.user = u
	}
	if c.user == nil {
		// The granting user was removed; an admin grant keeps full access.
		c.user = acc.admin()
	}
	rt.h(c)
	s.mu.Unlock()
	s.hooks.enqueue(c.events)
}

// identify finds the account of a request from its Bearer token or Host
// header, and the token's grant when it is valid now.
func (s *Sandbox) identify(r *http.Request) (*account, *grant) {
	var hostAcc *account
	if sub := subdomainOf(r.Host); sub != "" {
		hostAcc = s.accountBySubdomain(sub)
	}
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || token == "" {
		return hostAcc, nil
	}
	g := s.st.Access[token]
	if g == nil {
		return hostAcc, nil
	}
	acc := s.st.Accounts[g.AccountID]
	if hostAcc != nil && acc != hostAcc {
		return hostAcc, nil
	}
	if g.Revoked || !s.clock.Now().Before(g.ExpiresAt) {
		return acc, nil
	}
	return acc, g
}

func subdomainOf(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.ToLower(host)
	for _, suffix := range []string{".amocrm.ru", ".kommo.com", ".amocrm.com"} {
		if sub, ok := strings.CutSuffix(host, suffix); ok && sub != "" && !strings.Contains(sub, ".") {
			return sub
		}
	}
	return ""
}

func (s *Sandbox) accountBySubdomain(sub string) *account {
	for _, a := range s.st.Accounts {
		if a.Subdomain == sub {
			return a
		}
	}
	return nil
}

func writeJSON(w http.ResponseWriter, status int, contentType string, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status, body = http.StatusInternalServerError, []byte(`{"title":"Internal Server Error","status":500}`)
	}
	w.Header().Set("Content-Type", contentType)
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func problem(status int, detail string) map[string]any {
	return map[string]any{
		"title":  http.StatusText(status),
		"type":   fmt.Sprintf("https://httpstatus.es/%d", status),
		"status": status,
		"detail": detail,
	}
}

func writeProblem(w http.ResponseWriter, status int, detail string) {
	writeJSON(w, status, contentProblem, problem(status, detail))
}

const blockedPage = `<html>
<head><title>403 Forbidden</title></head>
<body>
<center><h1>403 Forbidden</h1></center>
<hr><center>nginx</center>
</body>
</html>
`

func writeBlocked(w http.ResponseWriter) {
	writeHTML(w, http.StatusForbidden, blockedPage)
}

func writeHTML(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

// fieldError is one entry of validation-errors[].errors.
type fieldError struct {
	Code   string `json:"code"`
	Path   string `json:"path"`
	Detail string `json:"detail"`
}

type itemErrors struct {
	RequestID string       `json:"request_id"`
	Errors    []fieldError `json:"errors"`
}

const detailChoice = "The value you selected is not a valid choice."

func (c *call) ok(v any)              { writeJSON(c.w, http.StatusOK, contentHAL, v) }
func (c *call) created(v any)         { writeJSON(c.w, http.StatusCreated, contentHAL, v) }
func (c *call) noContent()            { c.w.WriteHeader(http.StatusNoContent) }
func (c *call) fail(st int, d string) { writeProblem(c.w, st, d) }

func (c *call) validation(errs []itemErrors) {
	body := problem(http.StatusBadRequest, "Request validation failed")
	body["validation-errors"] = errs
	writeJSON(c.w, http.StatusBadRequest, contentProblem, body)
}

func (c *call) requireAdmin() bool {
	if !c.user.IsAdmin {
		c.fail(http.StatusForbidden, "Access denied: the user is not an administrator")
		return false
	}
	return true
}

func (c *call) now() int64 { return c.s.clock.Now().Unix() }

func (c *call) id(name string) int64 {
	v, _ := strconv.ParseInt(c.params[name], 10, 64)
	return v
}

// readBody reads the request body and answers 400 when it is empty.
func (c *call) readBody() ([]byte, bool) {
	body, err := io.ReadAll(io.LimitReader(c.r.Body, maxBody))
	if err != nil || len(bytes.TrimSpace(body)) == 0 || string(bytes.TrimSpace(body)) == "null" {
		c.fail(http.StatusBadRequest, "Request data can not be empty")
		return nil, false
	}
	return body, true
}

// readBatch decodes a JSON array (or, where allowed, a single object) of
// items, enforcing the empty and 250-per-request rules.
func (c *call) readBatch(max int, allowObject bool) ([]json.RawMessage, bool) {
	body, ok := c.readBody()
	if !ok {
		return nil, false
	}
	var items []json.RawMessage
	trimmed := bytes.TrimSpace(body)
	if trimmed[0] == '{' && allowObject {
		items = []json.RawMessage{trimmed}
	} else if err := json.Unmarshal(body, &items); err != nil {
		c.fail(http.StatusBadRequest, "Request body must be a JSON array")
		return nil, false
	}
	if len(items) == 0 {
		c.fail(http.StatusBadRequest, "Request data can not be empty")
		return nil, false
	}
	if len(items) > max {
		if max == maxPerPage {
			c.fail(http.StatusUnprocessableEntity, "Limit 250 per page")
		} else {
			c.fail(http.StatusBadRequest, fmt.Sprintf("Limit %d per request", max))
		}
		return nil, false
	}
	return items, true
}

// decodeItem unmarshals one batch item; a type mismatch becomes InvalidType
// at the offending path.
func decodeItem(raw json.RawMessage, v any) *fieldError {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		path := ""
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			path = te.Field
		}
		return &fieldError{Code: "InvalidType", Path: path, Detail: "This value should be of type " + typeHint(err) + "."}
	}
	return nil
}

func typeHint(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		switch te.Type.Kind().String() {
		case "int", "int64":
			return "int"
		case "bool":
			return "bool"
		case "slice":
			return "array"
		case "struct", "map", "ptr":
			return "object"
		}
	}
	return "string"
}

// requestID reads an item's request_id (string or number), defaulting to
// the item's index.
func requestID(raw json.RawMessage, index int) string {
	var probe struct {
		RequestID any `json:"request_id"`
	}
	_ = json.Unmarshal(raw, &probe)
	switch v := probe.RequestID.(type) {
	case string:
		return v
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	return strconv.Itoa(index)
}

// paging reads page and limit; limit over 250 answers 422.
func (c *call) paging() (page, limit int, ok bool) {
	q := c.r.URL.Query()
	page, limit = 1, defaultLimit
	if v, err := strconv.Atoi(q.Get("page")); err == nil && v > 0 {
		page = v
	}
	if v, err := strconv.Atoi(q.Get("limit")); err == nil && v > 0 {
		limit = v
	}
	if limit > maxPerPage {
		c.fail(http.StatusUnprocessableEntity, "Limit 250 per page")
		return 0, 0, false
	}
	return page, limit, true
}

func (c *call) baseURL() string {
	scheme := "http"
	if c.r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + c.r.Host
}

func (c *call) href(path string) map[string]any {
	return map[string]any{"href": c.baseURL() + path}
}

func (c *call) selfLinks() map[string]any {
	return map[string]any{"self": c.href(c.r.URL.RequestURI())}
}

// pageLinks builds _links for page of a list, with next only when more
// data follows.
func (c *call) pageLinks(page, limit int, more bool) map[string]any {
	at := func(p int) map[string]any {
		q := c.r.URL.Query()
		q.Set("page", strconv.Itoa(p))
		q.Set("limit", strconv.Itoa(limit))
		return c.href(c.r.URL.Path + "?" + q.Encode())
	}
	links := map[string]any{"self": at(page)}
	if more {
		links["next"] = at(page + 1)
	}
	if page > 1 {
		links["first"] = at(1)
		links["prev"] = at(page - 1)
	}
	return links
}

// window returns the bounds of page within n items.
func window(n, page, limit int) (from, to int, more bool) {
	from = (page - 1) * limit
	if from > n {
		from = n
	}
	to = min(from+limit, n)
	return from, to, to < n
}

// queryInts reads filter[key][]=1&filter[key][]=2, filter[key]=1 and
// filter[key][0]=1 forms.
func queryInts(q url.Values, key string) []int64 {
	var out []int64
	for k, vs := range q {
		if k == key || k == key+"[]" || (strings.HasPrefix(k, key+"[") && isDigits(strings.Trim(strings.TrimPrefix(k, key), "[]"))) {
			for _, v := range vs {
				for _, part := range strings.Split(v, ",") {
					if id, err := strconv.ParseInt(strings.TrimSpace(part), 10, 64); err == nil {
						out = append(out, id)
					}
				}
			}
		}
	}
	return out
}

func withSet(r *http.Request) map[string]bool {
	out := map[string]bool{}
	for _, w := range strings.Split(r.URL.Query().Get("with"), ",") {
		if w = strings.TrimSpace(w); w != "" {
			out[w] = true
		}
	}
	return out
}
