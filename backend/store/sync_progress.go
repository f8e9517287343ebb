package store

import (
	"context"
	"fmt"
	"math"
	"time"

	"gorm.io/gorm"
)

// The import's progress and the sync's pace (migration 00014). A start
// takes on every change of the account's databases that is above its cursor
// at that moment: the import is change_seq in (import_from_seq,
// import_to_seq]. Its total is the number of source records in that range
// now (a record changed again since takes a new change_seq and leaves the
// range: it is real-time work), and done the part at or below the cursor.
// While a database's connector still runs its first load, import_to_seq
// follows the records it delivers (read live, and raised by each commit). The rate comes from two samples of the
// cursor kept by CommitSync, at most a minute apart.
//
// The lanes (migration 00015): the import lane's cursor is last_change_seq,
// so done and the rate keep their meaning; the real-time lane writes the
// changes above import_to_seq and keeps its own cursor, realtime_seq. A
// change is pending when neither lane wrote it (notRealtimeWritten), so the
// queue and the lag count the oldest change waiting in either lane.

// rateSampleEvery is how often CommitSync moves its newer cursor sample to
// the older one: the rate is measured over the last 30 to 60 seconds (or
// since the last commit, when the sync is idle).
const rateSampleEvery = 30 * time.Second

// advanceCursorSQL (its arguments: advanceCursorArgs) moves a database's cursor forward (never back) with its
// bookkeeping: last_written_at when it moved, the rate samples, and the
// import's upper bound while the connector's first load runs. In ON
// CONFLICT's SET, sync_cursors.* are the values before the update.
var advanceCursorSQL = fmt.Sprintf(`INSERT INTO sync_cursors AS c (database_id, last_change_seq, updated_at, last_written_at, sample_at, sample_seq, rate_at, rate_seq)
	VALUES (?, ?, ?, ?, ?, ?, ?, 0)
	ON CONFLICT (database_id) DO UPDATE SET
		last_change_seq = GREATEST(c.last_change_seq, EXCLUDED.last_change_seq),
		updated_at = EXCLUDED.updated_at,
		last_written_at = CASE WHEN EXCLUDED.last_change_seq > c.last_change_seq THEN EXCLUDED.updated_at ELSE c.last_written_at END,
		rate_at = CASE WHEN %[1]s THEN coalesce(c.sample_at, c.updated_at) ELSE c.rate_at END,
		rate_seq = CASE WHEN %[1]s THEN CASE WHEN c.sample_at IS NULL THEN c.last_change_seq ELSE c.sample_seq END ELSE c.rate_seq END,
		sample_at = CASE WHEN %[1]s THEN EXCLUDED.updated_at ELSE c.sample_at END,
		sample_seq = CASE WHEN %[1]s THEN EXCLUDED.last_change_seq ELSE c.sample_seq END,
		import_to_seq = CASE WHEN c.import_started_at IS NOT NULL
				AND NOT (SELECT initial_load_done FROM clinic_databases WHERE id = EXCLUDED.database_id)
			THEN GREATEST(c.import_to_seq, (SELECT coalesce(max(change_seq), 0) FROM source_records WHERE database_id = EXCLUDED.database_id))
			ELSE c.import_to_seq END`,
	fmt.Sprintf(`(EXCLUDED.last_change_seq > c.last_change_seq AND (c.sample_at IS NULL OR c.sample_at <= EXCLUDED.updated_at - interval '%d seconds'))`,
		int(rateSampleEvery/time.Second)))

// advanceRealtimeSQL moves a database's real-time cursor forward (never
// back) with last_written_at, and raises the import's bound to the one the
// lane read above (so (import_to_seq, realtime_seq] is always what the lane
// wrote). Arguments: the cursor twice, now, the lane's import bound, now,
// the database id. The rate samples follow the import lane only.
const advanceRealtimeSQL = `UPDATE sync_cursors SET realtime_seq = GREATEST(realtime_seq, ?),
		last_written_at = CASE WHEN ? > realtime_seq THEN ? ELSE last_written_at END,
		import_to_seq = GREATEST(import_to_seq, ?), updated_at = ?
	WHERE database_id = ?`

// mergeLanesSQL merges a database's lanes once the import lane reached the
// import's bound: everything up to the real-time cursor is written, so the
// single cursor takes it. Argument: the database id.
const mergeLanesSQL = `UPDATE sync_cursors SET last_change_seq = realtime_seq
	WHERE database_id = ? AND realtime_seq > last_change_seq AND last_change_seq >= import_to_seq`

// notRealtimeWritten is the condition on source_records s (above the
// cursor row c's last_change_seq) that the real-time lane has not written
// it: it is in the import's range or above the real-time cursor.
const notRealtimeWritten = `(s.change_seq <= coalesce(c.import_to_seq, 0) OR s.change_seq > coalesce(c.realtime_seq, 0))`

// advanceCursorArgs are advanceCursorSQL's arguments.
func advanceCursorArgs(databaseID, cursor int64, now time.Time) []any {
	return []any{databaseID, cursor, now, now, now, cursor, now}
}

// beginImport records, in a start's transaction, what the import takes on:
// for each of the account's databases its cursor and highest change_seq now,
// and fresh rate samples. The real-time lane starts afresh above the new
// bound (a previous import's real-time range lies inside the new import).
func beginImport(tx *gorm.DB, accountID int64, now time.Time) error {
	return tx.Exec(`UPDATE sync_cursors c SET import_from_seq = c.last_change_seq, realtime_seq = 0,
			import_to_seq = GREATEST(c.last_change_seq, (SELECT coalesce(max(s.change_seq), 0) FROM source_records s WHERE s.database_id = c.database_id)),
			import_started_at = ?, rate_at = ?, rate_seq = c.last_change_seq, sample_at = ?, sample_seq = c.last_change_seq
		FROM clinic_databases d WHERE d.id = c.database_id AND d.account_id = ?`, now.UTC(), now.UTC(), now.UTC(), accountID).Error
}

// SyncProgress is where an account's sync stands: the last start's import,
// the pace, the queue and each database's last change received and written.
type SyncProgress struct {
	// State is running, stopped or paused; StartedAt the last start (nil:
	// never) and ImportSince its clinic-local import date ("" : every
	// appointment).
	State       string
	StartedAt   *time.Time
	ImportSince string
	Queue       SyncQueue
	Databases   []DatabaseProgress
}

// DatabaseProgress is one database's part of SyncProgress.
type DatabaseProgress struct {
	DatabaseID int64
	Enabled    bool
	// ImportTotal and ImportDone count the source records of the last
	// start's import and those the sync has processed.
	ImportTotal int64
	ImportDone  int64
	// WindowDone records were processed since WindowSince (the older rate
	// sample; nil: no start yet).
	WindowDone  int64
	WindowSince *time.Time
	// OldestPendingAt is when the oldest change neither lane has written
	// arrived (nil: none).
	OldestPendingAt *time.Time
	// LastReceivedAt is when the database's latest change arrived;
	// LastWrittenAt when the sync last advanced past a change (nil: never).
	LastReceivedAt *time.Time
	LastWrittenAt  *time.Time
}

// SyncProgress returns the account's sync progress; ErrNotFound for an
// unknown account.
func (db *DB) SyncProgress(ctx context.Context, accountID int64) (SyncProgress, error) {
	settings, err := db.SyncSettings(ctx, accountID)
	if err != nil {
		return SyncProgress{}, err
	}
	p := SyncProgress{State: settings.SyncState, StartedAt: utcPtr(settings.SyncStartedAt), ImportSince: settings.ImportSince}
	if p.Queue, err = db.SyncQueue(ctx, accountID); err != nil {
		return SyncProgress{}, err
	}
	// Every count is a range of the (database_id, change_seq) index.
	err = db.Gorm(ctx).Raw(`WITH b AS (
			SELECT d.id, coalesce(c.enabled, true) AS enabled, coalesce(c.last_change_seq, 0) AS cursor,
				coalesce(c.import_from_seq, 0) AS from_seq, c.import_started_at IS NOT NULL AS started,
				GREATEST(coalesce(c.import_to_seq, 0), CASE WHEN c.import_started_at IS NOT NULL AND NOT d.initial_load_done
					THEN (SELECT coalesce(max(s.change_seq), 0) FROM source_records s WHERE s.database_id = d.id) ELSE 0 END) AS to_seq,
				c.rate_at, coalesce(c.rate_seq, 0) AS rate_seq, c.last_written_at,
				coalesce(c.import_to_seq, 0) AS stored_to_seq, coalesce(c.realtime_seq, 0) AS realtime_seq
			FROM clinic_databases d LEFT JOIN sync_cursors c ON c.database_id = d.id WHERE d.account_id = ?)
		SELECT b.id AS database_id, b.enabled,
			CASE WHEN b.started THEN (SELECT count(*) FROM source_records s WHERE s.database_id = b.id
				AND s.change_seq > b.from_seq AND s.change_seq <= b.to_seq) ELSE 0 END AS import_total,
			CASE WHEN b.started THEN (SELECT count(*) FROM source_records s WHERE s.database_id = b.id
				AND s.change_seq > b.from_seq AND s.change_seq <= LEAST(b.to_seq, b.cursor)) ELSE 0 END AS import_done,
			(SELECT count(*) FROM source_records s WHERE s.database_id = b.id AND s.change_seq > b.rate_seq AND s.change_seq <= b.cursor) AS window_done,
			b.rate_at AS window_since,
			(SELECT s.changed_at FROM source_records s WHERE s.database_id = b.id AND s.change_seq > b.cursor
				AND (s.change_seq <= b.stored_to_seq OR s.change_seq > b.realtime_seq) ORDER BY s.change_seq LIMIT 1) AS oldest_pending_at,
			(SELECT s.changed_at FROM source_records s WHERE s.database_id = b.id ORDER BY s.change_seq DESC LIMIT 1) AS last_received_at,
			b.last_written_at
		FROM b ORDER BY b.id`, accountID).Scan(&p.Databases).Error
	if err != nil {
		return SyncProgress{}, fmt.Errorf("store: sync progress of account %d: %w", accountID, err)
	}
	for i := range p.Databases {
		d := &p.Databases[i]
		d.WindowSince, d.OldestPendingAt, d.LastReceivedAt, d.LastWrittenAt = utcPtr(d.WindowSince), utcPtr(d.OldestPendingAt),
			utcPtr(d.LastReceivedAt), utcPtr(d.LastWrittenAt)
	}
	return p, nil
}

// ImportTotal and ImportDone sum the enabled databases' import counts.
func (p SyncProgress) ImportTotal() int64 {
	return p.sum(func(d DatabaseProgress) int64 { return d.ImportTotal })
}

// ImportDone is the processed part of ImportTotal.
func (p SyncProgress) ImportDone() int64 {
	return p.sum(func(d DatabaseProgress) int64 { return d.ImportDone })
}

func (p SyncProgress) sum(f func(DatabaseProgress) int64) int64 {
	var n int64
	for _, d := range p.Databases {
		if d.Enabled {
			n += f(d)
		}
	}
	return n
}

// RatePerMinute is how many records a minute the sync processed lately,
// summed over the enabled databases; 0 unless it runs.
func (p SyncProgress) RatePerMinute(now time.Time) float64 {
	if p.State != "running" {
		return 0
	}
	var rate float64
	for _, d := range p.Databases {
		if !d.Enabled || d.WindowSince == nil || d.WindowDone == 0 {
			continue
		}
		// At least a second, so a commit right after the sample is no spike to infinity.
		elapsed := max(now.Sub(*d.WindowSince), time.Second)
		rate += float64(d.WindowDone) / elapsed.Minutes()
	}
	return rate
}

// ETASeconds is how long the rest of the import takes at RatePerMinute: 0
// when nothing is left, ok false when it cannot be told (no pace yet, or the
// sync does not run).
func (p SyncProgress) ETASeconds(now time.Time) (seconds int64, ok bool) {
	left := p.ImportTotal() - p.ImportDone()
	if left <= 0 {
		return 0, true
	}
	rate := p.RatePerMinute(now)
	if rate <= 0 {
		return 0, false
	}
	return int64(math.Ceil(float64(left) / rate * 60)), true
}

// LagSeconds is the age at now of the oldest change the enabled databases
// have waiting, in whole seconds; 0 when none waits.
func (p SyncProgress) LagSeconds(now time.Time) int64 {
	var oldest *time.Time
	for _, d := range p.Databases {
		if d.Enabled && d.OldestPendingAt != nil && (oldest == nil || d.OldestPendingAt.Before(*oldest)) {
			oldest = d.OldestPendingAt
		}
	}
	if oldest == nil || !now.After(*oldest) {
		return 0
	}
	return int64(now.Sub(*oldest) / time.Second)
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}
