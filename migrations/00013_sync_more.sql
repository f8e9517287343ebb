-- +goose Up
-- The sync's second slice: adopting contacts that existed before the sync,
-- continuing inbound leads, the no-show grace timer, manual moves and
-- deleted receptions.

-- continue_inbound_leads: an open lead outside our pipelines (a call, a site
-- form) created in the last 30 days is continued by the patient's next
-- booked appointment (on by default).
-- contacts_scanned_at: when the account's existing contacts were last read
-- in full (once per import: amoCRM restricts integrations that iterate all
-- data repeatedly); NULL: never.
ALTER TABLE account_settings
    ADD COLUMN continue_inbound_leads boolean NOT NULL DEFAULT true,
    ADD COLUMN contacts_scanned_at    timestamptz;

-- The phones of the account's contacts that carry no patient id, as the
-- full read found them (E.164): the candidates for adoption during an import.
CREATE TABLE sync_contact_phones (
    account_id  bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    phone       text   NOT NULL,
    contact_id  bigint NOT NULL,
    PRIMARY KEY (account_id, phone, contact_id)
);

-- For an appointment link: the patient, the chain's current reception (a
-- move is logged when it changes; a deleted reception finds its lead), the
-- pipeline and stage last written (a manager's move is noticed), and when
-- the grace timer re-evaluates a planned reception (NULL: never).
ALTER TABLE entity_links
    ADD COLUMN patient_id      text,
    ADD COLUMN current_id      text,
    ADD COLUMN crm_pipeline_id bigint,
    ADD COLUMN crm_status_id   bigint,
    ADD COLUMN reevaluate_at   timestamptz;
CREATE INDEX entity_links_reevaluate_idx ON entity_links (reevaluate_at, account_id) WHERE reevaluate_at IS NOT NULL;
CREATE INDEX entity_links_current_idx ON entity_links (database_id, current_id) WHERE current_id IS NOT NULL;

-- +goose Down
DROP INDEX entity_links_current_idx;
DROP INDEX entity_links_reevaluate_idx;
ALTER TABLE entity_links
    DROP COLUMN reevaluate_at, DROP COLUMN crm_status_id, DROP COLUMN crm_pipeline_id,
    DROP COLUMN current_id, DROP COLUMN patient_id;
DROP TABLE sync_contact_phones;
ALTER TABLE account_settings DROP COLUMN contacts_scanned_at, DROP COLUMN continue_inbound_leads;
