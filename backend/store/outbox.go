package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// OutboxMessage is a task recorded in the same transaction as the state
// change that needs it, and relayed to the queue afterwards.
type OutboxMessage struct {
	ID           int64           `gorm:"primaryKey"`
	TaskType     string          `gorm:"not null"`
	Payload      json.RawMessage `gorm:"type:jsonb;not null"`
	Queue        string          `gorm:"not null"`
	CreatedAt    time.Time
	DispatchedAt *time.Time
}

// TableName implements gorm's Tabler.
func (OutboxMessage) TableName() string { return "outbox" }

// AddOutbox records a task inside tx. payload is marshalled to JSON.
func AddOutbox(tx *gorm.DB, taskType, queue string, payload any) error {
	raw, err := json.Marshal(payload)
	if err != nil {
		return fmt.Errorf("store: outbox %s: marshal: %w", taskType, err)
	}
	if err := tx.Create(&OutboxMessage{TaskType: taskType, Queue: queue, Payload: raw}).Error; err != nil {
		return fmt.Errorf("store: outbox %s: %w", taskType, err)
	}
	return nil
}

// DispatchOutbox hands up to limit undispatched messages, oldest first, to
// send and marks those it accepted as dispatched. Rows another relay holds are
// skipped, so several relays can run at once. It stops at send's first error
// and returns how many were dispatched with that error.
func (db *DB) DispatchOutbox(ctx context.Context, limit int, send func(OutboxMessage) error) (int, error) {
	dispatched := 0
	err := db.Tx(ctx, func(tx *gorm.DB) error {
		var msgs []OutboxMessage
		if err := tx.Clauses(clause.Locking{Strength: "UPDATE", Options: "SKIP LOCKED"}).
			Where("dispatched_at IS NULL").Order("id").Limit(limit).Find(&msgs).Error; err != nil {
			return fmt.Errorf("store: outbox: select: %w", err)
		}
		var sendErr error
		ids := make([]int64, 0, len(msgs))
		for _, m := range msgs {
			if sendErr = send(m); sendErr != nil {
				break
			}
			ids = append(ids, m.ID)
		}
		if len(ids) > 0 {
			if err := tx.Model(&OutboxMessage{}).Where("id IN ?", ids).Update("dispatched_at", time.Now().UTC()).Error; err != nil {
				return fmt.Errorf("store: outbox: mark dispatched: %w", err)
			}
		}
		dispatched = len(ids)
		return sendErr
	})
	if err != nil && dispatched > 0 {
		// The transaction rolled back: those messages were enqueued but are not
		// marked, so they will be sent again — harmless, task ids dedupe them.
		dispatched = 0
	}
	return dispatched, err
}
