-- +goose Up
-- Two lanes per database, so a clinic's change made after a start is not
-- queued behind the whole import (issue 10, point 10). The import lane is
-- change_seq in (last_change_seq, import_to_seq]; the real-time lane is
-- change_seq above import_to_seq, and realtime_seq is its cursor: every
-- change in (import_to_seq, realtime_seq] has been written. When the import
-- lane reaches import_to_seq the lanes merge: last_change_seq takes
-- realtime_seq and the single cursor goes on as before. A realtime_seq at or
-- below import_to_seq means the real-time lane has written nothing.
ALTER TABLE sync_cursors ADD COLUMN realtime_seq bigint NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE sync_cursors DROP COLUMN realtime_seq;
