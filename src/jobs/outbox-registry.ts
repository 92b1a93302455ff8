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

export async function clearOutboxPending(redis: Pick<Redis, "zrem">, conversationId: string): Promise<void> {
  await redis.zrem(OUTBOX_PENDING_KEY, conversationId);
}

/** Rooms registered at least `minAgeMs` ago, oldest first. */
export async function pendingRooms(redis: Pick<Redis, "zrange">, olderThanMs: number, limit: number): Promise<string[]> {
  const members = await redis.zrange<string[]>(OUTBOX_PENDING_KEY, 0, olderThanMs, { byScore: true, offset: 0, count: limit });
  return members.map(String);
}
