// Package admin is what Svyazka's support staff may do to an account: add a
// clinic database and issue its connector token, and read the account's
// status. The `svyazka admin` command line and the support admin panel both
// call this Service and only translate its typed values; the rules live here.
//
// Every method finds the account by its amoCRM id (digits) or its amoCRM
// subdomain, and checks its inputs before it writes anything:
//
//   - a database name is 1–100 characters of valid UTF-8 without control
//     characters (runs of spaces are collapsed);
//   - a time zone is an IANA name such as Europe/Moscow (empty means the
//     configured default; "Local" is refused: it means the server's zone);
//   - an account has at most MaxDatabases databases;
//   - an uninstalled account gets no new databases.
//
// Errors are apperr errors with messages safe to show to support staff:
// Invalid for bad input, NotFound for an unknown account, Conflict for the
// cap, an uninstalled account or an ambiguous subdomain; anything else is an
// internal error that keeps its cause.
package admin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/svyazka/svyazka/backend/accountstate"
	"github.com/svyazka/svyazka/backend/apperr"
	"github.com/svyazka/svyazka/backend/conntoken"
	"github.com/svyazka/svyazka/backend/engine"
	"github.com/svyazka/svyazka/backend/eventlog"
	"github.com/svyazka/svyazka/backend/setup"
	"github.com/svyazka/svyazka/backend/store"
	"github.com/svyazka/svyazka/billing"
)

// MaxNameRunes is the longest database name, in characters.
const MaxNameRunes = 100

// Bounds on the other inputs, far above any real zone name or subdomain.
const (
	maxZoneLen       = 64
	maxAccountArgLen = 100
)

// Store is the storage the service needs; *store.DB satisfies it.
type Store interface {
	AccountByAmoID(ctx context.Context, amoID int64) (store.Account, error)
	AccountBySubdomain(ctx context.Context, sub string) (store.Account, error)
	Subscription(ctx context.Context, accountID int64) (billing.Subscription, error)
	ListDatabases(ctx context.Context, accountID int64) ([]store.ClinicDatabase, error)
	IssueConnectorToken(ctx context.Context, req store.TokenRequest) (store.ClinicDatabase, error)
	ReceivedCounts(ctx context.Context, databaseID int64) (map[string]int64, error)
	Record(ctx context.Context, e eventlog.Event) error
	SetupState(ctx context.Context, accountID int64) (setup.AccountState, error)
	SettingsState(ctx context.Context, accountID int64) (store.SettingsState, error)
	SyncProgress(ctx context.Context, accountID int64) (store.SyncProgress, error)
}

// Config holds the service's dependencies; every field is required.
type Config struct {
	Store Store
	// Now is the clock.
	Now func() time.Time
	// DefaultTimeZone is the zone of a database added without one (the
	// config's DEFAULT_TIME_ZONE).
	DefaultTimeZone string
	// MaxDatabases caps an account's databases (MAX_DATABASES_PER_ACCOUNT).
	MaxDatabases int
	Log          *slog.Logger
	// Setup runs autosetup for `svyazka admin setup`; optional (nil: the
	// command is unavailable).
	Setup SetupRunner
	// Sync starts and stops the sync for `svyazka admin start|stop`;
	// optional (nil: the commands are unavailable).
	Sync *engine.Control
}

// Service carries out support's actions on accounts.
type Service struct {
	store        Store
	now          func() time.Time
	defaultZone  string
	maxDatabases int
	log          *slog.Logger
	setup        SetupRunner
	sync         *engine.Control
}

// New returns a Service. It fails on a missing dependency, a default zone
// that does not load, or a cap below 1.
func New(c Config) (*Service, error) {
	if c.Store == nil || c.Now == nil || c.Log == nil {
		return nil, errors.New("admin: New needs Store, Now and Log")
	}
	if _, err := loadZone(c.DefaultTimeZone); err != nil {
		return nil, fmt.Errorf("admin: default time zone %q: %w", c.DefaultTimeZone, err)
	}
	if c.MaxDatabases < 1 {
		return nil, fmt.Errorf("admin: MaxDatabases must be at least 1, got %d", c.MaxDatabases)
	}
	return &Service{store: c.Store, now: c.Now, defaultZone: c.DefaultTimeZone, maxDatabases: c.MaxDatabases, log: c.Log, setup: c.Setup, sync: c.Sync}, nil
}

// AccountStatus is an account as support sees it.
type AccountStatus struct {
	Account      AccountInfo      `json:"account"`
	Subscription SubscriptionInfo `json:"subscription"`
	Databases    []DatabaseStatus `json:"databases"`
	// Setup is not_configured, running, configured, failed or drift.
	Setup setup.Status `json:"setup"`
	// SetupDetail says why setup failed or drifted ("" otherwise).
	SetupDetail string `json:"setup_detail"`
	// Sync is running, stopped or paused; SyncStartedAt its last start.
	Sync          string     `json:"sync"`
	SyncStartedAt *time.Time `json:"sync_started_at"`
	// Queue counts the changes waiting to be written and the parked records.
	Queue store.SyncQueue `json:"queue"`
	// Import counts the source records the last start took on and those
	// the sync has processed (see store.SyncProgress).
	Import ImportProgress `json:"import"`
	// LagSeconds is the age of the oldest change waiting (0: none).
	LagSeconds int64 `json:"lag_seconds"`
	// CheckedAt is the moment the statuses were evaluated at.
	CheckedAt time.Time `json:"checked_at"`
}

// ImportProgress is the last start's import: done of total records.
type ImportProgress struct {
	Total int64 `json:"total"`
	Done  int64 `json:"done"`
}

// AccountInfo identifies the account.
type AccountInfo struct {
	ID           int64  `json:"id"`
	AmoAccountID int64  `json:"amo_account_id"`
	Subdomain    string `json:"subdomain"`
	BaseDomain   string `json:"base_domain"`
	Name         string `json:"name"`
	// Status is active, uninstalled, auth_failed or blocked.
	Status          string `json:"status"`
	TimeZone        string `json:"time_zone"`
	InstallFormDone bool   `json:"install_form_done"`
}

// SubscriptionInfo is the subscription at CheckedAt.
type SubscriptionInfo struct {
	// Status is the effective status (a trial that ran out reads expired).
	Status      billing.Status `json:"status"`
	Label       string         `json:"label"`
	AllowsWork  bool           `json:"allows_work"`
	TrialEndsAt *time.Time     `json:"trial_ends_at"`
	PaidUntil   *time.Time     `json:"paid_until"`
	PaidSeats   int            `json:"paid_seats"`
}

// DatabaseStatus is one clinic database with its two links at CheckedAt.
type DatabaseStatus struct {
	ID     int64  `json:"id"`
	Name   string `json:"name"`
	Source string `json:"source"`
	// Connector is connected or disconnected: a connector never seen, or
	// silent for accountstate.ConnectorStaleAfter, is disconnected.
	Connector accountstate.LinkStatus `json:"connector"`
	// Database is the connector's last report of its database, connected
	// or disconnected (never reported: disconnected).
	Database accountstate.LinkStatus `json:"database"`
	// DatabaseDetail is the connector's reason when the database is down.
	DatabaseDetail string `json:"database_detail"`
	TimeZone       string `json:"time_zone"`
	// LastSeenAt is the connector's last heartbeat, UTC to the second (nil: never).
	LastSeenAt       *time.Time `json:"last_seen_at"`
	Hostname         string     `json:"hostname"`
	ConnectorVersion string     `json:"connector_version"`
	SourceVersion    string     `json:"source_version"`
	// Pending is how many records wait in the connector's outbox.
	Pending         int64      `json:"pending"`
	InitialLoadDone bool       `json:"initial_load_done"`
	TokenIssuedAt   *time.Time `json:"token_issued_at"`
	Received        Received   `json:"received"`
}

// Received counts the distinct source records stored for a database
// (deleted ones excluded).
type Received struct {
	Patients     int64 `json:"patients"`
	Appointments int64 `json:"appointments"`
}

// AddDatabase adds a clinic database named name in zone (empty: the default
// zone) to the account and returns its new connector token — shown once;
// only its hash is stored — with the database. The event log records that
// support issued it. Errors: Invalid (name, zone, account argument),
// NotFound (account), Conflict (cap reached, account uninstalled, ambiguous
// subdomain).
func (s *Service) AddDatabase(ctx context.Context, account string, name, zone string) (string, DatabaseStatus, error) {
	name, err := cleanName(name)
	if err != nil {
		return "", DatabaseStatus{}, err
	}
	zone, err = s.cleanZone(zone)
	if err != nil {
		return "", DatabaseStatus{}, err
	}
	acc, err := s.account(ctx, account)
	if err != nil {
		return "", DatabaseStatus{}, err
	}
	if acc.Status == store.AccountUninstalled {
		return "", DatabaseStatus{}, apperr.New(apperr.Conflict, "account %s (amoCRM %d) has uninstalled the widget; it gets no new databases", acc.Subdomain, acc.AmoAccountID)
	}
	now := s.now().UTC()
	token, hash := conntoken.New()
	d, err := s.store.IssueConnectorToken(ctx, store.TokenRequest{AccountID: acc.ID, TokenHash: hash, Now: now,
		MaxDatabases: s.maxDatabases, Name: name, TimeZone: zone, BySupport: true})
	switch {
	case errors.Is(err, store.ErrTooManyDatabases):
		return "", DatabaseStatus{}, apperr.New(apperr.Conflict, "account %s (amoCRM %d) already has the maximum of %d databases (MAX_DATABASES_PER_ACCOUNT)",
			acc.Subdomain, acc.AmoAccountID, s.maxDatabases)
	case err != nil:
		return "", DatabaseStatus{}, fmt.Errorf("admin: add database to account %d: %w", acc.ID, err)
	}
	return token, databaseStatus(d, nil, now), nil
}

// Status returns the account with its subscription and every database's
// links and received counts, evaluated now. Errors: Invalid (account
// argument), NotFound, Conflict (ambiguous subdomain).
func (s *Service) Status(ctx context.Context, account string) (AccountStatus, error) {
	acc, err := s.account(ctx, account)
	if err != nil {
		return AccountStatus{}, err
	}
	now := s.now().UTC()
	sub, err := s.store.Subscription(ctx, acc.ID)
	if err != nil {
		return AccountStatus{}, fmt.Errorf("admin: status of account %d: %w", acc.ID, err)
	}
	dbs, err := s.store.ListDatabases(ctx, acc.ID)
	if err != nil {
		return AccountStatus{}, fmt.Errorf("admin: status of account %d: %w", acc.ID, err)
	}
	st := AccountStatus{
		Account: AccountInfo{ID: acc.ID, AmoAccountID: acc.AmoAccountID, Subdomain: acc.Subdomain, BaseDomain: acc.BaseDomain,
			Name: acc.Name, Status: acc.Status, TimeZone: acc.Timezone, InstallFormDone: acc.InstallFormDone()},
		Subscription: subscriptionInfo(sub, now),
		Databases:    make([]DatabaseStatus, 0, len(dbs)),
		CheckedAt:    now.Truncate(time.Second),
	}
	setupState, err := s.store.SetupState(ctx, acc.ID)
	if err != nil {
		return AccountStatus{}, fmt.Errorf("admin: status of account %d: %w", acc.ID, err)
	}
	st.Setup, st.SetupDetail = setupState.Status, setupState.Detail
	settings, err := s.store.SettingsState(ctx, acc.ID)
	if err != nil {
		return AccountStatus{}, fmt.Errorf("admin: status of account %d: %w", acc.ID, err)
	}
	st.Sync, st.SyncStartedAt = settings.SyncState, utcSecond(settings.SyncStartedAt)
	progress, err := s.store.SyncProgress(ctx, acc.ID)
	if err != nil {
		return AccountStatus{}, fmt.Errorf("admin: status of account %d: %w", acc.ID, err)
	}
	st.Queue, st.LagSeconds = progress.Queue, progress.LagSeconds(now)
	st.Import = ImportProgress{Total: progress.ImportTotal(), Done: progress.ImportDone()}
	for _, d := range dbs {
		counts, err := s.store.ReceivedCounts(ctx, d.ID)
		if err != nil {
			return AccountStatus{}, fmt.Errorf("admin: status of account %d: %w", acc.ID, err)
		}
		st.Databases = append(st.Databases, databaseStatus(d, counts, now))
	}
	return st, nil
}

// account finds the account named by arg: digits are an amoCRM id (then a
// subdomain, as a subdomain may be all digits), anything else a subdomain.
func (s *Service) account(ctx context.Context, arg string) (store.Account, error) {
	arg = strings.TrimSpace(arg)
	if arg == "" || len(arg) > maxAccountArgLen || !plainText(arg) {
		return store.Account{}, apperr.New(apperr.Invalid, "give the account as its amoCRM id (digits) or subdomain")
	}
	notFound := apperr.New(apperr.NotFound, "no account with amoCRM id or subdomain %q", arg)
	if id, err := strconv.ParseInt(arg, 10, 64); err == nil && id > 0 {
		acc, err := s.store.AccountByAmoID(ctx, id)
		if err == nil {
			return acc, nil
		}
		if !errors.Is(err, store.ErrNotFound) {
			return store.Account{}, fmt.Errorf("admin: account %d: %w", id, err)
		}
	}
	acc, err := s.store.AccountBySubdomain(ctx, arg)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return store.Account{}, notFound
	case err != nil && apperr.CodeOf(err) != apperr.Internal:
		return store.Account{}, err // the ambiguous-subdomain conflict, already worded for support
	case err != nil:
		return store.Account{}, fmt.Errorf("admin: account %q: %w", arg, err)
	}
	return acc, nil
}

// cleanName checks a database name and collapses its spaces.
func cleanName(raw string) (string, error) {
	bad := apperr.New(apperr.Invalid, "database name must be 1 to %d characters without control characters", MaxNameRunes)
	if !plainText(raw) {
		return "", bad
	}
	name := strings.Join(strings.Fields(raw), " ")
	if name == "" || utf8.RuneCountInString(name) > MaxNameRunes {
		return "", bad
	}
	return name, nil
}

// cleanZone checks an IANA zone name; empty is the default zone.
func (s *Service) cleanZone(raw string) (string, error) {
	zone := strings.TrimSpace(raw)
	if zone == "" {
		return s.defaultZone, nil
	}
	if len(zone) > maxZoneLen || !plainText(zone) {
		return "", apperr.New(apperr.Invalid, "time zone must be an IANA name such as Europe/Moscow")
	}
	if _, err := loadZone(zone); err != nil {
		return "", apperr.New(apperr.Invalid, "unknown time zone %q: use an IANA name such as Europe/Moscow", zone)
	}
	return zone, nil
}

// loadZone loads an IANA zone, refusing the names LoadLocation reads
// specially ("" is UTC and "Local" the server's zone, neither a clinic's).
func loadZone(name string) (*time.Location, error) {
	if name == "" || name == "Local" {
		return nil, errors.New("not an IANA time zone")
	}
	return time.LoadLocation(name)
}

// plainText reports whether s is valid UTF-8 without control characters.
func plainText(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}

func subscriptionInfo(sub billing.Subscription, now time.Time) SubscriptionInfo {
	st := sub.Effective(now)
	return SubscriptionInfo{Status: st, Label: st.Label(), AllowsWork: sub.AllowsWork(now),
		TrialEndsAt: utcSecond(sub.TrialEndsAt), PaidUntil: utcSecond(sub.PaidUntil), PaidSeats: sub.PaidSeats}
}

// databaseStatus applies accountstate's rule (a silent connector is
// disconnected) and folds "unknown" into disconnected: support asks "is it
// working", and a link never seen is not.
func databaseStatus(d store.ClinicDatabase, counts map[string]int64, now time.Time) DatabaseStatus {
	eff := accountstate.Database{Name: d.Name, Connector: accountstate.ParseLinkStatus(d.ConnectorStatus),
		Database: accountstate.ParseLinkStatus(d.DBStatus), Detail: d.DBStatusDetail, SeenAt: d.ConnectorSeenAt}.Effective(now)
	return DatabaseStatus{
		ID: d.ID, Name: d.Name, Source: d.Source,
		Connector: connectedOrNot(eff.Connector), Database: connectedOrNot(eff.Database), DatabaseDetail: eff.Detail,
		TimeZone: d.TimeZone, LastSeenAt: utcSecond(d.ConnectorSeenAt), Hostname: d.InstanceHostname,
		ConnectorVersion: d.ConnectorVersion, SourceVersion: d.SourceVersion, Pending: d.OutboxPending,
		InitialLoadDone: d.InitialLoadDone, TokenIssuedAt: utcSecond(d.TokenIssuedAt),
		Received: Received{Patients: counts["patient"], Appointments: counts["reception"]},
	}
}

func connectedOrNot(s accountstate.LinkStatus) accountstate.LinkStatus {
	if s == accountstate.Connected {
		return accountstate.Connected
	}
	return accountstate.Disconnected
}

// utcSecond returns t in UTC without fractions of a second, so it prints as
// RFC 3339 like 2025-03-01T09:30:00Z.
func utcSecond(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC().Truncate(time.Second)
	return &u
}
