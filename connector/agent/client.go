package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/svyazka/svyazka/connector/protocol"
)

// Client calls the backend's connector API with the connector token.
type Client struct {
	baseURL string
	token   string
	http    *http.Client
}

// NewClient returns a client for the backend at baseURL (scheme and host,
// e.g. https://app.example.ru). It fails on an empty URL, token or client.
func NewClient(baseURL, token string, hc *http.Client) (*Client, error) {
	switch {
	case baseURL == "":
		return nil, errors.New("agent: backend URL is required")
	case token == "":
		return nil, errors.New("agent: token is required")
	case hc == nil:
		return nil, errors.New("agent: http client is required")
	}
	return &Client{baseURL: strings.TrimRight(baseURL, "/"), token: token, http: hc}, nil
}

// HTTPError is a non-2xx answer of the backend. Code and Message come from
// the standard error body {"error":{"code","message"}} when there is one.
type HTTPError struct {
	Path       string
	Status     int
	Code       string
	Message    string
	RetryAfter time.Duration
}

func (e *HTTPError) Error() string {
	if e.Message != "" {
		return fmt.Sprintf("backend %s: %d %s: %s", e.Path, e.Status, e.Code, e.Message)
	}
	return fmt.Sprintf("backend %s: %d", e.Path, e.Status)
}

// maxResponseBytes bounds what is read of any answer.
const maxResponseBytes = 1 << 20

// Pair binds the token to this installation. Errors: *HTTPError (401 token
// unknown or revoked, 409 paired with another server), or a transport error.
func (c *Client) Pair(ctx context.Context, p protocol.Pair) (protocol.PairResult, error) {
	body, err := json.Marshal(p)
	if err != nil {
		return protocol.PairResult{}, err
	}
	var res protocol.PairResult
	return res, c.post(ctx, protocol.PathPair, body, &res)
}

// Heartbeat reports the connector's state.
func (c *Client) Heartbeat(ctx context.Context, hb protocol.Heartbeat) (protocol.HeartbeatResult, error) {
	body, err := json.Marshal(hb)
	if err != nil {
		return protocol.HeartbeatResult{}, err
	}
	var res protocol.HeartbeatResult
	return res, c.post(ctx, protocol.PathHeartbeat, body, &res)
}

// SendBatch posts body, the JSON of one protocol.Batch. A 2xx answer that is
// not a BatchResult for the same batch id is an error (a proxy page is not an
// acknowledgement).
func (c *Client) SendBatch(ctx context.Context, batchID string, body []byte) (protocol.BatchResult, error) {
	var res protocol.BatchResult
	if err := c.post(ctx, protocol.PathBatches, body, &res); err != nil {
		return res, err
	}
	if res.BatchID != batchID {
		return res, fmt.Errorf("backend %s: acknowledgement for batch %q, sent %q", protocol.PathBatches, res.BatchID, batchID)
	}
	return res, nil
}

func (c *Client) post(ctx context.Context, path string, body []byte, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.baseURL+path, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("backend %s: %w", path, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("backend %s: %w", path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return fmt.Errorf("backend %s: read answer: %w", path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		he := &HTTPError{Path: path, Status: resp.StatusCode, RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())}
		var eb struct {
			Error struct {
				Code    string `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		if json.Unmarshal(data, &eb) == nil {
			he.Code, he.Message = eb.Error.Code, eb.Error.Message
		}
		return he
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("backend %s: %d answer is not JSON: %w", path, resp.StatusCode, err)
	}
	return nil
}

// parseRetryAfter reads delay-seconds or an HTTP date; 0 when absent or bad.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
