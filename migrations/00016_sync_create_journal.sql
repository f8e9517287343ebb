-- +goose Up
-- Exactly-once creates without a search before every create (issue 10,
-- point 11). Before the sync sends a create it records the source ids it
-- is creating; the commit that stores their links removes them. An intent
-- still here when a record is created again means a create was sent whose
-- answer was never committed (a crash, a lost connection): only then is
-- amoCRM searched by our key field first.
CREATE TABLE sync_create_intents (
    database_id bigint      NOT NULL REFERENCES clinic_databases (id) ON DELETE CASCADE,
    entity_type text        NOT NULL,
    source_id   text        NOT NULL,
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (database_id, entity_type, source_id)
);

-- The account scan at a start's first write (contacts for adoption by
-- phone, and now also contacts and our pipelines' leads carrying our key
-- fields): what amoCRM already holds under our keys, from a database added
-- again or a restored backup, is linked instead of created twice.
CREATE TABLE sync_scanned_keys (
    account_id      bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    crm_entity_type text   NOT NULL,
    key             text   NOT NULL,
    crm_id          bigint NOT NULL,
    PRIMARY KEY (account_id, crm_entity_type, key, crm_id)
);

-- When the sync last stored links of the database. The worker keeps the
-- same instant in Redis; a Redis value later than this one means the
-- database was restored from a backup with Redis kept: the account is
-- scanned again before its next create.
ALTER TABLE clinic_databases ADD COLUMN sync_wrote_at timestamptz;

-- +goose Down
ALTER TABLE clinic_databases DROP COLUMN sync_wrote_at;
DROP TABLE sync_scanned_keys;
DROP TABLE sync_create_intents;
