package main

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/svyazka/svyazka/amocrm"
	"github.com/svyazka/svyazka/backend/apperr"
	"github.com/svyazka/svyazka/backend/eventlog"
	"github.com/svyazka/svyazka/backend/install"
	"github.com/svyazka/svyazka/backend/store"
)

// amo returns the process's amoCRM client (built once, after the sandbox, if
// any, has set AMOCRM_BASE_URL).
func (m *Main) amo() (*amocrm.Client, *store.AmoTokens, error) {
	if m.amoClient != nil {
		return m.amoClient, m.amoTokens, nil
	}
	tokens, err := store.NewAmoTokens(m.DB, m.Sealer)
	if err != nil {
		return nil, nil, err
	}
	client, err := amocrm.New(amocrm.Config{
		ClientID: m.Config.AmoClientID, ClientSecret: m.Config.AmoClientSecret, RedirectURI: m.Config.AmoRedirectURI,
		BaseURL: m.Config.AmoBaseURL, BatchSize: m.Config.AmoBatchSize, RateLimit: m.Config.AmoRateLimit,
		Redis: m.Redis, Tokens: tokens, Logger: m.Log.With("component", "amocrm"),
		OnBlocked: func(accountID int64, err error) {
			// Called from inside a request: record it without holding the caller up.
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				if rerr := m.DB.Record(ctx, eventlog.Event{AccountID: accountID, Type: eventlog.TypeError, Severity: eventlog.Error,
					Message: "amoCRM заблокировал доступ к API для аккаунта. Вызовы остановлены; снять блокировку может поддержка amoCRM, затем — наша поддержка.",
					Details: map[string]any{"error": err.Error()}}); rerr != nil {
					m.Log.Error("record amoCRM block", "account_id", accountID, "err", rerr)
				}
			}()
		},
	})
	if err != nil {
		return nil, nil, err
	}
	m.amoClient, m.amoTokens = client, tokens
	return client, tokens, nil
}

// amoExchanger completes installs through the amoCRM client.
type amoExchanger struct{ m *Main }

func (m *Main) amoExchanger() install.Exchanger { return amoExchanger{m} }

// Exchange trades the code at the referer's host, reads the account with the
// new token, and hands back a Grant that stores the token in the install
// transaction. A bad referer or a used code is apperr.Invalid (never retried).
func (x amoExchanger) Exchange(ctx context.Context, referer, code string) (install.Grant, error) {
	client, tokens, err := x.m.amo()
	if err != nil {
		return install.Grant{}, err
	}
	ref, err := amocrm.RefFromReferer(0, referer)
	if err != nil {
		return install.Grant{}, apperr.Wrap(err, apperr.Invalid, "Адрес аккаунта amoCRM не распознан.")
	}
	tok, err := client.Exchange(ctx, ref, code)
	if err != nil {
		return install.Grant{}, apperr.Wrap(err, amocrm.AppCode(err), "Не удалось получить доступ к amoCRM по коду установки.")
	}
	info, err := client.AccountWithToken(ref, tok).GetAccount(ctx)
	if err != nil {
		return install.Grant{}, apperr.Wrap(err, amocrm.AppCode(err), "Не удалось прочитать аккаунт amoCRM.")
	}
	if info.ID <= 0 || info.Subdomain == "" {
		return install.Grant{}, apperr.New(apperr.Unavailable, "amoCRM вернул аккаунт без номера или поддомена")
	}
	return install.Grant{
		AmoAccountID: info.ID, Subdomain: info.Subdomain, BaseDomain: ref.Domain, Name: info.Name,
		SaveTokens: func(tx *gorm.DB, accountID int64) error {
			if err := tokens.SaveTokensTx(tx, accountID, tok); err != nil {
				return fmt.Errorf("save tokens of account %d: %w", accountID, err)
			}
			return nil
		},
	}, nil
}
