-- The conversation list (src/db/queries/conversations.ts listByCursor / listByPage): the caller's active
-- memberships, newest activity first, keyset on (last_activity, id). Without this index every page joins all of the
-- caller's memberships and sorts them; with it the planner can walk conversations in activity order, probe the
-- participants primary key and stop after one page, and the keyset row comparison is an index condition.
-- IF NOT EXISTS: production may build it first with CREATE INDEX CONCURRENTLY under the same name (no long lock).
CREATE INDEX IF NOT EXISTS conversations_last_activity_idx ON conversations (last_activity DESC, id DESC);
