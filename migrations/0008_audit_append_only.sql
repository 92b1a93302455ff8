-- Audit log append-only in the database itself, not only by convention of the application code: DELETE and
-- TRUNCATE are refused, and so is every UPDATE except the purge job's redaction (src/jobs/purge.ts,
-- redactMessageHistory), which rewrites `details` of a `message.edited` / `message.deleted` entry by removing
-- `previousContent` and adding `redacted` = {fields: ["previousContent"], ...}, and changes nothing else. The
-- hash chain (src/jobs/audit-verify.ts) still detects tampering by anyone able to disable the trigger (the owner).
-- Portable between PostgreSQL 15 and 18.

CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' OR TG_OP = 'TRUNCATE' THEN
    RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
  END IF;
  IF NEW.id IS DISTINCT FROM OLD.id
     OR NEW.conversation_id IS DISTINCT FROM OLD.conversation_id
     OR NEW.actor_id IS DISTINCT FROM OLD.actor_id
     OR NEW.action IS DISTINCT FROM OLD.action
     OR NEW.target_id IS DISTINCT FROM OLD.target_id
     OR NEW.created_at IS DISTINCT FROM OLD.created_at
     OR NEW.prev_hash IS DISTINCT FROM OLD.prev_hash
     OR NEW.hash IS DISTINCT FROM OLD.hash
     OR OLD.action NOT IN ('message.edited', 'message.deleted')
     OR NOT (OLD.details ? 'previousContent')
     OR OLD.details ? 'redacted'
     OR NEW.details ? 'previousContent'
     OR NOT (NEW.details ? 'redacted')
     OR (NEW.details->'redacted'->'fields') IS DISTINCT FROM '["previousContent"]'::jsonb
     OR (NEW.details - 'redacted') IS DISTINCT FROM (OLD.details - 'previousContent')
  THEN
    RAISE EXCEPTION 'audit_log is append-only: only the redaction of previousContent may update an entry (id %)', OLD.id
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  RETURN NEW;
END
$$;

DROP TRIGGER IF EXISTS audit_log_append_only ON audit_log;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
  FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();

DROP TRIGGER IF EXISTS audit_log_no_truncate ON audit_log;
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
  FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
