package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/svyazka/svyazka/amocrm/sandbox"
	"github.com/svyazka/svyazka/backend/store"
)

// demoSubdomain is the sandbox account `svyazka run` installs the widget in.
const demoSubdomain = "demo-clinic"

// startSandbox starts the amoCRM sandbox on SANDBOX_ADDR, wired to this API
// (redirect URI, disable hook, widget files), and points the amoCRM client at
// it. Its state is kept in .data/ so the demo survives a restart.
func (m *Main) startSandbox(ctx context.Context) (*sandbox.Sandbox, string, func() error, error) {
	snapshot := filepath.Join(".data", "amocrm-sandbox.json")
	if err := os.MkdirAll(filepath.Dir(snapshot), 0o755); err != nil {
		snapshot = ""
	}
	sb, err := sandbox.New(sandbox.Config{
		ClientID: m.Config.AmoClientID, ClientSecret: m.Config.AmoClientSecret,
		RedirectURI: m.Config.AmoRedirectURI, DisableHookURL: m.Config.PublicURL + "/oauth/amocrm/disable",
		SnapshotPath: snapshot, Logger: m.Log.With("component", "amocrm-sandbox"),
		HTTPClient: &http.Client{Timeout: 10 * time.Second},
		WidgetURL:  m.Config.PublicURL + "/widget/amo", WidgetTitle: "Связка: интеграция с IDENT",
	})
	if err != nil {
		return nil, "", nil, err
	}
	ln, err := net.Listen("tcp", m.Config.SandboxAddr)
	if err != nil {
		_ = sb.Close()
		return nil, "", nil, fmt.Errorf("SANDBOX_ADDR: %w", err)
	}
	base := "http://" + ln.Addr().String()
	m.Config.AmoBaseURL = base
	done := make(chan error, 1)
	go func() { done <- serveHandler(ctx, ln, sb.Handler(), 5*time.Second) }()
	stop := func() error {
		err := <-done
		return errors.Join(err, sb.Close())
	}
	return sb, base, stop, nil
}

// installDemo creates the demo account in the sandbox (once) and installs the
// widget there the way amoCRM does, then waits until the install task has
// created the account here. It returns the sandbox account id.
func (m *Main) installDemo(ctx context.Context, sb *sandbox.Sandbox) (int64, error) {
	info, found := sb.FindAccount(demoSubdomain)
	if found {
		// Installed in an earlier run (the sandbox kept its state): nothing to do.
		if acc, err := m.DB.AccountByAmoID(ctx, info.AccountID); err == nil && acc.Status == store.AccountActive {
			return info.AccountID, nil
		}
	} else {
		// A new sandbox account is always installed, even when the database
		// knows its id from an older sandbox: the install replaces its tokens.
		var err error
		info, err = sb.CreateAccount(sandbox.AccountOptions{Subdomain: demoSubdomain, Name: "Стоматология «Улыбка»", Users: 6})
		if err != nil {
			return 0, err
		}
	}
	since := time.Now()
	res, err := sb.Install(ctx, info.AccountID)
	if err != nil {
		return 0, err
	}
	if res.Status != http.StatusOK {
		return 0, fmt.Errorf("demo install: redirect answered %d %s", res.Status, res.Error)
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if acc, err := m.DB.AccountByAmoID(ctx, info.AccountID); err == nil && acc.Status == store.AccountActive && !acc.InstalledAt.Before(since.Add(-time.Second)) {
			return info.AccountID, nil
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return 0, errors.New("demo install: the install task did not finish within 30s (see the worker log)")
}

func waitHTTP(ctx context.Context, url string) error {
	for i := 0; i < 100; i++ {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s does not answer", url)
}

func printDemo(out io.Writer, publicURL, sandboxURL string, amoAccountID int64) {
	fmt.Fprintf(out, `
Svyazka is running.

  Widget in amoCRM (sandbox):  %s/accounts/%d/settings/widget
  amoCRM sandbox (kanban):     %s/accounts/%d
  API:                         %s   (health: %s/readyz, metrics: %s/metrics)

Open the first URL: it is amoCRM's settings page of the demo account with the
Svyazka widget installed; fill the install form, get a connector token, browse
the event log. Press Ctrl+C to stop.

`, sandboxURL, amoAccountID, sandboxURL, amoAccountID, publicURL, publicURL, publicURL)
}
