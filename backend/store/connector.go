package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/svyazka/svyazka/backend/eventlog"
)

// Errors of the connector API's storage.
var (
	// ErrTokenRevoked is a connector token that was replaced by a new one.
	ErrTokenRevoked = errors.New("store: connector token revoked")
	// ErrPairedElsewhere is a token already paired with another connector installation.
	ErrPairedElsewhere = errors.New("store: connector token paired with another installation")
)

// ConnectorDatabase returns the database whose current token has hash, with
// its account. A hash of a replaced token is ErrTokenRevoked; any other is
// ErrNotFound.
func (db *DB) ConnectorDatabase(ctx context.Context, tokenHash []byte) (ClinicDatabase, Account, error) {
	var d ClinicDatabase
	err := db.Gorm(ctx).Where("token_hash = ?", tokenHash).Take(&d).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		var n int64
		if err := db.Gorm(ctx).Table("revoked_connector_tokens").Where("token_hash = ?", tokenHash).Count(&n).Error; err != nil {
			return ClinicDatabase{}, Account{}, fmt.Errorf("store: revoked connector token: %w", err)
		}
		if n > 0 {
			return ClinicDatabase{}, Account{}, ErrTokenRevoked
		}
		return ClinicDatabase{}, Account{}, ErrNotFound
	}
	if err != nil {
		return ClinicDatabase{}, Account{}, fmt.Errorf("store: connector database: %w", err)
	}
	acc, err := db.AccountByID(ctx, d.AccountID)
	if err != nil {
		return ClinicDatabase{}, Account{}, err
	}
	return d, acc, nil
}

// PairInput binds a database's token to one connector installation.
type PairInput struct {
	DatabaseID       int64
	InstanceID       string
	Hostname         string
	ConnectorVersion string
	Now              time.Time
}

// PairConnector binds the database's token to in.InstanceID. Pairing again
// from the same installation is allowed (a reinstall of the connector on the
// same server keeps its state directory); another installation gets
// ErrPairedElsewhere until «Получить токен» issues a new token.
func (db *DB) PairConnector(ctx context.Context, in PairInput) (ClinicDatabase, error) {
	var d ClinicDatabase
	err := db.transact(ctx, func(tx *gorm.DB) error {
		if err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).Where("id = ?", in.DatabaseID).Take(&d).Error; err != nil {
			return err
		}
		if d.InstanceID != nil && *d.InstanceID != in.InstanceID {
			return ErrPairedElsewhere
		}
		first := d.InstanceID == nil
		d.InstanceID, d.InstanceHostname, d.ConnectorVersion = &in.InstanceID, in.Hostname, in.ConnectorVersion
		if first {
			d.PairedAt = &in.Now
		}
		if err := tx.Model(&d).Updates(map[string]any{"instance_id": in.InstanceID, "instance_hostname": in.Hostname,
			"connector_version": in.ConnectorVersion, "paired_at": d.PairedAt}).Error; err != nil {
			return err
		}
		if !first {
			return nil
		}
		return RecordTx(tx, eventlog.Event{AccountID: d.AccountID, DatabaseID: &d.ID, Type: eventlog.TypeDatabaseConnected,
			Message: fmt.Sprintf("Коннектор на сервере «%s» подключён к «%s».", in.Hostname, d.Name),
			Details: map[string]any{"hostname": in.Hostname, "connector_version": in.ConnectorVersion}})
	})
	if errors.Is(err, ErrPairedElsewhere) {
		return ClinicDatabase{}, err
	}
	if err != nil {
		return ClinicDatabase{}, fmt.Errorf("store: pair connector (database %d): %w", in.DatabaseID, err)
	}
	return d, nil
}

// HeartbeatInput is one heartbeat of a paired connector.
type HeartbeatInput struct {
	DatabaseID       int64
	InstanceID       string
	ConnectorVersion string
	Hostname         string
	DatabaseUp       bool
	// Detail is the connector's user-safe reason when the database is down.
	Detail          string
	SourceVersion   string
	Pending         int64
	InitialLoadDone bool
	Now             time.Time
}

// RecordHeartbeat stores a heartbeat: the connector is connected, and the
// database is as reported. Each change of either link is logged once (a
// heartbeat that repeats the state logs nothing). A heartbeat from another
// installation than the paired one is ErrPairedElsewhere.
func (db *DB) RecordHeartbeat(ctx context.Context, in HeartbeatInput) error {
	err := db.transact(ctx, func(tx *gorm.DB) error {
		var d ClinicDatabase
		if err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).Where("id = ?", in.DatabaseID).Take(&d).Error; err != nil {
			return err
		}
		if d.InstanceID != nil && *d.InstanceID != in.InstanceID {
			return ErrPairedElsewhere
		}
		dbStatus, detail := "connected", ""
		if !in.DatabaseUp {
			dbStatus, detail = "disconnected", in.Detail
		}
		updates := map[string]any{"connector_status": "connected", "connector_seen_at": in.Now, "connector_version": in.ConnectorVersion,
			"db_status": dbStatus, "db_status_detail": detail, "status_checked_at": in.Now, "source_version": in.SourceVersion,
			"outbox_pending": in.Pending, "initial_load_done": in.InitialLoadDone, "disconnected_at": nil}
		if d.InstanceID == nil {
			updates["instance_id"] = in.InstanceID // a connector started with run --token, never paired
		}
		if in.Hostname != "" {
			updates["instance_hostname"] = in.Hostname
		}
		// Updates writes the new values into d; keep what was there.
		wasConnector, wasDB := d.ConnectorStatus, d.DBStatus
		if wasDB != dbStatus {
			updates["db_status_changed_at"] = in.Now
		}
		if err := tx.Model(&ClinicDatabase{}).Where("id = ?", d.ID).Updates(updates).Error; err != nil {
			return err
		}
		if wasConnector != "connected" {
			if err := RecordTx(tx, eventlog.Event{AccountID: d.AccountID, DatabaseID: &d.ID, Type: eventlog.TypeDatabaseConnected,
				Message: fmt.Sprintf("«%s»: связь с коннектором установлена.", d.Name)}); err != nil {
				return err
			}
		}
		switch {
		case wasDB == dbStatus:
		case in.DatabaseUp:
			return RecordTx(tx, eventlog.Event{AccountID: d.AccountID, DatabaseID: &d.ID, Type: eventlog.TypeDatabaseConnected,
				Message: fmt.Sprintf("«%s»: подключение к базе IDENT выполнено.", d.Name), Details: map[string]any{"source_version": in.SourceVersion}})
		default:
			return RecordTx(tx, eventlog.Event{AccountID: d.AccountID, DatabaseID: &d.ID, Type: eventlog.TypeDatabaseDisconnect, Severity: eventlog.Error,
				Message: fmt.Sprintf("«%s»: нет подключения к базе IDENT: %s", d.Name, strings.TrimSuffix(detailOr(detail), "."))})
		}
		return nil
	})
	if errors.Is(err, ErrPairedElsewhere) {
		return err
	}
	if err != nil {
		return fmt.Errorf("store: heartbeat (database %d): %w", in.DatabaseID, err)
	}
	return nil
}

func detailOr(detail string) string {
	if detail == "" {
		return "причина неизвестна"
	}
	return detail
}

// MarkStaleConnectors marks disconnected every connected connector last
// heard from before cutoff, logging each once, and returns how many. Several
// workers may run it at once: each row changes state once.
func (db *DB) MarkStaleConnectors(ctx context.Context, cutoff, now time.Time) (int, error) {
	marked := 0
	err := db.transact(ctx, func(tx *gorm.DB) error {
		var stale []ClinicDatabase
		if err := tx.Raw(`UPDATE clinic_databases SET connector_status = 'disconnected', disconnected_at = ?, status_checked_at = ?
			WHERE connector_status = 'connected' AND (connector_seen_at IS NULL OR connector_seen_at < ?)
			RETURNING id, account_id, name, connector_seen_at`, now, now, cutoff).Scan(&stale).Error; err != nil {
			return err
		}
		for _, d := range stale {
			if err := RecordTx(tx, eventlog.Event{AccountID: d.AccountID, DatabaseID: &d.ID, Type: eventlog.TypeDatabaseDisconnect, Severity: eventlog.Error,
				Message: fmt.Sprintf("«%s»: коннектор не на связи. Проверьте, что он запущен на сервере IDENT и у сервера есть интернет.", d.Name),
				Details: map[string]any{"last_seen_at": d.ConnectorSeenAt}}); err != nil {
				return err
			}
		}
		marked = len(stale)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("store: mark stale connectors: %w", err)
	}
	return marked, nil
}

// IngestRecord is one validated record of a batch, in the form it is stored:
// Data is its canonical JSON and Hash identifies its content (a resend with
// the same hash changes nothing).
type IngestRecord struct {
	Kind     string
	SourceID string
	Version  int64
	Deleted  bool
	Data     []byte
	Hash     []byte
}

// IngestBatch is a batch to store: its good records, and the errors of the
// refused ones (kept as the batch's answer).
type IngestBatch struct {
	DatabaseID int64
	BatchID    string
	Total      int
	Records    []IngestRecord
	Errors     json.RawMessage
	Now        time.Time
	// Wake, when set, builds the task that wakes the sync; it is added to the
	// outbox in the batch's transaction when records changed, with the
	// highest change_seq the batch took.
	Wake func(maxChangeSeq int64) (OutboxMessage, error)
}

// IngestResult is the stored answer to a batch.
type IngestResult struct {
	Accepted  int
	Duplicate bool
	Errors    json.RawMessage
	// Changed is how many records changed content (new work for the sync).
	Changed int
}

// Ingest stores a batch in one transaction: the batch id is recorded with
// its answer (a batch id seen before returns that answer with Duplicate, and
// stores nothing), and each record is kept when it is newer than the stored
// one. A record whose content is unchanged only advances its version; one
// whose content changed takes a new change_seq. Records with one key must
// appear once (the caller dedupes).
func (db *DB) Ingest(ctx context.Context, b IngestBatch) (IngestResult, error) {
	res := IngestResult{Accepted: len(b.Records), Errors: b.Errors}
	if len(res.Errors) == 0 {
		res.Errors = json.RawMessage("[]")
	}
	err := db.transact(ctx, func(tx *gorm.DB) error {
		ins := tx.Exec(`INSERT INTO ingested_batches (database_id, batch_id, records, accepted, errors, received_at)
			VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`, b.DatabaseID, b.BatchID, b.Total, len(b.Records), string(res.Errors), b.Now)
		if ins.Error != nil {
			return ins.Error
		}
		if ins.RowsAffected == 0 {
			var prior struct {
				Accepted int
				Errors   string
			}
			if err := tx.Raw(`SELECT accepted, errors::text AS errors FROM ingested_batches WHERE database_id = ? AND batch_id = ?`,
				b.DatabaseID, b.BatchID).Scan(&prior).Error; err != nil {
				return err
			}
			res = IngestResult{Accepted: prior.Accepted, Duplicate: true, Errors: json.RawMessage(prior.Errors)}
			return nil
		}
		if len(b.Records) == 0 {
			return nil
		}
		// One writer per database at a time: change_seq values then commit in
		// the order they were taken, so the sync's cursor never skips a row
		// that commits late.
		if err := tx.Exec("SELECT pg_advisory_xact_lock(?, ?)", lockClassIngest, int32(b.DatabaseID)).Error; err != nil {
			return err
		}
		var sb strings.Builder
		args := make([]any, 0, 6*len(b.Records)+2)
		sb.WriteString(`WITH incoming (kind, source_id, version, deleted, data, content_hash) AS (VALUES `)
		for i, r := range b.Records {
			if i > 0 {
				sb.WriteString(",")
			}
			sb.WriteString("(?::text, ?::text, ?::bigint, ?::boolean, ?::jsonb, ?::bytea)")
			args = append(args, r.Kind, r.SourceID, r.Version, r.Deleted, string(r.Data), r.Hash)
		}
		sb.WriteString(`), upserted AS (
			INSERT INTO source_records AS s (database_id, kind, source_id, version, deleted, data, content_hash, change_seq, received_at, changed_at)
			SELECT ?, kind, source_id, version, deleted, data, content_hash, nextval('source_change_seq'), ?, ?
			FROM incoming
			ON CONFLICT (database_id, kind, source_id) DO UPDATE SET
				version = EXCLUDED.version, deleted = EXCLUDED.deleted, data = EXCLUDED.data,
				content_hash = EXCLUDED.content_hash, received_at = EXCLUDED.received_at,
				change_seq = CASE WHEN s.content_hash = EXCLUDED.content_hash THEN s.change_seq ELSE EXCLUDED.change_seq END,
				changed_at = CASE WHEN s.content_hash = EXCLUDED.content_hash THEN s.changed_at ELSE EXCLUDED.changed_at END
			WHERE EXCLUDED.version > s.version
			RETURNING (changed_at = received_at) AS changed, change_seq)
			SELECT count(*) FILTER (WHERE changed), coalesce(max(change_seq) FILTER (WHERE changed), 0) FROM upserted`)
		args = append(args, b.DatabaseID, b.Now, b.Now)
		var maxSeq int64
		// Row().Scan skips GORM's trace, which would render all parameters into the SQL text.
		if err := tx.Raw(sb.String(), args...).Row().Scan(&res.Changed, &maxSeq); err != nil {
			return err
		}
		if res.Changed == 0 || b.Wake == nil {
			return nil
		}
		m, err := b.Wake(maxSeq)
		if err != nil {
			return err
		}
		_, err = (&Tx{g: tx}).Enqueue(m)
		return err
	})
	if err != nil {
		return IngestResult{}, fmt.Errorf("store: ingest batch (database %d, %d records): %w", b.DatabaseID, len(b.Records), err)
	}
	return res, nil
}

// ReceivedCounts returns how many distinct records of each kind the
// database holds (deleted ones excluded).
func (db *DB) ReceivedCounts(ctx context.Context, databaseID int64) (map[string]int64, error) {
	var rows []struct {
		Kind string
		N    int64
	}
	if err := db.Gorm(ctx).Raw(`SELECT kind, count(*) AS n FROM source_records WHERE database_id = ? AND NOT deleted GROUP BY kind`, databaseID).
		Scan(&rows).Error; err != nil {
		return nil, fmt.Errorf("store: received counts (database %d): %w", databaseID, err)
	}
	out := map[string]int64{}
	for _, r := range rows {
		out[r.Kind] = r.N
	}
	return out, nil
}
