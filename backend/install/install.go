// Package install carries an amoCRM install from the OAuth redirect to a
// working account, and an uninstall to a stopped one.
//
// amoCRM calls our redirect once, waits 3 seconds and never retries, while the
// code it carries lives 20 minutes. So the redirect only records the code
// (sealed) in the outbox, in one transaction, and answers; a task exchanges
// it, reads the account, and creates or re-activates it with its tokens. The
// relay is woken at once (the API relays right after the commit, and the
// commit notifies every worker's relay), so the account is usable within a
// second or two of the redirect.
//
// The disable hook's signature is the same for every call on an account, so
// an old hook URL could replay an uninstall after a reinstall. The hook
// therefore only queues a confirmation: the account is uninstalled when
// amoCRM itself refuses our token (401 that a refresh cannot cure).
package install

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/hibiken/asynq"

	"github.com/svyazka/svyazka/backend/apperr"
	"github.com/svyazka/svyazka/backend/eventlog"
	"github.com/svyazka/svyazka/backend/sealer"
	"github.com/svyazka/svyazka/backend/store"
	"github.com/svyazka/svyazka/jobs"
)

// CodeLifetime is how long amoCRM's authorization code can be exchanged.
const CodeLifetime = 20 * time.Minute

// Grant is what a code exchange yields: the amoCRM account and a way to
// store its tokens inside the install transaction.
type Grant struct {
	AmoAccountID int64
	Subdomain    string
	BaseDomain   string
	Name         string
	// SaveTokens stores the tokens for our account id within tx.
	SaveTokens func(tx *store.Tx, accountID int64) error
}

// Exchanger trades an authorization code for tokens at the account host
// (referer) and reads the account they open.
type Exchanger interface {
	Exchange(ctx context.Context, referer, code string) (Grant, error)
	// CheckAccess calls amoCRM with the account's stored token. It returns
	// nil when amoCRM accepts it, an error wrapping amocrm.ErrRevoked when
	// access is gone for good, and other errors for transient failures.
	CheckAccess(ctx context.Context, acc store.Account) error
}

// Store is the storage installs use.
type Store interface {
	InTx(ctx context.Context, fn func(tx *store.Tx) error) error
	InstallAccount(ctx context.Context, in store.InstallInput) (store.Account, bool, error)
	UninstallAccount(ctx context.Context, amoID int64, reason string, now time.Time) (store.Account, error)
	AccountByID(ctx context.Context, id int64) (store.Account, error)
	AccountByAmoID(ctx context.Context, amoID int64) (store.Account, error)
	Record(ctx context.Context, e eventlog.Event) error
}

// Relay pushes outbox rows to the queue right away (the relay loop is the safety net).
type Relay interface {
	Relay(ctx context.Context) (int, error)
}

// Service runs installs and uninstalls. Every field is required.
type Service struct {
	Store     Store
	Exchanger Exchanger
	Sealer    *sealer.Sealer
	Relay     Relay
	TrialDays int
	// TimeZone is the IANA zone new accounts start with.
	TimeZone string
	Now      func() time.Time
	Log      *slog.Logger
	// IsRevoked reports whether a CheckAccess error means access is gone.
	IsRevoked func(error) bool
}

// codeContext binds a sealed code to its purpose.
var codeContext = []byte("amocrm oauth code")

// BeginInstall records the install for the task and returns at once.
func (s *Service) BeginInstall(ctx context.Context, code, referer string, fromWidget bool) error {
	sealed, err := s.Sealer.Seal([]byte(code), codeContext)
	if err != nil {
		return err
	}
	task, err := jobs.NewInstallCompleteTask(jobs.InstallCompletePayload{SealedCode: base64.StdEncoding.EncodeToString(sealed),
		Referer: strings.ToLower(referer), FromWidget: fromWidget, ReceivedAt: s.Now().Unix()})
	if err != nil {
		return err
	}
	return s.enqueue(ctx, task)
}

// enqueue commits task to the outbox and relays it at once.
func (s *Service) enqueue(ctx context.Context, task jobs.Task) error {
	if err := s.Store.InTx(ctx, func(tx *store.Tx) error {
		_, err := tx.Enqueue(task.Outbox())
		return err
	}); err != nil {
		return err
	}
	if _, err := s.Relay.Relay(ctx); err != nil {
		// Every worker's relay was notified by the commit and polls as well:
		// the task is not lost.
		s.Log.WarnContext(ctx, "relay task right after commit", "type", task.Type, "err", err)
	}
	return nil
}

// ProcessTask implements asynq.Handler for jobs.TypeInstallComplete.
func (s *Service) ProcessTask(ctx context.Context, t *asynq.Task) error {
	p, err := jobs.ParseInstallComplete(t)
	if err != nil {
		return err
	}
	sealed, err := base64.StdEncoding.DecodeString(p.SealedCode)
	if err != nil {
		return fmt.Errorf("install: bad sealed code: %w", asynq.SkipRetry)
	}
	code, err := s.Sealer.Open(sealed, codeContext)
	if err != nil {
		return fmt.Errorf("install: %v: %w", err, asynq.SkipRetry)
	}
	if age := s.Now().Sub(time.Unix(p.ReceivedAt, 0)); age > CodeLifetime {
		return fmt.Errorf("install %s: authorization code expired %s ago: %w", p.Referer, age-CodeLifetime, asynq.SkipRetry)
	}
	grant, err := s.Exchanger.Exchange(ctx, p.Referer, string(code))
	if err != nil {
		if apperr.CodeOf(err) == apperr.Invalid || apperr.CodeOf(err) == apperr.Unauthorized {
			// A used or expired code never becomes valid: do not retry.
			return fmt.Errorf("install %s: %w: %w", p.Referer, err, asynq.SkipRetry)
		}
		return fmt.Errorf("install %s: %w", p.Referer, err)
	}
	acc, first, err := s.Store.InstallAccount(ctx, store.InstallInput{
		AmoAccountID: grant.AmoAccountID, Subdomain: grant.Subdomain, BaseDomain: grant.BaseDomain, Name: grant.Name,
		Timezone: s.TimeZone, TrialDays: s.TrialDays, Now: s.Now().UTC(),
		Save: func(tx *store.Tx, a store.Account) error { return grant.SaveTokens(tx, a.ID) },
	})
	if err != nil {
		return err
	}
	s.Log.InfoContext(ctx, "account installed", "account_id", acc.ID, "amo_account_id", acc.AmoAccountID, "first", first)
	return nil
}

// BeginDisable records a signed disable hook for confirmation and returns at
// once; the account is uninstalled only when amoCRM confirms (ConfirmDisable).
func (s *Service) BeginDisable(ctx context.Context, amoAccountID int64) error {
	task, err := jobs.NewInstallConfirmDisableTask(jobs.InstallConfirmDisablePayload{AmoAccountID: amoAccountID, ReceivedAt: s.Now().Unix()})
	if err != nil {
		return err
	}
	return s.enqueue(ctx, task)
}

// ConfirmDisable implements asynq.Handler for jobs.TypeInstallConfirmDisable:
// it asks amoCRM with the account's token. A 401 that a refresh cannot cure
// uninstalls the account; a token that still works means the hook is stale
// (a replayed URL, or from before a reinstall) and nothing changes.
func (s *Service) ConfirmDisable(ctx context.Context, t *asynq.Task) error {
	p, err := jobs.ParseInstallConfirmDisable(t)
	if err != nil {
		return err
	}
	acc, err := s.Store.AccountByAmoID(ctx, p.AmoAccountID)
	if errors.Is(err, store.ErrNotFound) {
		return nil // never installed here: nothing to disable
	}
	if err != nil {
		return err
	}
	if acc.Status != store.AccountActive {
		return nil
	}
	err = s.Exchanger.CheckAccess(ctx, acc)
	switch {
	case err == nil:
		s.Log.WarnContext(ctx, "disable hook not confirmed: amoCRM still accepts our token", "account_id", acc.ID)
		return s.Store.Record(ctx, eventlog.Event{AccountID: acc.ID, Type: eventlog.TypeUninstall, Severity: eventlog.Warning,
			Message: "Получен сигнал об отключении виджета, но amoCRM по-прежнему принимает доступ «Связки»: виджет не отключён, работа продолжается."})
	case s.IsRevoked(err):
		return s.Uninstall(ctx, acc.AmoAccountID, "виджет отключён в amoCRM")
	default:
		return fmt.Errorf("install: confirm disable of account %d: %w", acc.ID, err)
	}
}

// UninstallByID uninstalls by our account id.
func (s *Service) UninstallByID(ctx context.Context, accountID int64, reason string) error {
	acc, err := s.Store.AccountByID(ctx, accountID)
	if err != nil {
		return err
	}
	return s.Uninstall(ctx, acc.AmoAccountID, reason)
}

// Uninstall stops all work for the amoCRM account and keeps its data.
func (s *Service) Uninstall(ctx context.Context, amoAccountID int64, reason string) error {
	acc, err := s.Store.UninstallAccount(ctx, amoAccountID, reason, s.Now().UTC())
	if err != nil {
		return err
	}
	s.Log.InfoContext(ctx, "account uninstalled", "account_id", acc.ID, "amo_account_id", amoAccountID, "reason", reason)
	return nil
}
