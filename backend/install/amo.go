package install

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/svyazka/svyazka/amocrm"
	"github.com/svyazka/svyazka/backend/amoerr"
	"github.com/svyazka/svyazka/backend/apperr"
	"github.com/svyazka/svyazka/backend/store"
)

// AmoExchanger completes installs through the amoCRM client.
type AmoExchanger struct {
	Client *amocrm.Client
	Tokens *store.AmoTokens
}

// Exchange trades the code at the referer's host, reads the account with the
// new token, and returns a Grant that stores the token in the install
// transaction. A bad referer or a used code is apperr.Invalid (never retried).
func (x AmoExchanger) Exchange(ctx context.Context, referer, code string) (Grant, error) {
	ref, err := amocrm.RefFromReferer(0, referer)
	if err != nil {
		return Grant{}, apperr.Wrap(err, apperr.Invalid, "Адрес аккаунта amoCRM не распознан.")
	}
	tok, err := x.Client.Exchange(ctx, ref, code)
	if err != nil {
		return Grant{}, apperr.Wrap(err, amoerr.Code(err), "Не удалось получить доступ к amoCRM по коду установки.")
	}
	info, err := x.Client.AccountWithToken(ref, tok).GetAccount(ctx)
	if err != nil {
		return Grant{}, apperr.Wrap(err, amoerr.Code(err), "Не удалось прочитать аккаунт amoCRM.")
	}
	if info.ID <= 0 || info.Subdomain == "" {
		return Grant{}, apperr.New(apperr.Unavailable, "amoCRM вернул аккаунт без номера или поддомена")
	}
	return Grant{
		AmoAccountID: info.ID, Subdomain: info.Subdomain, BaseDomain: ref.Domain, Name: info.Name,
		SaveTokens: func(tx *store.Tx, accountID int64) error {
			if err := x.Tokens.SaveTokensIn(tx, accountID, tok); err != nil {
				return fmt.Errorf("save tokens of account %d: %w", accountID, err)
			}
			return nil
		},
	}, nil
}

// CheckAccess reads the account from amoCRM with its stored token (refreshing
// it if needed). See Exchanger.
func (x AmoExchanger) CheckAccess(ctx context.Context, acc store.Account) error {
	_, err := x.Client.Account(amocrm.AccountRef{ID: acc.ID, Subdomain: acc.Subdomain, Domain: acc.BaseDomain}).GetAccount(ctx)
	return err
}

// IsRevoked reports whether an amoCRM error means our access is gone for
// good (the integration was disabled or the token revoked).
func IsRevoked(err error) bool { return errors.Is(err, amocrm.ErrRevoked) }

// RevokingTokens is the token store the amoCRM client uses: when the client
// finds the account's access revoked (a 401 that a refresh cannot cure, as
// after an uninstall without the disable hook), it also uninstalls the
// account here — work stops, data stays.
type RevokingTokens struct {
	*store.AmoTokens
	Service *Service
}

// MarkRevoked implements amocrm.TokenStore.
func (r RevokingTokens) MarkRevoked(ctx context.Context, accountID int64, at time.Time) error {
	if err := r.AmoTokens.MarkRevoked(ctx, accountID, at); err != nil {
		return err
	}
	return r.Service.UninstallByID(ctx, accountID, "amoCRM отклонил доступ (401): интеграция отключена или доступ отозван")
}
