package main

import (
	"bytes"
	"context"
	"errors"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/svyazka/svyazka/connector/agent"
	"github.com/svyazka/svyazka/connector/agent/agenttest"
	"github.com/svyazka/svyazka/connector/config"
	"github.com/svyazka/svyazka/connector/ident"
	"github.com/svyazka/svyazka/connector/pairing"
)

func noEnv(string) string { return "" }

func TestSimpleCommands(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, run(context.Background(), []string{"version"}, noEnv, &out, &out))
	require.Contains(t, out.String(), "svyazka-connector dev")
	out.Reset()
	require.NoError(t, run(context.Background(), []string{"help"}, noEnv, &out, &out))
	require.Contains(t, out.String(), "install")
	require.ErrorIs(t, run(context.Background(), nil, noEnv, &out, &out), errUsage)
	require.ErrorIs(t, run(context.Background(), []string{"frobnicate"}, noEnv, &out, &out), errUsage)
	require.ErrorIs(t, run(context.Background(), []string{"run", "--nope"}, noEnv, &out, &out), errUsage)
}

func TestServiceCommandsOnlyOnWindows(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("real service manager")
	}
	var out bytes.Buffer
	require.ErrorIs(t, run(context.Background(), []string{"install"}, noEnv, &out, &out), errOnlyWindows)
	require.ErrorIs(t, run(context.Background(), []string{"uninstall"}, noEnv, &out, &out), errOnlyWindows)
}

func TestRunNeedsConfiguration(t *testing.T) {
	dir := t.TempDir()
	var out bytes.Buffer
	err := run(context.Background(), []string{"run", "--state-dir", dir}, noEnv, &out, &out)
	require.ErrorIs(t, err, config.ErrIncomplete)
	require.ErrorContains(t, err, "--backend, --token, --source")
	err = run(context.Background(), []string{"run", "--state-dir", dir, "--backend", "https://x.ru", "--token", "t", "--source", "s", "--since", "2024-13-01"}, noEnv, &out, &out)
	require.ErrorContains(t, err, "YYYY-MM-DD")
}

func TestPairRefusesNonLoopback(t *testing.T) {
	var out bytes.Buffer
	err := run(context.Background(), []string{"pair", "--listen", "0.0.0.0:8765", "--state-dir", t.TempDir()}, noEnv, &out, &out)
	require.ErrorIs(t, err, pairing.ErrNotLoopback)
}

// TestRunSavesFlagsAndDelivers runs the whole command twice against a fake
// backend: the second run is given only --state-dir (and an override).
func TestRunSavesFlagsAndDelivers(t *testing.T) {
	const token = "svz_cmd-test"
	backend := agenttest.NewBackend(token)
	defer backend.Close()
	src := agenttest.NewSource(1200, 300)
	var (
		mu       sync.Mutex
		gotDSN   string
		gotSince time.Time
	)
	saved := openSource
	openSource = func(_ context.Context, dsn string, since time.Time) (agent.Source, error) {
		mu.Lock()
		defer mu.Unlock()
		gotDSN, gotSince = dsn, since
		return keepOpen{src}, nil
	}
	defer func() { openSource = saved }()

	dir := t.TempDir()
	dsn := "sqlserver://readonly_user:secret@127.0.0.1:15000?database=PZ"
	runUntil := func(args []string, delivered int) {
		t.Helper()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var logs bytes.Buffer
		done := make(chan error, 1)
		go func() { done <- run(ctx, args, noEnv, &logs, &logs) }()
		deadline := time.Now().Add(20 * time.Second)
		for backend.AppliedCount() < delivered {
			select {
			case err := <-done:
				t.Fatalf("run ended early: %v\n%s", err, logs.String())
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("timed out; logs:\n%s", logs.String())
			}
			time.Sleep(5 * time.Millisecond)
		}
		cancel()
		require.NoError(t, <-done)
		require.NotContains(t, logs.String(), "secret", "secrets never reach the logs")
		require.NotContains(t, logs.String(), token)
	}
	runUntil([]string{"run", "--backend", backend.URL(), "--token", token, "--source", dsn,
		"--state-dir", dir, "--since", "2024-02-01", "--poll", "100ms"}, 1200)
	mu.Lock()
	require.Equal(t, dsn, gotDSN)
	mu.Unlock()
	require.Equal(t, time.Date(2024, 2, 1, 0, 0, 0, 0, time.UTC), gotSince)

	src.Add(34)
	runUntil([]string{"run", "--state-dir", dir, "--poll", "200ms"}, 1234)
	c, err := config.Load(dir)
	require.NoError(t, err)
	require.Equal(t, "200ms", c.Poll)
	require.Equal(t, token, c.Token)
	require.Equal(t, dsn, c.SourceDSN)
	require.Equal(t, "2024-02-01", c.Since)
	require.Len(t, c.InstanceID, 36)
	applied, _ := backend.Applied()
	for k, n := range applied {
		require.Equal(t, 1, n, k)
	}
	hbs := backend.Heartbeats()
	require.NotEmpty(t, hbs)
	require.Equal(t, c.InstanceID, hbs[0].InstanceID)
}

func TestOpenSourceIsTheIdentReader(t *testing.T) {
	_, err := openSource(context.Background(), "sqlserver://readonly_user:pw@127.0.0.1:1?database=PZ", time.Time{})
	require.ErrorIs(t, err, ident.ErrUnreachable, "a real DSN reaches the IDENT reader")
	require.NotContains(t, err.Error(), "pw@", "the password never shows")
	require.False(t, errors.Is(err, context.Canceled))
}

// keepOpen lets one fake database outlive the first run's Close.
type keepOpen struct{ *agenttest.Source }

func (keepOpen) Close() error { return nil }
