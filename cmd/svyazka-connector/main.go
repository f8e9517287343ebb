// Command svyazka-connector is the on-premises agent that runs beside IDENT on
// the clinic's Windows server: it reads the IDENT database, keeps changes in a
// durable outbox in its state directory and delivers them to the Svyazka
// backend. On Windows it runs as a service (install/uninstall).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"syscall"
	"time"

	"github.com/svyazka/svyazka/connector/agent"
	"github.com/svyazka/svyazka/connector/config"
	"github.com/svyazka/svyazka/connector/ident"
	"github.com/svyazka/svyazka/connector/pairing"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// defaultBackendURL is the backend the pairing page uses when none is saved
// or given; set at build time with -ldflags "-X main.defaultBackendURL=https://…".
var defaultBackendURL = ""

// openSource opens the clinic database at dsn with the IDENT reader
// (sqlserver:// for a real IDENT, postgres:// for the stand-in); since, when
// not zero, starts the reception window of the initial load.
var openSource = func(ctx context.Context, dsn string, since time.Time) (agent.Source, error) {
	r, err := ident.OpenOptions(ctx, dsn, ident.Options{Since: since})
	if err != nil {
		return nil, err
	}
	return r, nil
}

// serviceName is the Windows service's key name.
const serviceName = "SvyazkaConnector"

const usage = `svyazka-connector — коннектор «Связка IDENT & amoCRM»

Usage: svyazka-connector <command> [flags]

Commands:
  run        read IDENT and deliver changes in the foreground (Ctrl+C stops)
               --backend URL  --token TOKEN  --source DSN  [--state-dir DIR]
               [--since YYYY-MM-DD] [--poll DURATION] [--max-outbox-mb N]
             flags are saved in the state directory; later "run --state-dir DIR"
             needs nothing else, and flags given later override and are saved
  pair       serve the setup page (token «Подключить», database «Проверить»)
               [--listen 127.0.0.1:8765] [--backend URL] [--state-dir DIR]
  install    install and start the Windows service (Windows only) [--state-dir DIR]
  uninstall  stop and remove the Windows service (Windows only)
  version    print the version
  help       show this help

The state directory defaults to %ProgramData%\Svyazka on Windows and
./svyazka-connector-state elsewhere.
`

// errUsage marks a command-line mistake (exit code 2, usage printed).
var errUsage = errors.New("usage")

// errOnlyWindows is returned by install and uninstall on other systems.
var errOnlyWindows = errors.New("install and uninstall work only on Windows; on this system use `svyazka-connector run` under your own supervisor (systemd, launchd)")

func main() {
	if isService, err := isWindowsService(); err == nil && isService {
		runService()
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	switch {
	case err == nil:
	case errors.Is(err, errUsage):
		fmt.Fprintf(os.Stderr, "svyazka-connector: %v\n\n%s", err, usage)
		os.Exit(2)
	default:
		fmt.Fprintf(os.Stderr, "svyazka-connector: %v\n", err)
		os.Exit(1)
	}
}

// run dispatches a subcommand.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: no command given", errUsage)
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	switch args[0] {
	case "run":
		return cmdRun(ctx, args[1:], getenv, log)
	case "pair":
		return cmdPair(ctx, args[1:], getenv, stdout, log)
	case "install":
		return installService(args[1:], getenv, stdout)
	case "uninstall":
		return uninstallService(stdout)
	case "version":
		fmt.Fprintln(stdout, "svyazka-connector", version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		return fmt.Errorf("%w: unknown command %q", errUsage, args[0])
	}
}

func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %s: %v", errUsage, fs.Name(), err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: %s: unexpected argument %q", errUsage, fs.Name(), fs.Arg(0))
	}
	return nil
}

func stateDirOr(dir string, getenv func(string) string) string {
	if dir != "" {
		return dir
	}
	return config.DefaultStateDir(runtime.GOOS, getenv)
}

// runFlags parses run's flags, merges them over the saved configuration and
// saves the result when any was given.
func runFlags(args []string, getenv func(string) string) (string, config.Config, error) {
	fs := newFlagSet("run")
	stateDir := fs.String("state-dir", "", "")
	backend := fs.String("backend", "", "")
	token := fs.String("token", "", "")
	source := fs.String("source", "", "")
	since := fs.String("since", "", "")
	poll := fs.String("poll", "", "")
	maxOutbox := fs.Int64("max-outbox-mb", 0, "")
	if err := parseFlags(fs, args); err != nil {
		return "", config.Config{}, err
	}
	dir := stateDirOr(*stateDir, getenv)
	c, err := config.LoadOrInit(dir)
	if err != nil {
		return "", config.Config{}, err
	}
	changed := false
	fs.Visit(func(f *flag.Flag) {
		changed = changed || f.Name != "state-dir"
		switch f.Name {
		case "backend":
			c.BackendURL = *backend
		case "token":
			c.Token = *token
		case "source":
			c.SourceDSN = *source
		case "since":
			c.Since = *since
		case "poll":
			c.Poll = *poll
		case "max-outbox-mb":
			c.MaxOutboxMB = *maxOutbox
		}
	})
	if err := c.ValidateRun(); err != nil {
		return "", config.Config{}, err
	}
	if changed {
		if err := config.Save(dir, c); err != nil {
			return "", config.Config{}, err
		}
	}
	return dir, c, nil
}

// cmdRun runs the agent until ctx is done.
func cmdRun(ctx context.Context, args []string, getenv func(string) string, log *slog.Logger) error {
	dir, c, err := runFlags(args, getenv)
	if err != nil {
		return err
	}
	return runAgent(ctx, dir, c, log)
}

func runAgent(ctx context.Context, dir string, c config.Config, log *slog.Logger) error {
	since, _ := c.SinceTime()   // validated by ValidateRun
	poll, _ := c.PollInterval() // validated by ValidateRun
	log.Info("configuration", "state_dir", dir, "config", c.String())
	src := agent.NewLazySource(func(ctx context.Context) (agent.Source, error) {
		return openSource(ctx, c.SourceDSN, since)
	})
	defer src.Close()
	outbox, err := agent.OpenOutbox(filepath.Join(dir, "outbox.db"))
	if err != nil {
		return err
	}
	client, err := agent.NewClient(c.BackendURL, c.Token, &http.Client{Timeout: 2 * time.Minute})
	if err != nil {
		_ = outbox.Close()
		return err
	}
	maxBytes := c.MaxOutboxMB << 20
	hostname, _ := os.Hostname()
	a, err := agent.New(agent.Options{InstanceID: c.InstanceID, Hostname: hostname, Version: version, Poll: poll, MaxOutboxBytes: maxBytes},
		src, outbox, client, log)
	if err != nil {
		_ = outbox.Close()
		return err
	}
	runErr := a.Run(ctx)
	if err := a.Close(); err != nil && runErr == nil {
		runErr = err
	}
	return runErr
}

// cmdPair serves the setup page until ctx is done.
func cmdPair(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer, log *slog.Logger) error {
	fs := newFlagSet("pair")
	listen := fs.String("listen", "127.0.0.1:8765", "")
	stateDir := fs.String("state-dir", "", "")
	backend := fs.String("backend", defaultBackendURL, "")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	hostname, _ := os.Hostname()
	srv, err := pairing.New(pairing.Options{
		StateDir: stateDirOr(*stateDir, getenv), BackendURL: *backend, Version: version, Hostname: hostname,
		HTTPClient: &http.Client{Timeout: time.Minute}, Logger: log,
		OpenSource: func(ctx context.Context, dsn string) (agent.Source, error) {
			return openSource(ctx, dsn, time.Time{})
		},
	})
	if err != nil {
		return err
	}
	ln, err := pairing.Listen(*listen)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Откройте в браузере на этом компьютере: http://%s/\nОстановить: Ctrl+C\n", ln.Addr())
	return srv.Serve(ctx, ln)
}
