package httpapi_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/svyazka/svyazka/backend/apperr"
	"github.com/svyazka/svyazka/backend/httpapi"
	"github.com/svyazka/svyazka/backend/metrics"
	"github.com/svyazka/svyazka/backend/redistest"
	"github.com/svyazka/svyazka/backend/store/storetest"
)

type redisPinger struct{ c *redis.Client }

func (p redisPinger) Ping(ctx context.Context) error { return p.c.Ping(ctx).Err() }

func newServer(t *testing.T, checks map[string]httpapi.Pinger) *httptest.Server {
	t.Helper()
	srv, err := httpapi.New(httpapi.Deps{
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
		Metrics: metrics.New(),
		Checks:  checks,
	}, httpapi.Options{MaxBodyBytes: 2048})
	require.NoError(t, err)
	e := srv.Echo()
	e.GET("/test/app-error", func(c echo.Context) error {
		return apperr.New(apperr.Conflict, "Токен уже выдан")
	})
	e.GET("/test/internal", func(c echo.Context) error {
		return io.ErrUnexpectedEOF // a plain error: internal, never shown
	})
	e.GET("/test/panic", func(c echo.Context) error { panic("boom") })
	e.POST("/test/echo", func(c echo.Context) error {
		b, err := io.ReadAll(c.Request().Body)
		if err != nil {
			return err
		}
		return c.String(http.StatusOK, string(b))
	})
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	return ts
}

func getJSON(t *testing.T, method, url string, body io.Reader) (int, map[string]any, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var out map[string]any
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	if len(raw) > 0 && strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		require.NoError(t, json.Unmarshal(raw, &out), string(raw))
	}
	return resp.StatusCode, out, resp.Header
}

func errorOf(t *testing.T, body map[string]any) (string, string) {
	t.Helper()
	e, ok := body["error"].(map[string]any)
	require.True(t, ok, "body has an error object: %v", body)
	return e["code"].(string), e["message"].(string)
}

func TestReadyz(t *testing.T) {
	t.Parallel()
	db := storetest.New(t)
	live := redis.NewClient(redistest.New(t))
	t.Cleanup(func() { _ = live.Close() })
	// Nothing listens on port 1: a real connection refusal, as when Redis is stopped.
	down := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1})
	t.Cleanup(func() { _ = down.Close() })

	t.Run("OK", func(t *testing.T) {
		ts := newServer(t, map[string]httpapi.Pinger{"postgres": db, "redis": redisPinger{live}})
		status, body, _ := getJSON(t, http.MethodGet, ts.URL+"/readyz", nil)
		require.Equal(t, http.StatusOK, status)
		require.Equal(t, "ok", body["status"])
	})
	t.Run("RedisDown", func(t *testing.T) {
		ts := newServer(t, map[string]httpapi.Pinger{"postgres": db, "redis": redisPinger{down}})
		status, body, _ := getJSON(t, http.MethodGet, ts.URL+"/readyz", nil)
		require.Equal(t, http.StatusServiceUnavailable, status)
		require.Equal(t, []any{"redis"}, body["failing"])
		require.Equal(t, "ok", body["checks"].(map[string]any)["postgres"])
		code, msg := errorOf(t, body)
		require.Equal(t, "unavailable", code)
		require.Contains(t, msg, "redis")
	})
	t.Run("Healthz", func(t *testing.T) {
		ts := newServer(t, map[string]httpapi.Pinger{"redis": redisPinger{down}})
		status, body, _ := getJSON(t, http.MethodGet, ts.URL+"/healthz", nil)
		require.Equal(t, http.StatusOK, status, "liveness does not depend on dependencies")
		require.Equal(t, "ok", body["status"])
	})
}

func TestErrors(t *testing.T) {
	t.Parallel()
	ts := newServer(t, map[string]httpapi.Pinger{})
	for name, tc := range map[string]struct {
		method, path string
		body         io.Reader
		status       int
		code         string
		message      string
	}{
		"AppError":      {http.MethodGet, "/test/app-error", nil, 409, "conflict", "Токен уже выдан"},
		"InternalError": {http.MethodGet, "/test/internal", nil, 500, "internal", "Внутренняя ошибка"},
		"Panic":         {http.MethodGet, "/test/panic", nil, 500, "internal", "Внутренняя ошибка"},
		"UnknownRoute":  {http.MethodGet, "/no/such/route", nil, 404, "not_found", "не найдены"},
		"BodyTooLarge":  {http.MethodPost, "/test/echo", strings.NewReader(strings.Repeat("x", 4096)), 413, "too_large", "слишком большое"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			status, body, hdr := getJSON(t, tc.method, ts.URL+tc.path, tc.body)
			require.Equal(t, tc.status, status)
			code, msg := errorOf(t, body)
			require.Equal(t, tc.code, code)
			require.Contains(t, msg, tc.message)
			require.NotContains(t, msg, "unexpected EOF", "internal details never reach the client")
			require.NotEmpty(t, hdr.Get("X-Request-Id"))
		})
	}
	t.Run("SmallBodyAccepted", func(t *testing.T) {
		t.Parallel()
		resp, err := http.Post(ts.URL+"/test/echo", "text/plain", strings.NewReader("hello"))
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Equal(t, "hello", string(b))
	})
}

func TestMetricsAndGzip(t *testing.T) {
	t.Parallel()
	ts := newServer(t, map[string]httpapi.Pinger{})
	_, _, _ = getJSON(t, http.MethodGet, ts.URL+"/test/app-error", nil)

	req, _ := http.NewRequest(http.MethodGet, ts.URL+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Contains(t, string(b), `svyazka_http_request_duration_seconds_count{method="GET",route="/test/app-error",status="409"} 1`)

	// Go's transport asks for gzip and transparently decodes; ask explicitly to see the header.
	req, _ = http.NewRequest(http.MethodGet, ts.URL+"/healthz", nil)
	req.Header.Set("Accept-Encoding", "gzip")
	resp2, err := http.DefaultTransport.RoundTrip(req)
	require.NoError(t, err)
	defer resp2.Body.Close()
	require.Equal(t, "gzip", resp2.Header.Get("Content-Encoding"))
}
