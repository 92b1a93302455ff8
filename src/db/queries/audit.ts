import { eq, isNull, sql, type SQL } from "drizzle-orm";
import { sha256Hex } from "../../lib/ids";
import type { AnyDb, Db } from "../client";
import { auditLog } from "../schema";

export interface AuditEntry {
  conversationId: string | null;
  actorId: string | null;
  action: string;
  targetId?: string | null;
  details?: Record<string, unknown>;
  /** ISO time of the event (defaults to now); stored as created_at, which the hash covers. */
  at?: string;
  /**
   * For writers that may append the same entry again (a room's outbox retries a flush that timed out, and that
   * flush may have committed after all): an entry whose id is already in the log is skipped. Not hashed.
   */
  entryId?: string;
}

type Tx = Parameters<Parameters<Db["transaction"]>[0]>[0];

/** JSON with object keys sorted: jsonb does not keep key order, and the hash must survive a round trip. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`;
  }
  return JSON.stringify(value ?? null);
}

/** The canonical text a row's hash covers; verification recomputes it from the stored row. */
export function auditHashInput(prevHash: string | null, e: Required<Omit<AuditEntry, "targetId" | "entryId">> & { targetId: string | null }): string {
  return canonicalJson([prevHash, e.conversationId, e.actorId, e.action, e.targetId, e.details, e.at]);
}

/**
 * The row of `e` chained after `prevHash`. `null` starts a chain: a conversation's first entry, written with the
 * conversation itself (no other writer can know its id yet, so that needs neither the lock nor a read).
 */
export async function chained(prevHash: string | null, e: AuditEntry) {
  const full = {
    conversationId: e.conversationId,
    actorId: e.actorId,
    action: e.action,
    targetId: e.targetId ?? null,
    details: e.details ?? {},
    // Normalised, so the hash matches what created_at reads back as (millisecond ISO).
    at: new Date(e.at ?? Date.now()).toISOString(),
  };
  const hash = await sha256Hex(auditHashInput(prevHash, full));
  const { at, ...columns } = full;
  return { ...columns, createdAt: new Date(at), prevHash, hash, entryId: e.entryId ?? null };
}

/** One entry `auditInsertEach` may write: written when `key` is among its source's keys. */
export interface AuditCandidate {
  key: string;
  entry: Omit<AuditEntry, "conversationId" | "entryId">;
}

/**
 * An INSERT into one chain, for a writer that records its change in the statement that makes it (data-modifying
 * CTEs: one round trip, atomic without BEGIN/COMMIT). `chain` is the conversation id as SQL (a parameter, or a value
 * the statement finds), or NULL for the global chain; `source` yields a text column `key`, and each candidate whose key is
 * there is written, in the order given (none: nothing is written). `audit_chain_head` (migration 0013) takes the
 * chain's lock, the one appendAudit takes, and reads the last hash after it, once per statement; the entries are
 * then linked to it and to each other in SQL (recursively: each hash covers the one before). Everything after the
 * previous hash and the conversation id in the hash input is fixed here, so every hash is the one `chained`
 * computes and the verifier recomputes. One such INSERT per chain and statement: a second head read in the same
 * statement need not see the first one's entries, which would fork the chain.
 */
export function auditInsertEach(chain: SQL, source: SQL, candidates: AuditCandidate[]): SQL {
  const rows = candidates.map(({ key, entry }, i) => {
    const e = { actorId: entry.actorId, action: entry.action, targetId: entry.targetId ?? null, details: entry.details ?? {}, at: new Date(entry.at ?? Date.now()).toISOString() };
    // auditHashInput's array less its first two items (previous hash, conversation id): ",actor,...,at]".
    const rest = "," + canonicalJson([e.actorId, e.action, e.targetId, e.details, e.at]).slice(1);
    return sql`(${i}::int, ${key}::text, ${e.actorId}::uuid, ${e.action}::text, ${e.targetId}::text, ${JSON.stringify(e.details)}::jsonb, ${e.at}::timestamptz, ${rest}::text)`;
  });
  const hashAfter = (prev: SQL) =>
    sql`encode(sha256(convert_to('[' || coalesce(to_json(${prev})::text, 'null') || ',' || coalesce(to_json(e.conversation_id::text)::text, 'null') || e.rest, 'UTF8')), 'hex')`;
  return sql`INSERT INTO audit_log (conversation_id, actor_id, action, target_id, details, created_at, prev_hash, hash)
    WITH RECURSIVE
      e AS (
        SELECT row_number() OVER (ORDER BY v.ord) AS n, (${chain})::uuid AS conversation_id, v.*
        FROM (VALUES ${sql.join(rows, sql`, `)}) AS v (ord, key, actor_id, action, target_id, details, created_at, rest)
        WHERE v.key IN (SELECT s.key FROM ${source} s)
      ),
      link (n, prev_hash, hash) AS (
        SELECT e.n, h.head, ${hashAfter(sql`h.head`)}
        FROM e CROSS JOIN LATERAL (SELECT audit_chain_head(e.conversation_id) AS head) h WHERE e.n = 1
        UNION ALL
        SELECT e.n, link.hash, ${hashAfter(sql`link.hash`)} FROM link JOIN e ON e.n = link.n + 1
      )
    SELECT e.conversation_id, e.actor_id, e.action, e.target_id, e.details, e.created_at, link.prev_hash, link.hash
    FROM e JOIN link ON link.n = e.n`;
}

/**
 * Runs `change` (an INSERT, UPDATE or DELETE with RETURNING) and records `entry` in the same statement when the change
 * touched a row (`auditInsertEach` for one entry, in its conversation's chain or the global one): one round trip,
 * atomic without BEGIN/COMMIT. Answers how many rows the change touched (0: nothing written, no entry).
 */
export async function auditedChange(db: AnyDb, change: SQL, e: AuditEntry): Promise<number> {
  const { conversationId, entryId: _, ...entry } = e;
  const chain = conversationId === null ? sql`NULL` : sql`${conversationId}`;
  const audit = auditInsertEach(chain, sql`(SELECT 'entry' AS key FROM c LIMIT 1)`, [{ key: "entry", entry }]);
  const result = await db.execute<{ n: number }>(sql`WITH c AS (${change}), a AS (${audit}) SELECT count(*)::int AS n FROM c`);
  return Number(result.rows[0]?.n ?? 0);
}

/**
 * Appends entries to the append-only audit log, each chained by hash to the previous entry of its conversation
 * (or of the global chain for entries without one). A transaction-scoped advisory lock per chain keeps
 * concurrent writers (the room, Worker routes) from forking a chain.
 */
export async function appendAudit(db: Db | Tx, entries: AuditEntry[]): Promise<void> {
  if (entries.length === 0) return;
  const run = async (tx: Tx) => {
    const byChain = new Map<string | null, AuditEntry[]>();
    for (const e of entries) byChain.set(e.conversationId, [...(byChain.get(e.conversationId) ?? []), e]);
    for (const [chain, list] of byChain) {
      await tx.execute(sql`SELECT pg_advisory_xact_lock(hashtext(${"audit:" + (chain ?? "global")}))`);
      // Under the lock, one read: the chain's last hash and which of these entries a flush before this one wrote.
      const ids = list.flatMap((e) => (e.entryId ? [e.entryId] : []));
      const written = ids.length
        ? sql`(SELECT array_agg(entry_id::text) FROM audit_log WHERE entry_id IN (${sql.join(ids.map((id) => sql`${id}::uuid`), sql`, `)}))`
        : sql`NULL::text[]`;
      const chainOf = chain ? eq(auditLog.conversationId, chain) : isNull(auditLog.conversationId);
      const [last] = (
        await tx.execute<{ hash: string | null; written: string[] | null }>(
          sql`SELECT (SELECT hash FROM audit_log WHERE ${chainOf} ORDER BY id DESC LIMIT 1) AS hash, ${written} AS written`,
        )
      ).rows;
      const seen = new Set(last?.written ?? []);
      let prev = last?.hash ?? null;
      for (const e of list) {
        if (e.entryId && seen.has(e.entryId)) continue;
        const row = await chained(prev, e);
        await tx.insert(auditLog).values(row);
        prev = row.hash;
      }
    }
  };
  if ("transaction" in db && typeof db.transaction === "function" && !("rollback" in db)) {
    await (db as Db).transaction(run);
  } else {
    await run(db as Tx);
  }
}
