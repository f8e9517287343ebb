-- +goose Up
-- Outbox task ids unique for all time: a restored or re-created database
-- repeats its bigserial ids, while Redis still remembers the asynq task ids
-- built from them, so new tasks were taken for duplicates and dropped.
-- Each row now carries its own task id (a UUID unless the task has a domain
-- key) and the task's options, so the relay enqueues it exactly as built.
ALTER TABLE outbox
    ADD COLUMN task_id         text,
    ADD COLUMN max_retry       integer NOT NULL DEFAULT 25 CHECK (max_retry >= 0),
    ADD COLUMN timeout_seconds integer NOT NULL DEFAULT 1800 CHECK (timeout_seconds > 0),
    ADD COLUMN retention_seconds integer NOT NULL DEFAULT 86400 CHECK (retention_seconds >= 0);
UPDATE outbox SET task_id = 'outbox:' || gen_random_uuid()::text WHERE task_id IS NULL;
ALTER TABLE outbox ALTER COLUMN task_id SET NOT NULL;
ALTER TABLE outbox ADD CONSTRAINT outbox_task_id_key UNIQUE (task_id);

-- Every (re)install starts a new generation; widget sessions carry the
-- generation they were issued for, so a session from before a reinstall (or
-- an uninstall) no longer opens the account.
ALTER TABLE accounts ADD COLUMN install_seq bigint NOT NULL DEFAULT 1;

-- +goose Down
ALTER TABLE accounts DROP COLUMN install_seq;
ALTER TABLE outbox DROP CONSTRAINT outbox_task_id_key;
ALTER TABLE outbox DROP COLUMN retention_seconds, DROP COLUMN timeout_seconds, DROP COLUMN max_retry, DROP COLUMN task_id;
