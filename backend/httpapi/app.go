package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

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
	IssueConnectorToken(ctx context.Context, accountID, databaseID int64, tokenHash []byte, userID int64, now time.Time) (store.ClinicDatabase, error)
	ListEvents(ctx context.Context, f eventlog.Filter) ([]eventlog.Event, int64, error)
	SettingsState(ctx context.Context, accountID int64) (store.SettingsState, error)
}

type appRoutes struct {
	cfg WidgetConfig
	log *slog.Logger
}

func registerApp(g *echo.Group, cfg WidgetConfig, log *slog.Logger) {
	a := &appRoutes{cfg: cfg, log: log}
	g.GET("/state", a.state)
	g.POST("/install-form", a.installForm)
	g.POST("/databases/token", a.issueToken)
	g.GET("/events", a.events)
	g.GET("/events.csv", a.eventsCSV)
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
	return acc, nil
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
	State string `json:"state"` // connected, disconnected, unknown
	Label string `json:"label"`
	Hint  string `json:"hint,omitempty"`
}

type databaseJSON struct {
	ID            int64      `json:"id"`
	Name          string     `json:"name"`
	Source        string     `json:"source"`
	TokenIssuedAt *time.Time `json:"token_issued_at"`
	Connector     statusJSON `json:"connector"`
	Database      statusJSON `json:"database"`
	CheckedAt     *time.Time `json:"checked_at"`
}

type stateJSON struct {
	Account      accountJSON         `json:"account"`
	Subscription subscriptionJSON    `json:"subscription"`
	Databases    []databaseJSON      `json:"databases"`
	Setup        store.SettingsState `json:"setup"`
	Start        startJSON           `json:"start"`
	Problems     map[string]string   `json:"problems"`
	User         userJSON            `json:"user"`
	EventTypes   []labelJSON         `json:"event_types"`
	Severities   []labelJSON         `json:"severities"`
}

type startJSON struct {
	Enabled bool     `json:"enabled"`
	Missing []string `json:"missing"`
}

type userJSON struct {
	ID      int64 `json:"id"`
	IsAdmin bool  `json:"is_admin"`
}

type labelJSON struct {
	Value string `json:"value"`
	Label string `json:"label"`
}

const troubleshootingHint = "Проверьте, что коннектор запущен на сервере IDENT, порт и пароль базы указаны верно, а подписка активна."

func connectorStatus(d store.ClinicDatabase) statusJSON {
	switch d.ConnectorStatus {
	case "connected":
		return statusJSON{State: "connected", Label: "Подключение выполнено"}
	case "disconnected":
		return statusJSON{State: "disconnected", Label: "Подключение не выполнено",
			Hint: "Коннектор не на связи. Убедитесь, что он запущен на сервере с IDENT и в нём указан действующий токен."}
	}
	return statusJSON{State: "unknown", Label: "Подключение не выполнено",
		Hint: "Установите коннектор на сервер с IDENT, вставьте в него токен и нажмите «Подключить»."}
}

func databaseStatus(d store.ClinicDatabase) statusJSON {
	switch d.DBStatus {
	case "connected":
		return statusJSON{State: "connected", Label: "Подключение выполнено"}
	case "disconnected":
		hint := troubleshootingHint
		if d.DBStatusDetail != "" {
			hint = d.DBStatusDetail + ". " + hint
		}
		return statusJSON{State: "disconnected", Label: "Подключение не выполнено", Hint: hint}
	}
	return statusJSON{State: "unknown", Label: "Подключение не выполнено",
		Hint: "Статус появится, когда коннектор подключится и проверит базу IDENT."}
}

func subscriptionHint(st billing.Status, sub billing.Subscription, loc *time.Location) string {
	switch st {
	case billing.StatusTrial:
		return fmt.Sprintf("Пробный период действует до %s. Чтобы синхронизация не прервалась, оплатите подписку до этой даты.", sub.TrialEndsAt.In(loc).Format("02.01.2006"))
	case billing.StatusActive:
		return fmt.Sprintf("Подписка оплачена до %s.", sub.PaidUntil.In(loc).Format("02.01.2006"))
	case billing.StatusExpiring:
		return fmt.Sprintf("Подписка заканчивается %s. Продлите её, чтобы синхронизация не остановилась.", sub.PaidUntil.In(loc).Format("02.01.2006"))
	case billing.StatusExpired:
		return "Срок действия истёк: синхронизация приостановлена, данные сохраняются. Оплатите подписку, чтобы продолжить."
	case billing.StatusSuspended:
		return "Подписка приостановлена: активных пользователей amoCRM больше, чем оплачено мест, или подключены новые базы. Доплатите места, чтобы продолжить."
	}
	return ""
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
	now := a.cfg.Now()
	loc := acc.Location()
	effective := sub.Effective(now)
	out := stateJSON{
		Account: accountJSON{Subdomain: acc.Subdomain, Name: acc.Name, InstallFormDone: acc.InstallFormDone(),
			ContactName: acc.ContactName, ContactPhone: acc.ContactPhone, ConsentAt: acc.ConsentAt, InstalledAt: acc.InstalledAt, Timezone: acc.Timezone},
		Subscription: subscriptionJSON{Status: effective, Label: effective.Label(), TrialEndsAt: sub.TrialEndsAt, PaidUntil: sub.PaidUntil,
			PaidSeats: sub.PaidSeats, AllowsWork: sub.AllowsWork(now), Hint: subscriptionHint(effective, sub, loc)},
		Databases: make([]databaseJSON, 0, len(dbs)),
		Setup:     setup,
		Problems:  map[string]string{},
		User:      userJSON{ID: sessionOf(c).UserID, IsAdmin: sessionOf(c).IsAdmin},
	}
	connected := 0
	for _, d := range dbs {
		dj := databaseJSON{ID: d.ID, Name: d.Name, Source: d.Source, TokenIssuedAt: d.TokenIssuedAt,
			Connector: connectorStatus(d), Database: databaseStatus(d), CheckedAt: d.StatusCheckedAt}
		if dj.Connector.State == "connected" && dj.Database.State == "connected" {
			connected++
		} else if _, seen := out.Problems["integration"]; !seen {
			out.Problems["integration"] = fmt.Sprintf("«%s»: нет связи с %s. %s", d.Name, map[bool]string{true: "базой IDENT", false: "коннектором"}[dj.Connector.State == "connected"], troubleshootingHint)
		}
		out.Databases = append(out.Databases, dj)
	}
	switch {
	case !acc.InstallFormDone():
		out.Problems["integration"] = "Заполните данные установки: имя, телефон и согласие на передачу данных."
	case len(dbs) == 0:
		out.Problems["integration"] = "Подключите базу IDENT: нажмите «Получить токен» и вставьте его в коннектор."
	}
	if !sub.AllowsWork(now) {
		out.Problems["subscription"] = out.Subscription.Hint
	}
	if setup.State == "broken" {
		out.Problems["settings"] = "Данные не передаются: " + setup.Detail
	}
	since := now.Add(-24 * time.Hour)
	if _, n, err := a.cfg.App.ListEvents(ctx, eventlog.Filter{AccountID: acc.ID, Severities: []eventlog.Severity{eventlog.Error}, From: &since, PerPage: 1}); err == nil && n > 0 {
		out.Problems["events"] = fmt.Sprintf("За последние сутки ошибок: %d. Откройте список событий, отфильтруйте по важности «Ошибка».", n)
	}
	if !sub.AllowsWork(now) {
		out.Start.Missing = append(out.Start.Missing, "Подписка не активна")
	}
	if connected == 0 {
		out.Start.Missing = append(out.Start.Missing, "Нет подключённой базы с работающим коннектором")
	}
	if setup.State != "configured" {
		out.Start.Missing = append(out.Start.Missing, "Связка не настроена (вкладка «Настройки»)")
	}
	out.Start.Enabled = len(out.Start.Missing) == 0
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
	if name == "" || utf8.RuneCountInString(name) > 100 {
		return apperr.New(apperr.Invalid, "Укажите имя (до 100 символов).")
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
	d, err := a.cfg.App.IssueConnectorToken(c.Request().Context(), acc.ID, req.DatabaseID, hash, sessionOf(c).UserID, a.cfg.Now())
	if errors.Is(err, store.ErrNotFound) {
		return apperr.New(apperr.NotFound, "База не найдена.")
	}
	if err != nil {
		return err
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusOK, map[string]any{"token": token, "database": databaseJSON{ID: d.ID, Name: d.Name, Source: d.Source,
		TokenIssuedAt: d.TokenIssuedAt, Connector: connectorStatus(d), Database: databaseStatus(d)}})
}

// bindJSON decodes a JSON body strictly: unknown fields and trailing data are
// errors with a clear message, never silently ignored.
func bindJSON(c echo.Context, v any) error {
	if ct := c.Request().Header.Get(echo.HeaderContentType); !strings.HasPrefix(ct, echo.MIMEApplicationJSON) {
		return apperr.New(apperr.Invalid, "Ожидается JSON (Content-Type: application/json).")
	}
	dec := json.NewDecoder(c.Request().Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return apperr.Wrap(err, apperr.Invalid, "Неверный JSON: %s.", strings.TrimPrefix(err.Error(), "json: "))
	}
	if dec.More() {
		return apperr.New(apperr.Invalid, "Неверный JSON: лишние данные после объекта.")
	}
	return nil
}
