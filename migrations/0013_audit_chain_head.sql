-- The head of an audit chain, read under the chain's lock, for a writer that appends its entry in the same statement
-- as the change it records (a group rename, a rejoin, a business's admins and hours: src/db/queries/audit.ts
-- auditInsertEach): one round trip instead of a transaction's four or more. NULL names the global chain, as a NULL
-- conversation_id does in audit_log.
--
-- Why a function: under READ COMMITTED a statement reads with the snapshot taken when it began. A statement that
-- took the chain's lock and then read the chain's last hash itself could miss an entry committed between its start
-- and the lock, and fork the chain. A VOLATILE PL/pgSQL function takes a new snapshot for each query it runs, so
-- the read below sees every entry committed before the lock was granted. The lock is the one appendAudit takes
-- (src/db/queries/audit.ts: pg_advisory_xact_lock(hashtext('audit:' || conversation id, or 'global'))), held until
-- the caller's transaction, the statement, ends. Portable between PostgreSQL 15 and 18 (PGlite).

CREATE OR REPLACE FUNCTION audit_chain_head(chain uuid) RETURNS text LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  PERFORM pg_advisory_xact_lock(hashtext('audit:' || coalesce(chain::text, 'global')));
  IF chain IS NULL THEN
    RETURN (SELECT hash FROM audit_log WHERE conversation_id IS NULL ORDER BY id DESC LIMIT 1);
  END IF;
  RETURN (SELECT hash FROM audit_log WHERE conversation_id = chain ORDER BY id DESC LIMIT 1);
END
$$;
