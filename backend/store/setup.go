package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"
	"gorm.io/gorm"

	"github.com/svyazka/svyazka/backend/setup"
)

// setupRunRow is a row of setup_runs.
type setupRunRow struct {
	ID         string `gorm:"primaryKey"`
	AccountID  int64
	State      string
	Blocks     json.RawMessage `gorm:"type:jsonb"`
	Renames    json.RawMessage `gorm:"type:jsonb"`
	Progress   json.RawMessage `gorm:"type:jsonb"`
	CreatedIDs json.RawMessage `gorm:"column:created_ids;type:jsonb"`
	Error      string
	ErrorItem  string
	StartedBy  string
	StartedAt  time.Time
	UpdatedAt  time.Time
	FinishedAt *time.Time
}

func (setupRunRow) TableName() string { return "setup_runs" }

func runRow(r setup.Run) (setupRunRow, error) {
	row := setupRunRow{ID: r.ID, AccountID: r.AccountID, State: string(r.State), Error: r.Error, ErrorItem: string(r.ErrorItem),
		StartedBy: r.StartedBy, StartedAt: r.StartedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC(), FinishedAt: r.FinishedAt}
	blocks, renames, created := r.Blocks, r.Renames, r.Created
	if blocks == nil {
		blocks = []setup.Block{}
	}
	if renames == nil {
		renames = map[setup.ItemKey]string{}
	}
	if created == nil {
		created = map[setup.ItemKey]int64{}
	}
	var err error
	for _, f := range []struct {
		dst *json.RawMessage
		v   any
	}{{&row.Blocks, blocks}, {&row.Renames, renames}, {&row.Progress, r.Progress}, {&row.CreatedIDs, created}} {
		if *f.dst, err = json.Marshal(f.v); err != nil {
			return setupRunRow{}, fmt.Errorf("store: setup run %s: %w", r.ID, err)
		}
	}
	return row, nil
}

func (row setupRunRow) domain() (setup.Run, error) {
	r := setup.Run{ID: row.ID, AccountID: row.AccountID, State: setup.RunState(row.State), Error: row.Error,
		ErrorItem: setup.ItemKey(row.ErrorItem), StartedBy: row.StartedBy, StartedAt: row.StartedAt.UTC(), UpdatedAt: row.UpdatedAt.UTC()}
	if row.FinishedAt != nil {
		t := row.FinishedAt.UTC()
		r.FinishedAt = &t
	}
	for _, f := range []struct {
		src json.RawMessage
		v   any
	}{{row.Blocks, &r.Blocks}, {row.Renames, &r.Renames}, {row.Progress, &r.Progress}, {row.CreatedIDs, &r.Created}} {
		if err := json.Unmarshal(f.src, f.v); err != nil {
			return setup.Run{}, fmt.Errorf("store: setup run %s: %w", row.ID, err)
		}
	}
	return r, nil
}

// mappingVersionRow is a row of mapping_versions.
type mappingVersionRow struct {
	ID        int64 `gorm:"primaryKey"`
	AccountID int64
	Version   int
	Mapping   json.RawMessage `gorm:"type:jsonb"`
	CreatedBy string
	CreatedAt time.Time
}

func (mappingVersionRow) TableName() string { return "mapping_versions" }

func (row mappingVersionRow) domain() (setup.MappingVersion, error) {
	mv := setup.MappingVersion{ID: row.ID, AccountID: row.AccountID, Version: row.Version, CreatedBy: row.CreatedBy, CreatedAt: row.CreatedAt.UTC()}
	if err := json.Unmarshal(row.Mapping, &mv.Mapping); err != nil {
		return setup.MappingVersion{}, fmt.Errorf("store: mapping version %d: %w", row.ID, err)
	}
	return mv, nil
}

// CreateSetupRun records a running autosetup run, sets the account's setup
// state to running and adds task to the outbox, in one transaction under
// the account's settings row lock. Errors: setup.ErrSyncRunning when the
// sync is not stopped, setup.ErrRunActive when another run is running,
// ErrNotFound for an unknown account.
func (db *DB) CreateSetupRun(ctx context.Context, run setup.Run, task OutboxMessage) error {
	row, err := runRow(run)
	if err != nil {
		return err
	}
	err = db.InTx(ctx, func(tx *Tx) error {
		var st struct{ SyncState string }
		res := tx.g.Raw("SELECT sync_state FROM account_settings WHERE account_id = ? FOR UPDATE", run.AccountID).Scan(&st)
		switch {
		case res.Error != nil:
			return res.Error
		case res.RowsAffected == 0:
			return ErrNotFound
		case st.SyncState != "stopped":
			return setup.ErrSyncRunning
		}
		if err := tx.g.Create(&row).Error; err != nil {
			return err
		}
		if err := tx.g.Exec("UPDATE account_settings SET setup_state = 'running', setup_detail = '', version = version + 1, updated_at = now() WHERE account_id = ?",
			run.AccountID).Error; err != nil {
			return err
		}
		_, err := tx.Enqueue(task)
		return err
	})
	var pg *pgconn.PgError
	switch {
	case errors.As(err, &pg) && pg.Code == "23505", errors.Is(err, gorm.ErrDuplicatedKey):
		return setup.ErrRunActive
	case errors.Is(err, setup.ErrSyncRunning), errors.Is(err, ErrNotFound):
		return err
	case err != nil:
		return fmt.Errorf("store: create setup run for account %d: %w", run.AccountID, err)
	}
	return nil
}

// SetupRun returns a run by id, or ErrNotFound.
func (db *DB) SetupRun(ctx context.Context, id string) (setup.Run, error) {
	if _, err := uuid.Parse(id); err != nil {
		return setup.Run{}, ErrNotFound
	}
	var row setupRunRow
	err := db.Gorm(ctx).Where("id = ?", id).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return setup.Run{}, ErrNotFound
	}
	if err != nil {
		return setup.Run{}, fmt.Errorf("store: setup run %s: %w", id, err)
	}
	return row.domain()
}

// LatestSetupRun returns the account's newest run; false when it has none.
func (db *DB) LatestSetupRun(ctx context.Context, accountID int64) (setup.Run, bool, error) {
	var rows []setupRunRow
	if err := db.Gorm(ctx).Where("account_id = ?", accountID).Order("started_at DESC, id").Limit(1).Find(&rows).Error; err != nil {
		return setup.Run{}, false, fmt.Errorf("store: latest setup run of account %d: %w", accountID, err)
	}
	if len(rows) == 0 {
		return setup.Run{}, false, nil
	}
	r, err := rows[0].domain()
	return r, err == nil, err
}

// SaveSetupProgress writes a running run's progress and created ids and
// stamps updated_at now (the run's heartbeat); a run that is no longer
// running is left as it is.
func (db *DB) SaveSetupProgress(ctx context.Context, run setup.Run) error {
	row, err := runRow(run)
	if err != nil {
		return err
	}
	err = db.Gorm(ctx).Exec("UPDATE setup_runs SET progress = ?, created_ids = ?, updated_at = ? WHERE id = ? AND state = 'running'",
		row.Progress, row.CreatedIDs, time.Now().UTC(), run.ID).Error
	if err != nil {
		return fmt.Errorf("store: setup run %s progress: %w", run.ID, err)
	}
	return nil
}

// IdleSetupRuns lists the running runs whose last progress (updated_at,
// stamped by every SaveSetupProgress and CommitSetup) is before before,
// oldest first.
func (db *DB) IdleSetupRuns(ctx context.Context, before time.Time) ([]setup.Run, error) {
	var rows []setupRunRow
	if err := db.Gorm(ctx).Where("state = 'running' AND updated_at < ?", before.UTC()).Order("updated_at, id").Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("store: idle setup runs: %w", err)
	}
	out := make([]setup.Run, 0, len(rows))
	for _, row := range rows {
		r, err := row.domain()
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// CommitSetup writes one step of setup in one transaction under the
// account's settings row lock: the run's final state (only if it is still
// running and, with c.IdleBefore, has made no progress since: else
// setup.ErrRunFinished), a new mapping version made current, and the state
// change c.Update decides with its event. It returns the new
// mapping version when c.Mapping is set. ErrNotFound for an unknown account.
func (db *DB) CommitSetup(ctx context.Context, accountID int64, c setup.Commit) (setup.MappingVersion, error) {
	var mv setup.MappingVersion
	err := db.transact(ctx, func(tx *gorm.DB) error {
		var cur struct {
			SetupState  string
			SetupDetail string
			SyncState   string
		}
		res := tx.Raw("SELECT setup_state, setup_detail, sync_state FROM account_settings WHERE account_id = ? FOR UPDATE", accountID).Scan(&cur)
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return ErrNotFound
		}
		now := time.Now().UTC()
		if c.Run != nil {
			row, err := runRow(*c.Run)
			if err != nil {
				return err
			}
			// One conditional UPDATE: of racing commits (the task and FailIdle,
			// two FailIdle callers) only the first finds the run running (and,
			// with IdleBefore, idle); the others roll back with their event.
			query := `UPDATE setup_runs SET state = ?, progress = ?, created_ids = ?, error = ?, error_item = ?, updated_at = ?, finished_at = ?
				WHERE id = ? AND account_id = ? AND state = 'running'`
			args := []any{row.State, row.Progress, row.CreatedIDs, row.Error, row.ErrorItem, now, row.FinishedAt, row.ID, accountID}
			if !c.IdleBefore.IsZero() {
				query += " AND updated_at < ?"
				args = append(args, c.IdleBefore.UTC())
			}
			res := tx.Exec(query, args...)
			if res.Error != nil {
				return res.Error
			}
			if res.RowsAffected == 0 {
				return fmt.Errorf("%w: %s", setup.ErrRunFinished, c.Run.ID)
			}
		}
		if c.Mapping != nil {
			raw, err := json.Marshal(c.Mapping)
			if err != nil {
				return err
			}
			row := mappingVersionRow{AccountID: accountID, Mapping: raw, CreatedBy: c.By, CreatedAt: now}
			if err := tx.Raw("SELECT coalesce(max(version), 0) + 1 FROM mapping_versions WHERE account_id = ?", accountID).Scan(&row.Version).Error; err != nil {
				return err
			}
			if err := tx.Create(&row).Error; err != nil {
				return err
			}
			if err := tx.Exec("UPDATE account_settings SET mapping_version_id = ?, mapping = ?, updated_at = now() WHERE account_id = ?",
				row.ID, raw, accountID).Error; err != nil {
				return err
			}
			if mv, err = row.domain(); err != nil {
				return err
			}
		}
		if c.Update != nil {
			st := setup.AccountState{Status: setup.Status(cur.SetupState), Detail: cur.SetupDetail, SyncStopped: cur.SyncState == "stopped"}
			ev := c.Update(&st)
			if string(st.Status) != cur.SetupState || st.Detail != cur.SetupDetail {
				if err := tx.Exec("UPDATE account_settings SET setup_state = ?, setup_detail = ?, version = version + 1, updated_at = now() WHERE account_id = ?",
					string(st.Status), st.Detail, accountID).Error; err != nil {
					return err
				}
			}
			if ev != nil {
				return RecordTx(tx, *ev)
			}
		}
		return nil
	})
	switch {
	case errors.Is(err, ErrNotFound), errors.Is(err, setup.ErrRunFinished):
		return setup.MappingVersion{}, err
	case err != nil:
		return setup.MappingVersion{}, fmt.Errorf("store: commit setup of account %d: %w", accountID, err)
	}
	return mv, nil
}

// CurrentMapping returns the account's current mapping version; false when
// none was saved yet.
func (db *DB) CurrentMapping(ctx context.Context, accountID int64) (setup.MappingVersion, bool, error) {
	var rows []mappingVersionRow
	err := db.Gorm(ctx).Raw(`SELECT v.* FROM mapping_versions v JOIN account_settings s ON s.mapping_version_id = v.id
		WHERE s.account_id = ?`, accountID).Scan(&rows).Error
	if err != nil {
		return setup.MappingVersion{}, false, fmt.Errorf("store: mapping of account %d: %w", accountID, err)
	}
	if len(rows) == 0 {
		return setup.MappingVersion{}, false, nil
	}
	mv, err := rows[0].domain()
	return mv, err == nil, err
}

// MappingVersions lists the account's saved mappings, newest first.
func (db *DB) MappingVersions(ctx context.Context, accountID int64) ([]setup.MappingVersion, error) {
	var rows []mappingVersionRow
	if err := db.Gorm(ctx).Where("account_id = ?", accountID).Order("version DESC").Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("store: mapping versions of account %d: %w", accountID, err)
	}
	out := make([]setup.MappingVersion, 0, len(rows))
	for _, row := range rows {
		mv, err := row.domain()
		if err != nil {
			return nil, err
		}
		out = append(out, mv)
	}
	return out, nil
}

// SetupState returns the account's setup state, or ErrNotFound.
func (db *DB) SetupState(ctx context.Context, accountID int64) (setup.AccountState, error) {
	var row struct {
		SetupState  string
		SetupDetail string
		SyncState   string
	}
	res := db.Gorm(ctx).Raw("SELECT setup_state, setup_detail, sync_state FROM account_settings WHERE account_id = ?", accountID).Scan(&row)
	if res.Error != nil {
		return setup.AccountState{}, fmt.Errorf("store: setup state of account %d: %w", accountID, res.Error)
	}
	if res.RowsAffected == 0 {
		return setup.AccountState{}, ErrNotFound
	}
	return setup.AccountState{Status: setup.Status(row.SetupState), Detail: row.SetupDetail, SyncStopped: row.SyncState == "stopped"}, nil
}

// DriftCheckAccounts lists the active accounts whose mapping the hourly
// drift check validates: configured or drifted, with a current mapping.
func (db *DB) DriftCheckAccounts(ctx context.Context) ([]int64, error) {
	var ids []int64
	err := db.Gorm(ctx).Raw(`SELECT s.account_id FROM account_settings s JOIN accounts a ON a.id = s.account_id
		WHERE a.status = ? AND s.setup_state IN ('configured', 'drift') AND s.mapping_version_id IS NOT NULL
		ORDER BY s.account_id`, AccountActive).Scan(&ids).Error
	if err != nil {
		return nil, fmt.Errorf("store: drift check accounts: %w", err)
	}
	return ids, nil
}
