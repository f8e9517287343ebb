// Package sandbox is an in-memory emulator of amoCRM's OAuth and REST API v4.
//
// It follows /work/shared/spec/amocrm-api.md: token lifetimes and rotation,
// problem+json errors, paging, the 7 rps limit with a sticky block, webhooks
// with the documented retry schedule, plus a control API under /_sandbox/ and
// a small HTML view. All calls, including /oauth2/access_token, may go to one
// host: a Bearer token, an authorization code or a refresh token identifies
// its account; a Host header {sub}.{domain}, for any of amocrm.Domains, does too.
package sandbox

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/svyazka/svyazka/amocrm"
)

// Errors returned by the Go helpers.
var (
	// ErrAccountNotFound means no account has the given id.
	ErrAccountNotFound = errors.New("sandbox: account not found")
	// ErrNotManualClock means the sandbox clock cannot be advanced.
	ErrNotManualClock = errors.New("sandbox: clock is not a *ManualClock")
	// ErrInvalid means the helper's arguments were rejected.
	ErrInvalid = errors.New("sandbox: invalid argument")
)

// Clock tells the sandbox what time it is; every lifetime, rate bucket and
// webhook retry is measured with it.
type Clock interface {
	Now() time.Time
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// ManualClock is a Clock that moves only when told to. The zero value starts
// at 2025-01-01 00:00 UTC.
type ManualClock struct {
	mu  sync.Mutex
	now time.Time
}

// NewManualClock returns a ManualClock set to start.
func NewManualClock(start time.Time) *ManualClock { return &ManualClock{now: start} }

// Now returns the clock's current time.
func (c *ManualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.now.IsZero() {
		c.now = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	return c.now
}

// Advance moves the clock forward by d.
func (c *ManualClock) Advance(d time.Duration) {
	now := c.Now()
	c.mu.Lock()
	c.now = now.Add(d)
	c.mu.Unlock()
}

// Config configures a Sandbox. ClientID, ClientSecret and RedirectURI describe
// the one integration the sandbox knows.
type Config struct {
	ClientID       string
	ClientSecret   string
	RedirectURI    string
	DisableHookURL string
	// SnapshotPath, when set, is loaded on start and written on Close and
	// every 30 s so a demo survives a restart.
	SnapshotPath string
	// Clock defaults to the system clock.
	Clock  Clock
	Logger *slog.Logger
	// RateLimitPerSecond is the token-bucket rate and burst per integration
	// and account; 0 means amocrm.MaxRatePerSecond, a negative value
	// disables the limit.
	RateLimitPerSecond int
	// BlockAfterViolations: the rate-limit violation that makes more than
	// this many 429s within a minute imposes a sticky 403 block (lifted only
	// by ResetBlock); 0 means 20, a negative value never blocks.
	BlockAfterViolations int
	// HTTPClient makes the install, disable-hook and webhook calls.
	HTTPClient *http.Client
	// WidgetURL is where the widget's archive files (script.js, manifest.json,
	// i18n/) are served; the account's widget Settings page loads them.
	WidgetURL string
	// WidgetTitle names the widget's Settings page (its advanced.title).
	WidgetTitle string
	// ExternalIDFields names the custom fields (by code, or by a substring of
	// the name) whose shared values the integrity counters report. Empty
	// means code EXTERNAL_ID or a name containing "ID пациента".
	ExternalIDFields []string
}

// Sandbox is the emulator. It is safe for concurrent use.
type Sandbox struct {
	cfg    Config
	clock  Clock
	log    *slog.Logger
	client *http.Client

	mu sync.Mutex
	st *state

	limits  *limiter
	faults  *faultInjector
	stats   *counters
	hooks   *dispatcher
	routes  []route
	handler http.Handler

	closing   chan struct{}
	stopCtx   context.Context // cancelled by Close; bounds background deliveries
	stop      context.CancelFunc
	closeOnce sync.Once
	wg        sync.WaitGroup
}

// New validates cfg, loads the snapshot if one exists and starts the
// background webhook and snapshot loops. It fails when the integration keys
// or the redirect URI are missing.
func New(cfg Config) (*Sandbox, error) {
	if cfg.ClientID == "" || cfg.ClientSecret == "" || cfg.RedirectURI == "" {
		return nil, fmt.Errorf("sandbox: new: ClientID, ClientSecret and RedirectURI are required: %w", ErrInvalid)
	}
	if cfg.Clock == nil {
		cfg.Clock = systemClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{}
	}
	if cfg.RateLimitPerSecond == 0 {
		cfg.RateLimitPerSecond = amocrm.MaxRatePerSecond
	}
	if cfg.BlockAfterViolations == 0 {
		cfg.BlockAfterViolations = 20
	}
	s := &Sandbox{
		cfg:     cfg,
		clock:   cfg.Clock,
		log:     cfg.Logger,
		client:  cfg.HTTPClient,
		faults:  &faultInjector{},
		stats:   newCounters(),
		closing: make(chan struct{}),
	}
	s.stopCtx, s.stop = context.WithCancel(context.Background())
	s.limits = newLimiter(cfg.RateLimitPerSecond, cfg.BlockAfterViolations)
	s.hooks = newDispatcher(s)
	st, err := loadSnapshot(cfg.SnapshotPath)
	if err != nil {
		return nil, err
	}
	if st == nil {
		st = newState()
	}
	s.st = st
	s.routes = s.apiRoutes()
	s.handler = s.newMux()

	s.wg.Add(1)
	go s.background()
	return s, nil
}

// Handler returns the HTTP handler serving the amoCRM surface, the control
// API under /_sandbox/ and the web view.
func (s *Sandbox) Handler() http.Handler { return s.handler }

// Close stops the background loops, releases hanging fault-injected
// requests and writes the snapshot if configured.
func (s *Sandbox) Close() error {
	s.closeOnce.Do(func() {
		close(s.closing)
		s.stop()
	})
	s.wg.Wait()
	return s.saveSnapshot()
}

func (s *Sandbox) background() {
	defer s.wg.Done()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	lastSave := time.Now()
	for {
		select {
		case <-s.closing:
			return
		case <-s.hooks.wake:
			s.hooks.deliverDue(s.stopCtx)
		case <-tick.C:
			s.hooks.deliverDue(s.stopCtx)
			if s.cfg.SnapshotPath != "" && time.Since(lastSave) >= 30*time.Second {
				if err := s.saveSnapshot(); err != nil {
					s.log.Error("sandbox: periodic snapshot", "err", err)
				}
				lastSave = time.Now()
			}
		}
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	const digits = "0123456789abcdef"
	var sb strings.Builder
	sb.Grow(2 * n)
	for _, c := range b {
		sb.WriteByte(digits[c>>4])
		sb.WriteByte(digits[c&15])
	}
	return sb.String()
}
