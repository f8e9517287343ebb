package sandbox

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

func (c *call) now() int64 { return c.s.clock.Now().Unix() }

func (c *call) id(name string) int64 {
	v, _ := strconv.ParseInt(c.params[name], 10, 64)
	return v
}

// readBody reads the request body and answers 400 when it is empty or
// over maxBody.
func (c *call) readBody() ([]byte, bool) {
	body, err := readLimited(c.r.Body, maxBody)
	if errors.Is(err, errBodyTooLarge) {
		c.fail(http.StatusBadRequest, fmt.Sprintf("Request body exceeds %d bytes", maxBody))
		return nil, false
	}
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
			// The shared fields of contacts and leads sit in an embedded
			// recordInput, whose Go name encoding/json puts in the path.
			path = strings.TrimPrefix(te.Field, "recordInput.")
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
