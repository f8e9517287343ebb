package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/svyazka/svyazka/backend/config"
	"github.com/svyazka/svyazka/widget"
)

// runWidgetArchive builds the widget archive for this deployment's PUBLIC_URL
// and validates it before writing, so a broken archive never reaches amoCRM.
func runWidgetArchive(args []string, lookup func(string) (string, bool), stdout, stderr io.Writer) error {
	// The archive needs only PUBLIC_URL and holds no secret, so building it
	// must not demand the production secrets.
	cfg, err := config.Load(developmentByDefault(lookup))
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	fs := flag.NewFlagSet("widget-archive", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("o", "widget.zip", "where to write the archive")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	var buf bytes.Buffer
	if err := widget.BuildArchive(&buf, cfg.PublicURL); err != nil {
		return err
	}
	if problems := widget.ValidateZip(bytes.NewReader(buf.Bytes()), int64(buf.Len())); len(problems) > 0 {
		return fmt.Errorf("widget archive is invalid: %s (and %d more)", problems[0], len(problems)-1)
	}
	if err := os.WriteFile(*out, buf.Bytes(), 0o644); err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "wrote %s (%d bytes) for %s\n", *out, buf.Len(), cfg.PublicURL)
	return err
}
