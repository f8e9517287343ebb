package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/svyazka/svyazka/backend/eventlog"
	"github.com/svyazka/svyazka/billing"
)

// Account is an amoCRM account that installed the widget.
type Account struct {
	ID            int64 `gorm:"primaryKey"`
	AmoAccountID  int64
	Subdomain     string
	BaseDomain    string
	Name          string
	Status        string
	Timezone      string
	ContactName   string
	ContactPhone  string
	ConsentAt     *time.Time
	ConsentUserID *int64
	InstalledAt   time.Time
	// InstallSeq grows with every reinstall; widget sessions carry it.
	InstallSeq    int64
	UninstalledAt *time.Time
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

// DefaultTimeZone is the zone of an account (and of a clinic database) when
// none is given: most clinics we serve keep Moscow time. The config's
// DEFAULT_TIME_ZONE defaults to it.
const DefaultTimeZone = "Europe/Moscow"

// Account statuses.
const (
	AccountActive      = "active"
	AccountUninstalled = "uninstalled"
)

// TableName implements gorm's Tabler.
func (Account) TableName() string { return "accounts" }

// Location returns the account's time zone (DefaultTimeZone when the stored
// one cannot be loaded; zones are validated on write).
func (a Account) Location() *time.Location {
	if loc, err := time.LoadLocation(a.Timezone); err == nil {
		return loc
	}
	if loc, err := time.LoadLocation(DefaultTimeZone); err == nil {
		return loc
	}
	return time.UTC
}

// InstallFormDone reports whether the install form («Имя», «Телефон», consent) was saved.
func (a Account) InstallFormDone() bool { return a.ConsentAt != nil }

type subscriptionRow struct {
	AccountID   int64 `gorm:"primaryKey"`
	Status      string
	TrialEndsAt *time.Time
	PaidUntil   *time.Time
	PaidSeats   int
	Version     int64
	UpdatedAt   time.Time
}

func (subscriptionRow) TableName() string { return "subscriptions" }

// InstallInput describes an install (or re-install) of the widget.
type InstallInput struct {
	AmoAccountID int64
	Subdomain    string
	BaseDomain   string
	Name         string
	// Timezone is the IANA zone a new account starts with.
	Timezone  string
	TrialDays int
	Now       time.Time
	// Save runs inside the install transaction (to store the tokens with it).
	Save func(tx *Tx, account Account) error
}

// InstallAccount creates the account, or re-activates one that uninstalled
// before (keeping its data and subscription). A first install starts the trial.
// It returns the account and whether this was its first install.
func (db *DB) InstallAccount(ctx context.Context, in InstallInput) (Account, bool, error) {
	var acc Account
	first := false
	if in.Timezone == "" {
		in.Timezone = DefaultTimeZone
	}
	if _, err := time.LoadLocation(in.Timezone); err != nil {
		return Account{}, false, fmt.Errorf("store: install account %d: time zone %q: %w", in.AmoAccountID, in.Timezone, err)
	}
	err := db.transact(ctx, func(tx *gorm.DB) error {
		err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).Where("amo_account_id = ?", in.AmoAccountID).Take(&acc).Error
		switch {
		case errors.Is(err, gorm.ErrRecordNotFound):
			first = true
			acc = Account{AmoAccountID: in.AmoAccountID, Subdomain: in.Subdomain, BaseDomain: in.BaseDomain,
				Name: in.Name, Status: AccountActive, Timezone: in.Timezone, InstalledAt: in.Now, InstallSeq: 1}
			if err := tx.Create(&acc).Error; err != nil {
				return err
			}
			trial := billing.NewTrial(in.Now, in.TrialDays)
			if err := tx.Create(&subscriptionRow{AccountID: acc.ID, Status: string(trial.Status), TrialEndsAt: trial.TrialEndsAt, Version: 1}).Error; err != nil {
				return err
			}
			if err := tx.Exec("INSERT INTO account_settings (account_id) VALUES (?)", acc.ID).Error; err != nil {
				return err
			}
		case err != nil:
			return err
		default:
			if err := tx.Model(&acc).Updates(map[string]any{
				"subdomain": in.Subdomain, "base_domain": in.BaseDomain, "name": in.Name,
				"status": AccountActive, "installed_at": in.Now, "uninstalled_at": nil, "updated_at": in.Now,
				"install_seq": gorm.Expr("install_seq + 1"),
			}).Error; err != nil {
				return err
			}
			if err := tx.Where("id = ?", acc.ID).Take(&acc).Error; err != nil {
				return err
			}
		}
		if in.Save != nil {
			if err := in.Save(&Tx{g: tx}, acc); err != nil {
				return err
			}
		}
		msg := fmt.Sprintf("Виджет установлен в аккаунт %s.", in.Subdomain)
		if first {
			msg += fmt.Sprintf(" Пробный период — %d дн.", in.TrialDays)
		} else {
			msg = fmt.Sprintf("Виджет установлен повторно в аккаунт %s; прежние данные и настройки сохранены.", in.Subdomain)
		}
		return RecordTx(tx, eventlog.Event{AccountID: acc.ID, Type: eventlog.TypeInstall, Message: msg,
			Details: map[string]any{"amo_account_id": in.AmoAccountID, "first_install": first}})
	})
	if err != nil {
		return Account{}, false, fmt.Errorf("store: install account %d: %w", in.AmoAccountID, err)
	}
	return acc, first, nil
}

// AccountByAmoID returns the account with amoCRM id amoID, or ErrNotFound.
func (db *DB) AccountByAmoID(ctx context.Context, amoID int64) (Account, error) {
	return db.findAccount(ctx, "amo_account_id = ?", amoID)
}

// AccountByID returns the account, or ErrNotFound.
func (db *DB) AccountByID(ctx context.Context, id int64) (Account, error) {
	return db.findAccount(ctx, "id = ?", id)
}

func (db *DB) findAccount(ctx context.Context, where string, arg int64) (Account, error) {
	var acc Account
	err := db.Gorm(ctx).Where(where, arg).Take(&acc).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return Account{}, ErrNotFound
	}
	if err != nil {
		return Account{}, fmt.Errorf("store: account (%s %d): %w", where, arg, err)
	}
	return acc, nil
}

// UninstallAccount marks the account uninstalled and its tokens revoked; all
// its data stays. It returns ErrNotFound for an unknown account and is a
// no-op (no second event) for one already uninstalled.
func (db *DB) UninstallAccount(ctx context.Context, amoID int64, reason string, now time.Time) (Account, error) {
	var acc Account
	err := db.transact(ctx, func(tx *gorm.DB) error {
		err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).Where("amo_account_id = ?", amoID).Take(&acc).Error
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		if acc.Status == AccountUninstalled {
			return nil
		}
		if err := tx.Model(&acc).Updates(map[string]any{"status": AccountUninstalled, "uninstalled_at": now, "updated_at": now}).Error; err != nil {
			return err
		}
		if err := tx.Exec("UPDATE amo_tokens SET revoked_at = ? WHERE account_id = ? AND revoked_at IS NULL", now, acc.ID).Error; err != nil {
			return err
		}
		if err := tx.Exec("UPDATE account_settings SET sync_state = 'stopped', sync_stopped_at = ? WHERE account_id = ? AND sync_state <> 'stopped'", now, acc.ID).Error; err != nil {
			return err
		}
		return RecordTx(tx, eventlog.Event{AccountID: acc.ID, Type: eventlog.TypeUninstall, Severity: eventlog.Warning,
			Message: "Виджет отключён в amoCRM (" + reason + "). Синхронизация остановлена, данные сохранены."})
	})
	if errors.Is(err, ErrNotFound) {
		return Account{}, ErrNotFound
	}
	if err != nil {
		return Account{}, fmt.Errorf("store: uninstall account %d: %w", amoID, err)
	}
	return acc, nil
}

// SaveInstallForm stores the install form: contact name, normalised phone and
// the personal-data consent with its time and the amoCRM user who gave it.
func (db *DB) SaveInstallForm(ctx context.Context, accountID int64, name, phone string, userID int64, now time.Time) error {
	return db.transact(ctx, func(tx *gorm.DB) error {
		res := tx.Model(&Account{}).Where("id = ?", accountID).Updates(map[string]any{
			"contact_name": name, "contact_phone": phone, "consent_at": now, "consent_user_id": userID, "updated_at": now,
		})
		if res.Error != nil {
			return fmt.Errorf("store: install form of account %d: %w", accountID, res.Error)
		}
		if res.RowsAffected == 0 {
			return ErrNotFound
		}
		return RecordTx(tx, eventlog.Event{AccountID: accountID, Type: eventlog.TypeInstallForm,
			Message: fmt.Sprintf("Сохранены данные установки: %s, %s; согласие на передачу персональных данных дал пользователь amoCRM #%d.", name, phone, userID),
			Details: map[string]any{"user_id": userID}})
	})
}

// Subscription returns the account's subscription, or ErrNotFound.
func (db *DB) Subscription(ctx context.Context, accountID int64) (billing.Subscription, error) {
	var row subscriptionRow
	err := db.Gorm(ctx).Where("account_id = ?", accountID).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return billing.Subscription{}, ErrNotFound
	}
	if err != nil {
		return billing.Subscription{}, fmt.Errorf("store: subscription of account %d: %w", accountID, err)
	}
	return billing.Subscription{Status: billing.Status(row.Status), TrialEndsAt: row.TrialEndsAt, PaidUntil: row.PaidUntil, PaidSeats: row.PaidSeats}, nil
}
