-- The head of a conversation's audit chain, read under the chain's lock, for a writer that appends its entry in the
-- same statement as the change it records (a group rename, src/db/queries/conversations.ts): one round trip
-- instead of a transaction's four or more.
--
-- Why a function: under READ COMMITTED a statement reads with the snapshot taken when it began. A statement that
-- took the chain's lock and then read the chain's last hash itself could miss an entry committed between its start
-- and the lock, and fork the chain. A VOLATILE PL/pgSQL function takes a new snapshot for each query it runs, so
-- the read below sees every entry committed before the lock was granted. The lock is the one appendAudit takes
-- (src/db/queries/audit.ts: pg_advisory_xact_lock(hashtext('audit:' || conversation id))), held until the caller's
-- transaction, the statement, ends. Portable between PostgreSQL 15 and 18 (PGlite).

CREATE OR REPLACE FUNCTION audit_chain_head(chain uuid) RETURNS text LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  PERFORM pg_advisory_xact_lock(hashtext('audit:' || chain::text));
  RETURN (SELECT hash FROM audit_log WHERE conversation_id = chain ORDER BY id DESC LIMIT 1);
END
$$;
