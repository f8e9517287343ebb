package store

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/svyazka/svyazka/backend/eventlog"
	"github.com/svyazka/svyazka/connector/protocol"
)

// The create journal (migration 00016): the sync records the source ids of
// a create before sending it, and CommitSync removes them with the links
// it stores. An id still journaled when it is created again is the only
// case that needs a search of amoCRM by our key field first.

// RecordCreateIntents journals that entities of entityType are about to be
// created for sourceIDs of the database.
func (db *DB) RecordCreateIntents(ctx context.Context, databaseID int64, entityType string, sourceIDs []string, now time.Time) error {
	if len(sourceIDs) == 0 {
		return nil
	}
	err := db.transact(ctx, func(tx *gorm.DB) error {
		for chunk := range slices.Chunk(sourceIDs, 1000) {
			var sb strings.Builder
			args := make([]any, 0, 4*len(chunk))
			sb.WriteString(`INSERT INTO sync_create_intents (database_id, entity_type, source_id, created_at) VALUES `)
			for i, id := range chunk {
				if i > 0 {
					sb.WriteString(", ")
				}
				sb.WriteString("(?, ?, ?, ?)")
				args = append(args, databaseID, entityType, id, now.UTC())
			}
			sb.WriteString(" ON CONFLICT DO NOTHING")
			if err := tx.Exec(sb.String(), args...).Error; err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: journal %d %s creates (database %d): %w", len(sourceIDs), entityType, databaseID, err)
	}
	return nil
}

// CreateIntents returns which of sourceIDs have a journaled create: one sent
// earlier whose links were never committed.
func (db *DB) CreateIntents(ctx context.Context, databaseID int64, entityType string, sourceIDs []string) (map[string]bool, error) {
	out := map[string]bool{}
	if len(sourceIDs) == 0 {
		return out, nil
	}
	var ids []string
	if err := db.Gorm(ctx).Raw(`SELECT source_id FROM sync_create_intents WHERE database_id = ? AND entity_type = ? AND source_id IN ?`,
		databaseID, entityType, sourceIDs).Scan(&ids).Error; err != nil {
		return nil, fmt.Errorf("store: journaled %s creates (database %d): %w", entityType, databaseID, err)
	}
	for _, id := range ids {
		out[id] = true
	}
	return out, nil
}

// clearIntentsTx removes the journal rows of what c stored or parked.
func clearIntentsTx(tx *gorm.DB, c SyncCommit) error {
	byType := map[string][]string{}
	for _, l := range c.Links {
		byType[l.EntityType] = append(byType[l.EntityType], l.SourceID)
	}
	for _, p := range c.Parked {
		// A parked patient's create is journaled as its link type, a
		// parked reception's as its chain's (appointment).
		t := LinkAppointment
		if p.Kind == string(protocol.KindPatient) {
			t = LinkPatient
		}
		byType[t] = append(byType[t], p.SourceID)
	}
	byType[LinkAppointment] = append(byType[LinkAppointment], c.ClearIntents...)
	for t, ids := range byType {
		for chunk := range slices.Chunk(ids, 1000) {
			if err := tx.Exec(`DELETE FROM sync_create_intents WHERE database_id = ? AND entity_type = ? AND source_id IN ?`,
				c.DatabaseID, t, chunk).Error; err != nil {
				return err
			}
		}
	}
	return nil
}

// ScannedKey is an amoCRM entity carrying one of our key fields («ID
// пациента IDENT» on a contact, «ID записи IDENT» on a lead), as the
// account scan found it.
type ScannedKey struct {
	CRMEntityType string
	Key           string
	CRMID         int64
}

// AccountScan is what one full read of the account found: the phones of
// contacts without our key (candidates for adoption) and the entities that
// carry our keys.
type AccountScan struct {
	Phones []ContactPhone
	Keys   []ScannedKey
}

// SaveAccountScan replaces the account's scan with s and records at as the
// time of the full read, in one transaction.
func (db *DB) SaveAccountScan(ctx context.Context, accountID int64, s AccountScan, at time.Time) error {
	err := db.transact(ctx, func(tx *gorm.DB) error {
		if err := tx.Exec(`DELETE FROM sync_contact_phones WHERE account_id = ?`, accountID).Error; err != nil {
			return err
		}
		if err := tx.Exec(`DELETE FROM sync_scanned_keys WHERE account_id = ?`, accountID).Error; err != nil {
			return err
		}
		if err := insertRows(tx, `INSERT INTO sync_contact_phones (account_id, phone, contact_id) VALUES `, "(?, ?, ?)", s.Phones,
			func(p ContactPhone) []any { return []any{accountID, p.Phone, p.ContactID} }); err != nil {
			return err
		}
		if err := insertRows(tx, `INSERT INTO sync_scanned_keys (account_id, crm_entity_type, key, crm_id) VALUES `, "(?, ?, ?, ?)", s.Keys,
			func(k ScannedKey) []any { return []any{accountID, k.CRMEntityType, k.Key, k.CRMID} }); err != nil {
			return err
		}
		return tx.Exec(`UPDATE account_settings SET contacts_scanned_at = ? WHERE account_id = ?`, at.UTC(), accountID).Error
	})
	if err != nil {
		return fmt.Errorf("store: save scan of account %d (%d phones, %d keys): %w", accountID, len(s.Phones), len(s.Keys), err)
	}
	return nil
}

// insertRows inserts rows in chunks of 1000 (ON CONFLICT DO NOTHING).
func insertRows[T any](tx *gorm.DB, head, tuple string, rows []T, args func(T) []any) error {
	for chunk := range slices.Chunk(rows, 1000) {
		var sb strings.Builder
		var all []any
		sb.WriteString(head)
		for i, r := range chunk {
			if i > 0 {
				sb.WriteString(", ")
			}
			sb.WriteString(tuple)
			all = append(all, args(r)...)
		}
		sb.WriteString(" ON CONFLICT DO NOTHING")
		if err := tx.Exec(sb.String(), all...).Error; err != nil {
			return err
		}
	}
	return nil
}

// ScannedKeys returns the scanned entities of crmEntityType carrying one of
// keys and linked to nothing of the account.
func (db *DB) ScannedKeys(ctx context.Context, accountID int64, crmEntityType string, keys []string) ([]ScannedKey, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	var out []ScannedKey
	if err := db.Gorm(ctx).Raw(`SELECT k.crm_entity_type, k.key, k.crm_id FROM sync_scanned_keys k
		WHERE k.account_id = ? AND k.crm_entity_type = ? AND k.key IN ?
			AND NOT EXISTS (SELECT 1 FROM entity_links l WHERE l.account_id = k.account_id AND l.crm_entity_type = k.crm_entity_type AND l.crm_id = k.crm_id)
		ORDER BY k.key, k.crm_id`, accountID, crmEntityType, keys).Scan(&out).Error; err != nil {
		return nil, fmt.Errorf("store: scanned %s keys of account %d: %w", crmEntityType, accountID, err)
	}
	return out, nil
}

// ForgetScan makes the account's next create scan amoCRM again (a restored
// database: what was created after the backup is found by its keys) and
// records ev, in one transaction.
func (db *DB) ForgetScan(ctx context.Context, accountID int64, ev eventlog.Event) error {
	err := db.transact(ctx, func(tx *gorm.DB) error {
		if err := tx.Exec(`UPDATE account_settings SET contacts_scanned_at = NULL WHERE account_id = ?`, accountID).Error; err != nil {
			return err
		}
		return RecordTx(tx, ev)
	})
	if err != nil {
		return fmt.Errorf("store: forget scan of account %d: %w", accountID, err)
	}
	return nil
}
