package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/svyazka/svyazka/backend/eventlog"
)

// SaveContinueInboundLeads sets the account's continue_inbound_leads
// setting (rule 6 of the sync) to on and records ev, in one transaction
// under the settings row lock. Setting the value it has already changes
// nothing and records nothing: changed is false. ErrNotFound for an
// unknown account.
func (db *DB) SaveContinueInboundLeads(ctx context.Context, accountID int64, on bool, ev eventlog.Event) (changed bool, err error) {
	err = db.InTx(ctx, func(tx *Tx) error {
		var row struct{ ContinueInboundLeads bool }
		res := tx.g.Raw(`SELECT continue_inbound_leads FROM account_settings WHERE account_id = ? FOR UPDATE`, accountID).Scan(&row)
		switch {
		case res.Error != nil:
			return res.Error
		case res.RowsAffected == 0:
			return ErrNotFound
		case row.ContinueInboundLeads == on:
			return nil
		}
		if err := tx.g.Exec(`UPDATE account_settings SET continue_inbound_leads = ?, version = version + 1, updated_at = now() WHERE account_id = ?`,
			on, accountID).Error; err != nil {
			return err
		}
		changed = true
		return RecordTx(tx.g, ev)
	})
	if errors.Is(err, ErrNotFound) {
		return false, err
	}
	if err != nil {
		return false, fmt.Errorf("store: save continue inbound leads of account %d: %w", accountID, err)
	}
	return changed, nil
}
