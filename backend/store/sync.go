package store

import (
	"context"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
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
	return db.PendingChangesUpTo(ctx, databaseID, after, 0, limit)
}

// PendingChangesUpTo returns up to limit records of the database whose
// change_seq is in (after, upTo], in change_seq order; upTo 0 means no upper
// bound (one lane of the sync: the import's is bounded by import_to_seq).
func (db *DB) PendingChangesUpTo(ctx context.Context, databaseID, after, upTo int64, limit int) ([]SourceRecord, error) {
	if upTo <= 0 {
		return db.sourceRecords(ctx, fmt.Sprintf("pending changes (database %d)", databaseID),
			`SELECT `+sourceColumns+` FROM source_records WHERE database_id = ? AND change_seq > ? ORDER BY change_seq LIMIT ?`,
			databaseID, after, limit)
	}
	return db.sourceRecords(ctx, fmt.Sprintf("pending changes up to %d (database %d)", upTo, databaseID),
		`SELECT `+sourceColumns+` FROM source_records WHERE database_id = ? AND change_seq > ? AND change_seq <= ? ORDER BY change_seq LIMIT ?`,
		databaseID, after, upTo, limit)
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
	// ContinueInboundLeads: an open inbound lead of the patient's contact is
	// continued by the next booked appointment (default true).
	ContinueInboundLeads bool
	// ContactsScannedAt is when the account's contacts were last read in
	// full for adoption (nil: never).
	ContactsScannedAt *time.Time
}

// SyncSettings returns the account's sync settings, or ErrNotFound.
func (db *DB) SyncSettings(ctx context.Context, accountID int64) (SyncSettings, error) {
	var row struct {
		SyncState            string
		SetupState           string
		SyncStartedAt        *time.Time
		ImportSince          *string
		ContinueInboundLeads bool
		ContactsScannedAt    *time.Time
	}
	res := db.Gorm(ctx).Raw(`SELECT sync_state, setup_state, sync_started_at, to_char(import_since, 'YYYY-MM-DD') AS import_since,
		continue_inbound_leads, contacts_scanned_at FROM account_settings WHERE account_id = ?`, accountID).Scan(&row)
	if res.Error != nil {
		return SyncSettings{}, fmt.Errorf("store: sync settings of account %d: %w", accountID, res.Error)
	}
	if res.RowsAffected == 0 {
		return SyncSettings{}, ErrNotFound
	}
	out := SyncSettings{SyncState: row.SyncState, SetupState: row.SetupState, SyncStartedAt: row.SyncStartedAt,
		ContinueInboundLeads: row.ContinueInboundLeads, ContactsScannedAt: row.ContactsScannedAt}
	if row.ImportSince != nil {
		out.ImportSince = *row.ImportSince
	}
	return out, nil
}

// SyncDatabase is a clinic database with the sync's cursors over it
// (migration 00015): while an import runs (Cursor < ImportToSeq) the
// database has two lanes, the import (change_seq in (Cursor, ImportToSeq])
// and the real-time changes above ImportToSeq, read from RealtimeCursor.
// Otherwise the lanes are merged and Cursor is the only one.
type SyncDatabase struct {
	ClinicDatabase
	// Cursor is the import lane's cursor, the last change_seq written of the
	// import (0: nothing yet); once the lanes merge, the only cursor.
	Cursor int64
	// ImportToSeq is the last start's import's upper bound, read live while
	// the connector's first load runs (its records are all import).
	ImportToSeq int64
	// RealtimeCursor is where the real-time lane reads from: the last
	// change_seq it wrote, at least ImportToSeq.
	RealtimeCursor int64
	Enabled        bool
}

// Split reports whether the database's import lane is still open, so its
// real-time changes have a lane of their own.
func (d SyncDatabase) Split() bool { return d.Cursor < d.ImportToSeq }

// SyncDatabases returns the account's databases with their cursors, oldest
// first. A database the sync never saw has cursor 0, no import and is
// enabled.
func (db *DB) SyncDatabases(ctx context.Context, accountID int64) ([]SyncDatabase, error) {
	dbs, err := db.ListDatabases(ctx, accountID)
	if err != nil {
		return nil, err
	}
	var rows []struct {
		DatabaseID    int64
		LastChangeSeq int64
		ImportToSeq   int64
		RealtimeSeq   int64
		Enabled       bool
	}
	if err := db.Gorm(ctx).Raw(`SELECT c.database_id, c.last_change_seq, c.realtime_seq, c.enabled,
			GREATEST(c.import_to_seq, CASE WHEN c.import_started_at IS NOT NULL AND NOT d.initial_load_done
				THEN (SELECT coalesce(max(s.change_seq), 0) FROM source_records s WHERE s.database_id = d.id) ELSE 0 END) AS import_to_seq
		FROM sync_cursors c JOIN clinic_databases d ON d.id = c.database_id WHERE d.account_id = ?`, accountID).Scan(&rows).Error; err != nil {
		return nil, fmt.Errorf("store: sync cursors of account %d: %w", accountID, err)
	}
	out := make([]SyncDatabase, len(dbs))
	for i, d := range dbs {
		out[i] = SyncDatabase{ClinicDatabase: d, Enabled: true}
		for _, r := range rows {
			if r.DatabaseID == d.ID {
				out[i].Cursor, out[i].Enabled = r.LastChangeSeq, r.Enabled
				out[i].ImportToSeq, out[i].RealtimeCursor = r.ImportToSeq, max(r.RealtimeSeq, r.ImportToSeq)
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
	// For an appointment link: the patient, the chain's current reception,
	// the pipeline and stage last written (or seen, when held) and when a
	// planned reception's grace expires (nil: never).
	PatientID    string
	CurrentID    string
	PipelineID   int64
	StatusID     int64
	ReevaluateAt *time.Time
}

const linkColumns = `entity_type, source_id, crm_entity_type, crm_id, content_hash, source_version,
	coalesce(patient_id, '') AS patient_id, coalesce(current_id, '') AS current_id,
	coalesce(crm_pipeline_id, 0) AS crm_pipeline_id, coalesce(crm_status_id, 0) AS crm_status_id, reevaluate_at`

type linkRow struct {
	EntityType    string
	SourceID      string
	CrmEntityType string
	CrmID         *int64
	ContentHash   []byte
	SourceVersion int64
	PatientID     string
	CurrentID     string
	CrmPipelineID int64
	CrmStatusID   int64
	ReevaluateAt  *time.Time
}

func (r linkRow) domain() EntityLink {
	l := EntityLink{EntityType: r.EntityType, SourceID: r.SourceID, CRMEntityType: r.CrmEntityType, ContentHash: r.ContentHash,
		SourceVersion: r.SourceVersion, PatientID: r.PatientID, CurrentID: r.CurrentID, PipelineID: r.CrmPipelineID, StatusID: r.CrmStatusID}
	if r.CrmID != nil {
		l.CRMID = *r.CrmID
	}
	if r.ReevaluateAt != nil {
		at := r.ReevaluateAt.UTC()
		l.ReevaluateAt = &at
	}
	return l
}

func (db *DB) links(ctx context.Context, op string, query string, args ...any) ([]EntityLink, error) {
	var rows []linkRow
	if err := db.Gorm(ctx).Raw(query, args...).Scan(&rows).Error; err != nil {
		return nil, fmt.Errorf("store: %s: %w", op, err)
	}
	out := make([]EntityLink, len(rows))
	for i, r := range rows {
		out[i] = r.domain()
	}
	return out, nil
}

// EntityLinks returns the database's links of entityType for the given
// source ids, by source id.
func (db *DB) EntityLinks(ctx context.Context, databaseID int64, entityType string, sourceIDs []string) (map[string]EntityLink, error) {
	out := map[string]EntityLink{}
	if len(sourceIDs) == 0 {
		return out, nil
	}
	rows, err := db.links(ctx, fmt.Sprintf("%s links (database %d)", entityType, databaseID),
		`SELECT `+linkColumns+` FROM entity_links WHERE database_id = ? AND entity_type = ? AND source_id IN ?`, databaseID, entityType, sourceIDs)
	if err != nil {
		return nil, err
	}
	for _, l := range rows {
		out[l.SourceID] = l
	}
	return out, nil
}

// AppointmentLinksOf returns the database's appointment links whose chain
// root or current reception is one of receptionIDs (a deleted reception
// finds its lead).
func (db *DB) AppointmentLinksOf(ctx context.Context, databaseID int64, receptionIDs []string) ([]EntityLink, error) {
	if len(receptionIDs) == 0 {
		return nil, nil
	}
	return db.links(ctx, fmt.Sprintf("appointment links of %d receptions (database %d)", len(receptionIDs), databaseID),
		// A UNION, not an OR, so each side uses its index.
		`SELECT `+linkColumns+` FROM entity_links WHERE database_id = ? AND entity_type = 'appointment' AND source_id IN ?
		UNION SELECT `+linkColumns+` FROM entity_links WHERE database_id = ? AND entity_type = 'appointment' AND current_id IN ?
		ORDER BY source_id`, databaseID, receptionIDs, databaseID, receptionIDs)
}

// DueReevaluations returns up to limit appointment links of the database
// whose grace timer expired at now, oldest first.
func (db *DB) DueReevaluations(ctx context.Context, databaseID int64, now time.Time, limit int) ([]EntityLink, error) {
	return db.links(ctx, fmt.Sprintf("due re-evaluations (database %d)", databaseID),
		`SELECT `+linkColumns+` FROM entity_links WHERE database_id = ? AND entity_type = 'appointment' AND reevaluate_at <= ?
			ORDER BY reevaluate_at, source_id LIMIT ?`, databaseID, now.UTC(), limit)
}

// LinkedCRMIDs returns which of ids (amoCRM ids of crmEntityType) are linked
// to a source record of the account.
func (db *DB) LinkedCRMIDs(ctx context.Context, accountID int64, crmEntityType string, ids []int64) (map[int64]bool, error) {
	out := map[int64]bool{}
	if len(ids) == 0 {
		return out, nil
	}
	var found []int64
	if err := db.Gorm(ctx).Raw(`SELECT DISTINCT crm_id FROM entity_links WHERE account_id = ? AND crm_entity_type = ? AND crm_id IN ?`,
		accountID, crmEntityType, ids).Scan(&found).Error; err != nil {
		return nil, fmt.Errorf("store: linked %ss of account %d: %w", crmEntityType, accountID, err)
	}
	for _, id := range found {
		out[id] = true
	}
	return out, nil
}

// ContactPhone is one phone (E.164) of an amoCRM contact.
type ContactPhone struct {
	ContactID int64
	Phone     string
}

// ScannedContactsByPhone returns the scanned contacts having any of phones
// (E.164).
func (db *DB) ScannedContactsByPhone(ctx context.Context, accountID int64, phones []string) ([]ContactPhone, error) {
	if len(phones) == 0 {
		return nil, nil
	}
	var out []ContactPhone
	if err := db.Gorm(ctx).Raw(`SELECT contact_id, phone FROM sync_contact_phones WHERE account_id = ? AND phone IN ? ORDER BY contact_id, phone`,
		accountID, phones).Scan(&out).Error; err != nil {
		return nil, fmt.Errorf("store: scanned contacts of account %d: %w", accountID, err)
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
	// ClearReevaluation are appointment links (by source id) whose grace
	// timer is cleared before Links are written (a link written again sets
	// its own).
	ClearReevaluation []string
	// AdoptedContacts leave the scanned candidates: they are linked now.
	AdoptedContacts []int64
	// MappingVersion is the mapping version the commit's links were written
	// with; the first commit with links of a new version records
	// MappingEvent (once per version, whatever the number of workers).
	MappingVersion int
	MappingEvent   *eventlog.Event
	// ClearIntents are appointment source ids whose journaled creates are
	// settled without a link under that id (the chain's lead is linked
	// under its root). Links and Parked clear their own.
	ClearIntents []string
	// Cursor, when above the stored one, becomes the cursor of Lane.
	Cursor int64
	// Lane is the cursor Cursor moves: the import lane's (the only one once
	// merged) or the real-time lane's.
	Lane Lane
	// ImportToSeq is, for the real-time lane, the import bound it read
	// above; the stored bound is raised to it, so the lane's cursor always
	// covers a contiguous range above the bound.
	ImportToSeq int64
	Now         time.Time
}

// Lane says which of a database's cursors a commit moves.
type Lane int

// Lanes.
const (
	// LaneImport moves last_change_seq: the import lane while an import
	// runs, the only cursor otherwise.
	LaneImport Lane = iota
	// LaneRealtime moves realtime_seq: the changes above the import.
	LaneRealtime
)

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
		if len(c.ClearReevaluation) > 0 {
			if err := tx.Exec(`UPDATE entity_links SET reevaluate_at = NULL WHERE database_id = ? AND entity_type = 'appointment' AND source_id IN ?`,
				c.DatabaseID, c.ClearReevaluation).Error; err != nil {
				return err
			}
		}
		if len(c.AdoptedContacts) > 0 {
			if err := tx.Exec(`DELETE FROM sync_contact_phones WHERE account_id = ? AND contact_id IN ?`, c.AccountID, c.AdoptedContacts).Error; err != nil {
				return err
			}
		}
		for _, l := range c.Links {
			var reevaluate *time.Time
			if l.ReevaluateAt != nil {
				at := l.ReevaluateAt.UTC()
				reevaluate = &at
			}
			if err := tx.Exec(`INSERT INTO entity_links (account_id, database_id, entity_type, source_id, crm_entity_type, crm_id, content_hash, source_version,
					patient_id, current_id, crm_pipeline_id, crm_status_id, reevaluate_at, updated_at)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULLIF(?, ''), NULLIF(?, ''), NULLIF(?, 0), NULLIF(?, 0), ?, ?)
				ON CONFLICT (database_id, entity_type, source_id) DO UPDATE SET crm_entity_type = EXCLUDED.crm_entity_type,
					crm_id = EXCLUDED.crm_id, content_hash = EXCLUDED.content_hash, source_version = EXCLUDED.source_version,
					patient_id = coalesce(EXCLUDED.patient_id, entity_links.patient_id), current_id = coalesce(EXCLUDED.current_id, entity_links.current_id),
					crm_pipeline_id = coalesce(EXCLUDED.crm_pipeline_id, entity_links.crm_pipeline_id),
					crm_status_id = coalesce(EXCLUDED.crm_status_id, entity_links.crm_status_id),
					reevaluate_at = EXCLUDED.reevaluate_at, updated_at = EXCLUDED.updated_at`,
				c.AccountID, c.DatabaseID, l.EntityType, l.SourceID, l.CRMEntityType, l.CRMID, l.ContentHash, l.SourceVersion,
				l.PatientID, l.CurrentID, l.PipelineID, l.StatusID, reevaluate, now).Error; err != nil {
				return err
			}
		}
		if err := clearIntentsTx(tx, c); err != nil {
			return err
		}
		if len(c.Links) > 0 && c.MappingVersion > 0 {
			res := tx.Exec(`UPDATE account_settings SET sync_mapping_version = ? WHERE account_id = ? AND sync_mapping_version IS DISTINCT FROM ?`,
				c.MappingVersion, c.AccountID, c.MappingVersion)
			if res.Error != nil {
				return res.Error
			}
			if res.RowsAffected > 0 && c.MappingEvent != nil {
				if err := RecordTx(tx, *c.MappingEvent); err != nil {
					return err
				}
			}
		}
		if len(c.Links) > 0 {
			// Kept in Redis too, so a restored database is noticed.
			if err := tx.Exec(`UPDATE clinic_databases SET sync_wrote_at = GREATEST(coalesce(sync_wrote_at, '-infinity'), ?) WHERE id = ?`,
				now, c.DatabaseID).Error; err != nil {
				return err
			}
		}
		for _, p := range c.Unparked {
			if err := tx.Exec(`DELETE FROM sync_parked WHERE database_id = ? AND kind = ? AND source_id = ?`, c.DatabaseID, p.Kind, p.SourceID).Error; err != nil {
				return err
			}
		}
		parkedIDs := map[[2]string]int64{}
		for _, p := range c.Parked {
			var id int64
			if err := tx.Raw(`INSERT INTO sync_parked (account_id, database_id, kind, source_id, reason, parked_at) VALUES (?, ?, ?, ?, ?, ?)
				ON CONFLICT (database_id, kind, source_id) DO UPDATE SET reason = EXCLUDED.reason, parked_at = EXCLUDED.parked_at RETURNING id`,
				c.AccountID, c.DatabaseID, p.Kind, p.SourceID, p.Reason, now).Scan(&id).Error; err != nil {
				return err
			}
			parkedIDs[[2]string{p.Kind, p.SourceID}] = id
		}
		for _, e := range c.Events {
			// An event offering «Отправить повторно» names the parked row.
			if e.Details["action"] == "resend" {
				kind, _ := e.Details["kind"].(string)
				sourceID, _ := e.Details["source_id"].(string)
				if id, ok := parkedIDs[[2]string{kind, sourceID}]; ok {
					e.Details = maps.Clone(e.Details)
					e.Details["parked_id"] = id
				}
			}
			if err := RecordTx(tx, e); err != nil {
				return err
			}
		}
		if c.Cursor <= 0 {
			return nil
		}
		if c.Lane == LaneRealtime {
			if err := tx.Exec(advanceRealtimeSQL, c.Cursor, c.Cursor, now, c.ImportToSeq, now, c.DatabaseID).Error; err != nil {
				return err
			}
		} else if err := tx.Exec(advanceCursorSQL, advanceCursorArgs(c.DatabaseID, c.Cursor, now)...).Error; err != nil {
			return err
		}
		return tx.Exec(mergeLanesSQL, c.DatabaseID).Error
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
		if err := beginImport(tx.g, in.AccountID, in.Now); err != nil {
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
// databases not yet written by either lane) and parked records.
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
			WHERE d.account_id = ? AND coalesce(c.enabled, true) AND s.change_seq > coalesce(c.last_change_seq, 0) AND `+notRealtimeWritten+`) AS pending,
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
// databases have changes not yet written by either lane.
func (db *DB) PendingSyncAccounts(ctx context.Context) ([]PendingAccount, error) {
	var out []PendingAccount
	err := db.Gorm(ctx).Raw(`SELECT d.account_id, max(s.change_seq) AS max_seq
		FROM account_settings st JOIN accounts a ON a.id = st.account_id
		JOIN clinic_databases d ON d.account_id = st.account_id
		LEFT JOIN sync_cursors c ON c.database_id = d.id
		JOIN source_records s ON s.database_id = d.id AND s.change_seq > coalesce(c.last_change_seq, 0) AND `+notRealtimeWritten+`
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

// DueReevaluationAccounts lists the active, running accounts with an
// appointment link whose grace timer expired at now.
func (db *DB) DueReevaluationAccounts(ctx context.Context, now time.Time) ([]int64, error) {
	var out []int64
	err := db.Gorm(ctx).Raw(`SELECT DISTINCT l.account_id FROM entity_links l
		JOIN account_settings st ON st.account_id = l.account_id JOIN accounts a ON a.id = l.account_id
		LEFT JOIN sync_cursors c ON c.database_id = l.database_id
		WHERE l.reevaluate_at <= ? AND st.sync_state = 'running' AND a.status = ? AND coalesce(c.enabled, true)
		ORDER BY l.account_id`, now.UTC(), AccountActive).Scan(&out).Error
	if err != nil {
		return nil, fmt.Errorf("store: accounts with due re-evaluations: %w", err)
	}
	return out, nil
}

// PauseSync pauses a running account's sync (amoCRM blocked it) and
// records the event. Records keep queueing; a start resumes. ErrSyncState
// when the sync is not running.
func (db *DB) PauseSync(ctx context.Context, accountID int64, ev eventlog.Event, now time.Time) error {
	err := db.transact(ctx, func(tx *gorm.DB) error {
		res := tx.Exec(`UPDATE account_settings SET sync_state = 'paused', sync_stopped_at = ?, version = version + 1, updated_at = now()
			WHERE account_id = ? AND sync_state = 'running'`, now, accountID)
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return ErrSyncState
		}
		return RecordTx(tx, ev)
	})
	if errors.Is(err, ErrSyncState) {
		return err
	}
	if err != nil {
		return fmt.Errorf("store: pause sync of account %d: %w", accountID, err)
	}
	return nil
}

// SetContinueInboundLeads turns continuing inbound leads on or off for the
// account. ErrNotFound for an unknown account.
func (db *DB) SetContinueInboundLeads(ctx context.Context, accountID int64, on bool) error {
	res := db.Gorm(ctx).Exec(`UPDATE account_settings SET continue_inbound_leads = ?, version = version + 1, updated_at = now() WHERE account_id = ?`, on, accountID)
	if res.Error != nil {
		return fmt.Errorf("store: continue inbound leads of account %d: %w", accountID, res.Error)
	}
	if res.RowsAffected == 0 {
		return ErrNotFound
	}
	return nil
}

// ParkedRecord is a parked record with its id.
type ParkedRecord struct {
	ID         int64
	AccountID  int64
	DatabaseID int64
	Park
	ParkedAt time.Time
}

// ResendInput is «Отправить повторно» for one parked record.
type ResendInput struct {
	AccountID int64
	ParkedID  int64
	// Event is recorded with the resend; Message may use the record's kind
	// and id (Build fills them from the parked row).
	Event func(p ParkedRecord) eventlog.Event
	// Task wakes the sync (added to the outbox).
	Task OutboxMessage
	Now  time.Time
}

// ResendParked unparks a record of the account and queues it again: its
// source record takes a new change_seq, so the sync reads it as a change;
// the event and the wake-up commit with it. ErrNotFound when the account
// has no such parked record.
func (db *DB) ResendParked(ctx context.Context, in ResendInput) (ParkedRecord, error) {
	var p ParkedRecord
	err := db.InTx(ctx, func(tx *Tx) error {
		var row struct {
			ID         int64
			AccountID  int64
			DatabaseID int64
			Kind       string
			SourceID   string
			Reason     string
			ParkedAt   time.Time
		}
		res := tx.g.Raw(`DELETE FROM sync_parked WHERE id = ? AND account_id = ?
			RETURNING id, account_id, database_id, kind, source_id, reason, parked_at`, in.ParkedID, in.AccountID).Scan(&row)
		switch {
		case res.Error != nil:
			return res.Error
		case res.RowsAffected == 0:
			return ErrNotFound
		}
		p = ParkedRecord{ID: row.ID, AccountID: row.AccountID, DatabaseID: row.DatabaseID,
			Park: Park{Kind: row.Kind, SourceID: row.SourceID, Reason: row.Reason}, ParkedAt: row.ParkedAt.UTC()}
		if err := tx.g.Exec(`UPDATE source_records SET change_seq = nextval('source_change_seq'), changed_at = ?
			WHERE database_id = ? AND kind = ? AND source_id = ?`, in.Now.UTC(), p.DatabaseID, p.Kind, p.SourceID).Error; err != nil {
			return err
		}
		if in.Event != nil {
			if err := RecordTx(tx.g, in.Event(p)); err != nil {
				return err
			}
		}
		_, err := tx.Enqueue(in.Task)
		return err
	})
	if errors.Is(err, ErrNotFound) {
		return ParkedRecord{}, err
	}
	if err != nil {
		return ParkedRecord{}, fmt.Errorf("store: resend parked record %d of account %d: %w", in.ParkedID, in.AccountID, err)
	}
	return p, nil
}
