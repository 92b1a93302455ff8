import { createMiddleware } from "hono/factory";
import type { Config } from "../../lib/config";
import { errorReason, tooManyRequests } from "../../lib/errors";
import { verifyToken, type AuthUser } from "../../lib/jwt";
import type { Logger } from "../../lib/log";
import { metrics, requestClass } from "../../lib/metrics";
import { createRedis, withTimeout } from "../../lib/redis";

/**
 * Rate limits for REST writes (POST/PUT/PATCH/DELETE) and WebSocket upgrades, per user and per client IP.
 *
 * Fixed one-minute windows in Redis: for each bucket `INCR key` + `EXPIRE key 120`, all buckets of a request in ONE
 * pipeline (one round trip), so every isolate and every location shares the same counters. Redis down or slow
 * (over 300 ms) → the request goes through (fail open), counted in `ratelimit_failopen_total` and logged at most
 * once a minute per isolate; the isolate then skips the limiter for FAIL_OPEN_COOLDOWN_MS, so a slow Redis costs
 * one 300 ms wait per isolate every few seconds, not one per write. Why not a Durable Object: an object per user/IP would be one more hop on every write
 * and a single-threaded hot spot under abuse; Redis is already a dependency, the keys expire by themselves, and a
 * failure there costs availability of nothing but the limit itself.
 *
 * Identities: the user is the verified token's id (an unverified claim would let anyone spend a victim's budget);
 * without a valid token only the IP bucket applies (the route then answers 401). Browsers connect with a ticket, so
 * issuing a ticket (`POST /realtime/tickets`) is charged to the user's upgrade budget too. Service tokens
 * (role "admin") are exempt. The IP is `CF-Connecting-IP` (set by Cloudflare, never by the client); requests
 * without one or from loopback (local development and tests) have no IP bucket.
 *
 * Frames on an open socket are limited by the rooms themselves (WS_MAX_FRAMES_PER_SECOND).
 */

export interface LimitBucket {
  key: string;
  limit: number;
  /** For logs and metrics: user | ip. */
  scope: "user" | "ip";
}

/** The counter store: increments each key in the current window and answers the new counts, in order. */
export interface CounterStore {
  incr(keys: string[], ttlSeconds: number): Promise<number[]>;
}

export type LimitDecision = { allowed: true } | { allowed: false; retryAfterSeconds: number; bucket: LimitBucket; count: number };

export const WINDOW_MS = 60_000;

export function windowIndex(nowMs: number, windowMs = WINDOW_MS): number {
  return Math.floor(nowMs / windowMs);
}

/** Pure decision over a store: every bucket is counted; the request is refused when any bucket is over its limit. */
export async function checkLimits(store: CounterStore, buckets: LimitBucket[], nowMs: number, windowMs = WINDOW_MS): Promise<LimitDecision> {
  if (buckets.length === 0) return { allowed: true };
  const w = windowIndex(nowMs, windowMs);
  const counts = await store.incr(
    buckets.map((b) => `${b.key}:${w}`),
    Math.ceil((2 * windowMs) / 1000),
  );
  for (const [i, b] of buckets.entries()) {
    const count = counts[i] ?? 0;
    if (count > b.limit) {
      const retryAfterSeconds = Math.max(1, Math.ceil(((w + 1) * windowMs - nowMs) / 1000));
      return { allowed: false, retryAfterSeconds, bucket: b, count };
    }
  }
  return { allowed: true };
}

/** Redis as the store: INCR + EXPIRE per key, one pipeline. */
export function redisCounterStore(config: Pick<Config, "UPSTASH_REDIS_REST_URL" | "UPSTASH_REDIS_REST_TOKEN">): CounterStore {
  return {
    async incr(keys, ttlSeconds) {
      const p = createRedis(config).pipeline();
      for (const k of keys) p.incr(k).expire(k, ttlSeconds);
      const results = (await p.exec()) as unknown[];
      return keys.map((_, i) => Number(results[i * 2]));
    },
  };
}

const LOOPBACK = /^(127\.|::1$|::ffff:127\.)/;

export function clientIp(header: string | undefined): string | undefined {
  const ip = header?.trim();
  if (!ip || ip.length > 45 || LOOPBACK.test(ip)) return undefined;
  return ip;
}

/**
 * What a per-IP limit counts: an IPv4 address, or an IPv6 /64. A subscriber gets a whole /64 and can pick any
 * address in it, so counting single IPv6 addresses let one client rotate through fresh budgets.
 */
export function ipBucket(ip: string): string {
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(ip);
  if (mapped) return mapped[1];
  if (!ip.includes(":")) return ip;
  const [head, tail] = ip.toLowerCase().split("::");
  const left = head ? head.split(":") : [];
  const right = tail ? tail.split(":") : [];
  const groups = tail === undefined ? left : [...left, ...Array<string>(Math.max(0, 8 - left.length - right.length)).fill("0"), ...right];
  return `${groups
    .slice(0, 4)
    .map((g) => g.replace(/^0+(?=.)/, ""))
    .join(":")}::/64`;
}

/** The buckets a request is charged to under the configured limits (empty: not limited). */
export function bucketsFor(
  config: Pick<
    Config,
    "RATE_LIMIT_WRITES_PER_MINUTE" | "RATE_LIMIT_IP_WRITES_PER_MINUTE" | "RATE_LIMIT_UPGRADES_PER_MINUTE" | "RATE_LIMIT_IP_UPGRADES_PER_MINUTE"
  >,
  request: { kind: "write" | "upgrade"; userId?: string; ip?: string; path: string },
): LimitBucket[] {
  const out: LimitBucket[] = [];
  const userLimit = request.kind === "write" ? config.RATE_LIMIT_WRITES_PER_MINUTE : config.RATE_LIMIT_UPGRADES_PER_MINUTE;
  const ipLimit = request.kind === "write" ? config.RATE_LIMIT_IP_WRITES_PER_MINUTE : config.RATE_LIMIT_IP_UPGRADES_PER_MINUTE;
  if (request.userId && userLimit > 0) out.push({ key: `rl:u:${request.kind}:${request.userId}`, limit: userLimit, scope: "user" });
  if (request.ip && ipLimit > 0) out.push({ key: `rl:ip:${request.kind}:${ipBucket(request.ip)}`, limit: ipLimit, scope: "ip" });
  if (request.kind === "write" && request.userId && /^\/realtime\/tickets\/?$/.test(request.path) && config.RATE_LIMIT_UPGRADES_PER_MINUTE > 0) {
    out.push({ key: `rl:u:upgrade:${request.userId}`, limit: config.RATE_LIMIT_UPGRADES_PER_MINUTE, scope: "user" });
  }
  return out;
}

const BEARER = /^Bearer\s+([A-Za-z0-9._~+/=-]+)\s*$/i;

async function verifiedUser(header: string | undefined, config: Config): Promise<AuthUser | undefined> {
  const token = header?.match(BEARER)?.[1];
  if (!token) return undefined;
  try {
    return await verifyToken(token, {
      secret: config.JWT_SECRET,
      jwksUrl: config.JWKS_URL,
      issuer: config.JWT_ISSUER,
      audience: config.JWT_AUDIENCE,
      requireExp: config.JWT_REQUIRE_EXP,
    });
  } catch {
    return undefined; // the route's own auth answers 401
  }
}

let lastFailOpenLog = 0;
/** After a store failure this isolate skips the limiter for a few seconds: a slow Redis costs one wait, not one per write. */
let bypassUntil = 0;
export const FAIL_OPEN_COOLDOWN_MS = 5000;

/** The store a request uses; tests of the pure logic inject their own through checkLimits. */
let storeFactory: (config: Config) => CounterStore = redisCounterStore;

export const rateLimit = createMiddleware<{ Variables: { config: Config; log: Logger } }>(async (c, next) => {
  const kind = requestClass(c.req.method, c.req.header("upgrade"));
  if (kind === "read") return next();
  const config = c.get("config");
  const user = await verifiedUser(c.req.header("authorization"), config);
  if (user?.role === "admin") return next();
  const ip = clientIp(c.req.header("cf-connecting-ip"));
  const buckets = bucketsFor(config, { kind, userId: user?.id, ip, path: c.req.path });
  if (buckets.length === 0) return next();
  if (Date.now() < bypassUntil) {
    metrics.count("ratelimit_failopen_total");
    return next();
  }
  let decision: LimitDecision;
  try {
    decision = await withTimeout(checkLimits(storeFactory(config), buckets, Date.now()), 300, "rate limiter");
  } catch (err) {
    bypassUntil = Date.now() + FAIL_OPEN_COOLDOWN_MS;
    metrics.count("ratelimit_failopen_total");
    if (Date.now() - lastFailOpenLog > 60_000) {
      lastFailOpenLog = Date.now();
      c.get("log").warn("rate limiter unavailable, failing open", { error: errorReason(err).slice(0, 200) });
    }
    return next();
  }
  if (!decision.allowed) {
    metrics.count("ratelimit_rejected_total", 1, { kind, scope: decision.bucket.scope });
    c.get("log").warn("rate limited", {
      kind,
      scope: decision.bucket.scope,
      userId: user?.id,
      count: decision.count,
      limit: decision.bucket.limit,
      retryAfterSeconds: decision.retryAfterSeconds,
    });
    throw tooManyRequests(decision.retryAfterSeconds);
  }
  return next();
});

/** Test seam: replaces the counter store (returns the previous factory). */
export function setCounterStoreFactory(factory: (config: Config) => CounterStore): (config: Config) => CounterStore {
  const previous = storeFactory;
  storeFactory = factory;
  bypassUntil = 0;
  return previous;
}
