package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/svyazka/svyazka/backend/accountstate"
	"github.com/svyazka/svyazka/backend/apperr"
	"github.com/svyazka/svyazka/backend/eventlog"
	"github.com/svyazka/svyazka/backend/store"
	"github.com/svyazka/svyazka/billing"
	"github.com/svyazka/svyazka/connector/protocol"
)

// ControlStore is the storage Start and Stop use; *store.DB satisfies it.
type ControlStore interface {
	Subscription(ctx context.Context, accountID int64) (billing.Subscription, error)
	ListDatabases(ctx context.Context, accountID int64) ([]store.ClinicDatabase, error)
	SettingsState(ctx context.Context, accountID int64) (store.SettingsState, error)
	StartSync(ctx context.Context, in store.StartSyncInput) error
	StopSync(ctx context.Context, accountID int64, ev eventlog.Event, now time.Time) error
}

// Control starts and stops accounts' sync (ЗАПУСТИТЬ / ОСТАНОВИТЬ, `svyazka
// admin start|stop`).
type Control struct {
	Store ControlStore
	// Wake builds the task that wakes the account's sync; key is unique for
	// all time (jobs.NewSyncAccountTask).
	Wake func(accountID int64, key string) (store.OutboxMessage, error)
	Now  func() time.Time
}

// NotAllowedError is a start refused by accountstate's rule, with every
// reason.
type NotAllowedError struct {
	Missing []accountstate.Reason
}

func (e *NotAllowedError) Error() string {
	labels := make([]string, len(e.Missing))
	for i, r := range e.Missing {
		labels[i] = r.Label()
	}
	return "Синхронизацию нельзя запустить: " + strings.Join(labels, "; ") + "."
}

// Start sets the account's sync running: from since (a clinic-local date
// 2006-01-02; "" keeps the stored one, and a first start without it imports
// every appointment) for databaseIDs (nil: all). It checks
// accountstate.Evaluate's start rule first. Errors (apperr): Conflict
// wrapping *NotAllowedError when a precondition fails, Conflict when the
// sync is running already, Invalid for a bad date, NotFound for a database
// of another account.
func (c Control) Start(ctx context.Context, acc store.Account, since string, databaseIDs []int64, by string) error {
	if c.Store == nil || c.Wake == nil || c.Now == nil {
		return errors.New("engine: Control needs Store, Wake and Now")
	}
	if since != "" {
		if _, err := time.Parse(protocol.DateLayout, since); err != nil {
			return apperr.New(apperr.Invalid, "Дата начала импорта должна быть в формате ГГГГ-ММ-ДД.")
		}
	}
	now := c.Now()
	sub, err := c.Store.Subscription(ctx, acc.ID)
	if err != nil {
		return err
	}
	dbs, err := c.Store.ListDatabases(ctx, acc.ID)
	if err != nil {
		return err
	}
	st, err := c.Store.SettingsState(ctx, acc.ID)
	if err != nil {
		return err
	}
	facts := accountstate.Facts{InstallFormDone: acc.InstallFormDone(), Subscription: sub, Setup: accountstate.SetupState(st.State),
		SetupDetail: st.Detail, Now: now, Location: acc.Location()}
	for _, d := range dbs {
		facts.Databases = append(facts.Databases, accountstate.Database{Name: d.Name, Connector: accountstate.ParseLinkStatus(d.ConnectorStatus),
			Database: accountstate.ParseLinkStatus(d.DBStatus), Detail: d.DBStatusDetail, SeenAt: d.ConnectorSeenAt})
	}
	if ov := accountstate.Evaluate(facts); !ov.Start.Allowed {
		na := &NotAllowedError{Missing: ov.Start.Missing}
		return apperr.Wrap(na, apperr.Conflict, "%s", na.Error())
	}
	task, err := c.Wake(acc.ID, fmt.Sprintf("start:%d", now.UnixNano()))
	if err != nil {
		return err
	}
	msg := "Синхронизация запущена"
	if since != "" {
		msg += ": импорт записей с " + since[8:10] + "." + since[5:7] + "." + since[:4]
	}
	err = c.Store.StartSync(ctx, store.StartSyncInput{AccountID: acc.ID, ImportSince: since, DatabaseIDs: databaseIDs, Now: now, Task: task,
		Event: eventlog.Event{AccountID: acc.ID, Type: eventlog.TypeSyncStarted, Message: msg + ".",
			Details: map[string]any{"by": by, "import_since": since, "database_ids": databaseIDs}}})
	switch {
	case errors.Is(err, store.ErrSyncState):
		return apperr.New(apperr.Conflict, "Синхронизация уже запущена.")
	case errors.Is(err, store.ErrNotFound):
		return apperr.New(apperr.NotFound, "База не найдена.")
	}
	return err
}

// Stop stops the account's sync; changes keep queueing and flow on the
// next start. Stopping a stopped sync is a no-op (nil, no event): the state
// asked for is the state it is in, so a support script may stop twice.
func (c Control) Stop(ctx context.Context, acc store.Account, by string) error {
	if c.Store == nil || c.Now == nil {
		return errors.New("engine: Control needs Store and Now")
	}
	err := c.Store.StopSync(ctx, acc.ID, eventlog.Event{AccountID: acc.ID, Type: eventlog.TypeSyncStopped, Severity: eventlog.Warning,
		Message: "Синхронизация остановлена; изменения копятся и будут переданы после запуска.", Details: map[string]any{"by": by}}, c.Now())
	if errors.Is(err, store.ErrSyncState) {
		return nil
	}
	return err
}
