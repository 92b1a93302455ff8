import type { Redis } from "@upstash/redis/cloudflare";

/**
 * Registry of rooms whose outbox could not be flushed to Postgres: a Redis sorted set, member = conversation id,
 * score = when the room first failed (ms). Redis, not Postgres, because the registry must be writable exactly when
 * Postgres is the thing failing.
 *
 * The room's side (see the report / README): on the first failed flush of a failure streak it calls
 * `noteOutboxPending`; after a flush that leaves its outbox empty following a failure it calls `clearOutboxPending`.
 * Both are best effort (waitUntil); the sweeper (src/jobs/maintenance.ts) copes with stale entries either way: it asks
 * each registered room for its real state and drops the entries of rooms that have nothing pending.
 */
export const OUTBOX_PENDING_KEY = "ops:outbox:pending";

export async function noteOutboxPending(redis: Pick<Redis, "zadd">, conversationId: string, nowMs = Date.now()): Promise<void> {
  await redis.zadd(OUTBOX_PENDING_KEY, { nx: true }, { score: nowMs, member: conversationId });
}

export async function clearOutboxPending(redis: Pick<Redis, "zrem">, conversationId: string, key = OUTBOX_PENDING_KEY): Promise<void> {
  await redis.zrem(key, conversationId);
}

/** A place in the registry's order (score, then member, as Redis orders it). */
export interface RegistryPosition {
  score: number;
  member: string;
}

/**
 * Rooms registered at or before `olderThanMs`, oldest first, after `after` (a position a previous page ended on),
 * at most `limit`. Members that share a score are read past by offset (rare: scores are milliseconds).
 */
export async function pendingRooms(
  redis: Pick<Redis, "zrange">,
  olderThanMs: number,
  limit: number,
  options: { after?: RegistryPosition | null; key?: string } = {},
): Promise<RegistryPosition[]> {
  const after = options.after ?? null;
  const out: RegistryPosition[] = [];
  for (let offset = 0; out.length < limit; offset += limit) {
    const flat = await redis.zrange<(string | number)[]>(options.key ?? OUTBOX_PENDING_KEY, after ? after.score : 0, olderThanMs, {
      byScore: true,
      withScores: true,
      offset,
      count: limit,
    });
    for (let i = 0; i + 1 < flat.length && out.length < limit; i += 2) {
      const entry = { member: String(flat[i]), score: Number(flat[i + 1]) };
      if (after && entry.score === after.score && entry.member <= after.member) continue;
      out.push(entry);
    }
    if (flat.length < 2 * limit) break;
  }
  return out;
}
