package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/hibiken/asynqmon"
	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	"github.com/svyazka/svyazka/amocrm"
	"github.com/svyazka/svyazka/amocrm/sandbox"
	"github.com/svyazka/svyazka/backend/accountstate"
	"github.com/svyazka/svyazka/backend/amosetup"
	"github.com/svyazka/svyazka/backend/config"
	"github.com/svyazka/svyazka/backend/httpapi"
	"github.com/svyazka/svyazka/backend/install"
	"github.com/svyazka/svyazka/backend/metrics"
	"github.com/svyazka/svyazka/backend/ratelimit"
	"github.com/svyazka/svyazka/backend/sealer"
	"github.com/svyazka/svyazka/backend/store"
	"github.com/svyazka/svyazka/backend/widgetauth"
	"github.com/svyazka/svyazka/jobs"
	"github.com/svyazka/svyazka/widget"
)

// Main holds the process's configuration and shared connections. Open builds
// it once; the Run methods start the parts a subcommand needs; Close releases.
type Main struct {
	Config  config.Config
	Log     *slog.Logger
	DB      *store.DB
	Redis   redis.UniversalClient
	Queue   *asynq.Client
	Metrics *metrics.Metrics

	Sealer *sealer.Sealer

	redisOpt  asynq.RedisConnOpt
	relay     *jobs.OutboxRelay
	install   *install.Service
	amoOnce   sync.Once
	amoClient *amocrm.Client
	amoTokens *store.AmoTokens
	amoErr    error
}

// Open reads and validates the configuration, prints it with secrets masked,
// and connects to PostgreSQL and Redis.
func Open(ctx context.Context, lookup func(string) (string, bool), logOut io.Writer) (*Main, error) {
	cfg, err := config.Load(lookup)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	log := newLogger(cfg.LogLevel, logOut)
	settings := make([]any, 0, 2*len(cfg.Settings()))
	for _, s := range cfg.Settings() {
		settings = append(settings, s.Env, s.Value)
	}
	log.Info("configuration", slog.Group("env", settings...))

	redisOpt, err := jobs.RedisConfig{
		URL: cfg.RedisURL, SentinelAddrs: cfg.RedisSentinelAddrs,
		SentinelMaster: cfg.RedisSentinelMaster, SentinelPassword: cfg.RedisSentinelPass,
	}.ConnOpt()
	if err != nil {
		return nil, fmt.Errorf("config: REDIS_URL: %w", err)
	}
	db, err := store.Open(ctx, cfg.DatabaseURL, store.Options{MaxConns: cfg.DatabaseMaxConns, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("postgres at %s: %w", config.Mask(cfg.DatabaseURL, "url"), errors.Unwrap(err))
	}
	seal, err := sealer.New(cfg.EncryptionKeyBytes())
	if err != nil {
		return nil, fmt.Errorf("config: ENCRYPTION_KEY: %w", err)
	}
	m := &Main{
		Config: cfg, Log: log, DB: db, Sealer: seal,
		Redis:    jobs.NewRedisClient(redisOpt),
		Queue:    asynq.NewClient(redisOpt),
		Metrics:  metrics.New(),
		redisOpt: redisOpt,
	}
	m.relay = &jobs.OutboxRelay{Store: m.DB, Client: m.Queue, Log: m.Log.With("component", "outbox")}
	m.install = &install.Service{
		Store: m.DB, Exchanger: m.amoExchanger(), Sealer: m.Sealer, Relay: m.relay,
		TrialDays: m.Config.TrialDays, TimeZone: m.Config.DefaultTimeZone,
		Now: time.Now, Log: m.Log, IsRevoked: install.IsRevoked,
	}
	return m, nil
}

// Close releases every connection.
func (m *Main) Close() {
	_ = m.Queue.Close()
	_ = m.Redis.Close()
	_ = m.DB.Close()
}

func newLogger(level string, out io.Writer) *slog.Logger {
	var lv slog.Level
	_ = lv.UnmarshalText([]byte(level)) // validated by config
	return slog.New(slog.NewJSONHandler(out, &slog.HandlerOptions{Level: lv}))
}

// Migrate runs `migrate up|down|status`.
func (m *Main) Migrate(ctx context.Context, direction string, out io.Writer) error {
	mig, err := store.NewMigrator(m.DB.SQL())
	if err != nil {
		return err
	}
	switch direction {
	case "up":
		n, err := mig.Up(ctx)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(out, "applied %d migration(s)\n", n)
		return err
	case "down":
		rolled, err := mig.Down(ctx)
		if err != nil {
			return err
		}
		if !rolled {
			_, err = fmt.Fprintln(out, "nothing to roll back")
			return err
		}
		_, err = fmt.Fprintln(out, "rolled back 1 migration")
		return err
	case "status":
		st, err := mig.Status(ctx)
		if err != nil {
			return err
		}
		for _, s := range st {
			state := "pending"
			if s.Applied {
				state = "applied"
			}
			if _, err := fmt.Fprintf(out, "%05d  %-8s %s\n", s.Version, state, s.Source); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("%w: migrate needs one of up, down, status, got %q", errUsage, direction)
}

// NewAPI builds the HTTP server with its routes.
func (m *Main) NewAPI() (*httpapi.Server, error) {
	inspector := asynq.NewInspector(m.redisOpt)
	m.Metrics.Registry.MustRegister(jobs.QueueCollector{Inspector: inspector})
	proxies, err := m.Config.TrustedProxyNets()
	if err != nil {
		return nil, err
	}
	srv, err := httpapi.New(httpapi.Deps{
		Logger:  m.Log,
		Metrics: m.Metrics,
		Checks:  map[string]httpapi.Pinger{"postgres": m.DB, "redis": jobs.RedisPinger{Client: m.Redis}},
	}, httpapi.Options{MaxBodyBytes: m.Config.MaxBodyBytes, RequestTimeout: m.Config.RequestTimeout, TrustedProxies: proxies})
	if err != nil {
		return nil, err
	}
	limiter, err := ratelimit.New(m.Redis, "http")
	if err != nil {
		return nil, err
	}
	auth, err := widgetauth.New(widgetauth.Config{
		ClientID: m.Config.AmoClientID, ClientSecret: m.Config.AmoClientSecret, RedirectURI: m.Config.AmoRedirectURI,
		SessionKey: m.Config.EncryptionKeyBytes(), Replay: widgetauth.RedisReplayGuard{Client: m.Redis}, Now: time.Now,
	})
	if err != nil {
		return nil, err
	}
	var extraOrigins []string
	if m.Config.AmoBaseURL != "" {
		// The sandbox plays amoCRM: its pages call and frame us.
		extraOrigins = append(extraOrigins, strings.TrimRight(m.Config.AmoBaseURL, "/"))
	}
	if err := srv.RegisterWidget(httpapi.WidgetConfig{
		PublicURL: m.Config.PublicURL, ClientID: m.Config.AmoClientID, ClientSecret: m.Config.AmoClientSecret,
		ExtraOrigins: extraOrigins, Auth: auth, Installer: m.installer(), App: m.DB, Setup: m.setupRunner(), Sync: m.syncControl(), Now: time.Now,
		Page: widget.Pages{}, Assets: widget.Assets(),
		WidgetFiles: widget.Files(m.Config.PublicURL),
		Limiter:     limiter, MaxDatabases: m.Config.MaxDatabases,
	}); err != nil {
		return nil, err
	}
	if err := srv.RegisterConnector(httpapi.ConnectorConfig{Store: m.DB, Limiter: limiter, Now: time.Now,
		HeartbeatInterval: accountstate.HeartbeatInterval}); err != nil {
		return nil, err
	}
	return srv, nil
}

// runQueueUI serves asynqmon on QUEUE_UI_ADDR (a loopback address, checked
// by the config) until ctx ends. It has no login and can delete tasks, so it
// is never part of the public API; reach it through an SSH tunnel.
func (m *Main) runQueueUI(ctx context.Context) error {
	ui := asynqmon.New(asynqmon.Options{RootPath: "/admin/queues", RedisConnOpt: m.redisOpt})
	defer ui.Close()
	mux := http.NewServeMux()
	mux.Handle("/admin/queues/", ui)
	mux.Handle("/admin/queues", ui)
	srv := &http.Server{Addr: m.Config.QueueUIAddr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	ln, err := net.Listen("tcp", m.Config.QueueUIAddr)
	if err != nil {
		return fmt.Errorf("QUEUE_UI_ADDR: %w", err)
	}
	m.Log.Info("queue UI listening (loopback only)", "url", "http://"+ln.Addr().String()+"/admin/queues")
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("queue UI: %w", err)
	}
	return nil
}

// RunAPI serves HTTP on HTTP_ADDR until ctx ends.
func (m *Main) RunAPI(ctx context.Context) error {
	srv, err := m.NewAPI()
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", m.Config.HTTPAddr)
	if err != nil {
		return fmt.Errorf("HTTP_ADDR: %w", err)
	}
	m.Log.Info("api listening", "addr", ln.Addr().String(), "public_url", m.Config.PublicURL)
	if m.Config.QueueUIAddr == "" {
		return srv.Serve(ctx, ln, m.Config.ShutdownTimeout)
	}
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return srv.Serve(ctx, ln, m.Config.ShutdownTimeout) })
	g.Go(func() error { return m.runQueueUI(ctx) })
	return g.Wait()
}

// RunWorker processes tasks and runs the periodic scheduler until ctx ends.
func (m *Main) RunWorker(ctx context.Context) error {
	w, err := jobs.NewWorker(jobs.WorkerOptions{
		Redis: m.redisOpt, Concurrency: m.Config.WorkerConcurrency,
		ShutdownTimeout: m.Config.ShutdownTimeout, Logger: m.Log,
	})
	if err != nil {
		return err
	}
	w.Handle(jobs.TypeOutboxRelay, m.relay)
	w.Handle(jobs.TypeInstallComplete, m.installer())
	w.Handle(jobs.TypeInstallConfirmDisable, asynq.HandlerFunc(m.installer().ConfirmDisable))
	w.Handle(jobs.TypeConnectorCheck, &jobs.ConnectorCheck{Store: m.DB, StaleAfter: accountstate.ConnectorStaleAfter, Now: time.Now, Log: m.Log})
	w.Handle(jobs.TypeSetupApply, &jobs.SetupApply{Runner: m.setupRunner(), RetryAfter: amosetup.RetryAfter, Log: m.Log})
	w.Handle(jobs.TypeSetupDrift, &jobs.SetupDrift{Runner: m.setupRunner(), Accounts: m.DB, Log: m.Log})
	w.Handle(jobs.TypeSetupReap, &jobs.SetupReap{Runner: m.setupRunner(), Log: m.Log})
	syncEngine, err := m.syncEngine()
	if err != nil {
		return err
	}
	w.Handle(jobs.TypeSyncAccount, &jobs.SyncAccount{Engine: syncEngine, Locks: m.DB, Outbox: m.DB, Now: time.Now, Log: m.Log,
		Wakes: jobs.RedisSyncWakes{Client: m.Redis}})
	w.Handle(jobs.TypeSyncSweep, &jobs.SyncSweep{Store: m.DB, Now: time.Now, Log: m.Log})
	sched, err := jobs.NewScheduler(m.Queue, m.Log, time.Now,
		jobs.Periodic{Every: accountstate.ConnectorCheckEvery, Task: func(time.Time) *asynq.Task { return jobs.NewConnectorCheckTask() }},
		jobs.Periodic{Every: jobs.SetupDriftEvery, Task: func(time.Time) *asynq.Task { return jobs.NewSetupDriftTask() }},
		jobs.Periodic{Every: jobs.SetupReapEvery, Task: func(time.Time) *asynq.Task { return jobs.NewSetupReapTask() }},
		jobs.Periodic{Every: jobs.SyncSweepEvery, Task: func(time.Time) *asynq.Task { return jobs.NewSyncSweepTask() }},
	)
	if err != nil {
		return err
	}
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return w.Run(ctx) })
	g.Go(func() error { return sched.Run(ctx) })
	// Commits wake the relay at once; the interval is the safety net.
	g.Go(func() error { return m.relay.Run(ctx, m.Config.RelayInterval) })
	return g.Wait()
}

// installer is the install service shared by the API (redirect, disable
// hook) and the worker (code exchange).
func (m *Main) installer() *install.Service { return m.install }

// RunAll applies migrations and runs the amoCRM sandbox, the API and the
// worker in this process; then it installs the widget in a demo sandbox
// account and prints where to open it. With AMOCRM_BASE_URL set it uses that
// amoCRM instead and skips the demo.
func (m *Main) RunAll(ctx context.Context, out io.Writer) error {
	if err := m.Migrate(ctx, "up", out); err != nil {
		return err
	}
	g, ctx := errgroup.WithContext(ctx)
	var sb *sandbox.Sandbox
	if m.Config.AmoBaseURL == "" {
		var (
			stop func() error
			err  error
		)
		sb, _, stop, err = m.startSandbox(ctx)
		if err != nil {
			return err
		}
		g.Go(stop)
	}
	g.Go(func() error { return m.RunAPI(ctx) })
	g.Go(func() error { return m.RunWorker(ctx) })
	// The demo is a convenience: when it fails (Redis down, a port taken) the
	// service keeps running and says so, rather than stopping.
	g.Go(func() error {
		if err := waitHTTP(ctx, m.Config.PublicURL+"/healthz"); err != nil {
			if ctx.Err() == nil {
				m.Log.Error("api did not come up", "err", err)
			}
			return nil
		}
		if sb == nil {
			fmt.Fprintf(out, "\nSvyazka is running at %s (amoCRM at %s). Press Ctrl+C to stop.\n\n", m.Config.PublicURL, m.Config.AmoBaseURL)
			return nil
		}
		amoID, err := m.installDemo(ctx, sb)
		if err != nil {
			if ctx.Err() == nil {
				m.Log.Error("demo install failed; the service keeps running", "err", err)
				fmt.Fprintf(out, "\nSvyazka is running at %s, but the demo install failed: %v\n\n", m.Config.PublicURL, err)
			}
			return nil
		}
		printDemo(out, m.Config.PublicURL, m.Config.AmoBaseURL, amoID)
		m.startDemoClinic(ctx, amoID, out)
		return nil
	})
	return g.Wait()
}
