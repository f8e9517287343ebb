package install

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/svyazka/svyazka/amocrm"
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
		return Grant{}, apperr.Wrap(err, amocrm.AppCode(err), "Не удалось получить доступ к amoCRM по коду установки.")
	}
	info, err := x.Client.AccountWithToken(ref, tok).GetAccount(ctx)
	if err != nil {
		return Grant{}, apperr.Wrap(err, amocrm.AppCode(err), "Не удалось прочитать аккаунт amoCRM.")
	}
	if info.ID <= 0 || info.Subdomain == "" {
		return Grant{}, apperr.New(apperr.Unavailable, "amoCRM вернул аккаунт без номера или поддомена")
	}
	return Grant{
		AmoAccountID: info.ID, Subdomain: info.Subdomain, BaseDomain: ref.Domain, Name: info.Name,
		SaveTokens: func(tx *gorm.DB, accountID int64) error {
			if err := x.Tokens.SaveTokensTx(tx, accountID, tok); err != nil {
				return fmt.Errorf("save tokens of account %d: %w", accountID, err)
			}
			return nil
		},
	}, nil
}

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
