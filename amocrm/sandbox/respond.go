package sandbox

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
)

// writeJSON answers v as JSON with the given status and content type.
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
	from = n
	if page-1 <= n/limit { // also keeps (page-1)*limit from overflowing
		from = min((page-1)*limit, n)
	}
	to = min(from+limit, n)
	return from, to, to < n
}
