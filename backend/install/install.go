// Package install carries an amoCRM install from the OAuth redirect to a
// working account, and an uninstall to a stopped one.
//
// amoCRM calls our redirect once, waits 3 seconds and never retries, while the
// code it carries lives 20 minutes. So the redirect only records the code
// (sealed) in the outbox, in one transaction, and answers; a task exchanges
// it, reads the account, and creates or re-activates it with its tokens.
package install

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"gorm.io/gorm"

	"github.com/svyazka/svyazka/backend/apperr"
	"github.com/svyazka/svyazka/backend/sealer"
	"github.com/svyazka/svyazka/backend/store"
)

// TypeComplete is the task that finishes an install.
const TypeComplete = "install:complete"

// Grant is what a code exchange yields: the amoCRM account and a way to
// store its tokens inside the install transaction.
type Grant struct {
	AmoAccountID int64
	Subdomain    string
	BaseDomain   string
	Name         string
	// SaveTokens stores the tokens for our account id within tx.
	SaveTokens func(tx *gorm.DB, accountID int64) error
}

// Exchanger trades an authorization code for tokens at the account host
// (referer) and reads the account they open.
type Exchanger interface {
	Exchange(ctx context.Context, referer, code string) (Grant, error)
}

// Store is the storage installs use.
type Store interface {
	Tx(ctx context.Context, fn func(tx *gorm.DB) error) error
	InstallAccount(ctx context.Context, in store.InstallInput) (store.Account, bool, error)
	UninstallAccount(ctx context.Context, amoID int64, reason string, now time.Time) (store.Account, error)
	AccountByID(ctx context.Context, id int64) (store.Account, error)
}

// Relay pushes outbox rows to the queue right away (the periodic relay is the safety net).
type Relay interface {
	Relay(ctx context.Context) (int, error)
}

// Service runs installs and uninstalls.
type Service struct {
	Store     Store
	Exchanger Exchanger
	Sealer    *sealer.Sealer
	Relay     Relay
	TrialDays int
	Now       func() time.Time
	Log       *slog.Logger
}

type completePayload struct {
	SealedCode string `json:"sealed_code"`
	Referer    string `json:"referer"`
	FromWidget bool   `json:"from_widget"`
	ReceivedAt int64  `json:"received_at"`
}

// codeContext binds a sealed code to its purpose.
var codeContext = []byte("amocrm oauth code")

// BeginInstall records the install for the task and returns at once.
func (s *Service) BeginInstall(ctx context.Context, code, referer string, fromWidget bool) error {
	sealed, err := s.Sealer.Seal([]byte(code), codeContext)
	if err != nil {
		return err
	}
	p := completePayload{SealedCode: base64.StdEncoding.EncodeToString(sealed), Referer: strings.ToLower(referer),
		FromWidget: fromWidget, ReceivedAt: s.Now().Unix()}
	if err := s.Store.Tx(ctx, func(tx *gorm.DB) error { return store.AddOutbox(tx, TypeComplete, "critical", p) }); err != nil {
		return err
	}
	if _, err := s.Relay.Relay(ctx); err != nil {
		// The periodic relay will pick the row up; the install is not lost.
		s.Log.WarnContext(ctx, "relay install task", "err", err)
	}
	return nil
}

// ProcessTask implements asynq.Handler for TypeComplete.
func (s *Service) ProcessTask(ctx context.Context, t *asynq.Task) error {
	var p completePayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil {
		return fmt.Errorf("install: bad payload: %v: %w", err, asynq.SkipRetry)
	}
	sealed, err := base64.StdEncoding.DecodeString(p.SealedCode)
	if err != nil {
		return fmt.Errorf("install: bad sealed code: %w", asynq.SkipRetry)
	}
	code, err := s.Sealer.Open(sealed, codeContext)
	if err != nil {
		return fmt.Errorf("install: %v: %w", err, asynq.SkipRetry)
	}
	if age := s.Now().Sub(time.Unix(p.ReceivedAt, 0)); age > 20*time.Minute {
		return fmt.Errorf("install %s: authorization code expired %s ago: %w", p.Referer, age-20*time.Minute, asynq.SkipRetry)
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
		TrialDays: s.TrialDays, Now: s.Now().UTC(),
		Save: func(tx *gorm.DB, a store.Account) error { return grant.SaveTokens(tx, a.ID) },
	})
	if err != nil {
		return err
	}
	s.Log.InfoContext(ctx, "account installed", "account_id", acc.ID, "amo_account_id", acc.AmoAccountID, "first", first)
	return nil
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
