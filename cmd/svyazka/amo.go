package main

import (
	"context"
	"time"

	"github.com/svyazka/svyazka/amocrm"
	"github.com/svyazka/svyazka/backend/eventlog"
	"github.com/svyazka/svyazka/backend/install"
	"github.com/svyazka/svyazka/backend/store"
)

// amo returns the process's amoCRM client, built on first use (after the
// sandbox, if any, has set AMOCRM_BASE_URL).
func (m *Main) amo() (*amocrm.Client, *store.AmoTokens, error) {
	m.amoOnce.Do(func() { m.amoClient, m.amoTokens, m.amoErr = m.newAmo() })
	return m.amoClient, m.amoTokens, m.amoErr
}

func (m *Main) newAmo() (*amocrm.Client, *store.AmoTokens, error) {
	tokens, err := store.NewAmoTokens(m.DB, m.Sealer)
	if err != nil {
		return nil, nil, err
	}
	client, err := amocrm.New(amocrm.Config{
		ClientID: m.Config.AmoClientID, ClientSecret: m.Config.AmoClientSecret, RedirectURI: m.Config.AmoRedirectURI,
		BaseURL: m.Config.AmoBaseURL, BatchSize: m.Config.AmoBatchSize, RateLimit: m.Config.AmoRateLimit,
		Redis: m.Redis, Tokens: install.RevokingTokens{AmoTokens: tokens, Service: m.install},
		Logger: m.Log.With("component", "amocrm"), OnBlocked: m.recordBlock,
	})
	if err != nil {
		return nil, nil, err
	}
	return client, tokens, nil
}

// recordBlock logs an amoCRM API block in the account's event log. The client
// calls it from inside a request, so it must not hold the caller up.
func (m *Main) recordBlock(accountID int64, err error) {
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if rerr := m.DB.Record(ctx, eventlog.Event{AccountID: accountID, Type: eventlog.TypeError, Severity: eventlog.Error,
			Message: "amoCRM заблокировал доступ к API для аккаунта. Вызовы остановлены; снять блокировку может поддержка amoCRM, затем — наша поддержка.",
			Details: map[string]any{"error": err.Error()}}); rerr != nil {
			m.Log.Error("record amoCRM block", "account_id", accountID, "err", rerr)
		}
	}()
}

// lazyExchanger builds the client on the first install, so processes that
// never install (and tests of bad configuration) do not need it.
type lazyExchanger struct{ m *Main }

func (m *Main) amoExchanger() install.Exchanger { return lazyExchanger{m} }

// Exchange implements install.Exchanger.
func (x lazyExchanger) Exchange(ctx context.Context, referer, code string) (install.Grant, error) {
	client, tokens, err := x.m.amo()
	if err != nil {
		return install.Grant{}, err
	}
	return install.AmoExchanger{Client: client, Tokens: tokens}.Exchange(ctx, referer, code)
}

// CheckAccess implements install.Exchanger.
func (x lazyExchanger) CheckAccess(ctx context.Context, acc store.Account) error {
	client, tokens, err := x.m.amo()
	if err != nil {
		return err
	}
	return install.AmoExchanger{Client: client, Tokens: tokens}.CheckAccess(ctx, acc)
}
