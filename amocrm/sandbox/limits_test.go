package sandbox_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/svyazka/svyazka/amocrm/sandbox"
)

func TestRateLimitThenStickyBlock(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *sandbox.Config) { c.RateLimitPerSecond = 7; c.BlockAfterViolations = 3 })
	_, tk := e.account(sandbox.AccountOptions{})

	for i := range 7 {
		require.Equal(t, http.StatusOK, e.do(http.MethodGet, "/api/v4/account", tk.Access, nil).status, "request %d", i)
	}
	limited := e.do(http.MethodGet, "/api/v4/account", tk.Access, nil)
	require.Equal(t, http.StatusTooManyRequests, limited.status)
	require.Equal(t, "application/problem+json", limited.header.Get("Content-Type"))
	require.Equal(t, "Too Many Requests", limited.json(t)["title"])

	e.clock.Advance(time.Second)
	require.Equal(t, http.StatusOK, e.do(http.MethodGet, "/api/v4/account", tk.Access, nil).status, "the bucket refills at 7/s")

	for range 6 {
		e.do(http.MethodGet, "/api/v4/account", tk.Access, nil)
	}
	for range 3 {
		require.Equal(t, http.StatusTooManyRequests, e.do(http.MethodGet, "/api/v4/account", tk.Access, nil).status)
	}
	blocked := e.do(http.MethodGet, "/api/v4/account", tk.Access, nil)
	require.Equal(t, http.StatusForbidden, blocked.status)
	require.Contains(t, blocked.header.Get("Content-Type"), "text/html")
	require.Contains(t, string(blocked.body), "403 Forbidden")

	e.clock.Advance(time.Hour)
	require.Equal(t, http.StatusForbidden, e.do(http.MethodGet, "/api/v4/leads", tk.Access, nil).status, "the block is sticky")

	stats := e.sb.Stats()
	require.Equal(t, 4, stats.RateLimited)
	require.Equal(t, 1, stats.Blocks)
	require.Equal(t, 4, stats.Count("GET /api/v4/account", http.StatusTooManyRequests))

	require.Equal(t, http.StatusOK, e.do(http.MethodPost, "/_sandbox/reset-block", "", nil).status)
	require.Equal(t, http.StatusOK, e.do(http.MethodGet, "/api/v4/account", tk.Access, nil).status)
}

func TestFaultInjection(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		faults sandbox.Faults
		want   []int
	}{
		{name: "Off", faults: sandbox.Faults{}, want: []int{http.StatusOK}},
		{name: "All429", faults: sandbox.Faults{Rate429: 1, Seed: 1}, want: []int{http.StatusTooManyRequests}},
		{name: "All5xx", faults: sandbox.Faults{Rate5xx: 1, Seed: 1}, want: []int{500, 502, 503, 504}},
		{name: "Latency", faults: sandbox.Faults{LatencyMS: 1, Seed: 1}, want: []int{http.StatusOK}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			_, tk := e.account(sandbox.AccountOptions{})
			resp := e.do(http.MethodPost, "/_sandbox/faults", "", tc.faults)
			require.Equal(t, http.StatusOK, resp.status)
			for range 10 {
				got := e.do(http.MethodGet, "/api/v4/account", tk.Access, nil).status
				require.True(t, slices.Contains(tc.want, got), "status %d", got)
			}
		})
	}

	t.Run("DeterministicBySeed", func(t *testing.T) {
		t.Parallel()
		sequence := func() []int {
			e := newEnv(t)
			_, tk := e.account(sandbox.AccountOptions{})
			e.sb.SetFaults(sandbox.Faults{Rate429: 0.3, Rate5xx: 0.3, Seed: 42})
			var out []int
			for range 30 {
				out = append(out, e.do(http.MethodGet, "/api/v4/account", tk.Access, nil).status)
			}
			return out
		}
		first := sequence()
		require.Equal(t, first, sequence())
		require.Contains(t, first, http.StatusOK)
		require.True(t, slices.ContainsFunc(first, func(s int) bool { return s != http.StatusOK }))
	})

	t.Run("TimeoutHangsUntilClientGivesUp", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		_, tk := e.account(sandbox.AccountOptions{})
		e.sb.SetFaults(sandbox.Faults{RateTimeout: 1, Seed: 7})
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.srv.URL+"/api/v4/account", nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+tk.Access)
		_, err = http.DefaultClient.Do(req)
		require.ErrorIs(t, err, context.DeadlineExceeded)
	})
}

func TestBlockedHTMLOnUnknownRoutesToo(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *sandbox.Config) { c.RateLimitPerSecond = 1; c.BlockAfterViolations = 1 })
	_, tk := e.account(sandbox.AccountOptions{})
	statuses := []int{}
	for range 4 {
		statuses = append(statuses, e.do(http.MethodGet, "/api/v4/leads", tk.Access, nil).status)
	}
	require.Equal(t, []int{http.StatusNoContent, http.StatusTooManyRequests, http.StatusTooManyRequests, http.StatusForbidden}, statuses)
	resp := e.do(http.MethodPost, "/api/v4/contacts", tk.Access, `[{"name":"x"}]`)
	require.Equal(t, http.StatusForbidden, resp.status)
	require.True(t, strings.HasPrefix(string(resp.body), "<html>"))
}
