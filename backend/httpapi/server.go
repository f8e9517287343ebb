// Package httpapi is Svyazka's HTTP surface on Echo: middleware, the single
// error-to-HTTP mapping, health and readiness, metrics, and (in later issues)
// the widget, connector, billing and admin routes.
package httpapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/svyazka/svyazka/backend/metrics"
)

// Pinger reports whether a dependency answers.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Deps are the server's dependencies; every field is required.
type Deps struct {
	Logger  *slog.Logger
	Metrics *metrics.Metrics
	// Checks are the dependencies /readyz probes, by name (postgres, redis).
	Checks map[string]Pinger
}

// Options tune the server's limits.
type Options struct {
	MaxBodyBytes   int64
	RequestTimeout time.Duration
	// TrustedProxies are the networks whose X-Forwarded-For is believed
	// (the load balancer's). Without them the client's address is the TCP
	// peer: a header anyone can send never decides a rate-limit key.
	TrustedProxies []*net.IPNet
}

// Server is the API's Echo instance with its middleware and routes.
type Server struct {
	echo *echo.Echo
	log  *slog.Logger
	deps Deps
}

// New builds the server with its middleware chain and base routes.
func New(deps Deps, opts Options) (*Server, error) {
	if deps.Logger == nil || deps.Metrics == nil || deps.Checks == nil {
		return nil, errors.New("httpapi: Logger, Metrics and Checks are required")
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = 10 << 20
	}
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = 30 * time.Second
	}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	s := &Server{echo: e, log: deps.Logger, deps: deps}
	e.HTTPErrorHandler = s.handleError
	e.IPExtractor = echo.ExtractIPDirect()
	if len(opts.TrustedProxies) > 0 {
		trust := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
		for _, n := range opts.TrustedProxies {
			trust = append(trust, echo.TrustIPRange(n))
		}
		e.IPExtractor = echo.ExtractIPFromXFFHeader(trust...)
	}
	e.Use(
		requestID,
		s.observe,
		s.recoverPanics,
		middleware.BodyLimitWithConfig(middleware.BodyLimitConfig{Limit: fmt.Sprintf("%dB", opts.MaxBodyBytes)}),
		middleware.ContextTimeout(opts.RequestTimeout),
		middleware.GzipWithConfig(middleware.GzipConfig{
			// Metrics scrapers negotiate compression themselves.
			Skipper: func(c echo.Context) bool { return c.Path() == "/metrics" },
		}),
	)
	e.GET("/healthz", s.healthz)
	e.GET("/readyz", s.readyz)
	e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(deps.Metrics.Registry, promhttp.HandlerOpts{})))
	return s, nil
}

// Echo exposes the router so capability packages can register their routes.
func (s *Server) Echo() *echo.Echo { return s.echo }

// Mount serves h under prefix (for example the asynqmon UI).
func (s *Server) Mount(prefix string, h http.Handler) {
	s.echo.Any(prefix, echo.WrapHandler(h))
	s.echo.Any(prefix+"/*", echo.WrapHandler(h))
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.echo.ServeHTTP(w, r) }

// Serve answers on ln until ctx ends, then drains in-flight requests for at
// most grace.
func (s *Server) Serve(ctx context.Context, ln net.Listener, grace time.Duration) error {
	srv := &http.Server{
		Handler:           s.echo,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      90 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("httpapi: serve: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("httpapi: shutdown: %w", err)
	}
	return nil
}

func (s *Server) healthz(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

// readyz probes every dependency concurrently with a short deadline, so a
// hung Redis cannot hang the load balancer's probe.
func (s *Server) readyz(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
	defer cancel()
	type result struct {
		name string
		err  error
	}
	results := make(chan result, len(s.deps.Checks))
	for name, p := range s.deps.Checks {
		go func() { results <- result{name, p.Ping(ctx)} }()
	}
	// The body names what fails, never how: raw errors carry hosts, users
	// and driver details, and /readyz is reachable by anyone. They are logged.
	checks := make(map[string]string, len(s.deps.Checks))
	details := make(map[string]string)
	var failing []string
	for range s.deps.Checks {
		r := <-results
		if r.err != nil {
			checks[r.name] = "unavailable"
			details[r.name] = r.err.Error()
			failing = append(failing, r.name)
			continue
		}
		checks[r.name] = "ok"
	}
	if len(failing) == 0 {
		return c.JSON(http.StatusOK, map[string]any{"status": "ok", "checks": checks})
	}
	slices.Sort(failing)
	s.log.WarnContext(c.Request().Context(), "not ready", "failing", failing, "errors", details)
	return c.JSON(http.StatusServiceUnavailable, map[string]any{
		"status":  "unavailable",
		"failing": failing,
		"checks":  checks,
		"error":   errorBody{Code: "unavailable", Message: "Недоступно: " + strings.Join(failing, ", ")},
	})
}
