-- audit_chain_head (0013) for the global chain too: NULL names it, as a NULL conversation_id does in audit_log. Its
-- lock is the one appendAudit takes for it (src/db/queries/audit.ts: hashtext('audit:global')). Lets a change that
-- is not any conversation's (a business's admins, agents and hours) record itself in the statement that makes it.
-- Before this, a NULL chain took no lock (hashtext(NULL) is NULL) and read no head: nothing called it so.

CREATE OR REPLACE FUNCTION audit_chain_head(chain uuid) RETURNS text LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  PERFORM pg_advisory_xact_lock(hashtext('audit:' || coalesce(chain::text, 'global')));
  IF chain IS NULL THEN
    RETURN (SELECT hash FROM audit_log WHERE conversation_id IS NULL ORDER BY id DESC LIMIT 1);
  END IF;
  RETURN (SELECT hash FROM audit_log WHERE conversation_id = chain ORDER BY id DESC LIMIT 1);
END
$$;
