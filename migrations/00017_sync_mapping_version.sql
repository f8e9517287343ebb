-- +goose Up
-- The mapping version the sync last wrote with, so the event log says once
-- per version which settings the data in amoCRM follows.
ALTER TABLE account_settings ADD COLUMN sync_mapping_version integer;

-- +goose Down
ALTER TABLE account_settings DROP COLUMN sync_mapping_version;
