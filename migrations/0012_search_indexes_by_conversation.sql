-- A search in one conversation read every conversation's matches. The full-text and trigram GIN indexes were
-- global: Postgres ANDed a term's matches in the whole table with the conversation's rows, so the cost grew with
-- the term's frequency across all conversations, not in this one. With conversation_id as the first column
-- (btree_gin), the index intersects the two inside itself and costs about min(conversation, term).
-- Measured on PostgreSQL 15, 5.5 million rows (30 conversations of 100,000, 3,000 of 500, 1,000 of 1,000 with
-- "hello" in every row), Postgres execution time:
--   "needle" (1% of rows) in a 500-row conversation: 13.1-14.0 ms -> 0.77-0.90 ms
--   "99999" (one row) in a 100,000-row conversation:  5.7-7.4 ms -> 1.0-1.1 ms
--   global search (no conversation): the new indexes serve it as the old did (GIN uses any subset of its columns)
-- Cost: single-row inserts (pgbench, 20 s, one client) 0.37 -> 0.415 ms on average, p99.9 7.0 -> 9.7 ms.
-- A large production table: build the two indexes first with CREATE INDEX CONCURRENTLY under these names (this
-- migration then only drops the old ones); inside the migration's transaction the build blocks writes to messages.
CREATE EXTENSION IF NOT EXISTS btree_gin;
CREATE INDEX IF NOT EXISTS messages_conversation_search_idx ON messages
  USING gin (conversation_id, search) WITH (gin_pending_list_limit = 256);
CREATE INDEX IF NOT EXISTS messages_conversation_trgm_idx ON messages
  USING gin (conversation_id, content gin_trgm_ops) WITH (gin_pending_list_limit = 256);
DROP INDEX IF EXISTS messages_search_idx;
DROP INDEX IF EXISTS messages_content_trgm_idx;
