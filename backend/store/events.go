package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/svyazka/svyazka/backend/eventlog"
)

type eventRow struct {
	ID         int64 `gorm:"primaryKey"`
	AccountID  int64
	DatabaseID *int64
	Type       string
	Severity   string
	Message    string
	Details    json.RawMessage `gorm:"type:jsonb"`
	CreatedAt  time.Time
}

func (eventRow) TableName() string { return "events" }

func (r eventRow) domain() eventlog.Event {
	e := eventlog.Event{ID: r.ID, AccountID: r.AccountID, DatabaseID: r.DatabaseID, Type: eventlog.Type(r.Type),
		Severity: eventlog.Severity(r.Severity), Message: r.Message, CreatedAt: r.CreatedAt.UTC()}
	_ = json.Unmarshal(r.Details, &e.Details) // written by us as an object; a bad row shows without details
	return e
}

// Record appends an event (eventlog.Recorder).
func (db *DB) Record(ctx context.Context, e eventlog.Event) error {
	return RecordTx(db.Gorm(ctx), e)
}

// RecordTx appends an event inside tx, so it commits with the change it describes.
func RecordTx(tx *gorm.DB, e eventlog.Event) error {
	if e.Severity == "" {
		e.Severity = eventlog.Info
	}
	details := []byte("{}")
	if len(e.Details) > 0 {
		var err error
		if details, err = json.Marshal(e.Details); err != nil {
			return fmt.Errorf("store: event %s: details: %w", e.Type, err)
		}
	}
	row := eventRow{AccountID: e.AccountID, DatabaseID: e.DatabaseID, Type: string(e.Type),
		Severity: string(e.Severity), Message: e.Message, Details: details}
	if !e.CreatedAt.IsZero() {
		row.CreatedAt = e.CreatedAt.UTC()
	}
	if err := tx.Create(&row).Error; err != nil {
		return fmt.Errorf("store: event %s for account %d: %w", e.Type, e.AccountID, err)
	}
	return nil
}

// filterEvents narrows q to f's account and filters (not its order or page).
func filterEvents(q *gorm.DB, f eventlog.Filter) *gorm.DB {
	q = q.Where("account_id = ?", f.AccountID)
	if len(f.Types) > 0 {
		q = q.Where("type IN ?", f.Types)
	}
	if len(f.Severities) > 0 {
		q = q.Where("severity IN ?", f.Severities)
	}
	if f.DatabaseID != nil {
		q = q.Where("database_id = ?", *f.DatabaseID)
	}
	if f.Text != "" {
		// Only the message: details hold ids and keys the user never sees.
		// events_message_trgm_idx (migration 00010) serves this ILIKE.
		q = q.Where("message ILIKE ?", "%"+escapeLike(f.Text)+"%")
	}
	if f.From != nil {
		q = q.Where("created_at >= ?", *f.From)
	}
	if f.To != nil {
		q = q.Where("created_at < ?", *f.To)
	}
	return q
}

func eventOrder(f eventlog.Filter) string {
	if f.Oldest {
		return "created_at ASC, id ASC"
	}
	return "created_at DESC, id DESC"
}

// ListEvents returns one page of an account's events matching f and the
// number of all matching events.
func (db *DB) ListEvents(ctx context.Context, f eventlog.Filter) ([]eventlog.Event, int64, error) {
	q := filterEvents(db.Gorm(ctx).Model(&eventRow{}), f)
	var total int64
	if err := q.Count(&total).Error; err != nil {
		return nil, 0, fmt.Errorf("store: count events of account %d: %w", f.AccountID, err)
	}
	perPage := f.PerPage
	if perPage <= 0 || perPage > eventlog.MaxPerPage {
		perPage = eventlog.DefaultPerPage
	}
	page := max(f.Page, 1)
	var rows []eventRow
	if err := q.Order(eventOrder(f)).Limit(perPage).Offset((page - 1) * perPage).Find(&rows).Error; err != nil {
		return nil, 0, fmt.Errorf("store: list events of account %d: %w", f.AccountID, err)
	}
	out := make([]eventlog.Event, len(rows))
	for i, r := range rows {
		out[i] = r.domain()
	}
	return out, total, nil
}

// ExportBatch is how many events one keyset query of ExportEvents reads.
const ExportBatch = 1000

// exportStatementTimeout bounds one batch query, so a pathological filter
// fails the export instead of holding a connection for its whole deadline.
const exportStatementTimeout = "60s"

// ExportEvents calls fn with successive batches of the events matching f, in
// f's order (Page and PerPage are ignored), and stops after limit events
// (limit <= 0: no limit). It reports more when further events matched beyond
// the limit.
//
// All batches are read in one REPEATABLE READ, READ ONLY transaction, so the
// export is one consistent snapshot: an event recorded meanwhile is neither
// duplicated nor shifts rows between batches. Batches are keyset-paged on
// (created_at, id), which events_account_created_idx serves at any depth; no
// COUNT and no OFFSET. Details are not read: the export does not show them.
//
// An error from fn stops the export and is returned as is; database errors
// and ctx's end are wrapped with the account id.
func (db *DB) ExportEvents(ctx context.Context, f eventlog.Filter, limit int, fn func([]eventlog.Event) error) (more bool, err error) {
	var fnErr error
	err = db.gorm.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Exec("SET LOCAL statement_timeout = '" + exportStatementTimeout + "'").Error; err != nil {
			return err
		}
		after := "(created_at, id) < (?, ?)"
		if f.Oldest {
			after = "(created_at, id) > (?, ?)"
		}
		var last *eventRow
		sent := 0
		for {
			n := ExportBatch
			if limit > 0 {
				n = min(n, limit-sent)
			}
			checkingMore := n == 0
			if checkingMore {
				n = 1
			}
			q := filterEvents(tx.Model(&eventRow{}), f).
				Select("id", "database_id", "type", "severity", "message", "created_at")
			if last != nil {
				q = q.Where(after, last.CreatedAt, last.ID)
			}
			var rows []eventRow
			if err := q.Order(eventOrder(f)).Limit(n).Find(&rows).Error; err != nil {
				return err
			}
			if checkingMore {
				more = len(rows) > 0
				return nil
			}
			if len(rows) == 0 {
				return nil
			}
			batch := make([]eventlog.Event, len(rows))
			for i, r := range rows {
				batch[i] = eventlog.Event{ID: r.ID, AccountID: f.AccountID, DatabaseID: r.DatabaseID, Type: eventlog.Type(r.Type),
					Severity: eventlog.Severity(r.Severity), Message: r.Message, CreatedAt: r.CreatedAt.UTC()}
			}
			if fnErr = fn(batch); fnErr != nil {
				return fnErr
			}
			sent += len(rows)
			last = &rows[len(rows)-1]
			if len(rows) < n {
				return nil
			}
		}
	}, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
	if fnErr != nil {
		return false, fnErr
	}
	if err != nil {
		return false, fmt.Errorf("store: export events of account %d: %w", f.AccountID, err)
	}
	return more, nil
}

func escapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}
