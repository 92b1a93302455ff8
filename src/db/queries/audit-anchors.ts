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

/**
 * The newest entry of each chain among the next `limit` entries after `afterId` (ids are not dense: a skipped
 * duplicate append still takes a sequence value, so the batch is counted in rows, not in an id range).
 */
export async function chainHeadsAfter(db: Db, afterId: number, limit: number): Promise<ChainHead[]> {
  const result = await db.execute<{ conversation_id: string | null; id: string | number; hash: string }>(sql`
    SELECT DISTINCT ON (conversation_id) conversation_id, id, hash
      FROM (SELECT conversation_id, id, hash FROM audit_log WHERE id > ${afterId} ORDER BY id LIMIT ${limit}) batch
     ORDER BY conversation_id, id DESC`);
  return result.rows.map((r) => ({ conversationId: r.conversation_id, id: Number(r.id), hash: r.hash }));
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
