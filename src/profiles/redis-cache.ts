import type { Redis } from "@upstash/redis/cloudflare";
import { createRedis, withTimeout } from "../lib/redis";
import { decodeEntry, encodeEntry, redisExpirySeconds, type CacheEntry, type CachePolicy } from "./cache-entry";
import type { ProfileRef } from "./keys";

export interface RedisConnection {
  url: string;
  token: string;
}

/**
 * The Redis layer: one MGET per read, one pipeline per batch of writes, one DEL per invalidation. Every wait is capped,
 * because a slow cache must cost less than the service call it is meant to save.
 */
export class ProfileRedisCache {
  private readonly redis: Redis;

  constructor(
    connection: RedisConnection,
    private readonly timeoutMs: number,
  ) {
    this.redis = createRedis({ UPSTASH_REDIS_REST_URL: connection.url, UPSTASH_REDIS_REST_TOKEN: connection.token });
  }

  /** Entries by key; an unusable value is simply absent. Rejects when Redis failed (the caller treats all as misses). */
  async read(refs: ProfileRef[]): Promise<Map<string, CacheEntry>> {
    const found = new Map<string, CacheEntry>();
    if (refs.length === 0) return found;
    const values = await withTimeout(this.redis.mget<unknown[]>(...refs.map((r) => r.key)), this.timeoutMs, "redis mget");
    if (!Array.isArray(values) || values.length !== refs.length) throw new Error("redis mget: unexpected reply shape");
    refs.forEach((ref, i) => {
      const entry = values[i] === null || values[i] === undefined ? undefined : decodeEntry(values[i], ref);
      if (entry) found.set(ref.key, entry);
    });
    return found;
  }

  async write(items: { ref: ProfileRef; entry: CacheEntry }[], policy: CachePolicy): Promise<void> {
    if (items.length === 0) return;
    const pipeline = this.redis.pipeline();
    for (const { ref, entry } of items) pipeline.set(ref.key, encodeEntry(entry), { ex: redisExpirySeconds(entry, policy) });
    // Writes run off the request path; a looser cap only bounds how long they may linger.
    await withTimeout(pipeline.exec(), Math.max(this.timeoutMs, 1000), "redis pipeline");
  }

  /** Number of keys that existed. */
  async remove(refs: ProfileRef[]): Promise<number> {
    if (refs.length === 0) return 0;
    const removed = await withTimeout(this.redis.del(...refs.map((r) => r.key)), this.timeoutMs, "redis del");
    if (typeof removed !== "number") throw new Error("redis del: unexpected reply");
    return removed;
  }
}
