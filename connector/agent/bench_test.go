package agent_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/svyazka/svyazka/connector/agent"
	"github.com/svyazka/svyazka/connector/agent/agenttest"
)

// BenchmarkDelivery reads 20,000 records (pages of 500) through the outbox to
// the fake backend over loopback HTTP and reports records/s, allocations and
// the peak bytes pending in the outbox.
func BenchmarkDelivery(b *testing.B) {
	const total = 20_000
	b.ReportAllocs()
	var (
		peak    int64
		elapsed time.Duration
	)
	for b.Loop() {
		b.StopTimer()
		backend := agenttest.NewBackend(testToken)
		backend.SetHeartbeatInterval(0)
		src := agenttest.NewSource(total, 500)
		ob, err := agent.OpenOutbox(filepath.Join(b.TempDir(), "outbox.db"))
		if err != nil {
			b.Fatal(err)
		}
		client, _ := agent.NewClient(backend.URL(), testToken, &http.Client{})
		a, err := agent.New(agent.Options{InstanceID: "bench", Poll: time.Millisecond, HeartbeatInterval: time.Hour, CheckInterval: time.Hour},
			src, ob, client, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		start := time.Now()
		b.StartTimer()
		go func() { done <- a.Run(ctx) }()
		for backend.AppliedCount() < total {
			if p, err := ob.PendingBytes(); err == nil && p > peak {
				peak = p
			}
			time.Sleep(200 * time.Microsecond)
		}
		b.StopTimer()
		elapsed += time.Since(start)
		cancel()
		<-done
		_ = a.Close()
		backend.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(total*b.N)/elapsed.Seconds(), "records/s")
	b.ReportMetric(float64(peak), "peak-outbox-bytes")
}
