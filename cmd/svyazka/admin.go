package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/svyazka/svyazka/backend/admin"
	"github.com/svyazka/svyazka/backend/apperr"
	"github.com/svyazka/svyazka/backend/setup"
)

const adminUsage = `Usage: svyazka admin <command> [arguments]

ACCOUNT is the amoCRM account id (digits) or its subdomain (demo-clinic).

Commands:
  database add ACCOUNT --name NAME [--time-zone ZONE]
                   add a clinic database; its connector token is the last line
                   of the output (shown once). ZONE is an IANA zone such as
                   Asia/Yekaterinburg (default: DEFAULT_TIME_ZONE)
  status ACCOUNT   print the account, its subscription, its setup status
                   ("setup": not_configured, running, configured, failed or
                   drift) and its databases' links and received records as
                   one JSON object
  setup ACCOUNT [--blocks pipelines,contact,lead]
                   run autosetup with the default plan and the reuse
                   proposals, wait for it and print what was reused and
                   created; exit 0 when the account is configured, 1 naming
                   the failing item (needs REDIS_URL and amoCRM access)
  start ACCOUNT [--since YYYY-MM-DD]
                   start the sync (importing appointments from the date, in
                   the clinic's calendar); exit 1 naming every missing
                   precondition
  stop ACCOUNT     stop the sync; changes keep queueing
  help             show this help

The commands read the service's configuration (DATABASE_URL and the rest,
validated as for 'svyazka migrate') and log only warnings unless LOG_LEVEL
is set. Errors are one line on stderr with exit code 1; usage mistakes exit 2.
`

// runAdmin runs `svyazka admin …`: support's actions on one account, through
// the admin service.
func runAdmin(ctx context.Context, args []string, lookup func(string) (string, bool), stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: admin needs a command: database add, status, setup or help", errUsage)
	}
	var do func(*admin.Service) error
	needsSetup, needsSync := false, false
	switch args[0] {
	case "help", "-h", "--help":
		_, err := io.WriteString(stdout, adminUsage)
		return err
	case "database":
		if len(args) < 2 || args[1] != "add" {
			return fmt.Errorf("%w: admin database needs the command add", errUsage)
		}
		fs := flag.NewFlagSet("admin database add", flag.ContinueOnError)
		name := fs.String("name", "", "database name")
		zone := fs.String("time-zone", "", "IANA time zone")
		pos, err := parseInterspersed(fs, args[2:])
		if errors.Is(err, flag.ErrHelp) {
			_, err = io.WriteString(stdout, adminUsage)
			return err
		}
		if err != nil {
			return fmt.Errorf("%w: admin database add: %v", errUsage, err)
		}
		if len(pos) != 1 || !flagSet(fs, "name") {
			return fmt.Errorf("%w: admin database add needs ACCOUNT and --name NAME", errUsage)
		}
		do = func(svc *admin.Service) error {
			token, d, err := svc.AddDatabase(ctx, pos[0], *name, *zone)
			if err != nil {
				return adminError("database add", err)
			}
			_, err = fmt.Fprintf(stdout, "added database %d %q (time zone %s) to account %s\n"+
				"connector token, shown once; paste it into the connector on the IDENT server:\n%s\n", d.ID, d.Name, d.TimeZone, pos[0], token)
			return err
		}
	case "status":
		fs := flag.NewFlagSet("admin status", flag.ContinueOnError)
		pos, err := parseInterspersed(fs, args[1:])
		if errors.Is(err, flag.ErrHelp) {
			_, err = io.WriteString(stdout, adminUsage)
			return err
		}
		if err != nil {
			return fmt.Errorf("%w: admin status: %v", errUsage, err)
		}
		if len(pos) != 1 {
			return fmt.Errorf("%w: admin status needs one ACCOUNT", errUsage)
		}
		do = func(svc *admin.Service) error {
			st, err := svc.Status(ctx, pos[0])
			if err != nil {
				return adminError("status", err)
			}
			enc := json.NewEncoder(stdout)
			enc.SetEscapeHTML(false)
			enc.SetIndent("", "  ")
			return enc.Encode(st)
		}
	case "setup":
		fs := flag.NewFlagSet("admin setup", flag.ContinueOnError)
		blocksArg := fs.String("blocks", "pipelines,contact,lead", "blocks to set up")
		pos, err := parseInterspersed(fs, args[1:])
		if errors.Is(err, flag.ErrHelp) {
			_, err = io.WriteString(stdout, adminUsage)
			return err
		}
		if err != nil {
			return fmt.Errorf("%w: admin setup: %v", errUsage, err)
		}
		if len(pos) != 1 {
			return fmt.Errorf("%w: admin setup needs one ACCOUNT", errUsage)
		}
		var blocks []setup.Block
		for _, b := range strings.Split(*blocksArg, ",") {
			if b = strings.TrimSpace(b); b != "" {
				blocks = append(blocks, setup.Block(b))
			}
		}
		for _, b := range blocks {
			if !slices.Contains(setup.AllBlocks(), b) {
				return fmt.Errorf("%w: admin setup: unknown block %q (pipelines, contact, lead)", errUsage, b)
			}
		}
		if len(blocks) == 0 {
			return fmt.Errorf("%w: admin setup: --blocks needs at least one of pipelines, contact, lead", errUsage)
		}
		needsSetup = true
		do = func(svc *admin.Service) error {
			rep, err := svc.Setup(ctx, pos[0], blocks)
			for _, it := range rep.Items {
				line := fmt.Sprintf("%-8s %-32s «%s»", it.Outcome, it.Item, it.Name)
				if it.ID != 0 {
					line += fmt.Sprintf(" (id %d)", it.ID)
				}
				if it.Note != "" {
					line += " — " + it.Note
				}
				if _, werr := fmt.Fprintln(stdout, line); werr != nil {
					return werr
				}
			}
			if err != nil {
				return adminError("setup", err)
			}
			_, err = fmt.Fprintf(stdout, "account %s is %s (run %s)\n", pos[0], rep.Status, rep.RunID)
			return err
		}
	case "start", "stop":
		cmd := args[0]
		fs := flag.NewFlagSet("admin "+cmd, flag.ContinueOnError)
		since := fs.String("since", "", "import appointments from this date (YYYY-MM-DD)")
		pos, err := parseInterspersed(fs, args[1:])
		if errors.Is(err, flag.ErrHelp) {
			_, err = io.WriteString(stdout, adminUsage)
			return err
		}
		if err != nil {
			return fmt.Errorf("%w: admin %s: %v", errUsage, cmd, err)
		}
		if len(pos) != 1 || (cmd == "stop" && flagSet(fs, "since")) {
			return fmt.Errorf("%w: admin %s needs one ACCOUNT", errUsage, cmd)
		}
		needsSync = true
		do = func(svc *admin.Service) error {
			if cmd == "stop" {
				if err := svc.StopSync(ctx, pos[0]); err != nil {
					return adminError(cmd, err)
				}
				_, err := fmt.Fprintf(stdout, "sync of account %s stopped\n", pos[0])
				return err
			}
			if err := svc.StartSync(ctx, pos[0], *since); err != nil {
				return adminError(cmd, err)
			}
			_, err := fmt.Fprintf(stdout, "sync of account %s started\n", pos[0])
			return err
		}
	default:
		return fmt.Errorf("%w: unknown admin command %q", errUsage, args[0])
	}

	// The same configuration as migrate (a production host has it all); the
	// commands decrypt nothing, but one validated config beats a second,
	// laxer loader. The configuration line is noise in a support script.
	m, err := Open(ctx, quietByDefault(lookup), stderr)
	if err != nil {
		return err
	}
	defer m.Close()
	cfg := admin.Config{Store: m.DB, Now: time.Now, DefaultTimeZone: m.Config.DefaultTimeZone,
		MaxDatabases: m.Config.MaxDatabases, Log: m.Log}
	if needsSetup {
		// In-process, not through the worker: support waits for the result.
		cfg.Setup = m.setupRunner()
	}
	if needsSync {
		cfg.Sync = m.syncControl()
	}
	svc, err := admin.New(cfg)
	if err != nil {
		return err
	}
	return do(svc)
}

// adminError words a service error for the terminal: the user-safe message
// of an application error, the whole chain of an internal one (support
// staff read it on the server, and it names what failed).
func adminError(cmd string, err error) error {
	if apperr.CodeOf(err) == apperr.Internal {
		return fmt.Errorf("admin %s: %w", cmd, err)
	}
	return fmt.Errorf("admin %s: %s", cmd, apperr.MessageOf(err))
}

// parseInterspersed parses flags that may come before or after the
// positional arguments (`add demo --name X` and `add --name X demo`).
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	fs.SetOutput(io.Discard)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// quietByDefault makes LOG_LEVEL default to warn.
func quietByDefault(lookup func(string) (string, bool)) func(string) (string, bool) {
	return func(key string) (string, bool) {
		if v, ok := lookup(key); ok || key != "LOG_LEVEL" {
			return v, ok
		}
		return "warn", true
	}
}
