package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/svyazka/svyazka/backend/conntoken"
	"github.com/svyazka/svyazka/backend/store"
	connconfig "github.com/svyazka/svyazka/connector/config"
	"github.com/svyazka/svyazka/connector/demo"
)

// runDemoClinic is `svyazka demo-clinic --dsn postgres://… [--patients N]
// [--live]`: it creates (or resets) a sample IDENT database in the dbo
// schema of that PostgreSQL database, creating the database itself when it
// does not exist, and with --live keeps changing it until interrupted.
func runDemoClinic(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo-clinic", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dsn := fs.String("dsn", "", "PostgreSQL URL of the database to fill (created when missing)")
	patients := fs.Int("patients", demo.DefaultPatients, "how many patients to generate")
	live := fs.Bool("live", false, "keep changing the clinic (bookings, arrivals, moves, cancellations) until Ctrl+C")
	seed := fs.Uint64("seed", 1, "seed of the generated data")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: demo-clinic takes no arguments, got %q", errUsage, fs.Args())
	}
	if !strings.HasPrefix(*dsn, "postgres://") && !strings.HasPrefix(*dsn, "postgresql://") {
		return fmt.Errorf("%w: --dsn must be a postgres:// URL", errUsage)
	}
	if *patients < 1 || *patients > 200_000 {
		return fmt.Errorf("%w: --patients must be between 1 and 200000", errUsage)
	}
	if err := ensureDatabase(ctx, *dsn); err != nil {
		return err
	}
	if err := demo.Create(ctx, *dsn, demo.Options{Patients: *patients, Seed: *seed}); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "demo clinic with %d patients created in %s (schema dbo)\n", *patients, maskDSN(*dsn))
	if !*live {
		return nil
	}
	fmt.Fprintln(stdout, "changing it every 2s; Ctrl+C stops")
	err := demo.Live(ctx, *dsn, demo.LiveOptions{Logf: func(format string, a ...any) { fmt.Fprintf(stdout, format+"\n", a...) }})
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

func maskDSN(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "the database"
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	u.RawQuery = ""
	return u.String()
}

// ensureDatabase creates dsn's database when the server says it does not exist.
func ensureDatabase(ctx context.Context, dsn string) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err == nil {
		return conn.Close(ctx)
	}
	if !strings.Contains(err.Error(), "does not exist") {
		return fmt.Errorf("demo clinic: connect to %s: %w", maskDSN(dsn), err)
	}
	u, err := url.Parse(dsn)
	if err != nil {
		return fmt.Errorf("demo clinic: %w", err)
	}
	name := strings.TrimPrefix(u.Path, "/")
	u.Path = "/postgres"
	admin, err := pgx.Connect(ctx, u.String())
	if err != nil {
		return fmt.Errorf("demo clinic: connect to the server: %w", err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return fmt.Errorf("demo clinic: create database %q: %w", name, err)
	}
	return nil
}

// demoClinicName is the demo account's clinic database in Svyazka.
const demoClinicName = "Демо-клиника"

// startDemoClinic gives the demo account a clinic: a sample IDENT database
// (schema dbo of Svyazka's own database, created once and then kept), a
// database entry with a connector token, the real svyazka-connector (found
// next to this binary; `make build` puts both in bin/) reading it, and the
// front desk's changes every few seconds. It returns when ctx ends; a
// failure is logged and leaves the rest of the demo running.
func (m *Main) startDemoClinic(ctx context.Context, amoAccountID int64, out io.Writer) {
	log := m.Log.With("component", "demo-clinic")
	connectorBin, err := siblingBinary("svyazka-connector")
	if err != nil {
		fmt.Fprintf(out, "The demo clinic's connector is not running: %v (run `make build`).\n", err)
		return
	}
	dsn := m.Config.DatabaseURL
	if err := ensureDemoClinic(ctx, dsn); err != nil {
		log.Error("demo clinic not created", "err", err)
		return
	}
	stateDir := filepath.Join(".data", "connector")
	if err := m.pairDemoConnector(ctx, amoAccountID, stateDir, dsn); err != nil {
		log.Error("demo connector not configured", "err", err)
		return
	}
	go func() {
		err := demo.Live(ctx, dsn, demo.LiveOptions{Interval: 5 * time.Second,
			Logf: func(format string, a ...any) { log.Debug("front desk", "change", fmt.Sprintf(format, a...)) }})
		if err != nil && ctx.Err() == nil {
			log.Error("demo clinic stopped changing", "err", err)
		}
	}()
	cmd := exec.CommandContext(ctx, connectorBin, "run", "--state-dir", stateDir)
	cmd.Stdout, cmd.Stderr = io.Discard, os.Stderr
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 10 * time.Second
	fmt.Fprintf(out, "  Demo clinic:                 %d patients in schema dbo, read by %s\n\n", demoPatients, connectorBin)
	if err := cmd.Run(); err != nil && ctx.Err() == nil {
		log.Error("demo connector exited", "err", err)
	}
}

const demoPatients = 300

// ensureDemoClinic creates the sample IDENT schema once; a later run keeps
// it (and the connector's cursor into it).
func ensureDemoClinic(ctx context.Context, dsn string) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	var exists bool
	err = conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM information_schema.schemata WHERE schema_name = $1)`, demo.HelperSchema).Scan(&exists)
	_ = conn.Close(ctx)
	if err != nil || exists {
		return err
	}
	return demo.Create(ctx, dsn, demo.Options{Patients: demoPatients})
}

// pairDemoConnector makes sure the connector's state directory holds a
// token of the demo account's clinic database: it keeps a token that still
// opens that database, and otherwise issues a new one (as «Получить токен»
// would) and saves it there with the backend URL and the source DSN.
func (m *Main) pairDemoConnector(ctx context.Context, amoAccountID int64, stateDir, dsn string) error {
	acc, err := m.DB.AccountByAmoID(ctx, amoAccountID)
	if err != nil {
		return err
	}
	c, err := connconfig.LoadOrInit(stateDir)
	if err != nil {
		return err
	}
	if c.Token != "" {
		if d, _, err := m.DB.ConnectorDatabase(ctx, conntoken.Hash(c.Token)); err == nil && d.AccountID == acc.ID {
			return nil
		}
	}
	dbs, err := m.DB.ListDatabases(ctx, acc.ID)
	if err != nil {
		return err
	}
	var databaseID int64
	for _, d := range dbs {
		if d.Name == demoClinicName {
			databaseID = d.ID
		}
	}
	token, hash := conntoken.New()
	if _, err := m.DB.IssueConnectorToken(ctx, store.TokenRequest{AccountID: acc.ID, DatabaseID: databaseID, TokenHash: hash,
		Now: time.Now().UTC(), MaxDatabases: m.Config.MaxDatabases, Name: demoClinicName, TimeZone: m.Config.DefaultTimeZone}); err != nil {
		return err
	}
	c.BackendURL, c.Token, c.SourceDSN, c.Poll = m.Config.PublicURL, token, dsn, "2s"
	slog.Default().Debug("demo connector token issued", "database", demoClinicName)
	return connconfig.Save(stateDir, c)
}

// siblingBinary finds a program next to this executable.
func siblingBinary(name string) (string, error) {
	self, err := os.Executable()
	if err != nil {
		return "", err
	}
	path := filepath.Join(filepath.Dir(self), name)
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("%s not found next to %s", name, self)
	}
	return path, nil
}
