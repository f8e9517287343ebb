-- +goose Up
-- The sync's own state: how far it has read each database's changes, the
-- records amoCRM refused (parked until they change or are resent), and the
-- date the historical import starts from.

-- One row per clinic database the sync has read: every source_records row
-- with change_seq <= last_change_seq has been written to amoCRM (or parked,
-- or was out of scope).
CREATE TABLE sync_cursors (
    database_id      bigint      PRIMARY KEY REFERENCES clinic_databases (id) ON DELETE CASCADE,
    last_change_seq  bigint      NOT NULL DEFAULT 0,
    -- enabled: whether the sync writes this database (the start dialog's
    -- «какие базы»); a database without a row is enabled.
    enabled          boolean     NOT NULL DEFAULT true,
    updated_at       timestamptz NOT NULL DEFAULT now()
);

-- A source record amoCRM refused with a validation error: the rest of its
-- batch went through; this one waits for its next change (or «Отправить
-- повторно»). reason is amoCRM's own message.
CREATE TABLE sync_parked (
    id           bigserial   PRIMARY KEY,
    account_id   bigint      NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    database_id  bigint      NOT NULL REFERENCES clinic_databases (id) ON DELETE CASCADE,
    kind         text        NOT NULL CHECK (kind IN ('patient', 'reception')),
    source_id    text        NOT NULL,
    reason       text        NOT NULL DEFAULT '',
    parked_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (database_id, kind, source_id)
);
CREATE INDEX sync_parked_account_idx ON sync_parked (account_id);

-- import_since: the historical import takes appointments starting on or
-- after this clinic-local date (NULL: every appointment).
ALTER TABLE account_settings ADD COLUMN import_since date;

-- The sync loads every reception of a changed patient (chains, first visit).
CREATE INDEX source_records_reception_patient_idx ON source_records (database_id, (data ->> 'patient_id'))
    WHERE kind = 'reception';

-- +goose Down
DROP INDEX source_records_reception_patient_idx;
ALTER TABLE account_settings DROP COLUMN import_since;
DROP TABLE sync_parked;
DROP TABLE sync_cursors;
