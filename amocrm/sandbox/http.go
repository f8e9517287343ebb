package sandbox

import (
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/svyazka/svyazka/amocrm"
)

const (
	contentHAL     = "application/hal+json"
	contentProblem = "application/problem+json"
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
	// parsed caches the URL's query (query).
	parsed url.Values
}

// query is the request's URL query, parsed once per request (lists test
// every record against it).
func (c *call) query() url.Values {
	if c.parsed == nil {
		c.parsed = c.r.URL.Query()
	}
	return c.parsed
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

// subdomainOf is the account subdomain a Host header names, by amoCRM's
// shared domain list; "" for any other host.
func subdomainOf(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	sub, _, err := amocrm.ParseAccountHost(host)
	if err != nil {
		return ""
	}
	return sub
}

func (s *Sandbox) accountBySubdomain(sub string) *account {
	for _, a := range s.st.Accounts {
		if a.Subdomain == sub {
			return a
		}
	}
	return nil
}
