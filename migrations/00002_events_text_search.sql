-- +goose Up
-- The event log's text filter searches the message and the details together;
-- a trigram index serves ILIKE '%…%' on that one expression.
-- pg_trgm is a trusted extension: the database owner may create it.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX events_search_trgm_idx ON events
    USING gin ((message || ' ' || details::text) gin_trgm_ops);

-- +goose Down
DROP INDEX events_search_trgm_idx;
-- The extension stays: other objects may have come to use it.
