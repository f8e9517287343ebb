// Package config is the connector's saved configuration in its state
// directory, so that after the first `run --backend … --token … --source …`
// (or pairing) a bare `run --state-dir DIR`, or the Windows service, needs
// nothing else.
//
// Layout of the state directory:
//
//	config.json     backend URL, --since, --poll, --max-outbox-mb, instance id (not secret)
//	secrets.json    token and source DSN, mode 0600 (Linux, macOS): a file
//	                readable by group or others is refused
//	secrets.dpapi   the same, sealed with DPAPI in machine scope (Windows);
//	                the directory's ACL admits only SYSTEM and Administrators
//	outbox.db       the agent's outbox (connector/agent)
//
// Machine scope on Windows lets the service (LocalSystem) open what an
// administrator saved interactively with `pair`; the directory ACL is what
// keeps other local users out.
package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Config is what the connector needs to run. Token and SourceDSN are secrets:
// they are stored apart, sealed, and never printed.
type Config struct {
	BackendURL string `json:"backend_url,omitempty"`
	// Since (YYYY-MM-DD) limits the initial load to changes from that day; empty: everything.
	Since string `json:"since,omitempty"`
	// Poll is the pause between reads once caught up (a Go duration, e.g. "5s").
	Poll string `json:"poll,omitempty"`
	// MaxOutboxMB bounds the outbox's pending batches; 0: the agent's default.
	MaxOutboxMB int64  `json:"max_outbox_mb,omitempty"`
	InstanceID  string `json:"instance_id,omitempty"`

	Token     string `json:"-"`
	SourceDSN string `json:"-"`
}

type secrets struct {
	Token     string `json:"token,omitempty"`
	SourceDSN string `json:"source_dsn,omitempty"`
}

const configFile = "config.json"

// DefaultStateDir is %ProgramData%\Svyazka on Windows and
// ./svyazka-connector-state elsewhere (relative to the working directory).
func DefaultStateDir(goos string, getenv func(string) string) string {
	if goos == "windows" {
		base := getenv("ProgramData")
		if base == "" {
			base = `C:\ProgramData`
		}
		return base + `\Svyazka`
	}
	return "svyazka-connector-state"
}

// Load reads the configuration saved in dir. A missing directory or file
// gives an empty Config; a secrets file others can read, or one that cannot
// be unsealed, is an error.
func Load(dir string) (Config, error) {
	var c Config
	data, err := os.ReadFile(filepath.Join(dir, configFile))
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return Config{}, fmt.Errorf("config: read %s: %w", filepath.Join(dir, configFile), err)
	default:
		if err := json.Unmarshal(data, &c); err != nil {
			return Config{}, fmt.Errorf("config: parse %s: %w", filepath.Join(dir, configFile), err)
		}
	}
	path := filepath.Join(dir, secretsFile)
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return Config{}, fmt.Errorf("config: open %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return Config{}, fmt.Errorf("config: stat %s: %w", path, err)
	}
	if err := checkSecretsPerm(path, fi); err != nil {
		return Config{}, err
	}
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(f); err != nil {
		return Config{}, fmt.Errorf("config: read %s: %w", path, err)
	}
	plain, err := unseal(buf.Bytes())
	if err != nil {
		return Config{}, fmt.Errorf("config: unseal %s: %w", path, err)
	}
	var s secrets
	if err := json.Unmarshal(plain, &s); err != nil {
		return Config{}, fmt.Errorf("config: parse %s: %w", path, err)
	}
	c.Token, c.SourceDSN = s.Token, s.SourceDSN
	return c, nil
}

// Save writes c to dir (created with restricted access if missing). Each file
// is written to a temporary name and renamed, so a crash leaves the old or
// the new version, never half of one.
func Save(dir string, c Config) error {
	if err := makeStateDir(dir); err != nil {
		return fmt.Errorf("config: create state dir %s: %w", dir, err)
	}
	data, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	if err := writeAtomic(filepath.Join(dir, configFile), data); err != nil {
		return err
	}
	plain, err := json.Marshal(secrets{Token: c.Token, SourceDSN: c.SourceDSN})
	if err != nil {
		return err
	}
	sealed, err := seal(plain)
	if err != nil {
		return fmt.Errorf("config: seal secrets: %w", err)
	}
	return writeAtomic(filepath.Join(dir, secretsFile), sealed)
}

// LoadOrInit loads dir and, when it has no instance id yet, creates one and
// saves it, so the id is made once per installation.
func LoadOrInit(dir string) (Config, error) {
	c, err := Load(dir)
	if err != nil {
		return Config{}, err
	}
	if c.InstanceID == "" {
		c.InstanceID = uuid.NewString()
		if err := Save(dir, c); err != nil {
			return Config{}, err
		}
	}
	return c, nil
}

func writeAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("config: write %s: %w", path, err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		// An older file may have been created with wider permissions.
		err = os.Chmod(tmp, 0o600)
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("config: write %s: %w", path, err)
	}
	return nil
}

// ErrIncomplete is returned by ValidateRun when something needed is missing.
var ErrIncomplete = errors.New("config: incomplete")

// ValidateRun checks c has what `run` needs. The message names the flag to add.
func (c Config) ValidateRun() error {
	var missing []string
	if c.BackendURL == "" {
		missing = append(missing, "--backend")
	}
	if c.Token == "" {
		missing = append(missing, "--token")
	}
	if c.SourceDSN == "" {
		missing = append(missing, "--source")
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: not saved yet, give %s (or pair the connector first)", ErrIncomplete, strings.Join(missing, ", "))
	}
	if u, err := url.Parse(c.BackendURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("config: --backend %q is not an http(s) URL", c.BackendURL)
	}
	if _, err := c.SinceTime(); err != nil {
		return err
	}
	if _, err := c.PollInterval(); err != nil {
		return err
	}
	if c.MaxOutboxMB < 0 {
		return fmt.Errorf("config: --max-outbox-mb must not be negative")
	}
	return nil
}

// SinceTime is Since as a UTC midnight; zero when empty.
func (c Config) SinceTime() (time.Time, error) {
	if c.Since == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.DateOnly, c.Since)
	if err != nil {
		return time.Time{}, fmt.Errorf("config: --since %q is not a YYYY-MM-DD date", c.Since)
	}
	return t, nil
}

// PollInterval is Poll as a duration; 0 (the agent's default) when empty.
func (c Config) PollInterval() (time.Duration, error) {
	if c.Poll == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(c.Poll)
	if err != nil || d < 100*time.Millisecond {
		return 0, fmt.Errorf("config: --poll %q is not a duration of at least 100ms (e.g. 5s)", c.Poll)
	}
	return d, nil
}

// String describes c with the secrets hidden.
func (c Config) String() string {
	hide := func(s string) string {
		if s == "" {
			return "(none)"
		}
		return "(set)"
	}
	return fmt.Sprintf("backend=%s token=%s source=%s since=%s poll=%s max_outbox_mb=%d instance_id=%s",
		c.BackendURL, hide(c.Token), hide(c.SourceDSN), c.Since, c.Poll, c.MaxOutboxMB, c.InstanceID)
}
