package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/svyazka/svyazka/backend/accountstate"
	"github.com/svyazka/svyazka/backend/apperr"
	"github.com/svyazka/svyazka/backend/conntoken"
	"github.com/svyazka/svyazka/backend/eventlog"
	"github.com/svyazka/svyazka/backend/phone"
	"github.com/svyazka/svyazka/backend/store"
	"github.com/svyazka/svyazka/billing"
)

// AppStore is the storage the settings page API uses.
type AppStore interface {
	AccountByAmoID(ctx context.Context, amoID int64) (store.Account, error)
	AccountByID(ctx context.Context, id int64) (store.Account, error)
	SaveInstallForm(ctx context.Context, accountID int64, name, phone string, userID int64, now time.Time) error
	Subscription(ctx context.Context, accountID int64) (billing.Subscription, error)
	ListDatabases(ctx context.Context, accountID int64) ([]store.ClinicDatabase, error)
	IssueConnectorToken(ctx context.Context, req store.TokenRequest) (store.ClinicDatabase, error)
	ListEvents(ctx context.Context, f eventlog.Filter) ([]eventlog.Event, int64, error)
	// ExportEvents streams the events matching f from one snapshot, in
	// pages, up to limit rows; more reports that rows beyond it matched.
	ExportEvents(ctx context.Context, f eventlog.Filter, limit int, fn func([]eventlog.Event) error) (more bool, err error)
	SettingsState(ctx context.Context, accountID int64) (store.SettingsState, error)
	SyncProgress(ctx context.Context, accountID int64) (store.SyncProgress, error)
	SyncSettingsStore
}

type appRoutes struct {
	cfg     WidgetConfig
	log     *slog.Logger
	exports *exportGate
}

func registerApp(g *echo.Group, cfg WidgetConfig, log *slog.Logger) {
	a := &appRoutes{cfg: cfg, log: log, exports: newExportGate(exportsPerAccount, exportsGlobal)}
	g.GET("/state", a.state)
	g.POST("/install-form", a.installForm)
	g.POST("/databases/token", a.issueToken)
	g.GET("/events", a.events)
	g.GET("/events.csv", a.eventsCSV)
	registerSetup(g, a)
	registerSync(g, a)
}

// account loads the session's account; an uninstalled account's session ends.
func (a *appRoutes) account(c echo.Context) (store.Account, error) {
	acc, err := a.cfg.App.AccountByID(c.Request().Context(), sessionOf(c).AccountID)
	if err != nil {
		return store.Account{}, err
	}
	if acc.Status != store.AccountActive {
		return store.Account{}, apperr.New(apperr.Unauthorized, "Виджет отключён в amoCRM. Установите его заново.")
	}
	if acc.InstallSeq != sessionOf(c).InstallSeq {
		// Issued before a reinstall: whoever held it then holds nothing now.
		return store.Account{}, apperr.New(apperr.Unauthorized, "Виджет был установлен заново. Откройте его настройки ещё раз.")
	}
	return acc, nil
}

// requireAdmin refuses users who are not admins of the amoCRM account: they
// may look, but not add databases or rotate tokens (a rotation disconnects
// the live connector).
func requireAdmin(c echo.Context) error {
	if !sessionOf(c).IsAdmin {
		return apperr.New(apperr.Forbidden, "Это действие доступно только администратору аккаунта amoCRM.")
	}
	return nil
}

type accountJSON struct {
	Subdomain       string     `json:"subdomain"`
	Name            string     `json:"name"`
	InstallFormDone bool       `json:"install_form_done"`
	ContactName     string     `json:"contact_name"`
	ContactPhone    string     `json:"contact_phone"`
	ConsentAt       *time.Time `json:"consent_at"`
	InstalledAt     time.Time  `json:"installed_at"`
	Timezone        string     `json:"timezone"`
}

type subscriptionJSON struct {
	Status      billing.Status `json:"status"`
	Label       string         `json:"label"`
	TrialEndsAt *time.Time     `json:"trial_ends_at"`
	PaidUntil   *time.Time     `json:"paid_until"`
	PaidSeats   int            `json:"paid_seats"`
	AllowsWork  bool           `json:"allows_work"`
	Hint        string         `json:"hint"`
}

type statusJSON struct {
	State accountstate.LinkStatus `json:"state"`
	Label string                  `json:"label"`
	Hint  string                  `json:"hint,omitempty"`
}

func statusOf(s accountstate.Status) statusJSON {
	return statusJSON{State: s.State, Label: s.Label, Hint: s.Hint}
}

type databaseJSON struct {
	ID            int64      `json:"id"`
	Name          string     `json:"name"`
	Source        string     `json:"source"`
	TokenIssuedAt *time.Time `json:"token_issued_at"`
	Connector     statusJSON `json:"connector"`
	Database      statusJSON `json:"database"`
	CheckedAt     *time.Time `json:"checked_at"`
	TimeZone      string     `json:"time_zone"`
	LastSeenAt    *time.Time `json:"last_seen_at"`
	Hostname      string     `json:"hostname"`
	SourceVersion string     `json:"source_version"`
	Pending       int64      `json:"pending"`
	InitialLoad   bool       `json:"initial_load_done"`
}

type stateJSON struct {
	Account      accountJSON                 `json:"account"`
	Subscription subscriptionJSON            `json:"subscription"`
	Databases    []databaseJSON              `json:"databases"`
	Setup        store.SettingsState         `json:"setup"`
	Start        startJSON                   `json:"start"`
	Sync         syncJSON                    `json:"sync"`
	Problems     map[accountstate.Tab]string `json:"problems"`
	User         userJSON                    `json:"user"`
	EventTypes   []labelJSON                 `json:"event_types"`
	Severities   []labelJSON                 `json:"severities"`
	Limits       limitsJSON                  `json:"limits"`
}

type startJSON struct {
	Enabled bool     `json:"enabled"`
	Missing []string `json:"missing"`
	// Reasons are the machine codes of Missing, in the same order.
	Reasons []accountstate.Reason `json:"reasons"`
}

// syncJSON is the sync's progress for ЗАПУСТИТЬ / ОСТАНОВИТЬ and the
// progress block (see store.SyncProgress for what the counts mean).
type syncJSON struct {
	State      string             `json:"state"` // running, stopped, paused
	StartedAt  *time.Time         `json:"started_at"`
	Since      string             `json:"since"` // the import's clinic-local date, "" for every appointment
	Import     importJSON         `json:"import"`
	LagSeconds int64              `json:"lag_seconds"`
	Queue      store.SyncQueue    `json:"queue"`
	Databases  []syncDatabaseJSON `json:"databases"`
	// ContinueInboundLeads is the account's rule 6 setting (PUT /sync/settings).
	ContinueInboundLeads bool `json:"continue_inbound_leads"`
}

type importJSON struct {
	Total         int64   `json:"total"`
	Done          int64   `json:"done"`
	RatePerMinute float64 `json:"rate_per_minute"`
	// ETASeconds is null when it cannot be told yet.
	ETASeconds *int64 `json:"eta_seconds"`
}

type syncDatabaseJSON struct {
	ID             int64      `json:"id"`
	Enabled        bool       `json:"enabled"`
	LastReceivedAt *time.Time `json:"last_received_at"`
	LastWrittenAt  *time.Time `json:"last_written_at"`
}

func syncOf(p store.SyncProgress, now time.Time) syncJSON {
	out := syncJSON{State: p.State, StartedAt: p.StartedAt, Since: p.ImportSince, LagSeconds: p.LagSeconds(now), Queue: p.Queue,
		Import:    importJSON{Total: p.ImportTotal(), Done: p.ImportDone(), RatePerMinute: math.Round(p.RatePerMinute(now)*10) / 10},
		Databases: make([]syncDatabaseJSON, 0, len(p.Databases))}
	if eta, ok := p.ETASeconds(now); ok {
		out.Import.ETASeconds = &eta
	}
	for _, d := range p.Databases {
		out.Databases = append(out.Databases, syncDatabaseJSON{ID: d.DatabaseID, Enabled: d.Enabled, LastReceivedAt: d.LastReceivedAt, LastWrittenAt: d.LastWrittenAt})
	}
	return out
}

type userJSON struct {
	ID      int64 `json:"id"`
	IsAdmin bool  `json:"is_admin"`
}

type limitsJSON struct {
	MaxDatabases int `json:"max_databases"`
}

type labelJSON struct {
	Value string `json:"value"`
	Label string `json:"label"`
}

// databaseFacts converts a stored database for the state rules.
func databaseFacts(d store.ClinicDatabase) accountstate.Database {
	return accountstate.Database{Name: d.Name, Connector: accountstate.ParseLinkStatus(d.ConnectorStatus),
		Database: accountstate.ParseLinkStatus(d.DBStatus), Detail: d.DBStatusDetail, SeenAt: d.ConnectorSeenAt}
}

func databaseOf(d store.ClinicDatabase, v accountstate.DatabaseView) databaseJSON {
	return databaseJSON{ID: d.ID, Name: d.Name, Source: d.Source, TokenIssuedAt: d.TokenIssuedAt,
		Connector: statusOf(v.Connector), Database: statusOf(v.Database), CheckedAt: d.StatusCheckedAt,
		TimeZone: d.TimeZone, LastSeenAt: d.ConnectorSeenAt, Hostname: d.InstanceHostname, SourceVersion: d.SourceVersion,
		Pending: d.OutboxPending, InitialLoad: d.InitialLoadDone}
}

func (a *appRoutes) state(c echo.Context) error {
	ctx := c.Request().Context()
	acc, err := a.account(c)
	if err != nil {
		return err
	}
	sub, err := a.cfg.App.Subscription(ctx, acc.ID)
	if err != nil {
		return err
	}
	dbs, err := a.cfg.App.ListDatabases(ctx, acc.ID)
	if err != nil {
		return err
	}
	setup, err := a.cfg.App.SettingsState(ctx, acc.ID)
	if err != nil {
		return err
	}
	progress, err := a.cfg.App.SyncProgress(ctx, acc.ID)
	if err != nil {
		return err
	}
	syncSettings, err := a.cfg.App.SyncSettings(ctx, acc.ID)
	if err != nil {
		return err
	}
	now := a.cfg.Now()
	since := now.Add(-24 * time.Hour)
	_, recentErrors, err := a.cfg.App.ListEvents(ctx, eventlog.Filter{AccountID: acc.ID, Severities: []eventlog.Severity{eventlog.Error}, From: &since, PerPage: 1})
	if err != nil {
		return err
	}
	facts := accountstate.Facts{InstallFormDone: acc.InstallFormDone(), Subscription: sub,
		Setup: accountstate.SetupState(setup.State), SetupDetail: setup.Detail, RecentErrors: recentErrors,
		Now: now, Location: acc.Location()}
	for _, d := range dbs {
		facts.Databases = append(facts.Databases, databaseFacts(d))
	}
	ov := accountstate.Evaluate(facts)
	out := stateJSON{
		Account: accountJSON{Subdomain: acc.Subdomain, Name: acc.Name, InstallFormDone: acc.InstallFormDone(),
			ContactName: acc.ContactName, ContactPhone: acc.ContactPhone, ConsentAt: acc.ConsentAt, InstalledAt: acc.InstalledAt, Timezone: acc.Timezone},
		Subscription: subscriptionJSON{Status: ov.Subscription, Label: ov.Subscription.Label(), TrialEndsAt: sub.TrialEndsAt, PaidUntil: sub.PaidUntil,
			PaidSeats: sub.PaidSeats, AllowsWork: ov.AllowsWork, Hint: ov.SubscriptionHint},
		Databases: make([]databaseJSON, 0, len(dbs)),
		Setup:     setup,
		Problems:  ov.Problems,
		Start:     startJSON{Enabled: ov.Start.Allowed, Missing: []string{}, Reasons: ov.Start.Missing},
		Sync:      syncOf(progress, now),
		User:      userJSON{ID: sessionOf(c).UserID, IsAdmin: sessionOf(c).IsAdmin},
		Limits:    limitsJSON{MaxDatabases: a.cfg.MaxDatabases},
	}
	out.Sync.ContinueInboundLeads = syncSettings.ContinueInboundLeads
	for i, d := range dbs {
		out.Databases = append(out.Databases, databaseOf(d, ov.Databases[i]))
	}
	for _, r := range ov.Start.Missing {
		out.Start.Missing = append(out.Start.Missing, r.Label())
	}
	for _, l := range eventlog.TypeLabels {
		out.EventTypes = append(out.EventTypes, labelJSON{string(l.Type), l.Label})
	}
	for _, s := range []eventlog.Severity{eventlog.Info, eventlog.Warning, eventlog.Error} {
		out.Severities = append(out.Severities, labelJSON{string(s), eventlog.SeverityLabels[s]})
	}
	return c.JSON(http.StatusOK, out)
}

type installFormRequest struct {
	Name    string `json:"name"`
	Phone   string `json:"phone"`
	Consent bool   `json:"consent"`
}

func (a *appRoutes) installForm(c echo.Context) error {
	acc, err := a.account(c)
	if err != nil {
		return err
	}
	var req installFormRequest
	if err := bindJSON(c, &req); err != nil {
		return err
	}
	name := strings.Join(strings.Fields(req.Name), " ")
	if name == "" || utf8.RuneCountInString(name) > 100 || !plainText(name) {
		return apperr.New(apperr.Invalid, "Укажите имя (до 100 символов, без служебных знаков).")
	}
	if len(req.Phone) > 64 || !plainText(req.Phone) {
		return apperr.New(apperr.Invalid, "Укажите телефон в формате +7 900 000-00-00.")
	}
	tel, err := phone.Normalize(req.Phone)
	if err != nil {
		return apperr.New(apperr.Invalid, "Укажите телефон в формате +7 900 000-00-00.")
	}
	if !req.Consent {
		return apperr.New(apperr.Invalid, "Нужно согласие на передачу персональных данных.")
	}
	if err := a.cfg.App.SaveInstallForm(c.Request().Context(), acc.ID, name, tel, sessionOf(c).UserID, a.cfg.Now()); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]string{"name": name, "phone": tel})
}

type tokenRequest struct {
	DatabaseID int64 `json:"database_id"`
}

// issueToken issues a connector token; the token is in this response only.
func (a *appRoutes) issueToken(c echo.Context) error {
	acc, err := a.account(c)
	if err != nil {
		return err
	}
	if err := requireAdmin(c); err != nil {
		return err
	}
	if !acc.InstallFormDone() {
		return apperr.New(apperr.Conflict, "Сначала заполните данные установки.")
	}
	var req tokenRequest
	if err := bindJSON(c, &req); err != nil {
		return err
	}
	if req.DatabaseID < 0 {
		return apperr.New(apperr.Invalid, "Неверный номер базы.")
	}
	token, hash := conntoken.New()
	d, err := a.cfg.App.IssueConnectorToken(c.Request().Context(), store.TokenRequest{AccountID: acc.ID, DatabaseID: req.DatabaseID,
		TokenHash: hash, UserID: sessionOf(c).UserID, Now: a.cfg.Now(), MaxDatabases: a.cfg.MaxDatabases})
	switch {
	case errors.Is(err, store.ErrNotFound):
		return apperr.New(apperr.NotFound, "База не найдена.")
	case errors.Is(err, store.ErrTooManyDatabases):
		return apperr.New(apperr.Conflict, "Подключено максимальное число баз (%d). Чтобы подключить ещё, напишите в поддержку.", a.cfg.MaxDatabases)
	case err != nil:
		return err
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	f := databaseFacts(d).Effective(a.cfg.Now())
	view := accountstate.DatabaseView{Connector: accountstate.ConnectorStatus(f.Connector), Database: accountstate.DatabaseStatus(f.Database, f.Detail)}
	return c.JSON(http.StatusOK, map[string]any{"token": token, "database": databaseOf(d, view)})
}
