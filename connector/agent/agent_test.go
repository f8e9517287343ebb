package agent_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/svyazka/svyazka/connector/agent"
	"github.com/svyazka/svyazka/connector/agent/agenttest"
	"github.com/svyazka/svyazka/connector/protocol"
)

const testToken = "svz_test-token"

// harness is one connector installation: a state dir that outlives agents.
type harness struct {
	t       *testing.T
	dir     string
	src     *agenttest.Source
	backend *agenttest.Backend
	opts    agent.Options
	token   string
}

func newHarness(t *testing.T, records, pageSize int) *harness {
	t.Helper()
	b := agenttest.NewBackend(testToken)
	b.SetHeartbeatInterval(0)
	t.Cleanup(b.Close)
	return &harness{
		t: t, dir: t.TempDir(), src: agenttest.NewSource(records, pageSize), backend: b, token: testToken,
		opts: agent.Options{
			InstanceID: "7c0f3a3e-4a57-4b0c-9d5e-0c4f7e0d6a11", Version: "test",
			Poll: 5 * time.Millisecond, HeartbeatInterval: 20 * time.Millisecond, CheckInterval: 20 * time.Millisecond,
			RetryBase: time.Millisecond, RetryCap: 10 * time.Millisecond, UnauthorizedRetry: 10 * time.Millisecond,
			RequestTimeout: 5 * time.Second,
		},
	}
}

// running is one process lifetime of the agent.
type running struct {
	agent  *agent.Agent
	outbox *agent.Outbox
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

// start opens the outbox in the state dir and runs an agent on it.
func (h *harness) start() *running {
	h.t.Helper()
	ob, err := agent.OpenOutbox(filepath.Join(h.dir, "outbox.db"))
	require.NoError(h.t, err)
	client, err := agent.NewClient(h.backend.URL(), h.token, &http.Client{})
	require.NoError(h.t, err)
	a, err := agent.New(h.opts, h.src, ob, client, slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(h.t, err)
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{agent: a, outbox: ob, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- a.Run(ctx) }()
	h.t.Cleanup(r.stop)
	return r
}

// stop is a crash as far as the outbox is concerned: nothing is flushed,
// in-flight requests are abandoned, the file is closed.
func (r *running) stop() {
	r.once.Do(func() {
		r.cancel()
		<-r.done
		_ = r.agent.Close()
	})
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// requireExactlyOnce checks every source record was applied once and in
// source order.
func (h *harness) requireExactlyOnce() {
	h.t.Helper()
	applied, order := h.backend.Applied()
	want := h.src.Records()
	require.Len(h.t, applied, len(want))
	for i, rec := range want {
		key := agenttest.RecordKey(rec)
		require.Equal(h.t, 1, applied[key], "record %s applied %d times", key, applied[key])
		require.Equal(h.t, key, order[i], "order at %d", i)
	}
}

func (h *harness) waitDelivered(r *running) {
	h.t.Helper()
	eventually(h.t, "every record delivered", func() bool { return h.backend.AppliedCount() == h.src.Len() })
	eventually(h.t, "outbox empty", func() bool {
		s, err := r.outbox.Stats()
		return err == nil && s.PendingRecords == 0 && s.Batches == 0
	})
}

func TestDeliversEverythingOnceInOrder(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 1234, 100)
	r := h.start()
	h.waitDelivered(r)
	h.requireExactlyOnce()
	eventually(t, "heartbeat after the initial load", func() bool {
		for _, hb := range h.backend.Heartbeats() {
			if hb.InitialLoadDone && hb.Database == protocol.DatabaseConnected && hb.Pending == 0 {
				return true
			}
		}
		return false
	})
	hb := h.backend.Heartbeats()[0]
	require.Equal(t, h.opts.InstanceID, hb.InstanceID)
	require.Equal(t, "test", hb.ConnectorVersion)
	require.Equal(t, protocol.DatabaseConnected, hb.Database, "the first heartbeat waits for the first check")

	// Changes after the initial load flow in too.
	h.src.Add(7)
	h.waitDelivered(r)
	h.requireExactlyOnce()
	require.Equal(t, agent.DeliveryOK, r.agent.Status().Delivery)
}

func TestBackendOutageLosesNothing(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 3000, 250)
	h.backend.SetDown(true)
	r := h.start()
	// Reading goes on while the backend is down.
	eventually(t, "whole source in the outbox", func() bool {
		s, err := r.outbox.Stats()
		return err == nil && s.PendingRecords == 3000 && s.InitialLoadDone
	})
	eventually(t, "retrying status", func() bool { return r.agent.Status().Delivery == agent.DeliveryRetrying })
	require.Zero(t, h.backend.AppliedCount())
	h.backend.SetDown(false)
	h.waitDelivered(r)
	h.requireExactlyOnce()
	eventually(t, "ok status", func() bool { return r.agent.Status().Delivery == agent.DeliveryOK })
}

func TestRetriesRateLimitsServerErrorsAndLostAnswers(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 2600, 300)
	h.backend.Inject(
		agenttest.Fault{Status: http.StatusTooManyRequests, RetryAfter: "1"},
		agenttest.Fault{Status: http.StatusInternalServerError},
		agenttest.Fault{Status: http.StatusBadGateway},
		agenttest.Fault{Drop: true},
		agenttest.Fault{DropAfterApply: true},
		agenttest.Fault{Status: http.StatusServiceUnavailable},
		agenttest.Fault{DropAfterApply: true},
		agenttest.Fault{Status: http.StatusNotFound},
	)
	r := h.start()
	h.waitDelivered(r)
	h.requireExactlyOnce()
	// The batches whose answer was lost were resent with the same id.
	require.Equal(t, 2, h.backend.Duplicates())
}

func TestCrashesLoseNothingAndApplyNothingTwice(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 5000, 150)
	var (
		mu      sync.Mutex
		current *running
		batches int
	)
	crashEvery := 3
	h.backend.OnBatch(func(protocol.BatchResult) {
		mu.Lock()
		defer mu.Unlock()
		batches++
		if batches%crashEvery == 0 && current != nil {
			// The backend has committed; the connector dies before it
			// hears so. Cancel without waiting (we are inside the request).
			current.cancel()
		}
	})
	// Some crashes right after a Read returned, before its page is stored.
	h.src.OnRead(func(n int) {
		mu.Lock()
		defer mu.Unlock()
		if n%7 == 0 && current != nil {
			current.cancel()
		}
	})
	for restart := 0; restart < 200 && h.backend.AppliedCount() < h.src.Len(); restart++ {
		r := h.start()
		mu.Lock()
		current = r
		mu.Unlock()
		select {
		case <-r.done:
			r.done <- nil
		case <-time.After(20 * time.Second):
			t.Fatal("agent neither crashed nor finished")
		}
		mu.Lock()
		current = nil
		mu.Unlock()
		r.stop()
		if h.backend.AppliedCount() == h.src.Len() {
			break
		}
	}
	h.backend.OnBatch(nil)
	h.src.OnRead(nil)
	r := h.start()
	h.waitDelivered(r)
	h.requireExactlyOnce()
	require.Positive(t, h.backend.Duplicates(), "some batches must have been resent after a crash")
}

func TestRestartMidBatchResendsTheSameBatchID(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 40, 40)
	h.opts.RetryBase, h.opts.RetryCap = time.Hour, time.Hour // no retry inside this process
	h.backend.Inject(agenttest.Fault{DropAfterApply: true})
	r := h.start()
	eventually(t, "first batch applied", func() bool { return h.backend.AppliedCount() == 40 })
	eventually(t, "retrying", func() bool { return r.agent.Status().Delivery == agent.DeliveryRetrying })
	r.stop()

	ob, err := agent.OpenOutbox(filepath.Join(h.dir, "outbox.db"))
	require.NoError(t, err)
	head, err := ob.Head()
	require.NoError(t, err)
	require.True(t, h.backend.Seen(head.BatchID), "the batch kept its id across the restart")
	require.NoError(t, ob.Close())

	h.opts.RetryBase, h.opts.RetryCap = time.Millisecond, 10*time.Millisecond
	r = h.start()
	h.waitDelivered(r)
	h.requireExactlyOnce()
	require.Equal(t, 1, h.backend.Duplicates())
}

func TestTooLargeBatchesAreSplit(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 1500, 500)
	// A proxy in front of the backend with a smaller body limit.
	h.backend.SetMaxBody(15_000)
	r := h.start()
	h.waitDelivered(r)
	h.requireExactlyOnce()
	s, err := r.outbox.Stats()
	require.NoError(t, err)
	require.Zero(t, s.Rejected)
}

func TestRecordLargerThanBackendLimitIsParked(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 10, 100)
	h.backend.SetMaxBody(4_000)
	big := protocol.Record{Kind: protocol.KindPatient, SourceID: "big", Version: 1,
		Data: []byte(`{"note":"` + strings.Repeat("x", 5000) + `"}`)}
	h.src.AddRecords(big)
	h.src.Add(10)
	r := h.start()
	eventually(t, "the others delivered", func() bool { return h.backend.AppliedCount() == 20 })
	eventually(t, "big record parked", func() bool {
		s, err := r.outbox.Stats()
		return err == nil && s.Rejected == 1 && s.Batches == 0
	})
	applied, _ := h.backend.Applied()
	require.Zero(t, applied[agenttest.RecordKey(big)])
}

func TestMalformedBatchIsParkedAndQueueMovesOn(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 300, 100)
	h.backend.Inject(agenttest.Fault{Status: http.StatusBadRequest})
	r := h.start()
	eventually(t, "rest delivered", func() bool { return h.backend.AppliedCount() == 200 })
	eventually(t, "outbox drained", func() bool {
		s, err := r.outbox.Stats()
		return err == nil && s.Batches == 0 && s.Rejected == 1
	})
	applied, _ := h.backend.Applied()
	for _, rec := range h.src.Records()[:100] {
		require.Zero(t, applied[agenttest.RecordKey(rec)])
	}
}

func TestRecordErrorsDoNotBlockTheBatch(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 5, 100)
	h.src.AddRecords(protocol.Record{Kind: "invoice", SourceID: "1", Version: 1, Data: []byte(`{}`)})
	h.src.Add(5)
	r := h.start()
	eventually(t, "valid records applied", func() bool { return h.backend.AppliedCount() == 10 })
	eventually(t, "outbox empty", func() bool {
		s, err := r.outbox.Stats()
		return err == nil && s.Batches == 0 && s.Rejected == 0
	})
}

func TestRevokedTokenStopsDeliveryKeepsOutbox(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 700, 100)
	h.backend.Revoke(testToken, "Токен отозван в amoCRM")
	r := h.start()
	eventually(t, "unauthorized status", func() bool {
		st := r.agent.Status()
		return st.Delivery == agent.DeliveryUnauthorized && strings.Contains(st.DeliveryError, "Токен отозван")
	})
	eventually(t, "everything kept", func() bool {
		s, err := r.outbox.Stats()
		return err == nil && s.PendingRecords == 700
	})
	require.Zero(t, h.backend.AppliedCount())
}

type userErr struct{ msg string }

func (e userErr) Error() string       { return "mssql: login failed: " + e.msg }
func (e userErr) UserMessage() string { return e.msg }

func TestHeartbeatReportsDatabaseState(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 10, 100)
	h.opts.CheckInterval = time.Hour // only a failing Read may trigger a re-check
	h.src.SetCheckErr(userErr{"Неверный пароль пользователя readonly_user"})
	r := h.start()
	eventually(t, "disconnected heartbeat", func() bool {
		for _, hb := range h.backend.Heartbeats() {
			if hb.Database == protocol.DatabaseDisconnected && hb.Detail == "Неверный пароль пользователя readonly_user" {
				return true
			}
		}
		return false
	})
	h.src.SetCheckErr(nil)
	h.src.FailReads(errors.New("connection reset"))
	eventually(t, "connected after the re-check a failed Read triggers", func() bool {
		hbs := h.backend.Heartbeats()
		last := hbs[len(hbs)-1]
		return last.Database == protocol.DatabaseConnected && last.SourceVersion == "IDENT 1.0 (fake)"
	})
	h.waitDelivered(r)
}

func TestOutboxBoundPausesReadingNeverDrops(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 4000, 100)
	h.opts.MaxOutboxBytes = 30_000
	h.backend.SetDown(true)
	r := h.start()
	eventually(t, "outbox full", func() bool { return r.agent.Status().OutboxFull })
	s, err := r.outbox.Stats()
	require.NoError(t, err)
	require.Less(t, s.PendingRecords, int64(4000))
	// Bounded by the limit plus at most one page (~110 bytes a record).
	require.LessOrEqual(t, s.PendingBytes, int64(30_000+100*120))
	h.backend.SetDown(false)
	h.waitDelivered(r)
	h.requireExactlyOnce()
}

func TestUserMessage(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		err  error
		want string
	}{
		"Nil":         {nil, ""},
		"Plain":       {errors.New("База данных PZ не найдена"), "База данных PZ не найдена"},
		"UserMessage": {userErr{"Неверный пароль"}, "Неверный пароль"},
		"Wrapped":     {errors.Join(errors.New("x"), userErr{"Сервер недоступен"}), "Сервер недоступен"},
		"Long":        {errors.New(strings.Repeat("я", 400)), strings.Repeat("я", 300) + "…"},
	} {
		t.Run(name, func(t *testing.T) {
			require.Equal(t, tc.want, agent.UserMessage(tc.err))
		})
	}
}

func TestNewRequiresDependencies(t *testing.T) {
	t.Parallel()
	ob, err := agent.OpenOutbox(filepath.Join(t.TempDir(), "o.db"))
	require.NoError(t, err)
	defer ob.Close()
	c, err := agent.NewClient("http://x", "t", http.DefaultClient)
	require.NoError(t, err)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	src := agenttest.NewSource(0, 1)
	_, err = agent.New(agent.Options{}, src, ob, c, log)
	require.ErrorContains(t, err, "instance id")
	_, err = agent.New(agent.Options{InstanceID: "i"}, nil, ob, c, log)
	require.Error(t, err)
	_, err = agent.NewClient("", "t", http.DefaultClient)
	require.Error(t, err)
}
