import type { Message } from "../protocol/resources";

export interface PageCursor {
  before?: number;
  after?: number;
  limit: number;
}

/**
 * Overlays the room's local rows (pending or just changed: the newest truth) on a page read from Postgres,
 * respecting the cursor: ascending seq, at most `limit`, nearest to the cursor (newest page when none).
 */
export function mergePage(
  pg: { messages: Message[]; hasMore: boolean },
  local: Message[],
  cursor: PageCursor,
): { messages: Message[]; hasMore: boolean } {
  if (local.length === 0) return pg;
  const bySeq = new Map<number, Message>();
  for (const m of pg.messages) bySeq.set(m.seq, m);
  for (const m of local) {
    if (cursor.after !== undefined && m.seq <= cursor.after) continue;
    if (cursor.before !== undefined && m.seq >= cursor.before) continue;
    bySeq.set(m.seq, m);
  }
  const all = [...bySeq.values()].sort((a, b) => a.seq - b.seq);
  const extra = all.length > cursor.limit;
  const messages = cursor.after !== undefined ? all.slice(0, cursor.limit) : all.slice(Math.max(0, all.length - cursor.limit));
  return { messages, hasMore: pg.hasMore || extra };
}
