-- +goose Up
-- The import's progress and the sync's pace, per database, for the widget
-- and `svyazka admin status`: which changes the last start took on (the
-- import: change_seq in (import_from_seq, import_to_seq]), when the sync
-- last advanced its cursor, and two samples of the cursor to compute the
-- rate over the last minute or two.
ALTER TABLE sync_cursors
    -- the cursor and the database's highest change_seq at the last start;
    -- import_to_seq follows the connector's first load while it runs.
    ADD COLUMN import_from_seq   bigint      NOT NULL DEFAULT 0,
    ADD COLUMN import_to_seq     bigint      NOT NULL DEFAULT 0,
    ADD COLUMN import_started_at timestamptz,
    -- when a commit last moved last_change_seq forward (NULL: never).
    ADD COLUMN last_written_at   timestamptz,
    -- rate_* is the older sample, sample_* the newer one; the newer one
    -- moves to the older at most every 30 seconds.
    ADD COLUMN rate_at           timestamptz,
    ADD COLUMN rate_seq          bigint      NOT NULL DEFAULT 0,
    ADD COLUMN sample_at         timestamptz,
    ADD COLUMN sample_seq        bigint      NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE sync_cursors
    DROP COLUMN sample_seq, DROP COLUMN sample_at, DROP COLUMN rate_seq, DROP COLUMN rate_at,
    DROP COLUMN last_written_at, DROP COLUMN import_started_at, DROP COLUMN import_to_seq, DROP COLUMN import_from_seq;
