package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/svyazka/svyazka/amocrm"
	"github.com/svyazka/svyazka/backend/sealer"
)

// amoTokenRow is a row of amo_tokens; both tokens are sealed.
type amoTokenRow struct {
	AccountID       int64 `gorm:"primaryKey;autoIncrement:false"`
	AccessTokenEnc  []byte
	RefreshTokenEnc []byte
	ExpiresAt       time.Time
	RevokedAt       *time.Time
	UpdatedAt       time.Time
}

func (amoTokenRow) TableName() string { return "amo_tokens" }

// AmoTokens keeps accounts' amoCRM OAuth tokens encrypted at rest; it
// implements amocrm.TokenStore. Each token is sealed with additional data
// naming the account and the token's role, so a value copied to another
// row or swapped with its pair fails to open.
type AmoTokens struct {
	db     *DB
	sealer *sealer.Sealer
}

var _ amocrm.TokenStore = (*AmoTokens)(nil)

// NewAmoTokens returns the token store. It fails when db or s is nil.
func NewAmoTokens(db *DB, s *sealer.Sealer) (*AmoTokens, error) {
	if db == nil || s == nil {
		return nil, errors.New("store: amo tokens: db and sealer are required")
	}
	return &AmoTokens{db: db, sealer: s}, nil
}

func tokenAD(accountID int64, role string) []byte {
	return []byte("amo_tokens:" + strconv.FormatInt(accountID, 10) + ":" + role)
}

func (s *AmoTokens) seal(accountID int64, t amocrm.Token) (amoTokenRow, error) {
	access, err := s.sealer.Seal([]byte(t.AccessToken), tokenAD(accountID, "access"))
	if err != nil {
		return amoTokenRow{}, err
	}
	refresh, err := s.sealer.Seal([]byte(t.RefreshToken), tokenAD(accountID, "refresh"))
	if err != nil {
		return amoTokenRow{}, err
	}
	return amoTokenRow{AccountID: accountID, AccessTokenEnc: access, RefreshTokenEnc: refresh, ExpiresAt: t.ExpiresAt.UTC()}, nil
}

func (s *AmoTokens) open(r amoTokenRow) (amocrm.Token, error) {
	access, err := s.sealer.Open(r.AccessTokenEnc, tokenAD(r.AccountID, "access"))
	if err != nil {
		return amocrm.Token{}, err
	}
	refresh, err := s.sealer.Open(r.RefreshTokenEnc, tokenAD(r.AccountID, "refresh"))
	if err != nil {
		return amocrm.Token{}, err
	}
	t := amocrm.Token{AccessToken: string(access), RefreshToken: string(refresh), ExpiresAt: r.ExpiresAt.UTC()}
	if r.RevokedAt != nil {
		t.RevokedAt = r.RevokedAt.UTC()
	}
	return t, nil
}

// Tokens returns the account's token (RevokedAt set if it was revoked).
// It returns ErrNotFound when the account has none, sealer.ErrCorrupt when
// the row does not decrypt under the current key.
func (s *AmoTokens) Tokens(ctx context.Context, accountID int64) (amocrm.Token, error) {
	var r amoTokenRow
	err := s.db.Gorm(ctx).Where("account_id = ?", accountID).Take(&r).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return amocrm.Token{}, fmt.Errorf("store: amo tokens of account %d: %w", accountID, ErrNotFound)
	}
	if err != nil {
		return amocrm.Token{}, fmt.Errorf("store: amo tokens of account %d: %w", accountID, err)
	}
	t, err := s.open(r)
	if err != nil {
		return amocrm.Token{}, fmt.Errorf("store: amo tokens of account %d: %w", accountID, err)
	}
	return t, nil
}

// SaveTokens stores a new pair for the account (after an install or a
// re-install), replacing the old one and clearing its revocation. The
// account must exist (a foreign-key error otherwise).
func (s *AmoTokens) SaveTokens(ctx context.Context, accountID int64, t amocrm.Token) error {
	return s.saveTokens(s.db.Gorm(ctx), accountID, t)
}

// SaveTokensIn is SaveTokens inside tx, e.g. the install transaction
// (InstallInput.Save), so an account never exists without its tokens.
func (s *AmoTokens) SaveTokensIn(tx *Tx, accountID int64, t amocrm.Token) error {
	return s.saveTokens(tx.g, accountID, t)
}

func (s *AmoTokens) saveTokens(tx *gorm.DB, accountID int64, t amocrm.Token) error {
	r, err := s.seal(accountID, t)
	if err != nil {
		return fmt.Errorf("store: save amo tokens of account %d: %w", accountID, err)
	}
	r.UpdatedAt = time.Now().UTC()
	err = tx.Clauses(clause.OnConflict{
		Columns:   []clause.Column{{Name: "account_id"}},
		DoUpdates: clause.AssignmentColumns([]string{"access_token_enc", "refresh_token_enc", "expires_at", "revoked_at", "updated_at"}),
	}).Create(&r).Error
	if err != nil {
		return fmt.Errorf("store: save amo tokens of account %d: %w", accountID, err)
	}
	return nil
}

// UpdateTokens runs fn on the account's current token inside a transaction
// that holds the row lock (SELECT … FOR UPDATE), so concurrent refreshes in
// any process run one at a time and each sees its predecessor's result. It
// stores what fn returns (unless unchanged) and returns it; fn's error rolls
// back and is returned as is (wrapped). ErrNotFound when there is no row.
func (s *AmoTokens) UpdateTokens(ctx context.Context, accountID int64, fn func(cur amocrm.Token) (amocrm.Token, error)) (amocrm.Token, error) {
	var next amocrm.Token
	err := s.db.transact(ctx, func(tx *gorm.DB) error {
		var r amoTokenRow
		err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).Where("account_id = ?", accountID).Take(&r).Error
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		cur, err := s.open(r)
		if err != nil {
			return err
		}
		if next, err = fn(cur); err != nil {
			return err
		}
		if next.AccessToken == cur.AccessToken && next.RefreshToken == cur.RefreshToken && next.ExpiresAt.Equal(cur.ExpiresAt) {
			return nil
		}
		sealed, err := s.seal(accountID, next)
		if err != nil {
			return err
		}
		next.RevokedAt = time.Time{}
		return tx.Model(&amoTokenRow{}).Where("account_id = ?", accountID).Updates(map[string]any{
			"access_token_enc": sealed.AccessTokenEnc, "refresh_token_enc": sealed.RefreshTokenEnc,
			"expires_at": sealed.ExpiresAt, "revoked_at": nil, "updated_at": time.Now().UTC(),
		}).Error
	})
	if err != nil {
		return amocrm.Token{}, fmt.Errorf("store: update amo tokens of account %d: %w", accountID, err)
	}
	return next, nil
}

// MarkRevoked records that the account's access was revoked at at, keeping
// an earlier mark. ErrNotFound when the account has no tokens.
func (s *AmoTokens) MarkRevoked(ctx context.Context, accountID int64, at time.Time) error {
	res := s.db.Gorm(ctx).Model(&amoTokenRow{}).Where("account_id = ?", accountID).Updates(map[string]any{
		"revoked_at": gorm.Expr("COALESCE(revoked_at, ?)", at.UTC()), "updated_at": time.Now().UTC(),
	})
	if res.Error != nil {
		return fmt.Errorf("store: mark amo tokens of account %d revoked: %w", accountID, res.Error)
	}
	if res.RowsAffected == 0 {
		return fmt.Errorf("store: mark amo tokens of account %d revoked: %w", accountID, ErrNotFound)
	}
	return nil
}
