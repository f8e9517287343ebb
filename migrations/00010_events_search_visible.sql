-- +goose NO TRANSACTION
-- The event log's text filter matches only what the user sees, the message;
-- searching details::text matched hidden keys and ids ("account_id" found
-- every event). The trigram index moves to the message alone.
-- CONCURRENTLY keeps events writable while the index builds on a large log,
-- so this file runs outside a transaction; each statement is safe to repeat
-- (an index left INVALID by an interrupted build is dropped first).

-- +goose Up
DROP INDEX CONCURRENTLY IF EXISTS events_message_trgm_idx;
CREATE INDEX CONCURRENTLY events_message_trgm_idx ON events USING gin (message gin_trgm_ops);
DROP INDEX CONCURRENTLY IF EXISTS events_search_trgm_idx;

-- +goose Down
DROP INDEX CONCURRENTLY IF EXISTS events_search_trgm_idx;
CREATE INDEX CONCURRENTLY events_search_trgm_idx ON events
    USING gin ((message || ' ' || details::text) gin_trgm_ops);
DROP INDEX CONCURRENTLY IF EXISTS events_message_trgm_idx;
