package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/svyazka/svyazka/amocrm/sandbox"
	"github.com/svyazka/svyazka/backend/config"
)

// runSandbox serves the amoCRM sandbox alone:
//
//	svyazka amocrm-sandbox --addr HOST:PORT --client-id ID --client-secret SECRET --redirect-uri URL
//
// Flags default to SANDBOX_ADDR, AMOCRM_CLIENT_ID, AMOCRM_CLIENT_SECRET and
// AMOCRM_REDIRECT_URI (and their defaults), so it pairs with `svyazka api`.
func runSandbox(ctx context.Context, args []string, lookup func(string) (string, bool), stdout, stderr io.Writer) error {
	cfg, err := config.Load(lookup)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	fs := flag.NewFlagSet("amocrm-sandbox", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", cfg.SandboxAddr, "listen address")
	clientID := fs.String("client-id", cfg.AmoClientID, "integration id")
	secret := fs.String("client-secret", cfg.AmoClientSecret, "integration secret")
	redirect := fs.String("redirect-uri", cfg.AmoRedirectURI, "integration redirect URI")
	hook := fs.String("disable-hook-url", cfg.PublicURL+"/oauth/amocrm/disable", "URL amoCRM calls when the integration is disabled")
	snapshot := fs.String("snapshot", "", "file to keep the sandbox state in across restarts")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	log := newLogger(cfg.LogLevel, stderr)
	sb, err := sandbox.New(sandbox.Config{
		ClientID: *clientID, ClientSecret: *secret, RedirectURI: *redirect, DisableHookURL: *hook,
		SnapshotPath: *snapshot, Logger: log, HTTPClient: &http.Client{Timeout: 10 * time.Second},
	})
	if err != nil {
		return err
	}
	defer sb.Close()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("--addr: %w", err)
	}
	fmt.Fprintf(stdout, "amoCRM sandbox at http://%s\n", ln.Addr())
	return serveHandler(ctx, ln, sb.Handler(), 5*time.Second)
}

// serveHandler serves h on ln until ctx ends.
func serveHandler(ctx context.Context, ln net.Listener, h http.Handler, grace time.Duration) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(slog.Default().Handler(), slog.LevelWarn)}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	return srv.Shutdown(shutdownCtx)
}
