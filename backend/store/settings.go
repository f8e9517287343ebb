package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"
)

// SettingsState is the part of an account's settings the UI shows: whether
// setup is done (or broken, and why) and whether the sync runs.
type SettingsState struct {
	State         string     `json:"state"` // not_configured, running, configured, failed, drift (setup.Status)
	Detail        string     `json:"detail"`
	SyncState     string     `json:"sync_state"` // stopped, running, paused
	SyncStartedAt *time.Time `json:"sync_started_at"`
}

// SettingsState returns the account's settings state, or ErrNotFound.
func (db *DB) SettingsState(ctx context.Context, accountID int64) (SettingsState, error) {
	var row struct {
		SetupState    string
		SetupDetail   string
		SyncState     string
		SyncStartedAt *time.Time
	}
	err := db.Gorm(ctx).Table("account_settings").Select("setup_state, setup_detail, sync_state, sync_started_at").
		Where("account_id = ?", accountID).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return SettingsState{}, ErrNotFound
	}
	if err != nil {
		return SettingsState{}, fmt.Errorf("store: settings of account %d: %w", accountID, err)
	}
	return SettingsState{State: row.SetupState, Detail: row.SetupDetail, SyncState: row.SyncState, SyncStartedAt: row.SyncStartedAt}, nil
}
