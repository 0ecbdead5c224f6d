-- +goose Up
-- Full-text search over messages (searchMessages, db/query/search.sql).
--
-- tsv is the body's words under the 'simple' configuration: lower-cased, neither stemmed nor
-- filtered by a stop-word list, so that every language is searched alike. A generated column is
-- kept by PostgreSQL itself: an edit replaces it with the new body's words, and a deletion
-- (body '') empties it, in the same statement, so no write path can forget it. Adding it
-- rewrites the table.
ALTER TABLE messages ADD COLUMN tsv tsvector GENERATED ALWAYS AS (to_tsvector('simple', body)) STORED;

-- A search either looks its words up in messages_tsv_idx, once for all the viewer's
-- conversations, or, for a common word, walks each conversation newest first on
-- messages_conversation_time_idx and stops at a page's worth of matches.
--
-- fastupdate is off: with it, new entries wait in a pending list that every search reads whole
-- (up to gin_pending_list_limit, 4 MB) and that an unlucky insert flushes at once. Each message
-- insert updates the index instead (its cost is measured in README.md, "Search").
CREATE INDEX messages_tsv_idx ON messages USING gin (tsv) WITH (fastupdate = off);
CREATE INDEX messages_conversation_time_idx ON messages (conversation_id, created_at, id);

-- +goose Down
DROP INDEX messages_conversation_time_idx;
DROP INDEX messages_tsv_idx;
ALTER TABLE messages DROP COLUMN tsv;
