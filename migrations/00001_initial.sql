-- +goose Up
-- The initial schema: every table the product's capabilities stand on.
-- Times are timestamptz (UTC in, zone-aware out); money is bigint kopecks.

-- An amoCRM account that installed the widget. Data is kept after uninstall
-- (status 'uninstalled') for the retention period.
CREATE TABLE accounts (
    id               bigserial PRIMARY KEY,
    amo_account_id   bigint      NOT NULL UNIQUE,
    subdomain        text        NOT NULL,
    base_domain      text        NOT NULL DEFAULT 'amocrm.ru',
    name             text        NOT NULL DEFAULT '',
    status           text        NOT NULL DEFAULT 'active'
                     CHECK (status IN ('active', 'uninstalled', 'auth_failed', 'blocked')),
    timezone         text        NOT NULL DEFAULT 'Europe/Moscow',
    contact_name     text        NOT NULL DEFAULT '',
    contact_phone    text        NOT NULL DEFAULT '',
    consent_at       timestamptz,
    consent_user_id  bigint,
    installed_at     timestamptz NOT NULL DEFAULT now(),
    uninstalled_at   timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);

-- OAuth tokens, encrypted at rest (AES-GCM). One row per account; refreshes
-- lock the row so only one process rotates the single-use refresh token.
CREATE TABLE amo_tokens (
    account_id         bigint      PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
    access_token_enc   bytea       NOT NULL,
    refresh_token_enc  bytea       NOT NULL,
    expires_at         timestamptz NOT NULL,
    revoked_at         timestamptz,
    updated_at         timestamptz NOT NULL DEFAULT now()
);

-- amoCRM users as last read from the API: seat counting and responsible-user matching.
CREATE TABLE amo_users (
    account_id   bigint      NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    amo_user_id  bigint      NOT NULL,
    name         text        NOT NULL DEFAULT '',
    email        text        NOT NULL DEFAULT '',
    is_admin     boolean     NOT NULL DEFAULT false,
    is_active    boolean     NOT NULL DEFAULT true,
    is_free      boolean     NOT NULL DEFAULT false,
    synced_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, amo_user_id)
);

-- A clinic database (IDENT today; Medods, Klientiks, DIKIDI later) connected
-- through a connector token. Only the token's SHA-256 is stored.
CREATE TABLE clinic_databases (
    id                  bigserial   PRIMARY KEY,
    account_id          bigint      NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    source              text        NOT NULL DEFAULT 'ident'
                        CHECK (source IN ('ident', 'medods', 'klientiks', 'dikidi')),
    name                text        NOT NULL DEFAULT '',
    token_hash          bytea       UNIQUE,
    token_issued_at     timestamptz,
    connector_status    text        NOT NULL DEFAULT 'unknown'
                        CHECK (connector_status IN ('unknown', 'connected', 'disconnected')),
    connector_seen_at   timestamptz,
    connector_version   text        NOT NULL DEFAULT '',
    db_status           text        NOT NULL DEFAULT 'unknown'
                        CHECK (db_status IN ('unknown', 'connected', 'disconnected')),
    db_status_detail    text        NOT NULL DEFAULT '',
    status_checked_at   timestamptz,
    cursor              jsonb       NOT NULL DEFAULT '{}',
    created_at          timestamptz NOT NULL DEFAULT now(),
    disconnected_at     timestamptz
);
CREATE INDEX clinic_databases_account_idx ON clinic_databases (account_id);

-- Per-account settings: the mapping (pipelines, stages, fields, exceptions,
-- responsible users) and the sync switch. version guards concurrent edits.
CREATE TABLE account_settings (
    account_id       bigint      PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
    mapping          jsonb       NOT NULL DEFAULT '{}',
    setup_state      text        NOT NULL DEFAULT 'not_configured'
                     CHECK (setup_state IN ('not_configured', 'in_progress', 'configured', 'broken')),
    setup_detail     text        NOT NULL DEFAULT '',
    sync_state       text        NOT NULL DEFAULT 'stopped'
                     CHECK (sync_state IN ('stopped', 'running', 'paused')),
    sync_started_at  timestamptz,
    sync_stopped_at  timestamptz,
    version          bigint      NOT NULL DEFAULT 1,
    updated_at       timestamptz NOT NULL DEFAULT now()
);

-- The subscription state machine's persisted state (rules live in billing/).
CREATE TABLE subscriptions (
    account_id     bigint      PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
    status         text        NOT NULL DEFAULT 'trial'
                   CHECK (status IN ('trial', 'active', 'expiring', 'expired', 'suspended')),
    trial_ends_at  timestamptz,
    paid_until     timestamptz,
    paid_seats     integer     NOT NULL DEFAULT 0 CHECK (paid_seats >= 0),
    version        bigint      NOT NULL DEFAULT 1,
    updated_at     timestamptz NOT NULL DEFAULT now()
);

-- Payments: online checkout or a bank transfer recorded by support.
CREATE TABLE payments (
    id              bigserial   PRIMARY KEY,
    account_id      bigint      NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    provider        text        NOT NULL CHECK (provider IN ('stripe', 'bank_transfer')),
    provider_ref    text,
    amount_kopecks  bigint      NOT NULL CHECK (amount_kopecks >= 0),
    currency        text        NOT NULL DEFAULT 'RUB',
    seats           integer     NOT NULL CHECK (seats > 0),
    months          integer     NOT NULL CHECK (months > 0),
    status          text        NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'paid', 'failed', 'expired', 'refunded')),
    created_by      text        NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL DEFAULT now(),
    paid_at         timestamptz,
    UNIQUE (provider, provider_ref)
);
CREATE INDEX payments_account_idx ON payments (account_id, created_at DESC);

-- Webhook deliveries from payment providers and amoCRM, recorded once by their
-- event id so duplicates are acknowledged without being applied twice.
CREATE TABLE inbound_events (
    provider     text        NOT NULL,
    event_id     text        NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    processed_at timestamptz,
    payload      jsonb       NOT NULL DEFAULT '{}',
    PRIMARY KEY (provider, event_id)
);

-- The event log shown in the widget («Список событий») and the admin panel.
CREATE TABLE events (
    id           bigserial   PRIMARY KEY,
    account_id   bigint      NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    database_id  bigint      REFERENCES clinic_databases (id) ON DELETE SET NULL,
    type         text        NOT NULL,
    severity     text        NOT NULL DEFAULT 'info' CHECK (severity IN ('info', 'warning', 'error')),
    message      text        NOT NULL,
    details      jsonb       NOT NULL DEFAULT '{}',
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX events_account_created_idx ON events (account_id, created_at DESC, id DESC);

-- Links between source records and the amoCRM entities they became.
-- content_hash skips unchanged records; source_version rejects stale ones.
CREATE TABLE entity_links (
    id              bigserial   PRIMARY KEY,
    account_id      bigint      NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    database_id     bigint      NOT NULL REFERENCES clinic_databases (id) ON DELETE CASCADE,
    entity_type     text        NOT NULL CHECK (entity_type IN ('patient', 'appointment')),
    source_id       text        NOT NULL,
    crm_entity_type text        NOT NULL CHECK (crm_entity_type IN ('contact', 'lead')),
    crm_id          bigint,
    content_hash    bytea,
    source_version  bigint      NOT NULL DEFAULT 0,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (database_id, entity_type, source_id)
);
CREATE INDEX entity_links_crm_idx ON entity_links (account_id, crm_entity_type, crm_id);

-- Connector batches already accepted, so a resent batch is acknowledged, not re-applied.
CREATE TABLE ingested_batches (
    database_id  bigint      NOT NULL REFERENCES clinic_databases (id) ON DELETE CASCADE,
    batch_id     text        NOT NULL,
    records      integer     NOT NULL DEFAULT 0,
    received_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (database_id, batch_id)
);

-- Transactional outbox: rows written with a state change and relayed to asynq
-- (task id = outbox id), because asynq cannot enqueue inside a transaction.
CREATE TABLE outbox (
    id             bigserial   PRIMARY KEY,
    task_type      text        NOT NULL,
    payload        jsonb       NOT NULL DEFAULT '{}',
    queue          text        NOT NULL DEFAULT 'default',
    created_at     timestamptz NOT NULL DEFAULT now(),
    dispatched_at  timestamptz
);
CREATE INDEX outbox_pending_idx ON outbox (id) WHERE dispatched_at IS NULL;

-- +goose Down
DROP TABLE outbox;
DROP TABLE ingested_batches;
DROP TABLE entity_links;
DROP TABLE events;
DROP TABLE inbound_events;
DROP TABLE payments;
DROP TABLE subscriptions;
DROP TABLE account_settings;
DROP TABLE clinic_databases;
DROP TABLE amo_users;
DROP TABLE amo_tokens;
DROP TABLE accounts;
