package store

import (
	"context"
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

// ListEvents returns one page of an account's events matching f and the
// number of all matching events.
func (db *DB) ListEvents(ctx context.Context, f eventlog.Filter) ([]eventlog.Event, int64, error) {
	q := db.Gorm(ctx).Model(&eventRow{}).Where("account_id = ?", f.AccountID)
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
		pattern := "%" + escapeLike(f.Text) + "%"
		// The same expression as events_search_trgm_idx, so the index serves it.
		q = q.Where("(message || ' ' || details::text) ILIKE ?", pattern)
	}
	if f.From != nil {
		q = q.Where("created_at >= ?", *f.From)
	}
	if f.To != nil {
		q = q.Where("created_at < ?", *f.To)
	}
	var total int64
	if err := q.Count(&total).Error; err != nil {
		return nil, 0, fmt.Errorf("store: count events of account %d: %w", f.AccountID, err)
	}
	order := "created_at DESC, id DESC"
	if f.Oldest {
		order = "created_at ASC, id ASC"
	}
	perPage := f.PerPage
	if perPage <= 0 || perPage > eventlog.MaxPerPage {
		perPage = eventlog.DefaultPerPage
	}
	page := max(f.Page, 1)
	var rows []eventRow
	if err := q.Order(order).Limit(perPage).Offset((page - 1) * perPage).Find(&rows).Error; err != nil {
		return nil, 0, fmt.Errorf("store: list events of account %d: %w", f.AccountID, err)
	}
	out := make([]eventlog.Event, len(rows))
	for i, r := range rows {
		out[i] = r.domain()
	}
	return out, total, nil
}

func escapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}
