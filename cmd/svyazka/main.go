// Command svyazka is the Svyazka service: one binary whose subcommands run the
// API, the worker, migrations, the amoCRM sandbox, or all of it at once.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	_ "time/tzdata" // clinic zones must load on hosts without a zoneinfo database
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `svyazka — amoCRM integration for clinics

Usage: svyazka <command> [arguments]

Commands:
  api              serve the HTTP API (widget, connector, webhooks, health, metrics)
  worker           process background tasks and run the periodic scheduler
  migrate up       apply pending database migrations
  migrate down     roll back the latest migration
  migrate status   list migrations and whether they are applied
  run              everything in one process for a laptop: migrations, API, worker,
                   the amoCRM sandbox with a demo account where the widget is installed
  amocrm-sandbox   serve the amoCRM sandbox alone (--addr, --client-id, --client-secret,
                   --redirect-uri, --snapshot)
  widget-archive   write the amoCRM widget archive (-o widget.zip) for PUBLIC_URL
  admin database add ACCOUNT --name NAME [--time-zone ZONE]
                   add a clinic database and print its connector token
  admin status ACCOUNT
                   print an account's setup status, databases and their links as JSON
  admin setup ACCOUNT [--blocks pipelines,contact,lead]
                   run autosetup and wait for it; exit 0 when configured
  admin help       show the support commands
  demo-clinic      create a sample IDENT database in PostgreSQL (--dsn URL [--patients N]
                   [--live]) for the connector to read
  version          print the version
  help             show this help

Configuration comes from environment variables; see README.md.
`

// errUsage marks a command-line mistake (exit code 2, usage printed).
var errUsage = errors.New("usage")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.LookupEnv, os.Stdout, os.Stderr)
	stop()
	switch {
	case err == nil:
	case errors.Is(err, errUsage):
		fmt.Fprintf(os.Stderr, "svyazka: %v\n\n%s", err, usage)
		os.Exit(2)
	default:
		fmt.Fprintf(os.Stderr, "svyazka: %v\n", err)
		os.Exit(1)
	}
}

// developmentByDefault makes APP_ENV default to development: `svyazka run`
// is the laptop demo, the one command allowed to use the public development
// key. Every other command defaults to production.
func developmentByDefault(lookup func(string) (string, bool)) func(string) (string, bool) {
	return func(key string) (string, bool) {
		if v, ok := lookup(key); ok || key != "APP_ENV" {
			return v, ok
		}
		return "development", true
	}
}

// run dispatches a subcommand. It returns every failure as one error line.
func run(ctx context.Context, args []string, lookup func(string) (string, bool), stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: no command given", errUsage)
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "help", "-h", "--help":
		_, err := io.WriteString(stdout, usage)
		return err
	case "version", "--version":
		_, err := fmt.Fprintln(stdout, version)
		return err
	case "amocrm-sandbox":
		return runSandbox(ctx, rest, lookup, stdout, stderr)
	case "widget-archive":
		return runWidgetArchive(rest, lookup, stdout, stderr)
	case "admin":
		return runAdmin(ctx, rest, lookup, stdout, stderr)
	case "demo-clinic":
		return runDemoClinic(ctx, rest, stdout, stderr)
	case "api", "worker", "migrate", "run":
	default:
		return fmt.Errorf("%w: unknown command %q", errUsage, cmd)
	}

	if cmd == "run" {
		lookup = developmentByDefault(lookup)
	}
	m, err := Open(ctx, lookup, stderr)
	if err != nil {
		return err
	}
	defer m.Close()
	switch cmd {
	case "api":
		return m.RunAPI(ctx)
	case "worker":
		return m.RunWorker(ctx)
	case "migrate":
		if len(rest) != 1 {
			return fmt.Errorf("%w: migrate needs one of up, down, status", errUsage)
		}
		return m.Migrate(ctx, rest[0], stdout)
	default:
		return m.RunAll(ctx, stdout)
	}
}
