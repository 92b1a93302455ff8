import type { Redis } from "@upstash/redis/cloudflare";
import { createRedis, withTimeout } from "../lib/redis";
import {
  decodeEntry,
  encodeEntry,
  generationExpirySeconds,
  redisExpirySeconds,
  type CacheEntry,
  type CachePolicy,
} from "./cache-entry";
import { generationKey, type ProfileRef } from "./keys";

export interface RedisConnection {
  url: string;
  token: string;
}

/** Generations by profile key: null when the id was never invalidated (or its generation has expired). */
export type Generations = Map<string, string | null>;

export interface CacheRead {
  /** Usable entries by key: decodable and written under the id's current generation. */
  entries: Map<string, CacheEntry>;
  /** Every read ref's current generation: what a write-back of a fetch started after this read must carry. */
  generations: Generations;
}

/**
 * The Redis layer: one MGET per read (the entries and their ids' generations together), one pipeline per batch of
 * writes, one transaction per invalidation. Every wait is capped, because a slow cache must cost less than the
 * service call it is meant to save.
 */
export class ProfileRedisCache {
  private readonly redis: Redis;

  constructor(
    connection: RedisConnection,
    private readonly timeoutMs: number,
  ) {
    this.redis = createRedis({ UPSTASH_REDIS_REST_URL: connection.url, UPSTASH_REDIS_REST_TOKEN: connection.token });
  }

  /** Rejects when Redis failed (the caller treats all as misses, and has no generation to write back under). */
  async read(refs: ProfileRef[]): Promise<CacheRead> {
    const read: CacheRead = { entries: new Map(), generations: new Map() };
    if (refs.length === 0) return read;
    const keys = [...refs.map((r) => r.key), ...refs.map(generationKey)];
    const values = await this.mget(keys);
    refs.forEach((ref, i) => {
      const generation = asGeneration(values[refs.length + i]);
      read.generations.set(ref.key, generation);
      const raw = values[i];
      const entry = raw === null || raw === undefined ? undefined : decodeEntry(raw, ref);
      // Fetched under another generation: an invalidation came after the fetch asked the service.
      if (entry && (entry.generation ?? null) === generation) read.entries.set(ref.key, entry);
    });
    return read;
  }

  /** Only the generations, for a refetch that reads no entries first (the refresh job). */
  async generations(refs: ProfileRef[]): Promise<Generations> {
    const out: Generations = new Map();
    if (refs.length === 0) return out;
    const values = await this.mget(refs.map(generationKey));
    refs.forEach((ref, i) => out.set(ref.key, asGeneration(values[i])));
    return out;
  }

  async write(items: { ref: ProfileRef; entry: CacheEntry }[], policy: CachePolicy): Promise<void> {
    if (items.length === 0) return;
    const pipeline = this.redis.pipeline();
    for (const { ref, entry } of items) pipeline.set(ref.key, encodeEntry(entry), { ex: redisExpirySeconds(entry, policy) });
    // Writes run off the request path; a looser cap only bounds how long they may linger.
    await withTimeout(pipeline.exec(), Math.max(this.timeoutMs, 1000), "redis pipeline");
  }

  /**
   * Starts a new generation for each id and deletes its entry, in one transaction: a write-back of an answer fetched
   * before this lands under the old generation, which no reader accepts. Resolves to the number of entries that existed.
   */
  async invalidate(refs: ProfileRef[], policy: CachePolicy): Promise<number> {
    if (refs.length === 0) return 0;
    const generation = crypto.randomUUID();
    const tx = this.redis.multi();
    for (const ref of refs) tx.set(generationKey(ref), generation, { ex: generationExpirySeconds(policy) });
    tx.del(...refs.map((r) => r.key));
    const replies = await withTimeout(tx.exec<unknown[]>(), this.timeoutMs, "redis invalidation");
    const removed = Array.isArray(replies) ? replies[replies.length - 1] : undefined;
    if (typeof removed !== "number") throw new Error("redis invalidation: unexpected reply");
    return removed;
  }

  private async mget(keys: string[]): Promise<unknown[]> {
    const values = await withTimeout(this.redis.mget<unknown[]>(...keys), this.timeoutMs, "redis mget");
    if (!Array.isArray(values) || values.length !== keys.length) throw new Error("redis mget: unexpected reply shape");
    return values;
  }
}

/** The Upstash client may hand a stored string back parsed (a number, say): anything but a non-empty string is none. */
function asGeneration(raw: unknown): string | null {
  if (typeof raw === "string" && raw !== "") return raw;
  if (typeof raw === "number") return String(raw);
  return null;
}
