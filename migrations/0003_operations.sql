-- Operations (issue [operations]): indexes for the purge job. Tables used by the jobs (message_archive, audit_log,
-- job_runs, conversations.retention_days / legal_hold / archived_up_to_seq) exist since 0001.
-- Partial indexes stay tiny in steady state: they only hold rows the purge job still has to visit.
-- Portable between PostgreSQL 15 and 18. On a large production table build them by hand first with
-- CREATE INDEX CONCURRENTLY (same names): this file then finds them (IF NOT EXISTS) and takes no long lock.

-- Soft-deleted messages whose content is still present: the room writes "" on delete, so normally empty;
-- a safety net for rows written by any other path.
CREATE INDEX IF NOT EXISTS messages_deleted_content_idx ON messages (deleted_at)
  WHERE deleted_at IS NOT NULL AND content <> '';
CREATE INDEX IF NOT EXISTS message_archive_deleted_content_idx ON message_archive (deleted_at)
  WHERE deleted_at IS NOT NULL AND content <> '';

-- Delete events whose previous content has not been redacted yet, oldest first.
CREATE INDEX IF NOT EXISTS audit_log_unredacted_deletes_idx ON audit_log (created_at, id)
  WHERE action = 'message.deleted' AND NOT (details ? 'redacted');
