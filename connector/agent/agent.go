// Package agent is the engine of svyazka-connector: it reads changes from a
// Source, keeps them in a durable outbox and delivers them to the backend.
//
// What it promises:
//   - A page returned by Source.Read is stored in one bbolt transaction with the
//     cursor after it (fsync on commit). A crash before the commit re-reads the
//     page; after it, the page is never read again. Nothing read is lost.
//   - Records are grouped into batches of at most protocol.MaxRecordsPerBatch
//     records and protocol.MaxBatchBytes bytes. A batch gets its UUID when it
//     is stored, so every resend carries the same id (the backend dedupes).
//   - Batches are delivered one at a time, oldest first. A batch leaves the
//     outbox only when the backend answered 2xx with a BatchResult for it.
//   - Network errors, 429 (Retry-After honoured), 5xx and other unexpected
//     answers are retried with exponential backoff and jitter, capped at
//     Options.RetryCap; an outage of hours only makes the outbox grow.
//   - 401 stops delivery (status DeliveryUnauthorized) and probes again every
//     Options.UnauthorizedRetry; the outbox is kept.
//   - 413 splits the batch in halves (new ids, same place in the queue); a
//     single record still refused, and any batch answered 400 or 422, is moved
//     to the "rejected" bucket and logged, and the queue goes on.
//   - Options.MaxOutboxBytes bounds the pending batches: above it reading
//     pauses (status OutboxFull) until delivery makes room; nothing is dropped.
//     The bound is checked before each read, so it can be passed by one page.
//   - Reading goes on while the backend is down; delivery goes on while the
//     database is down.
//   - A heartbeat goes every Options.HeartbeatInterval (or what the backend
//     asks for) and at once after a change of the database state, the initial
//     load or the delivery state. The database is re-checked every
//     Options.CheckInterval and whenever Read fails.
package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/svyazka/svyazka/connector/protocol"
)

// Options tune the agent. Zero values take the defaults named on each field.
type Options struct {
	// InstanceID is this installation's UUID (required).
	InstanceID string
	// Hostname is this server's name, sent in heartbeats.
	Hostname string
	// Version is the connector's version, sent in heartbeats.
	Version string
	// Poll is the pause after the source reported it is caught up (5s).
	Poll time.Duration
	// HeartbeatInterval is the default period of heartbeats (1m).
	HeartbeatInterval time.Duration
	// CheckInterval is how often the database is re-checked (1m).
	CheckInterval time.Duration
	// RetryBase and RetryCap bound the exponential backoff (1s, 1m).
	RetryBase, RetryCap time.Duration
	// UnauthorizedRetry is the pause after a 401 before probing again (10m).
	UnauthorizedRetry time.Duration
	// RequestTimeout bounds one request to the backend or Check (1m).
	RequestTimeout time.Duration
	// MaxOutboxBytes bounds the bytes of pending batches; 0 means
	// DefaultMaxOutboxBytes, a negative value means no bound.
	MaxOutboxBytes int64
}

// DefaultMaxOutboxBytes is the default bound of pending batches (1 GiB,
// several full IDENT databases).
const DefaultMaxOutboxBytes = 1 << 30

func (o *Options) defaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.Poll, 5*time.Second)
	def(&o.HeartbeatInterval, time.Minute)
	def(&o.CheckInterval, time.Minute)
	def(&o.RetryBase, time.Second)
	def(&o.RetryCap, time.Minute)
	def(&o.UnauthorizedRetry, 10*time.Minute)
	def(&o.RequestTimeout, time.Minute)
	if o.MaxOutboxBytes == 0 {
		o.MaxOutboxBytes = DefaultMaxOutboxBytes
	}
}

// DeliveryState says whether batches reach the backend.
type DeliveryState string

// Delivery states.
const (
	DeliveryOK           DeliveryState = "ok"
	DeliveryRetrying     DeliveryState = "retrying"
	DeliveryUnauthorized DeliveryState = "unauthorized"
)

// Status is a snapshot of what the agent knows.
type Status struct {
	Database        protocol.DatabaseState
	Detail          string
	SourceVersion   string
	InitialLoadDone bool
	Delivery        DeliveryState
	// DeliveryError is the last delivery failure (for logs and the console).
	DeliveryError string
	OutboxFull    bool
	// Delivered counts records acknowledged since the agent started.
	Delivered int64
}

// Agent moves records from a Source to the backend. Create it with New, run it
// with Run, and Close it after Run returned.
type Agent struct {
	opts   Options
	src    Source
	outbox *Outbox
	client *Client
	log    *slog.Logger

	wakeDeliver   chan struct{}
	wakeRead      chan struct{}
	wakeHeartbeat chan struct{}
	wakeCheck     chan struct{}
	// firstCheck is closed after the first database check, so the first
	// heartbeat reports a real state, not "not checked yet".
	firstCheck     chan struct{}
	firstCheckOnce sync.Once

	mu     sync.Mutex
	status Status
}

// New returns an agent. It fails on a nil dependency or a missing instance id.
func New(opts Options, src Source, outbox *Outbox, client *Client, log *slog.Logger) (*Agent, error) {
	switch {
	case src == nil:
		return nil, errors.New("agent: source is required")
	case outbox == nil:
		return nil, errors.New("agent: outbox is required")
	case client == nil:
		return nil, errors.New("agent: client is required")
	case log == nil:
		return nil, errors.New("agent: logger is required")
	case opts.InstanceID == "":
		return nil, errors.New("agent: instance id is required")
	}
	opts.defaults()
	stats, err := outbox.Stats()
	if err != nil {
		return nil, fmt.Errorf("agent: read outbox: %w", err)
	}
	return &Agent{
		opts: opts, src: src, outbox: outbox, client: client, log: log,
		wakeDeliver:   make(chan struct{}, 1),
		wakeRead:      make(chan struct{}, 1),
		wakeHeartbeat: make(chan struct{}, 1),
		wakeCheck:     make(chan struct{}, 1),
		firstCheck:    make(chan struct{}),
		status: Status{
			Database:        protocol.DatabaseDisconnected,
			Detail:          "Подключение к базе данных ещё не проверено",
			InitialLoadDone: stats.InitialLoadDone,
			Delivery:        DeliveryOK,
		},
	}, nil
}

// Status returns a snapshot of the agent's state.
func (a *Agent) Status() Status {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.status
}

// Run reads, delivers and reports until ctx is done, then returns nil. It
// does not wait for an in-flight request: whatever was not acknowledged is
// sent again by the next Run, with the same batch id.
func (a *Agent) Run(ctx context.Context) error {
	a.log.Info("connector agent started", "instance_id", a.opts.InstanceID, "version", a.opts.Version)
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { a.readLoop(ctx); return nil })
	g.Go(func() error { a.deliverLoop(ctx); return nil })
	g.Go(func() error { a.checkLoop(ctx); return nil })
	g.Go(func() error { a.heartbeatLoop(ctx); return nil })
	err := g.Wait()
	a.log.Info("connector agent stopped")
	return err
}

// Close closes the outbox. The source belongs to the caller.
func (a *Agent) Close() error { return a.outbox.Close() }

// update changes the status; a change the backend should see soon sends a
// heartbeat at once.
func (a *Agent) update(fn func(*Status)) {
	a.mu.Lock()
	before := a.status
	fn(&a.status)
	after := a.status
	a.mu.Unlock()
	if before.Database != after.Database || before.Detail != after.Detail ||
		before.InitialLoadDone != after.InitialLoadDone || before.Delivery != after.Delivery ||
		before.OutboxFull != after.OutboxFull {
		kick(a.wakeHeartbeat)
	}
}

func (a *Agent) readLoop(ctx context.Context) {
	cursor, err := a.outbox.Cursor()
	if err != nil {
		a.log.Error("read cursor from outbox", "err", err)
		return
	}
	failures := 0
	for ctx.Err() == nil {
		if a.opts.MaxOutboxBytes > 0 {
			pending, err := a.outbox.PendingBytes()
			if err == nil && pending >= a.opts.MaxOutboxBytes {
				if !a.Status().OutboxFull {
					a.log.Warn("outbox is full; reading paused until delivery makes room",
						"pending_bytes", pending, "max_outbox_bytes", a.opts.MaxOutboxBytes)
				}
				a.update(func(s *Status) { s.OutboxFull = true })
				wait(ctx, a.opts.Poll, a.wakeRead)
				continue
			}
			a.update(func(s *Status) { s.OutboxFull = false })
		}
		records, next, more, err := a.src.Read(ctx, cursor)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			a.log.Warn("read source", "err", err, "failures", failures+1)
			kick(a.wakeCheck)
			wait(ctx, a.backoff(failures), nil)
			failures++
			continue
		}
		loadDone := a.Status().InitialLoadDone
		if len(records) > 0 || (next != nil && !bytes.Equal(next, cursor)) || (!more && !loadDone) {
			res, err := a.outbox.Append(records, next, !more)
			if err != nil {
				// The page is read again from the same cursor.
				a.log.Error("store page in outbox", "err", err)
				wait(ctx, a.backoff(failures), nil)
				failures++
				continue
			}
			if res.Rejected > 0 {
				a.log.Error("records that can never be delivered were moved to the rejected bucket", "count", res.Rejected)
			}
			if res.Batches > 0 {
				kick(a.wakeDeliver)
			}
		}
		failures = 0
		if next != nil {
			cursor = next
		}
		if !more {
			if !loadDone {
				a.log.Info("initial load read completely")
				a.update(func(s *Status) { s.InitialLoadDone = true })
			}
			wait(ctx, a.opts.Poll, nil)
		}
	}
}

func (a *Agent) deliverLoop(ctx context.Context) {
	failures := 0
	for ctx.Err() == nil {
		sb, err := a.outbox.Head()
		if errors.Is(err, ErrEmpty) {
			wait(ctx, 0, a.wakeDeliver)
			continue
		}
		if err != nil {
			a.log.Error("read outbox head", "err", err)
			wait(ctx, a.backoff(failures), nil)
			failures++
			continue
		}
		rctx, cancel := context.WithTimeout(ctx, a.opts.RequestTimeout)
		res, err := a.client.SendBatch(rctx, sb.BatchID, sb.Body)
		cancel()
		if ctx.Err() != nil {
			return
		}
		var he *HTTPError
		errors.As(err, &he)
		switch {
		case err == nil:
			if err := a.outbox.Ack(sb.Key); err != nil {
				a.log.Error("delete acknowledged batch", "batch_id", sb.BatchID, "err", err)
				wait(ctx, a.backoff(failures), nil)
				failures++
				continue
			}
			for _, re := range res.Errors {
				a.log.Warn("backend refused a record", "batch_id", sb.BatchID, "index", re.Index,
					"kind", re.Kind, "source_id", re.SourceID, "message", re.Message)
			}
			failures = 0
			a.update(func(s *Status) {
				s.Delivery, s.DeliveryError = DeliveryOK, ""
				s.Delivered += int64(sb.Records)
			})
			kick(a.wakeRead)
		case he != nil && he.Status == http.StatusUnauthorized:
			if a.Status().Delivery != DeliveryUnauthorized {
				a.log.Error("backend refused the connector token; delivery stopped", "err", err)
			}
			a.update(func(s *Status) { s.Delivery, s.DeliveryError = DeliveryUnauthorized, tokenRefused(he) })
			wait(ctx, a.opts.UnauthorizedRetry, nil)
		case he != nil && he.Status == http.StatusRequestEntityTooLarge:
			split, serr := a.outbox.Split(sb.Key)
			switch {
			case serr != nil:
				a.log.Error("split batch after 413", "batch_id", sb.BatchID, "err", serr)
				wait(ctx, a.backoff(failures), nil)
				failures++
			case split:
				a.log.Warn("backend found the batch too large; split it in halves", "batch_id", sb.BatchID, "records", sb.Records, "bytes", len(sb.Body))
			default:
				a.reject(sb, he)
			}
		case he != nil && (he.Status == http.StatusBadRequest || he.Status == http.StatusUnprocessableEntity):
			a.reject(sb, he)
		default:
			d := a.backoff(failures)
			if he != nil && he.RetryAfter > 0 {
				d = min(he.RetryAfter, time.Hour)
			}
			failures++
			a.log.Warn("deliver batch; will retry", "batch_id", sb.BatchID, "err", err, "failures", failures, "retry_in", d)
			a.update(func(s *Status) { s.Delivery, s.DeliveryError = DeliveryRetrying, err.Error() })
			wait(ctx, d, nil)
		}
	}
}

func (a *Agent) reject(sb StoredBatch, he *HTTPError) {
	a.log.Error("backend rejected a batch as a whole; moved it to the rejected bucket",
		"batch_id", sb.BatchID, "records", sb.Records, "status", he.Status, "message", he.Message)
	if err := a.outbox.Reject(sb.Key, he.Status, he.Error()); err != nil {
		a.log.Error("move batch to rejected", "batch_id", sb.BatchID, "err", err)
	}
}

func tokenRefused(he *HTTPError) string {
	if he.Message != "" {
		return "Сервер не принял токен: " + he.Message
	}
	return "Сервер не принял токен коннектора. Получите новый токен в amoCRM и подключите коннектор заново."
}

func (a *Agent) checkLoop(ctx context.Context) {
	for ctx.Err() == nil {
		cctx, cancel := context.WithTimeout(ctx, a.opts.RequestTimeout)
		version, err := a.src.Check(cctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		before := a.Status()
		a.update(func(s *Status) {
			if err != nil {
				s.Database, s.Detail = protocol.DatabaseDisconnected, UserMessage(err)
				return
			}
			s.Database, s.Detail, s.SourceVersion = protocol.DatabaseConnected, "", version
		})
		if after := a.Status(); after.Database != before.Database || after.Detail != before.Detail {
			a.log.Info("database state", "state", after.Database, "detail", after.Detail, "err", err)
		}
		a.firstCheckOnce.Do(func() { close(a.firstCheck) })
		wait(ctx, a.opts.CheckInterval, a.wakeCheck)
	}
}

func (a *Agent) heartbeatLoop(ctx context.Context) {
	interval := a.opts.HeartbeatInterval
	var lastErr string
	select {
	case <-ctx.Done():
		return
	case <-a.firstCheck:
	}
	for ctx.Err() == nil {
		st := a.Status()
		stats, err := a.outbox.Stats()
		if err != nil {
			a.log.Error("read outbox stats", "err", err)
		}
		hb := protocol.Heartbeat{
			InstanceID:       a.opts.InstanceID,
			ConnectorVersion: a.opts.Version,
			Hostname:         a.opts.Hostname,
			Database:         st.Database,
			Detail:           st.Detail,
			SourceVersion:    st.SourceVersion,
			Pending:          stats.PendingRecords,
			InitialLoadDone:  st.InitialLoadDone,
		}
		rctx, cancel := context.WithTimeout(ctx, a.opts.RequestTimeout)
		res, err := a.client.Heartbeat(rctx, hb)
		cancel()
		if ctx.Err() != nil {
			return
		}
		switch {
		case err != nil && err.Error() != lastErr:
			a.log.Warn("send heartbeat", "err", err)
			lastErr = err.Error()
		case err == nil:
			lastErr = ""
			if res.IntervalSeconds > 0 {
				interval = min(max(time.Duration(res.IntervalSeconds)*time.Second, 10*time.Second), time.Hour)
			}
		}
		wait(ctx, interval, a.wakeHeartbeat)
	}
}

// backoff returns the pause before retry number failures+1: exponential from
// RetryBase, capped at RetryCap, with "equal jitter" (half fixed, half random)
// so many connectors do not retry in step.
func (a *Agent) backoff(failures int) time.Duration {
	d := a.opts.RetryCap
	if failures < 30 {
		d = min(a.opts.RetryBase<<failures, a.opts.RetryCap)
	}
	half := d / 2
	return half + rand.N(half+1)
}

// wait blocks until ctx is done, d passed (d > 0) or wake fires (non-nil).
func wait(ctx context.Context, d time.Duration, wake <-chan struct{}) {
	var timer <-chan time.Time
	if d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timer = t.C
	}
	select {
	case <-ctx.Done():
	case <-timer:
	case <-wake:
	}
}

// kick signals ch without blocking; one pending signal is enough.
func kick(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}
