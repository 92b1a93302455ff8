import { z } from "zod";
import type { Profile } from "../protocol/resources";
import type { ProfileRef } from "./keys";

/**
 * What the cache stores per id. `profile: null` records that the service answered without this id, so unknown ids
 * do not send every request back to the service.
 */
export interface CacheEntry {
  profile: Profile | null;
  /** Epoch ms of the service answer; freshness is judged from it, not from the Redis expiry. */
  fetchedAt: number;
  /**
   * The invalidation generation read before the service was asked (keys.ts, generationKey); absent when no
   * invalidation had been recorded. Entries whose generation is no longer current are misses.
   */
  generation?: string;
}

export interface CachePolicy {
  /** Logical freshness of a known profile (PROFILE_CACHE_TTL). */
  ttlSeconds: number;
  /** Lifetime of a "service does not know this id" entry. */
  missTtlSeconds: number;
  /**
   * Redis keeps known profiles this many TTLs: past its freshness an entry is refetched, but stays available as the
   * stale copy served while the service is failing.
   */
  keepFactor: number;
  /** Share of the TTL after which an entry is still served but refetched in the background. */
  refreshAheadRatio: number;
}

export const DEFAULT_CACHE_POLICY: Omit<CachePolicy, "ttlSeconds"> = {
  missTtlSeconds: 60,
  keepFactor: 7,
  refreshAheadRatio: 0.8,
};

const storedProfileSchema = z.object({
  id: z.string().min(1),
  name: z.string().min(1),
  avatarUrl: z.string().nullable(),
  kind: z.enum(["user", "business"]),
});

const entrySchema = z.object({
  profile: storedProfileSchema.nullable(),
  fetchedAt: z.number().int().nonnegative(),
  generation: z.string().min(1).max(100).optional(),
});

export function encodeEntry(entry: CacheEntry): string {
  const profile = entry.profile && { id: entry.profile.id, name: entry.profile.name, avatarUrl: entry.profile.avatarUrl, kind: entry.profile.kind };
  return JSON.stringify({ profile, fetchedAt: entry.fetchedAt, generation: entry.generation });
}

/**
 * A cached value back into an entry, or undefined for anything else (garbage, an old format, a profile stored under
 * the wrong key): undefined is a miss. The Upstash client may already have parsed the JSON, so both forms are accepted.
 */
export function decodeEntry(raw: unknown, ref: ProfileRef): CacheEntry | undefined {
  let value = raw;
  if (typeof value === "string") {
    try {
      value = JSON.parse(value) as unknown;
    } catch {
      return undefined;
    }
  }
  const parsed = entrySchema.safeParse(value);
  if (!parsed.success) return undefined;
  const { profile, fetchedAt, generation } = parsed.data;
  if (profile && (profile.kind !== ref.kind || profile.id.toLowerCase() !== ref.id)) return undefined;
  return generation === undefined ? { profile, fetchedAt } : { profile, fetchedAt, generation };
}

export type Freshness = "fresh" | "refresh-ahead" | "expired";

export function freshness(entry: CacheEntry, now: number, policy: CachePolicy): Freshness {
  const lifetimeMs = (entry.profile ? policy.ttlSeconds : policy.missTtlSeconds) * 1000;
  // A clock behind the writer's makes the age negative: that entry is as fresh as it gets.
  const age = Math.max(0, now - entry.fetchedAt);
  if (age >= lifetimeMs) return "expired";
  if (entry.profile && age >= lifetimeMs * policy.refreshAheadRatio) return "refresh-ahead";
  return "fresh";
}

/** How long an entry may still be used as a fresh answer, in ms (for the in-memory layer). */
export function remainingFreshMs(entry: CacheEntry, now: number, policy: CachePolicy): number {
  const lifetimeMs = (entry.profile ? policy.ttlSeconds : policy.missTtlSeconds) * 1000;
  return entry.fetchedAt + lifetimeMs - now;
}

/** Physical Redis expiry: long for known profiles (the stale copy), short for unknown ids. */
export function redisExpirySeconds(entry: CacheEntry, policy: CachePolicy): number {
  return entry.profile ? Math.ceil(policy.ttlSeconds * policy.keepFactor) : policy.missTtlSeconds;
}

// Longer than any read-to-write-back window (service timeout plus the write's cap) by far.
const GENERATION_MARGIN_SECONDS = 3600;

/**
 * How long an invalidation's generation is kept: past the life of every entry written under the generation before
 * it. Once it is gone, entries written under it read as misses (one refetch), never the reverse.
 */
export function generationExpirySeconds(policy: CachePolicy): number {
  return Math.ceil(policy.ttlSeconds * policy.keepFactor) + GENERATION_MARGIN_SECONDS;
}
