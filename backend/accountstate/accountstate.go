// Package accountstate holds the rules that turn an account's stored facts
// into what the clinic is told: the status of each connector and database,
// which settings tab has a problem and what to do about it, the subscription
// hint, and whether the sync may start (and if not, every reason why).
//
// It is pure: no I/O, no clock of its own. The settings page API, the
// support admin panel and `svyazka admin` translate its typed values; none
// of them decides anything themselves.
package accountstate

import (
	"fmt"
	"time"

	"github.com/svyazka/svyazka/billing"
)

// LinkStatus is the state of one link: connector ↔ backend, or connector ↔
// its database. Unknown means never seen (nothing is installed yet).
type LinkStatus string

// Link statuses, as stored and as sent to the UI.
const (
	Unknown      LinkStatus = "unknown"
	Connected    LinkStatus = "connected"
	Disconnected LinkStatus = "disconnected"
)

// ParseLinkStatus reads a stored status; anything unrecognised is Unknown.
func ParseLinkStatus(s string) LinkStatus {
	switch LinkStatus(s) {
	case Connected, Disconnected:
		return LinkStatus(s)
	}
	return Unknown
}

// SetupState is where autosetup and the mapping stand.
type SetupState string

// Setup states, as stored in account_settings.setup_state: the strings of
// backend/setup's Status.
const (
	SetupNotConfigured SetupState = "not_configured"
	SetupRunning       SetupState = "running"
	SetupConfigured    SetupState = "configured"
	SetupFailed        SetupState = "failed"
	SetupDrift         SetupState = "drift"
)

// SyncState is whether the sync runs.
type SyncState string

// Sync states, as stored in account_settings.sync_state.
const (
	SyncStopped SyncState = "stopped"
	SyncRunning SyncState = "running"
	SyncPaused  SyncState = "paused"
)

// Tab is a tab of the settings page that can carry a problem marker.
type Tab string

// The settings page tabs.
const (
	TabIntegration  Tab = "integration"  // «Управление интеграцией»
	TabSettings     Tab = "settings"     // «Настройки»
	TabSubscription Tab = "subscription" // «Подписка»
	TabEvents       Tab = "events"       // «Список событий»
)

// Reason is one thing that keeps the sync from starting.
type Reason string

// Reasons the start is refused, in the order they are listed.
const (
	ReasonInstallForm  Reason = "install_form"
	ReasonSubscription Reason = "subscription"
	ReasonNoDatabase   Reason = "no_connected_database"
	ReasonSetup        Reason = "setup"
)

// Label is the reason in the words of the ЗАПУСТИТЬ button's hint.
func (r Reason) Label() string {
	switch r {
	case ReasonInstallForm:
		return "Не заполнены данные установки"
	case ReasonSubscription:
		return "Подписка не активна"
	case ReasonNoDatabase:
		return "Нет подключённой базы с работающим коннектором"
	case ReasonSetup:
		return "Связка не настроена (вкладка «Настройки»)"
	}
	return string(r)
}

// Connectors send a heartbeat every HeartbeatInterval; one not heard from
// for ConnectorStaleAfter counts as disconnected (shown at once, and
// recorded with an event by the periodic check every ConnectorCheckEvery).
const (
	HeartbeatInterval   = time.Minute
	ConnectorStaleAfter = 3 * time.Minute
	ConnectorCheckEvery = 5 * time.Minute
)

// Database is what is stored about one clinic database.
type Database struct {
	Name      string
	Connector LinkStatus
	Database  LinkStatus
	// Detail is the connector's user-safe reason when the database is unreachable.
	Detail string
	// SeenAt is the connector's last heartbeat (nil: never).
	SeenAt *time.Time
}

// Effective returns the database's links at now: a connector silent for
// ConnectorStaleAfter is disconnected, and then nothing is known about its
// database (the last report is kept as it was).
func (d Database) Effective(now time.Time) Database {
	if d.Connector == Connected && (d.SeenAt == nil || now.Sub(*d.SeenAt) > ConnectorStaleAfter) {
		d.Connector = Disconnected
	}
	return d
}

// Facts are an account's stored facts at a moment.
type Facts struct {
	InstallFormDone bool
	Databases       []Database
	Subscription    billing.Subscription
	Setup           SetupState
	SetupDetail     string
	// RecentErrors is how many error events the last day holds.
	RecentErrors int64
	Now          time.Time
	// Location is the account's zone, for dates in hints.
	Location *time.Location
}

// Status is a link status with its label and, when it is not connected, a
// hint that says what to check.
type Status struct {
	State LinkStatus
	Label string
	Hint  string
}

// DatabaseView is one database as the clinic sees it.
type DatabaseView struct {
	Connector Status
	Database  Status
}

// Working reports whether both links of the database are up.
func (d DatabaseView) Working() bool {
	return d.Connector.State == Connected && d.Database.State == Connected
}

// StartCheck says whether the sync may start and, if not, why.
type StartCheck struct {
	Allowed bool
	Missing []Reason
}

// Overview is everything the settings page derives from the facts.
type Overview struct {
	Subscription     billing.Status
	AllowsWork       bool
	SubscriptionHint string
	Databases        []DatabaseView
	// Problems maps a tab to the tooltip of its error marker.
	Problems map[Tab]string
	Start    StartCheck
}

// Texts of seed 004 (section 5, troubleshooting).
const (
	LabelConnected    = "Подключение выполнено"
	LabelDisconnected = "Подключение не выполнено"
	TroubleshootHint  = "Проверьте, что коннектор запущен на сервере IDENT, порт и пароль базы указаны верно, а подписка активна."
)

// ConnectorStatus is how the connector link is shown.
func ConnectorStatus(s LinkStatus) Status {
	switch s {
	case Connected:
		return Status{State: Connected, Label: LabelConnected}
	case Disconnected:
		return Status{State: Disconnected, Label: LabelDisconnected,
			Hint: "Коннектор не на связи. Убедитесь, что он запущен на сервере с IDENT и в нём указан действующий токен."}
	}
	return Status{State: Unknown, Label: LabelDisconnected,
		Hint: "Установите коннектор на сервер с IDENT, вставьте в него токен и нажмите «Подключить»."}
}

// DatabaseStatus is how the database link is shown; detail is the
// connector's reason when it cannot read the database.
func DatabaseStatus(s LinkStatus, detail string) Status {
	switch s {
	case Connected:
		return Status{State: Connected, Label: LabelConnected}
	case Disconnected:
		hint := TroubleshootHint
		if detail != "" {
			hint = detail + ". " + hint
		}
		return Status{State: Disconnected, Label: LabelDisconnected, Hint: hint}
	}
	return Status{State: Unknown, Label: LabelDisconnected,
		Hint: "Статус появится, когда коннектор подключится и проверит базу IDENT."}
}

// SubscriptionHint is the text under the subscription button.
func SubscriptionHint(st billing.Status, sub billing.Subscription, loc *time.Location) string {
	date := func(t *time.Time) string {
		if t == nil {
			return "—"
		}
		return t.In(loc).Format("02.01.2006")
	}
	switch st {
	case billing.StatusTrial:
		return fmt.Sprintf("Пробный период действует до %s. Чтобы синхронизация не прервалась, оплатите подписку до этой даты.", date(sub.TrialEndsAt))
	case billing.StatusActive:
		return fmt.Sprintf("Подписка оплачена до %s.", date(sub.PaidUntil))
	case billing.StatusExpiring:
		return fmt.Sprintf("Подписка заканчивается %s. Продлите её, чтобы синхронизация не остановилась.", date(sub.PaidUntil))
	case billing.StatusExpired:
		return "Срок действия истёк: синхронизация приостановлена, данные сохраняются. Оплатите подписку, чтобы продолжить."
	case billing.StatusSuspended:
		return "Подписка приостановлена: активных пользователей amoCRM больше, чем оплачено мест, или подключены новые базы. Доплатите места, чтобы продолжить."
	}
	return ""
}

// Evaluate derives the overview from the facts. The integration tab shows
// the first problem in this order: install form, no database, the first
// database with a broken link.
func Evaluate(f Facts) Overview {
	loc := f.Location
	if loc == nil {
		loc = time.UTC
	}
	effective := f.Subscription.Effective(f.Now)
	o := Overview{
		Subscription:     effective,
		AllowsWork:       f.Subscription.AllowsWork(f.Now),
		SubscriptionHint: SubscriptionHint(effective, f.Subscription, loc),
		Databases:        make([]DatabaseView, 0, len(f.Databases)),
		Problems:         map[Tab]string{},
	}
	working := 0
	for _, d := range f.Databases {
		d = d.Effective(f.Now)
		v := DatabaseView{Connector: ConnectorStatus(d.Connector), Database: DatabaseStatus(d.Database, d.Detail)}
		o.Databases = append(o.Databases, v)
		if v.Working() {
			working++
			continue
		}
		if _, seen := o.Problems[TabIntegration]; !seen {
			what := "коннектором"
			if v.Connector.State == Connected {
				what = "базой IDENT"
			}
			o.Problems[TabIntegration] = fmt.Sprintf("«%s»: нет связи с %s. %s", d.Name, what, TroubleshootHint)
		}
	}
	switch {
	case !f.InstallFormDone:
		o.Problems[TabIntegration] = "Заполните данные установки: имя, телефон и согласие на передачу данных."
	case len(f.Databases) == 0:
		o.Problems[TabIntegration] = "Подключите базу IDENT: нажмите «Получить токен» и вставьте его в коннектор."
	}
	if !o.AllowsWork {
		o.Problems[TabSubscription] = o.SubscriptionHint
	}
	switch f.Setup {
	case SetupDrift:
		o.Problems[TabSettings] = "Данные не передаются: " + f.SetupDetail
	case SetupFailed:
		o.Problems[TabSettings] = "Автонастройка не удалась: " + f.SetupDetail
	}
	if f.RecentErrors > 0 {
		o.Problems[TabEvents] = fmt.Sprintf("За последние сутки ошибок: %d. Откройте список событий, отфильтруйте по важности «Ошибка».", f.RecentErrors)
	}
	if !f.InstallFormDone {
		o.Start.Missing = append(o.Start.Missing, ReasonInstallForm)
	}
	if !o.AllowsWork {
		o.Start.Missing = append(o.Start.Missing, ReasonSubscription)
	}
	if working == 0 {
		o.Start.Missing = append(o.Start.Missing, ReasonNoDatabase)
	}
	if f.Setup != SetupConfigured {
		o.Start.Missing = append(o.Start.Missing, ReasonSetup)
	}
	o.Start.Allowed = len(o.Start.Missing) == 0
	return o
}
