-- +goose Up
-- The connector side of a clinic database: its pairing with one connector
-- installation, what its heartbeats report, its clinic's time zone (IDENT
-- stores naive local times), and the records it delivers.
ALTER TABLE clinic_databases
    ADD COLUMN time_zone            text        NOT NULL DEFAULT 'Europe/Moscow',
    ADD COLUMN instance_id          text,
    ADD COLUMN instance_hostname    text        NOT NULL DEFAULT '',
    ADD COLUMN paired_at            timestamptz,
    ADD COLUMN source_version       text        NOT NULL DEFAULT '',
    ADD COLUMN outbox_pending       bigint      NOT NULL DEFAULT 0,
    ADD COLUMN initial_load_done    boolean     NOT NULL DEFAULT false,
    ADD COLUMN db_status_changed_at timestamptz;

-- Hashes of tokens replaced by «Получить токен», so a connector still holding
-- one is told it was revoked (not merely unknown).
CREATE TABLE revoked_connector_tokens (
    token_hash   bytea       PRIMARY KEY,
    database_id  bigint      NOT NULL REFERENCES clinic_databases (id) ON DELETE CASCADE,
    revoked_at   timestamptz NOT NULL DEFAULT now()
);

-- Every source record as last delivered: the newest version wins, and a
-- resend with the same content changes nothing. change_seq is taken from one
-- sequence whenever the content changes, so the sync reads the changes of a
-- database in order (change_seq > its cursor) and this table is its queue.
CREATE SEQUENCE source_change_seq;
CREATE TABLE source_records (
    database_id   bigint      NOT NULL REFERENCES clinic_databases (id) ON DELETE CASCADE,
    kind          text        NOT NULL CHECK (kind IN ('patient', 'reception', 'doctor', 'branch', 'chair', 'cancel_reason')),
    source_id     text        NOT NULL,
    version       bigint      NOT NULL,
    deleted       boolean     NOT NULL DEFAULT false,
    data          jsonb       NOT NULL DEFAULT '{}',
    content_hash  bytea       NOT NULL,
    change_seq    bigint      NOT NULL,
    received_at   timestamptz NOT NULL DEFAULT now(),
    changed_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (database_id, kind, source_id)
);
CREATE INDEX source_records_changes_idx ON source_records (database_id, change_seq);

-- A batch's answer is kept with it, so a resend gets the same answer.
ALTER TABLE ingested_batches
    ADD COLUMN accepted integer NOT NULL DEFAULT 0,
    ADD COLUMN errors   jsonb   NOT NULL DEFAULT '[]';

-- +goose Down
ALTER TABLE ingested_batches DROP COLUMN errors, DROP COLUMN accepted;
DROP TABLE source_records;
DROP SEQUENCE source_change_seq;
DROP TABLE revoked_connector_tokens;
ALTER TABLE clinic_databases
    DROP COLUMN db_status_changed_at, DROP COLUMN initial_load_done, DROP COLUMN outbox_pending,
    DROP COLUMN source_version, DROP COLUMN paired_at, DROP COLUMN instance_hostname,
    DROP COLUMN instance_id, DROP COLUMN time_zone;
