package store

import (
	"context"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/svyazka/svyazka/backend/eventlog"
)

// The sync's storage: per-database cursors over source_records.change_seq,
// entity links with the hash of what was last written, parked records, and
// the account's sync switch. The rules (what is in scope, what to write)
// live in backend/engine; this file only reads and writes rows.

// Advisory lock classes (the first key of pg_advisory_lock(int, int)), so
// the sync's and the ingest's locks never collide with each other.
const (
	lockClassIngest      = 1201
	lockClassSyncAccount = 1202
)

// SourceRecord is one row of source_records as the sync reads it.
type SourceRecord struct {
	DatabaseID int64
	Kind       string
	SourceID   string
	Version    int64
	Deleted    bool
	Data       json.RawMessage
	ChangeSeq  int64
	ChangedAt  time.Time
}

const sourceColumns = `database_id, kind, source_id, version, deleted, data::text AS data, change_seq, changed_at`

type sourceRow struct {
	DatabaseID int64
	Kind       string
	SourceID   string
	Version    int64
	Deleted    bool
	Data       string
	ChangeSeq  int64
	ChangedAt  time.Time
}

func (r sourceRow) domain() SourceRecord {
	return SourceRecord{DatabaseID: r.DatabaseID, Kind: r.Kind, SourceID: r.SourceID, Version: r.Version, Deleted: r.Deleted,
		Data: json.RawMessage(r.Data), ChangeSeq: r.ChangeSeq, ChangedAt: r.ChangedAt.UTC()}
}

func (db *DB) sourceRecords(ctx context.Context, op string, query string, args ...any) ([]SourceRecord, error) {
	var rows []sourceRow
	if err := db.Gorm(ctx).Raw(query, args...).Scan(&rows).Error; err != nil {
		return nil, fmt.Errorf("store: %s: %w", op, err)
	}
	out := make([]SourceRecord, len(rows))
	for i, r := range rows {
		out[i] = r.domain()
	}
	return out, nil
}

// PendingChanges returns up to limit records of the database whose
// change_seq is above after, in change_seq order.
func (db *DB) PendingChanges(ctx context.Context, databaseID, after int64, limit int) ([]SourceRecord, error) {
	return db.sourceRecords(ctx, fmt.Sprintf("pending changes (database %d)", databaseID),
		`SELECT `+sourceColumns+` FROM source_records WHERE database_id = ? AND change_seq > ? ORDER BY change_seq LIMIT ?`,
		databaseID, after, limit)
}

// SourceRecordsByID returns the database's records of kind with the given
// source ids (missing ones are left out), in id order.
func (db *DB) SourceRecordsByID(ctx context.Context, databaseID int64, kind string, ids []string) ([]SourceRecord, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	return db.sourceRecords(ctx, fmt.Sprintf("%s records (database %d)", kind, databaseID),
		`SELECT `+sourceColumns+` FROM source_records WHERE database_id = ? AND kind = ? AND source_id IN ? ORDER BY source_id`,
		databaseID, kind, ids)
}

// SourceRecordsOfKind returns every live record of kind in the database
// (for the dictionaries: doctors, branches).
func (db *DB) SourceRecordsOfKind(ctx context.Context, databaseID int64, kind string) ([]SourceRecord, error) {
	return db.sourceRecords(ctx, fmt.Sprintf("%s records (database %d)", kind, databaseID),
		`SELECT `+sourceColumns+` FROM source_records WHERE database_id = ? AND kind = ? AND NOT deleted ORDER BY source_id`,
		databaseID, kind)
}

// ReceptionsOfPatients returns every live reception of the given patients.
func (db *DB) ReceptionsOfPatients(ctx context.Context, databaseID int64, patientIDs []string) ([]SourceRecord, error) {
	if len(patientIDs) == 0 {
		return nil, nil
	}
	return db.sourceRecords(ctx, fmt.Sprintf("receptions of %d patients (database %d)", len(patientIDs), databaseID),
		`SELECT `+sourceColumns+` FROM source_records WHERE database_id = ? AND kind = 'reception' AND NOT deleted
			AND data ->> 'patient_id' IN ? ORDER BY source_id`, databaseID, patientIDs)
}

// SyncSettings is the part of an account's settings the sync reads.
type SyncSettings struct {
	SyncState     string
	SetupState    string
	SyncStartedAt *time.Time
	// ImportSince is the clinic-local date the import starts from, as
	// 2006-01-02; "" means every appointment.
	ImportSince string
}

// SyncSettings returns the account's sync settings, or ErrNotFound.
func (db *DB) SyncSettings(ctx context.Context, accountID int64) (SyncSettings, error) {
	var row struct {
		SyncState     string
		SetupState    string
		SyncStartedAt *time.Time
		ImportSince   *string
	}
	res := db.Gorm(ctx).Raw(`SELECT sync_state, setup_state, sync_started_at, to_char(import_since, 'YYYY-MM-DD') AS import_since
		FROM account_settings WHERE account_id = ?`, accountID).Scan(&row)
	if res.Error != nil {
		return SyncSettings{}, fmt.Errorf("store: sync settings of account %d: %w", accountID, res.Error)
	}
	if res.RowsAffected == 0 {
		return SyncSettings{}, ErrNotFound
	}
	out := SyncSettings{SyncState: row.SyncState, SetupState: row.SetupState, SyncStartedAt: row.SyncStartedAt}
	if row.ImportSince != nil {
		out.ImportSince = *row.ImportSince
	}
	return out, nil
}

// SyncDatabase is a clinic database with the sync's cursor over it.
type SyncDatabase struct {
	ClinicDatabase
	// Cursor is the last change_seq written (0: nothing yet).
	Cursor  int64
	Enabled bool
}

// SyncDatabases returns the account's databases with their cursors, oldest
// first. A database the sync never saw has cursor 0 and is enabled.
func (db *DB) SyncDatabases(ctx context.Context, accountID int64) ([]SyncDatabase, error) {
	dbs, err := db.ListDatabases(ctx, accountID)
	if err != nil {
		return nil, err
	}
	var rows []struct {
		DatabaseID    int64
		LastChangeSeq int64
		Enabled       bool
	}
	if err := db.Gorm(ctx).Raw(`SELECT c.database_id, c.last_change_seq, c.enabled FROM sync_cursors c
		JOIN clinic_databases d ON d.id = c.database_id WHERE d.account_id = ?`, accountID).Scan(&rows).Error; err != nil {
		return nil, fmt.Errorf("store: sync cursors of account %d: %w", accountID, err)
	}
	out := make([]SyncDatabase, len(dbs))
	for i, d := range dbs {
		out[i] = SyncDatabase{ClinicDatabase: d, Enabled: true}
		for _, r := range rows {
			if r.DatabaseID == d.ID {
				out[i].Cursor, out[i].Enabled = r.LastChangeSeq, r.Enabled
			}
		}
	}
	return out, nil
}

// Entity link types, as stored in entity_links.
const (
	LinkPatient     = "patient"
	LinkAppointment = "appointment"
	CRMContact      = "contact"
	CRMLead         = "lead"
)

// EntityLink is a source record's amoCRM entity: a patient's contact, or an
// appointment chain's lead (keyed by the chain's root reception).
type EntityLink struct {
	EntityType    string
	SourceID      string
	CRMEntityType string
	CRMID         int64
	// ContentHash is the hash of what was last written; equal means nothing
	// to send.
	ContentHash []byte
	// SourceVersion is the record version last written.
	SourceVersion int64
}

// EntityLinks returns the database's links of entityType for the given
// source ids, by source id.
func (db *DB) EntityLinks(ctx context.Context, databaseID int64, entityType string, sourceIDs []string) (map[string]EntityLink, error) {
	out := map[string]EntityLink{}
	if len(sourceIDs) == 0 {
		return out, nil
	}
	var rows []struct {
		EntityType    string
		SourceID      string
		CrmEntityType string
		CrmID         *int64
		ContentHash   []byte
		SourceVersion int64
	}
	if err := db.Gorm(ctx).Raw(`SELECT entity_type, source_id, crm_entity_type, crm_id, content_hash, source_version FROM entity_links
		WHERE database_id = ? AND entity_type = ? AND source_id IN ?`, databaseID, entityType, sourceIDs).Scan(&rows).Error; err != nil {
		return nil, fmt.Errorf("store: %s links (database %d): %w", entityType, databaseID, err)
	}
	for _, r := range rows {
		l := EntityLink{EntityType: r.EntityType, SourceID: r.SourceID, CRMEntityType: r.CrmEntityType, ContentHash: r.ContentHash, SourceVersion: r.SourceVersion}
		if r.CrmID != nil {
			l.CRMID = *r.CrmID
		}
		out[r.SourceID] = l
	}
	return out, nil
}

// Park is a record amoCRM refused, with amoCRM's message.
type Park struct {
	Kind     string
	SourceID string
	Reason   string
}

// SyncCommit is what one step of the sync writes in one transaction.
type SyncCommit struct {
	AccountID  int64
	DatabaseID int64
	// Links are upserted by (database, entity type, source id).
	Links []EntityLink
	// Rekeys move a lead's link from an old source id to a new one (a
	// chain whose root changed); applied before Links.
	Rekeys []Rekey
	// Parked records are added (or their reason refreshed); Unparked ones
	// (kind, source id) are removed: they were written.
	Parked   []Park
	Unparked []Park
	Events   []eventlog.Event
	// Cursor, when above the stored one, becomes the database's cursor.
	Cursor int64
	Now    time.Time
}

// Rekey is a link whose source id changes.
type Rekey struct {
	EntityType string
	From, To   string
}

// CommitSync applies c in one transaction. The cursor never moves back.
func (db *DB) CommitSync(ctx context.Context, c SyncCommit) error {
	now := c.Now.UTC()
	err := db.transact(ctx, func(tx *gorm.DB) error {
		for _, r := range c.Rekeys {
			// A link already under the new key wins; the old one goes.
			if err := tx.Exec(`UPDATE entity_links SET source_id = ?, updated_at = ? WHERE database_id = ? AND entity_type = ? AND source_id = ?
				AND NOT EXISTS (SELECT 1 FROM entity_links WHERE database_id = ? AND entity_type = ? AND source_id = ?)`,
				r.To, now, c.DatabaseID, r.EntityType, r.From, c.DatabaseID, r.EntityType, r.To).Error; err != nil {
				return err
			}
			if err := tx.Exec(`DELETE FROM entity_links WHERE database_id = ? AND entity_type = ? AND source_id = ?`,
				c.DatabaseID, r.EntityType, r.From).Error; err != nil {
				return err
			}
		}
		for _, l := range c.Links {
			if err := tx.Exec(`INSERT INTO entity_links (account_id, database_id, entity_type, source_id, crm_entity_type, crm_id, content_hash, source_version, updated_at)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
				ON CONFLICT (database_id, entity_type, source_id) DO UPDATE SET crm_entity_type = EXCLUDED.crm_entity_type,
					crm_id = EXCLUDED.crm_id, content_hash = EXCLUDED.content_hash, source_version = EXCLUDED.source_version, updated_at = EXCLUDED.updated_at`,
				c.AccountID, c.DatabaseID, l.EntityType, l.SourceID, l.CRMEntityType, l.CRMID, l.ContentHash, l.SourceVersion, now).Error; err != nil {
				return err
			}
		}
		for _, p := range c.Unparked {
			if err := tx.Exec(`DELETE FROM sync_parked WHERE database_id = ? AND kind = ? AND source_id = ?`, c.DatabaseID, p.Kind, p.SourceID).Error; err != nil {
				return err
			}
		}
		for _, p := range c.Parked {
			if err := tx.Exec(`INSERT INTO sync_parked (account_id, database_id, kind, source_id, reason, parked_at) VALUES (?, ?, ?, ?, ?, ?)
				ON CONFLICT (database_id, kind, source_id) DO UPDATE SET reason = EXCLUDED.reason, parked_at = EXCLUDED.parked_at`,
				c.AccountID, c.DatabaseID, p.Kind, p.SourceID, p.Reason, now).Error; err != nil {
				return err
			}
		}
		for _, e := range c.Events {
			if err := RecordTx(tx, e); err != nil {
				return err
			}
		}
		if c.Cursor > 0 {
			return tx.Exec(`INSERT INTO sync_cursors (database_id, last_change_seq, updated_at) VALUES (?, ?, ?)
				ON CONFLICT (database_id) DO UPDATE SET last_change_seq = GREATEST(sync_cursors.last_change_seq, EXCLUDED.last_change_seq),
					updated_at = EXCLUDED.updated_at`, c.DatabaseID, c.Cursor, now).Error
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: commit sync (database %d): %w", c.DatabaseID, err)
	}
	return nil
}

// ErrSyncState is returned by StartSync and StopSync when the account's
// sync is not in a state the change applies to (already running, already
// stopped).
var ErrSyncState = errors.New("store: sync state does not allow the change")

// StartSyncInput starts an account's sync.
type StartSyncInput struct {
	AccountID int64
	// ImportSince is the clinic-local date of the import ("" keeps the
	// stored one; first start without it imports everything).
	ImportSince string
	// DatabaseIDs are the databases to sync (nil: all of the account's).
	DatabaseIDs []int64
	Event       eventlog.Event
	// Task wakes the sync (added to the outbox).
	Task OutboxMessage
	Now  time.Time
}

// StartSync sets the account's sync running, with its import date and
// databases, records the event and adds the wake-up task, in one transaction
// under the settings row lock. ErrSyncState when it is running already;
// ErrNotFound for an unknown account or a database of another account.
func (db *DB) StartSync(ctx context.Context, in StartSyncInput) error {
	err := db.InTx(ctx, func(tx *Tx) error {
		var st struct{ SyncState string }
		res := tx.g.Raw("SELECT sync_state FROM account_settings WHERE account_id = ? FOR UPDATE", in.AccountID).Scan(&st)
		switch {
		case res.Error != nil:
			return res.Error
		case res.RowsAffected == 0:
			return ErrNotFound
		case st.SyncState == "running":
			return ErrSyncState
		}
		if in.DatabaseIDs != nil {
			var n int64
			if err := tx.g.Raw("SELECT count(*) FROM clinic_databases WHERE account_id = ? AND id IN ?", in.AccountID, append(in.DatabaseIDs, 0)).
				Scan(&n).Error; err != nil {
				return err
			}
			if n != int64(len(in.DatabaseIDs)) {
				return ErrNotFound
			}
		}
		if err := tx.g.Exec(`INSERT INTO sync_cursors (database_id, enabled, updated_at)
			SELECT id, (? OR id IN ?), ? FROM clinic_databases WHERE account_id = ?
			ON CONFLICT (database_id) DO UPDATE SET enabled = EXCLUDED.enabled, updated_at = EXCLUDED.updated_at`,
			in.DatabaseIDs == nil, append(in.DatabaseIDs, 0), in.Now, in.AccountID).Error; err != nil {
			return err
		}
		upd := "UPDATE account_settings SET sync_state = 'running', sync_started_at = ?, version = version + 1, updated_at = now()"
		args := []any{in.Now}
		if in.ImportSince != "" {
			upd += ", import_since = ?::date"
			args = append(args, in.ImportSince)
		}
		if err := tx.g.Exec(upd+" WHERE account_id = ?", append(args, in.AccountID)...).Error; err != nil {
			return err
		}
		if err := RecordTx(tx.g, in.Event); err != nil {
			return err
		}
		_, err := tx.Enqueue(in.Task)
		return err
	})
	if errors.Is(err, ErrSyncState) || errors.Is(err, ErrNotFound) {
		return err
	}
	if err != nil {
		return fmt.Errorf("store: start sync of account %d: %w", in.AccountID, err)
	}
	return nil
}

// StopSync stops the account's sync and records the event. Records keep
// queueing; nothing is lost. ErrSyncState when it is stopped already.
func (db *DB) StopSync(ctx context.Context, accountID int64, ev eventlog.Event, now time.Time) error {
	err := db.transact(ctx, func(tx *gorm.DB) error {
		res := tx.Exec(`UPDATE account_settings SET sync_state = 'stopped', sync_stopped_at = ?, version = version + 1, updated_at = now()
			WHERE account_id = ? AND sync_state <> 'stopped'`, now, accountID)
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			var n int64
			if err := tx.Raw("SELECT count(*) FROM account_settings WHERE account_id = ?", accountID).Scan(&n).Error; err != nil {
				return err
			}
			if n == 0 {
				return ErrNotFound
			}
			return ErrSyncState
		}
		return RecordTx(tx, ev)
	})
	if errors.Is(err, ErrSyncState) || errors.Is(err, ErrNotFound) {
		return err
	}
	if err != nil {
		return fmt.Errorf("store: stop sync of account %d: %w", accountID, err)
	}
	return nil
}

// SyncQueue counts the account's pending changes (records of enabled
// databases above their cursor) and parked records.
type SyncQueue struct {
	Pending int64 `json:"pending"`
	Parked  int64 `json:"parked"`
}

// SyncQueue returns the account's queue sizes.
func (db *DB) SyncQueue(ctx context.Context, accountID int64) (SyncQueue, error) {
	var q SyncQueue
	err := db.Gorm(ctx).Raw(`SELECT
		(SELECT count(*) FROM source_records s JOIN clinic_databases d ON d.id = s.database_id
			LEFT JOIN sync_cursors c ON c.database_id = d.id
			WHERE d.account_id = ? AND coalesce(c.enabled, true) AND s.change_seq > coalesce(c.last_change_seq, 0)) AS pending,
		(SELECT count(*) FROM sync_parked WHERE account_id = ?) AS parked`, accountID, accountID).Scan(&q).Error
	if err != nil {
		return SyncQueue{}, fmt.Errorf("store: sync queue of account %d: %w", accountID, err)
	}
	return q, nil
}

// PendingAccount is a running account with changes waiting, and the highest
// change_seq among them.
type PendingAccount struct {
	AccountID int64
	MaxSeq    int64
}

// PendingSyncAccounts lists the active, running accounts whose enabled
// databases have changes above their cursor.
func (db *DB) PendingSyncAccounts(ctx context.Context) ([]PendingAccount, error) {
	var out []PendingAccount
	err := db.Gorm(ctx).Raw(`SELECT d.account_id, max(s.change_seq) AS max_seq
		FROM account_settings st JOIN accounts a ON a.id = st.account_id
		JOIN clinic_databases d ON d.account_id = st.account_id
		LEFT JOIN sync_cursors c ON c.database_id = d.id
		JOIN source_records s ON s.database_id = d.id AND s.change_seq > coalesce(c.last_change_seq, 0)
		WHERE st.sync_state = 'running' AND a.status = ? AND coalesce(c.enabled, true)
		GROUP BY d.account_id ORDER BY d.account_id`, AccountActive).Scan(&out).Error
	if err != nil {
		return nil, fmt.Errorf("store: pending sync accounts: %w", err)
	}
	return out, nil
}

// TryAccountSyncLock takes the account's sync lock (a session advisory
// lock on one pinned connection) without waiting. ok is false when another
// process holds it. release frees the lock and the connection; call it once.
func (db *DB) TryAccountSyncLock(ctx context.Context, accountID int64) (release func(), ok bool, err error) {
	conn, err := db.sql.Conn(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("store: sync lock of account %d: %w", accountID, err)
	}
	if err := conn.QueryRowContext(ctx, "SELECT pg_try_advisory_lock($1, $2)", lockClassSyncAccount, int32(accountID)).Scan(&ok); err != nil {
		_ = conn.Close()
		return nil, false, fmt.Errorf("store: sync lock of account %d: %w", accountID, err)
	}
	if !ok {
		_ = conn.Close()
		return nil, false, nil
	}
	return func() {
		// A failed unlock leaves the lock on the session; closing a pooled
		// connection returns it, so drop the connection instead.
		if _, err := conn.ExecContext(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1, $2)", lockClassSyncAccount, int32(accountID)); err != nil {
			_ = conn.Raw(func(any) error { return driver.ErrBadConn })
		}
		_ = conn.Close()
	}, true, nil
}
