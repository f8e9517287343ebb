package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/hibiken/asynq"
	"github.com/hibiken/asynqmon"
	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	"github.com/svyazka/svyazka/backend/config"
	"github.com/svyazka/svyazka/backend/httpapi"
	"github.com/svyazka/svyazka/backend/metrics"
	"github.com/svyazka/svyazka/backend/store"
	"github.com/svyazka/svyazka/jobs"
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

	redisOpt asynq.RedisConnOpt
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
	m := &Main{
		Config: cfg, Log: log, DB: db,
		Redis:    jobs.NewRedisClient(redisOpt),
		Queue:    asynq.NewClient(redisOpt),
		Metrics:  metrics.New(),
		redisOpt: redisOpt,
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
	srv, err := httpapi.New(httpapi.Deps{
		Logger:  m.Log,
		Metrics: m.Metrics,
		Checks:  map[string]httpapi.Pinger{"postgres": m.DB, "redis": jobs.RedisPinger{Client: m.Redis}},
	}, httpapi.Options{MaxBodyBytes: m.Config.MaxBodyBytes, RequestTimeout: m.Config.RequestTimeout})
	if err != nil {
		return nil, err
	}
	// The queue UI has no login of its own: it is mounted only for local
	// development until the admin panel puts its authentication in front of it.
	if m.Config.Env == "development" {
		srv.Mount("/admin/queues", asynqmon.New(asynqmon.Options{RootPath: "/admin/queues", RedisConnOpt: m.redisOpt}))
	}
	return srv, nil
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
	return srv.Serve(ctx, ln, m.Config.ShutdownTimeout)
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
	w.Handle(jobs.TypeOutboxRelay, &jobs.OutboxRelay{Store: m.DB, Client: m.Queue})
	sched, err := jobs.NewScheduler(m.Queue, m.Log, time.Now,
		jobs.Periodic{Every: 10 * time.Second, Task: func(time.Time) *asynq.Task { return jobs.NewOutboxRelayTask() }},
	)
	if err != nil {
		return err
	}
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return w.Run(ctx) })
	g.Go(func() error { return sched.Run(ctx) })
	return g.Wait()
}

// RunAll applies migrations, then runs the API and the worker in this process.
func (m *Main) RunAll(ctx context.Context, out io.Writer) error {
	if err := m.Migrate(ctx, "up", out); err != nil {
		return err
	}
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return m.RunAPI(ctx) })
	g.Go(func() error { return m.RunWorker(ctx) })
	fmt.Fprintf(out, "\nSvyazka is running:\n  API        %s\n  health     %s/readyz\n  queues UI  %s/admin/queues\nPress Ctrl+C to stop.\n\n",
		m.Config.PublicURL, m.Config.PublicURL, m.Config.PublicURL)
	return g.Wait()
}
