package store

import (
	"context"
	"fmt"
)

// PatientsWithLeadsOf returns the patients of the database having a lead
// whose chain's current reception is with one of staffIDs (the doctor) or
// in one of branchIDs: a renamed doctor or branch changes what those leads
// show.
func (db *DB) PatientsWithLeadsOf(ctx context.Context, databaseID int64, staffIDs, branchIDs []string) ([]string, error) {
	if len(staffIDs) == 0 && len(branchIDs) == 0 {
		return nil, nil
	}
	// An empty list matches nothing (gorm writes IN (NULL)).
	var out []string
	if err := db.Gorm(ctx).Raw(`SELECT DISTINCT l.patient_id FROM entity_links l
		JOIN source_records s ON s.database_id = l.database_id AND s.kind = 'reception' AND s.source_id = l.current_id
		WHERE l.database_id = ? AND l.entity_type = 'appointment' AND l.patient_id IS NOT NULL
			AND (s.data->>'staff_id' IN ? OR s.data->>'branch_id' IN ?)
		ORDER BY l.patient_id`, databaseID, staffIDs, branchIDs).Scan(&out).Error; err != nil {
		return nil, fmt.Errorf("store: patients with leads of doctors %v, branches %v (database %d): %w", staffIDs, branchIDs, databaseID, err)
	}
	return out, nil
}

// AppointmentLinksByCurrent returns the appointment links whose chain's
// current reception is one of receptionIDs (entity_links_current_idx).
func (db *DB) AppointmentLinksByCurrent(ctx context.Context, databaseID int64, receptionIDs []string) ([]EntityLink, error) {
	if len(receptionIDs) == 0 {
		return nil, nil
	}
	return db.links(ctx, fmt.Sprintf("appointment links by current reception of %d receptions (database %d)", len(receptionIDs), databaseID),
		`SELECT `+linkColumns+` FROM entity_links WHERE database_id = ? AND entity_type = 'appointment' AND current_id IN ? ORDER BY source_id`,
		databaseID, receptionIDs)
}

// AnalyzeSyncTables refreshes the planner's statistics of the tables an
// import fills fastest. An import writes tens of thousands of links within
// minutes; until autovacuum's analyze catches up (or ever, where it is
// off) the planner takes the tables for empty and filters instead of
// seeking, and each page's lookups cost a hundred times more.
func (db *DB) AnalyzeSyncTables(ctx context.Context) error {
	if err := db.Gorm(ctx).Exec(`ANALYZE source_records, entity_links, sync_create_intents`).Error; err != nil {
		return fmt.Errorf("store: analyze sync tables: %w", err)
	}
	return nil
}
