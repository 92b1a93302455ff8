import { sql } from "drizzle-orm";
import type { Db } from "../client";

/** What an anchor records of a chain (src/jobs/audit-anchor.ts): its newest entry when the job last ran. */
export interface Anchor {
  id: number;
  hash: string;
}

/** The newest entry of one audit chain (`conversationId` null: the global chain) as an anchor records it. */
export interface ChainHead {
  conversationId: string | null;
  id: number;
  hash: string;
}

/** Where Postgres's transactions stood when a statement began (xid8 values, as decimal text: they exceed 2^53). */
export interface XidHorizon {
  /** The oldest transaction still in progress (or the next one to start, when none is). */
  xmin: string;
  /** The next transaction id: every transaction that had one before the statement is below it. */
  xmax: string;
}

/** The horizon of a statement's snapshot, on its own. */
export async function xidHorizon(db: Db): Promise<XidHorizon> {
  const result = await db.execute<{ xmin: string; xmax: string }>(
    sql`SELECT pg_snapshot_xmin(pg_current_snapshot())::text AS xmin, pg_snapshot_xmax(pg_current_snapshot())::text AS xmax`,
  );
  return { xmin: String(result.rows[0].xmin), xmax: String(result.rows[0].xmax) };
}

/**
 * The newest entry of each chain among the next `limit` entries after `afterId` (ids are not dense: a skipped
 * duplicate append still takes a sequence value, so the batch is counted in rows, not in an id range), and the
 * horizon of the snapshot that read them. With `upTo` and `since` (a re-scan, audit-anchor.ts): only entries up to
 * `upTo` written by transactions that were not yet over at horizon `since.xmin`, i.e. the ones a scan that read at or
 * after `since` may not have seen. Transaction ids are compared modulo 2^32 (the xmin column is a 32-bit xid), which
 * holds for any two within two billion transactions of each other; a frozen row may come along, which costs a row.
 */
export async function chainHeadsAfter(
  db: Db,
  afterId: number,
  limit: number,
  rescan?: { upTo: number; since: string },
): Promise<{ heads: ChainHead[]; horizon: XidHorizon }> {
  const filter = rescan
    ? sql`AND id <= ${rescan.upTo} AND (xmin::text::bigint - (${rescan.since}::bigint % 4294967296) + 4294967296) % 4294967296 < 2147483648`
    : sql``;
  const result = await db.execute<{ conversation_id: string | null; id: string | number | null; hash: string | null; xmin: string; xmax: string }>(sql`
    WITH batch AS (SELECT conversation_id, id, hash FROM audit_log WHERE id > ${afterId} ${filter} ORDER BY id LIMIT ${limit}),
         heads AS (SELECT DISTINCT ON (conversation_id) conversation_id, id, hash FROM batch ORDER BY conversation_id, id DESC)
    SELECT h.conversation_id, h.id, h.hash, s.xmin, s.xmax
      FROM (SELECT pg_snapshot_xmin(pg_current_snapshot())::text AS xmin, pg_snapshot_xmax(pg_current_snapshot())::text AS xmax) s
      LEFT JOIN heads h ON true`);
  const first = result.rows[0];
  const horizon = { xmin: String(first?.xmin ?? "0"), xmax: String(first?.xmax ?? "0") };
  const heads = result.rows.flatMap((r) => (r.id === null || r.hash === null ? [] : [{ conversationId: r.conversation_id, id: Number(r.id), hash: r.hash }]));
  return { heads, horizon };
}

/** Which of these entries are still in the log as anchored: same id, same hash, same chain. */
export async function anchoredEntriesPresent(db: Db, heads: ChainHead[]): Promise<Set<number>> {
  if (heads.length === 0) return new Set();
  const result = await db.execute<{ id: string | number }>(sql`
    SELECT a.id FROM audit_log a
      JOIN json_to_recordset(${JSON.stringify(heads.map((h) => ({ id: h.id, hash: h.hash, conversation_id: h.conversationId })))}::json)
           AS u(id bigint, hash text, conversation_id uuid)
        ON a.id = u.id AND a.hash = u.hash AND a.conversation_id IS NOT DISTINCT FROM u.conversation_id`);
  return new Set(result.rows.map((r) => Number(r.id)));
}
