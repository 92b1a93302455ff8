import type { Config } from "../lib/config";
import { createLogger, type Logger } from "../lib/log";
import { flushSoon, metrics } from "../lib/metrics";
import type { Profile } from "../protocol/resources";
import { CircuitBreaker, sharedBreaker, type BreakerSettings } from "./breaker";
import { DEFAULT_CACHE_POLICY, freshness, remainingFreshMs, type CacheEntry, type CachePolicy } from "./cache-entry";
import { profileKey, profileRef, refsOf, type ProfileRef } from "./keys";
import { MemoryCache, type MemoryCacheOptions } from "../lib/memory-cache";
import { placeholderProfile } from "./placeholder";
import { ProfileRedisCache, type CacheRead, type Generations, type RedisConnection } from "./redis-cache";
import { fetchProfileBatch, type BatchOutcome, type ProfileServiceConfig } from "./service-client";
import type { ProfileProvider, ProfileRequest, ProfileSet } from "./types";

/** Plain values, so a Durable Object can build a provider from its env as easily as a request can. */
export interface ProfileProviderOptions {
  serviceUrl: string;
  serviceToken: string;
  timeoutMs: number;
  cacheTtlSeconds: number;
  redis: RedisConnection;
  /** The request's or object's ctx.waitUntil: cache writes and refresh-ahead then outlive the answer. */
  waitUntil?: (work: Promise<unknown>) => void;
  /** true: the isolate's shared LRU (1000 entries, 60 s); an object: a private LRU with these limits. */
  memory?: boolean | Partial<MemoryCacheOptions>;
  /** An instance of its own, or settings for the isolate's shared breaker of this service (5 failures, 30 s). */
  breaker?: CircuitBreaker | Partial<BreakerSettings>;
  /** Lifetime of a cached "unknown id" (default 60 s). */
  missTtlSeconds?: number;
  /** Redis keeps known profiles keepFactor × TTL as stale copies (default 7). */
  keepFactor?: number;
  /** Entries older than this share of the TTL are refetched in the background (default 0.8). */
  refreshAheadRatio?: number;
  /**
   * Longest wait for the service's answer (ms); after it a load answers with stale copies and placeholders, as when
   * the service fails, and the call goes on to fill the cache. Unset: up to the service's timeout.
   */
  serviceWaitMs?: number;
  /** Cap on each Redis wait on the request path (default 300 ms). */
  redisTimeoutMs?: number;
  /** Ids per kind per service call (default 100). */
  chunkSize?: number;
  /**
   * Set (from METRICS_FLUSH_INTERVAL_MS): every load may flush this isolate's metrics batch, so hit/miss counts
   * made in a Durable Object or a Cron run reach `/metrics` even when nothing else there flushes. Unset: counted only.
   */
  metricsFlushIntervalMs?: number;
  now?: () => number;
  log?: Logger;
}

export interface RefreshResult {
  requested: number;
  /** Ids the service answered for, now rewritten in the cache (known or recorded as unknown). */
  refreshed: number;
  /** Of those, ids the service does not know. */
  unknown: number;
  ok: boolean;
  reason?: string;
}

export interface CachedProfileProvider extends ProfileProvider {
  /**
   * Drops cached entries (Redis and this isolate's memory) in one Redis transaction, which also starts a new
   * invalidation generation per id: answers the service gave before it are never cached after it. Resolves to the
   * number of entries removed. Rejects when Redis fails.
   */
  evict(request: ProfileRequest): Promise<number>;
  /**
   * Synchronous: this isolate's in-memory copy of a user's profile while it is fresh, else undefined (never a
   * placeholder or a stale copy). Callers that want a cache of their own use this instead, so that copies are not
   * stacked: each layer's 60 s would add up.
   */
  cachedUser(id: string): Profile | undefined;
  /** Refetches the ids (one call per chunk) and rewrites the cache before resolving. Never rejects. */
  refresh(request: ProfileRequest): Promise<RefreshResult>;
  readonly breaker: CircuitBreaker;
}

export const PROFILE_DEFAULTS = {
  redisTimeoutMs: 300,
  chunkSize: 100,
  ...DEFAULT_CACHE_POLICY,
} as const;

const sharedMemories = new Map<string, MemoryCache<CacheEntry>>();
// Keys with a background refetch in flight in this isolate: concurrent requests must not each start one.
const refreshing = new Set<string>();
/**
 * Service calls in flight in this isolate for ids no cache could answer, by service and key: a load that misses on
 * an id another load is already fetching waits for that answer instead of calling too (a group opened by everyone at
 * once, a page loaded by many, cold). Resolves to the profile, null (unknown to the service), or undefined (no answer).
 */
const fetching = new Map<string, Promise<Profile | null | undefined>>();

function memoryFor(option: ProfileProviderOptions["memory"], namespace: string): MemoryCache<CacheEntry> | undefined {
  if (!option) return undefined;
  if (option !== true) return new MemoryCache<CacheEntry>(option);
  let memory = sharedMemories.get(namespace);
  if (!memory) {
    memory = new MemoryCache<CacheEntry>();
    sharedMemories.set(namespace, memory);
  }
  return memory;
}

function breakerFor(option: ProfileProviderOptions["breaker"], serviceUrl: string): CircuitBreaker {
  if (option instanceof CircuitBreaker) return option;
  const log = createLogger({ component: "profiles", service: serviceUrl });
  return sharedBreaker(serviceUrl, option ?? {}, {
    onTransition: (from, to) => (to === "open" ? log.warn : log.info)("profile service circuit", { from, to }),
  });
}

const errorText = (err: unknown): string => (err instanceof Error ? err.message : String(err)).slice(0, 200);

/** Options from the parsed configuration; callers add waitUntil and memory. */
export function profileOptionsFromConfig(
  config: Pick<
    Config,
    | "PROFILE_SERVICE_URL"
    | "PROFILE_SERVICE_TOKEN"
    | "PROFILE_SERVICE_TIMEOUT"
    | "PROFILE_CACHE_TTL"
    | "UPSTASH_REDIS_REST_URL"
    | "UPSTASH_REDIS_REST_TOKEN"
    | "METRICS_FLUSH_INTERVAL_MS"
  >,
): ProfileProviderOptions {
  return {
    serviceUrl: config.PROFILE_SERVICE_URL,
    serviceToken: config.PROFILE_SERVICE_TOKEN,
    timeoutMs: config.PROFILE_SERVICE_TIMEOUT,
    cacheTtlSeconds: config.PROFILE_CACHE_TTL,
    redis: { url: config.UPSTASH_REDIS_REST_URL, token: config.UPSTASH_REDIS_REST_TOKEN },
    metricsFlushIntervalMs: config.METRICS_FLUSH_INTERVAL_MS,
  };
}

/**
 * Profiles through three layers: an optional in-memory LRU, Redis (one MGET per load), then the profile service (one
 * batched call per load, behind a circuit breaker). Every failure degrades to a stale copy or a placeholder; load never rejects.
 */
export function createProfileProvider(options: ProfileProviderOptions): CachedProfileProvider {
  // Read at each call (not a captured Date.now), so a test that moves the clock moves it here too.
  const clock = options.now ?? (() => Date.now());
  const log = options.log ?? createLogger({ component: "profiles" });
  const policy: CachePolicy = {
    ttlSeconds: options.cacheTtlSeconds,
    missTtlSeconds: options.missTtlSeconds ?? PROFILE_DEFAULTS.missTtlSeconds,
    keepFactor: Math.max(1, options.keepFactor ?? PROFILE_DEFAULTS.keepFactor),
    refreshAheadRatio: options.refreshAheadRatio ?? PROFILE_DEFAULTS.refreshAheadRatio,
  };
  const service: ProfileServiceConfig = {
    url: options.serviceUrl,
    token: options.serviceToken,
    timeoutMs: options.timeoutMs,
    chunkSize: options.chunkSize ?? PROFILE_DEFAULTS.chunkSize,
  };
  const cache = new ProfileRedisCache(options.redis, options.redisTimeoutMs ?? PROFILE_DEFAULTS.redisTimeoutMs);
  const memory = memoryFor(options.memory, options.redis.url);
  const breaker = breakerFor(options.breaker, options.serviceUrl);

  const background = (work: Promise<unknown>, what: string): void => {
    const guarded = work.catch((err: unknown) => log.warn(`profile ${what} failed`, { error: errorText(err) }));
    try {
      options.waitUntil?.(guarded);
    } catch {
      // No live context (e.g. after the response): the promise runs on regardless.
    }
  };

  /** mark: this isolate's memory as it was before the entry was read or fetched (an eviction since then wins). */
  const remember = (ref: ProfileRef, entry: CacheEntry, now: number, mark: number | undefined): void => {
    if (memory && mark !== undefined) memory.setUnlessDeletedSince(mark, ref.key, entry, now, remainingFreshMs(entry, now, policy));
  };

  /** Without Redis there are no generations: what the service then answers is served but not written back. */
  async function readCache(refs: ProfileRef[]): Promise<CacheRead> {
    try {
      return await cache.read(refs);
    } catch (err) {
      log.warn("profile cache unavailable, treating as misses", { error: errorText(err), ids: refs.length });
      return { entries: new Map(), generations: new Map() };
    }
  }

  async function callService(refs: ProfileRef[]): Promise<BatchOutcome | undefined> {
    if (!breaker.tryAcquire()) return undefined;
    const outcome = await fetchProfileBatch(service, refs);
    if (outcome.failure) {
      breaker.recordFailure(outcome.failure.kind === "timeout" ? "timeout" : "error");
      log.warn("profile service failed", { kind: outcome.failure.kind, error: outcome.failure.message, ids: refs.length });
    } else {
      breaker.recordSuccess();
    }
    return outcome;
  }

  interface Answered {
    /** Every ref the service answered for, to serve. */
    entries: { ref: ProfileRef; entry: CacheEntry }[];
    /** Those whose generation was read before the call: only they may go to Redis. */
    writes: { ref: ProfileRef; entry: CacheEntry }[];
  }

  /**
   * Entries for the refs the service answered for, each under the generation read before the call, and remembered
   * in memory unless evicted here since mark; the caller decides when Redis gets the writes. A record with no usable
   * name is skipped where `hasGoodCopy` says a known profile is cached (served stale, kept in Redis), and recorded
   * as unknown elsewhere: a miss written over the copy made the user a placeholder everywhere, and took the stale
   * copy out of Redis for good.
   */
  function answeredEntries(
    refs: ProfileRef[],
    outcome: BatchOutcome | undefined,
    generations: Generations,
    mark: number | undefined,
    hasGoodCopy: (ref: ProfileRef) => boolean,
  ): Answered {
    const answered: Answered = { entries: [], writes: [] };
    if (!outcome) return answered;
    const fetchedAt = clock();
    for (const ref of refs) {
      if (!outcome.answered.has(ref.key)) continue;
      if (outcome.unusable.has(ref.key) && hasGoodCopy(ref)) continue;
      const generation = generations.get(ref.key);
      const entry: CacheEntry = { profile: outcome.found.get(ref.key) ?? null, fetchedAt };
      if (generation) entry.generation = generation;
      remember(ref, entry, fetchedAt, mark);
      answered.entries.push({ ref, entry });
      if (generation !== undefined) answered.writes.push({ ref, entry });
    }
    return answered;
  }

  function refreshAhead(refs: ProfileRef[], generations: Generations, mark: number | undefined): void {
    const mine = refs.filter((r) => !refreshing.has(r.key));
    if (mine.length === 0) return;
    for (const r of mine) refreshing.add(r.key);
    const work = (async () => {
      try {
        // Each of these has a fresh known profile (that is why it is refreshed ahead).
        const { writes } = answeredEntries(mine, await callService(mine), generations, mark, () => true);
        await cache.write(writes, policy);
      } finally {
        for (const r of mine) refreshing.delete(r.key);
      }
    })();
    background(work, "refresh-ahead");
  }

  /** One count per id looked up: a hit when memory or Redis answered fresh enough, a miss when the service was asked. */
  function countLookups(memoryHits: number, redisHits: number, misses: number): void {
    metrics.count("profile_cache_hits_total", memoryHits, { layer: "memory" });
    metrics.count("profile_cache_hits_total", redisHits, { layer: "redis" });
    metrics.count("profile_cache_misses_total", misses);
    if (options.metricsFlushIntervalMs === undefined) return;
    flushSoon(
      { UPSTASH_REDIS_REST_URL: options.redis.url, UPSTASH_REDIS_REST_TOKEN: options.redis.token, METRICS_FLUSH_INTERVAL_MS: options.metricsFlushIntervalMs },
      options.waitUntil,
      { log },
    );
  }

  const flightKey = (ref: ProfileRef) => `${service.url}\n${ref.key}`;

  /** Calls the service for refs no other load is fetching, announcing each answer to loads that join meanwhile. */
  async function fetchOwn(
    refs: ProfileRef[],
    generations: Generations,
    mark: number | undefined,
    staleCopies: Map<string, Profile>,
    served: Map<string, Profile | null>,
  ): Promise<void> {
    const announce = new Map<string, (profile: Profile | null | undefined) => void>();
    const flights = new Map<string, Promise<Profile | null | undefined>>();
    for (const ref of refs) {
      const flight = new Promise<Profile | null | undefined>((resolve) => announce.set(ref.key, resolve));
      flights.set(ref.key, flight);
      fetching.set(flightKey(ref), flight);
    }
    try {
      const outcome = await callService(refs);
      const { entries, writes } = answeredEntries(refs, outcome, generations, mark, (ref) => staleCopies.has(ref.key));
      for (const { ref, entry } of entries) served.set(ref.key, entry.profile);
      if (writes.length > 0) background(cache.write(writes, policy), "cache write");
    } finally {
      for (const ref of refs) {
        announce.get(ref.key)?.(served.has(ref.key) ? served.get(ref.key) : undefined);
        // An eviction meanwhile may have dropped this flight (and a newer load started another): only ours goes.
        if (fetching.get(flightKey(ref)) === flights.get(ref.key)) fetching.delete(flightKey(ref));
      }
    }
  }

  async function load(request: ProfileRequest): Promise<ProfileSet> {
    const refs = refsOf(request);
    const served = new Map<string, Profile | null>();
    const now = clock();
    const mark = memory?.mark();

    const pending: ProfileRef[] = [];
    for (const ref of refs) {
      const hit = memory?.get(ref.key, now);
      if (hit && freshness(hit, now, policy) !== "expired") served.set(ref.key, hit.profile);
      else pending.push(ref);
    }
    const memoryHits = refs.length - pending.length;
    if (pending.length === 0) {
      countLookups(memoryHits, 0, 0);
      return profileSet(served);
    }

    const cached = await readCache(pending);
    const toFetch: ProfileRef[] = [];
    const toRefresh: ProfileRef[] = [];
    const staleCopies = new Map<string, Profile>();
    for (const ref of pending) {
      const entry = cached.entries.get(ref.key);
      const state = entry && freshness(entry, now, policy);
      if (!entry || state === "expired") {
        if (entry?.profile) staleCopies.set(ref.key, entry.profile);
        toFetch.push(ref);
        continue;
      }
      served.set(ref.key, entry.profile);
      remember(ref, entry, now, mark);
      if (state === "refresh-ahead") toRefresh.push(ref);
    }

    let answered = served;
    if (toFetch.length > 0) {
      const joined: { ref: ProfileRef; answer: Promise<Profile | null | undefined> }[] = [];
      const own: ProfileRef[] = [];
      for (const ref of toFetch) {
        const answer = fetching.get(flightKey(ref));
        if (answer) joined.push({ ref, answer });
        else own.push(ref);
      }
      const fetched = (async () => {
        if (own.length > 0) await fetchOwn(own, cached.generations, mark, staleCopies, served);
        for (const { ref, answer } of joined) {
          const profile = await answer;
          if (profile !== undefined) served.set(ref.key, profile);
        }
      })();
      if (options.serviceWaitMs === undefined || (await settlesWithin(fetched, options.serviceWaitMs))) {
        await fetched;
      } else {
        // What was answered by now; the call goes on (and fills the caches), its later answers are not this load's.
        answered = new Map(served);
        background(fetched, "lookup after its wait");
      }
      for (const ref of toFetch) {
        if (answered.has(ref.key)) continue;
        const stale = staleCopies.get(ref.key);
        if (stale) answered.set(ref.key, { ...stale, stale: true });
      }
    }
    if (toRefresh.length > 0) refreshAhead(toRefresh, cached.generations, mark);
    countLookups(memoryHits, pending.length - toFetch.length, toFetch.length);
    return profileSet(answered);
  }

  async function evict(request: ProfileRequest): Promise<number> {
    const refs = refsOf(request);
    // A load after this one must call the service, not wait for an answer asked before the invalidation.
    for (const ref of refs) fetching.delete(flightKey(ref));
    const forget = () => refs.forEach((ref) => memory?.delete(ref.key));
    forget();
    try {
      return await cache.invalidate(refs, policy);
    } finally {
      // Again once Redis is done: a load here that read Redis before the transaction ran must not keep what it read.
      forget();
    }
  }

  return {
    breaker,
    load,
    evict,
    cachedUser(id) {
      const now = clock();
      const hit = memory?.get(profileRef("user", id).key, now);
      if (!hit?.profile || freshness(hit, now, policy) === "expired") return undefined;
      return { ...hit.profile };
    },
    async invalidate(request) {
      await evict(request);
    },
    async refresh(request) {
      const refs = refsOf(request);
      const result: RefreshResult = { requested: refs.length, refreshed: 0, unknown: 0, ok: true };
      if (refs.length === 0) return result;
      const mark = memory?.mark();
      let generations: Generations;
      try {
        // Read before the call, as a page's MGET is: an invalidation during the call then wins over this refetch.
        generations = await cache.generations(refs);
      } catch (err) {
        return { ...result, ok: false, reason: `cache read failed: ${errorText(err)}` };
      }
      const outcome = await callService(refs);
      if (!outcome) return { ...result, ok: false, reason: "profile service circuit is open" };
      // The job reads no entries: whatever Redis holds for an id answered without a usable name stays there.
      const { writes } = answeredEntries(refs, outcome, generations, mark, () => true);
      try {
        await cache.write(writes, policy);
      } catch (err) {
        return { ...result, ok: false, reason: `cache write failed: ${errorText(err)}` };
      }
      result.refreshed = writes.length;
      result.unknown = writes.filter((w) => w.entry.profile === null).length;
      if (outcome.failure) return { ...result, ok: false, reason: outcome.failure.message };
      return result;
    },
  };
}

/** Whether the work settles (either way) within `ms`; the timer is cleared either way, so no wake-up is left behind. */
async function settlesWithin(work: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([work.then(() => true, () => true), timeout]);
  } finally {
    if (timer !== undefined) clearTimeout(timer);
  }
}

/** Known profiles as copies (callers may decorate them); null (unknown to the service) and absent ids as placeholders. */
function profileSet(served: Map<string, Profile | null>): ProfileSet {
  const pick = (key: string): Profile | undefined => {
    const p = served.get(key);
    return p ? { ...p } : undefined;
  };
  return {
    user: (id, kahaId) => pick(profileKey("user", id)) ?? placeholderProfile(id, "user", kahaId),
    business: (id) => pick(profileKey("business", id)) ?? placeholderProfile(id, "business"),
    hasUser: (id) => Boolean(served.get(profileKey("user", id))),
  };
}
