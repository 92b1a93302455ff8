import { eq, isNull, sql, type SQL } from "drizzle-orm";
import { sha256Hex } from "../../lib/ids";
import type { Db } from "../client";
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

/**
 * An INSERT of `e` into its conversation's chain, for a writer that records its change in the statement that makes
 * it (data-modifying CTEs: one round trip, atomic without BEGIN/COMMIT). `source` yields at most one row (none:
 * nothing is written, and the chain's lock is not taken); one entry per statement, because a second head read in
 * the same statement need not see the first entry, which would fork the chain. `audit_chain_head` (migration 0013)
 * takes the chain's lock, the one appendAudit takes, and reads the last hash after it; Postgres then puts that hash in
 * front of the rest of the hash input, which is fixed here, so the hash is the one `chained` computes and the
 * verifier recomputes.
 */
export function auditInsertFrom(source: SQL, e: AuditEntry & { conversationId: string }): SQL {
  const full = {
    conversationId: e.conversationId,
    actorId: e.actorId,
    action: e.action,
    targetId: e.targetId ?? null,
    details: e.details ?? {},
    at: new Date(e.at ?? Date.now()).toISOString(),
  };
  // The canonical input with a null previous hash, less its opening "[null": what follows the previous hash.
  const input = auditHashInput(null, full);
  const rest = input.slice("[null".length);
  const head = sql`audit_chain_head(${full.conversationId}::uuid)`;
  return sql`INSERT INTO audit_log (conversation_id, actor_id, action, target_id, details, created_at, prev_hash, hash)
    SELECT ${full.conversationId}::uuid, ${full.actorId}::uuid, ${full.action}, ${full.targetId}, ${JSON.stringify(full.details)}::jsonb,
           ${full.at}::timestamptz, h.head,
           encode(sha256(convert_to('[' || coalesce(to_json(h.head)::text, 'null') || ${rest}::text, 'UTF8')), 'hex')
    FROM ${source} CROSS JOIN LATERAL (SELECT ${head} AS head) h`;
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
