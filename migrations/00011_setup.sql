-- +goose Up
-- Autosetup runs: what the user asked for (blocks, renames), how far the
-- apply task got and how it ended. At most one run of an account is running.
CREATE TABLE setup_runs (
    id           uuid        PRIMARY KEY,
    account_id   bigint      NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    state        text        NOT NULL DEFAULT 'running'
                 CHECK (state IN ('running', 'succeeded', 'failed')),
    blocks       jsonb       NOT NULL DEFAULT '[]',
    renames      jsonb       NOT NULL DEFAULT '{}',
    progress     jsonb       NOT NULL DEFAULT '{"done":0,"total":0,"item":""}',
    -- amoCRM ids created so far, by item key (reused items are not listed).
    created_ids  jsonb       NOT NULL DEFAULT '{}',
    error        text        NOT NULL DEFAULT '',
    error_item   text        NOT NULL DEFAULT '',
    started_by   text        NOT NULL DEFAULT '',
    started_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz
);
CREATE UNIQUE INDEX setup_runs_one_running_idx ON setup_runs (account_id) WHERE state = 'running';
CREATE INDEX setup_runs_account_idx ON setup_runs (account_id, started_at DESC);

-- Every saved mapping, so the event log can say which one a record was
-- written with. Versions count from 1 per account.
CREATE TABLE mapping_versions (
    id          bigserial   PRIMARY KEY,
    account_id  bigint      NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    version     integer     NOT NULL CHECK (version > 0),
    mapping     jsonb       NOT NULL,
    created_by  text        NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (account_id, version)
);

ALTER TABLE account_settings
    ADD COLUMN mapping_version_id bigint REFERENCES mapping_versions (id) ON DELETE SET NULL;

-- setup_state takes the domain's status strings (backend/setup.Status).
ALTER TABLE account_settings DROP CONSTRAINT account_settings_setup_state_check;
UPDATE account_settings SET setup_state = 'running' WHERE setup_state = 'in_progress';
UPDATE account_settings SET setup_state = 'drift' WHERE setup_state = 'broken';
ALTER TABLE account_settings ADD CONSTRAINT account_settings_setup_state_check
    CHECK (setup_state IN ('not_configured', 'running', 'configured', 'failed', 'drift'));

-- +goose Down
ALTER TABLE account_settings DROP CONSTRAINT account_settings_setup_state_check;
UPDATE account_settings SET setup_state = 'in_progress' WHERE setup_state = 'running';
UPDATE account_settings SET setup_state = 'broken' WHERE setup_state IN ('drift', 'failed');
ALTER TABLE account_settings ADD CONSTRAINT account_settings_setup_state_check
    CHECK (setup_state IN ('not_configured', 'in_progress', 'configured', 'broken'));
ALTER TABLE account_settings DROP COLUMN mapping_version_id;
DROP TABLE mapping_versions;
DROP TABLE setup_runs;
