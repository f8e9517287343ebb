package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/svyazka/svyazka/backend/eventlog"
)

// ClinicDatabase is one connected clinic database (an IDENT branch, or later
// a cloud source) with its connector token and its two statuses.
type ClinicDatabase struct {
	ID               int64 `gorm:"primaryKey"`
	AccountID        int64
	Source           string
	Name             string
	TokenHash        []byte
	TokenIssuedAt    *time.Time
	ConnectorStatus  string
	ConnectorSeenAt  *time.Time
	ConnectorVersion string
	DBStatus         string `gorm:"column:db_status"`
	DBStatusDetail   string `gorm:"column:db_status_detail"`
	StatusCheckedAt  *time.Time
	CreatedAt        time.Time
	DisconnectedAt   *time.Time
	// TimeZone is the clinic's IANA zone: IDENT stores naive local times.
	TimeZone          string
	InstanceID        *string
	InstanceHostname  string
	PairedAt          *time.Time
	SourceVersion     string
	OutboxPending     int64
	InitialLoadDone   bool
	DBStatusChangedAt *time.Time `gorm:"column:db_status_changed_at"`
	// SyncWroteAt is when the sync last stored links of the database (a
	// restore from a backup is noticed by comparing it with the worker's
	// copy in Redis).
	SyncWroteAt *time.Time
}

// TableName implements gorm's Tabler.
func (ClinicDatabase) TableName() string { return "clinic_databases" }

// ListDatabases returns the account's databases, oldest first.
func (db *DB) ListDatabases(ctx context.Context, accountID int64) ([]ClinicDatabase, error) {
	var out []ClinicDatabase
	if err := db.Gorm(ctx).Where("account_id = ?", accountID).Order("id").Find(&out).Error; err != nil {
		return nil, fmt.Errorf("store: databases of account %d: %w", accountID, err)
	}
	return out, nil
}

// TokenRequest asks for a new connector token: for a new database when
// DatabaseID is 0, else a replacement for that database's token.
type TokenRequest struct {
	AccountID  int64
	DatabaseID int64
	TokenHash  []byte
	UserID     int64
	Now        time.Time
	// MaxDatabases caps the account's databases (a new one beyond it fails
	// with ErrTooManyDatabases).
	MaxDatabases int
	// Name and TimeZone describe a new database; empty means «База N» and
	// DefaultTimeZone.
	Name     string
	TimeZone string
	// BySupport marks a token issued by Svyazka's support (UserID is then 0).
	BySupport bool
}

// ErrTooManyDatabases refuses a database beyond the account's cap.
var ErrTooManyDatabases = errors.New("store: too many databases")

// IssueConnectorToken stores the hash of a new connector token. With
// DatabaseID 0 it adds a new database (named «База N»), unless the account
// already has MaxDatabases (ErrTooManyDatabases); otherwise it replaces the
// token of that database of the account, which disconnects the connector
// holding the old one. ErrNotFound if the database is not the account's.
// Concurrent requests of one account are serialised on the account row, so
// the cap holds under a burst.
func (db *DB) IssueConnectorToken(ctx context.Context, req TokenRequest) (ClinicDatabase, error) {
	var d ClinicDatabase
	accountID, databaseID, tokenHash, userID, now := req.AccountID, req.DatabaseID, req.TokenHash, req.UserID, req.Now
	err := db.transact(ctx, func(tx *gorm.DB) error {
		if err := tx.Exec("SELECT 1 FROM accounts WHERE id = ? FOR UPDATE", accountID).Error; err != nil {
			return err
		}
		if databaseID == 0 {
			var n int64
			if err := tx.Model(&ClinicDatabase{}).Where("account_id = ?", accountID).Count(&n).Error; err != nil {
				return err
			}
			if n >= int64(req.MaxDatabases) {
				return ErrTooManyDatabases
			}
			name, zone := req.Name, req.TimeZone
			if name == "" {
				name = fmt.Sprintf("База %d", n+1)
			}
			if zone == "" {
				zone = DefaultTimeZone
			}
			d = ClinicDatabase{AccountID: accountID, Source: "ident", Name: name, TimeZone: zone,
				TokenHash: tokenHash, TokenIssuedAt: &now, ConnectorStatus: "unknown", DBStatus: "unknown"}
			if err := tx.Create(&d).Error; err != nil {
				return err
			}
		} else {
			err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).Where("id = ? AND account_id = ?", databaseID, accountID).Take(&d).Error
			if errors.Is(err, gorm.ErrRecordNotFound) {
				return ErrNotFound
			}
			if err != nil {
				return err
			}
			// The old token is remembered as revoked (its connector is told
			// so), and the pairing ends: the new token pairs afresh.
			if len(d.TokenHash) > 0 {
				if err := tx.Table("revoked_connector_tokens").Clauses(clause.OnConflict{DoNothing: true}).
					Create(map[string]any{"token_hash": d.TokenHash, "database_id": d.ID, "revoked_at": now}).Error; err != nil {
					return err
				}
			}
			d.TokenHash, d.TokenIssuedAt, d.ConnectorStatus, d.InstanceID, d.PairedAt = tokenHash, &now, "disconnected", nil, nil
			if err := tx.Model(&d).Updates(map[string]any{"token_hash": tokenHash, "token_issued_at": now, "connector_status": "disconnected",
				"instance_id": nil, "paired_at": nil}).Error; err != nil {
				return err
			}
		}
		msg := fmt.Sprintf("Выдан токен подключения для «%s» (пользователь amoCRM #%d).", d.Name, userID)
		details := map[string]any{"user_id": userID}
		if req.BySupport {
			msg = fmt.Sprintf("База «%s» добавлена службой поддержки Связки; токен подключения выдан поддержкой.", d.Name)
			details = map[string]any{"issued_by": "support", "time_zone": d.TimeZone}
		}
		if databaseID != 0 {
			msg += " Прежний токен этой базы больше не действует."
		}
		return RecordTx(tx, eventlog.Event{AccountID: accountID, DatabaseID: &d.ID, Type: eventlog.TypeTokenIssued,
			Message: msg, Details: details})
	})
	if errors.Is(err, ErrNotFound) || errors.Is(err, ErrTooManyDatabases) {
		return ClinicDatabase{}, err
	}
	if err != nil {
		return ClinicDatabase{}, fmt.Errorf("store: issue connector token (account %d, database %d): %w", accountID, databaseID, err)
	}
	return d, nil
}
