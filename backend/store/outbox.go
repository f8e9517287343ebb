package store

import (
	"context"
	"database/sql/driver"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/stdlib"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// OutboxChannel is the PostgreSQL NOTIFY channel a committed outbox row
// signals on, so relays wake at once instead of at their next tick.
const OutboxChannel = "svyazka_outbox"

// OutboxMessage is a task recorded in the same transaction as the state
// change that needs it, and relayed to the queue afterwards with the options
// it was built with. TaskID is unique for all time: a domain key when the
// task has one (a second row with the same key is the same task and is not
// added), otherwise "outbox:" + a random UUID. Row ids are never used as task
// ids, because a restored database repeats them while Redis remembers them.
type OutboxMessage struct {
	ID               int64           `gorm:"primaryKey"`
	TaskID           string          `gorm:"not null"`
	TaskType         string          `gorm:"not null"`
	Payload          json.RawMessage `gorm:"type:jsonb;not null"`
	Queue            string          `gorm:"not null"`
	MaxRetry         int
	TimeoutSeconds   int
	RetentionSeconds int
	CreatedAt        time.Time
	DispatchedAt     *time.Time
}

// TableName implements gorm's Tabler.
func (OutboxMessage) TableName() string { return "outbox" }

// Enqueue records m inside the transaction; the relay sends it once the
// transaction commits. A message whose TaskID is already in the outbox is
// the same task and is skipped (reported as false). An empty TaskID gets a
// fresh UUID.
func (tx *Tx) Enqueue(m OutboxMessage) (bool, error) {
	if m.TaskType == "" || m.Queue == "" || len(m.Payload) == 0 || m.TimeoutSeconds <= 0 {
		return false, fmt.Errorf("store: outbox %q: type, queue, payload and timeout are required", m.TaskType)
	}
	if m.TaskID == "" {
		m.TaskID = "outbox:" + uuid.NewString()
	}
	m.ID, m.DispatchedAt = 0, nil
	res := tx.g.Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "task_id"}}, DoNothing: true}).Create(&m)
	if res.Error != nil {
		return false, fmt.Errorf("store: outbox %s: %w", m.TaskType, res.Error)
	}
	if res.RowsAffected == 0 {
		return false, nil
	}
	// Delivered only if the transaction commits; repeats within one
	// transaction fold into one notification.
	if err := tx.g.Exec("SELECT pg_notify(?, '')", OutboxChannel).Error; err != nil {
		return false, fmt.Errorf("store: outbox %s: notify: %w", m.TaskType, err)
	}
	return true, nil
}

// DispatchOutbox hands up to limit undispatched messages, oldest first, to
// send and marks those it accepted as dispatched. Rows another relay holds are
// skipped, so several relays can run at once. It stops at send's first error
// and returns how many were dispatched with that error.
func (db *DB) DispatchOutbox(ctx context.Context, limit int, send func(OutboxMessage) error) (int, error) {
	dispatched := 0
	err := db.transact(ctx, func(tx *gorm.DB) error {
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
		// marked, so they will be sent again — harmless, their task ids dedupe them.
		dispatched = 0
	}
	return dispatched, err
}

// ListenOutbox holds one connection listening on OutboxChannel and calls
// wake for every notification until ctx ends or the connection fails; it
// calls wake once right after LISTEN succeeds, so rows committed while no
// one listened are not left for the next tick. It returns ctx's error or
// the connection's.
func (db *DB) ListenOutbox(ctx context.Context, wake func()) error {
	conn, err := db.sql.Conn(ctx)
	if err != nil {
		return fmt.Errorf("store: outbox listen: %w", err)
	}
	defer func() {
		// The connection carries a LISTEN; never return it to the pool.
		_ = conn.Raw(func(any) error { return driver.ErrBadConn })
		_ = conn.Close()
	}()
	return conn.Raw(func(driverConn any) error {
		c, ok := driverConn.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("store: outbox listen: driver connection is %T, not pgx", driverConn)
		}
		pg := c.Conn()
		if _, err := pg.Exec(ctx, "LISTEN "+OutboxChannel); err != nil {
			return fmt.Errorf("store: outbox listen: %w", err)
		}
		wake()
		for {
			if _, err := pg.WaitForNotification(ctx); err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				return fmt.Errorf("store: outbox listen: %w", err)
			}
			wake()
		}
	})
}
