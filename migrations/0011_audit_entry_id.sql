-- An audit entry written by a retrying writer (a room's outbox: a flush it gave up on may still have committed)
-- carries an id of its own, so a second append of the same entry is recognised and skipped (src/db/queries/audit.ts).
-- Entries of writers that never retry (the Worker's routes, the jobs) have none. The hash does not cover it, so
-- every existing chain verifies as before; the append-only trigger of 0008 does not list it, so a trigger of its own
-- keeps it from changing.

ALTER TABLE audit_log ADD COLUMN IF NOT EXISTS entry_id uuid;
CREATE UNIQUE INDEX IF NOT EXISTS audit_log_entry_id_key ON audit_log (entry_id);

CREATE OR REPLACE FUNCTION audit_log_entry_id_fixed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.entry_id IS DISTINCT FROM OLD.entry_id THEN
    RAISE EXCEPTION 'audit_log is append-only: entry_id cannot change (id %)', OLD.id USING ERRCODE = 'insufficient_privilege';
  END IF;
  RETURN NEW;
END
$$;

DROP TRIGGER IF EXISTS audit_log_entry_id_fixed ON audit_log;
CREATE TRIGGER audit_log_entry_id_fixed BEFORE UPDATE ON audit_log
  FOR EACH ROW EXECUTE FUNCTION audit_log_entry_id_fixed();
