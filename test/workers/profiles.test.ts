// The profile layer against the shared local stack (Redis REST fake + profile-service fake).
// Counts come from a wrapper around this isolate's fetch: the fakes' own counters are shared with test files running
// in parallel, a wrapper sees exactly this file's calls. Faults go through the fakes' /__control and are cleared after
// each test; they stay short because other files share the fakes.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { env } from "cloudflare:test";
import { createRedis } from "../../src/lib/redis";
import { CircuitBreaker } from "../../src/profiles/breaker";
import { collectIds, enrichMessages } from "../../src/profiles/enrich";
import { profileKey } from "../../src/profiles/keys";
import { createProfileProvider, type ProfileProviderOptions } from "../../src/profiles/provider";
import { refreshHotProfiles } from "../../src/profiles/refresh";
import { api, expectErrorShape, newUser } from "./helpers";

const TTL = 3600;
// The fake's "unknown to the service" rule: any id starting with this (scripts/local/profile-service.ts).
const UNKNOWN_ID_PREFIX = "00000000-0000-4000-8000-0000000000ff";
const uuid = () => crypto.randomUUID();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const rawRedis = createRedis({ UPSTASH_REDIS_REST_URL: env.UPSTASH_REDIS_REST_URL, UPSTASH_REDIS_REST_TOKEN: env.UPSTASH_REDIS_REST_TOKEN });

// ---- fetch accounting -------------------------------------------------------------------------------------------
interface Call {
  url: string;
  body: string;
}
type Interceptor = (url: string) => Promise<Response | undefined>;
const realFetch = globalThis.fetch;
let calls: Call[] = [];
let intercept: Interceptor | undefined;

const isRedis = (c: Call) => c.url.startsWith(env.UPSTASH_REDIS_REST_URL);
const isService = (c: Call) => c.url.endsWith("/api/batch/profiles");
const redisCalls = () => calls.filter(isRedis);
// Commands in a call's body (the client sends every command through /pipeline): reads are MGETs, writes SETs.
const commandsOf = (c: Call) => (JSON.parse(c.body) as string[][]).map((cmd) => cmd[0].toLowerCase());
const redisReads = () => redisCalls().filter((c) => commandsOf(c).includes("mget"));
const redisWrites = () => redisCalls().filter((c) => commandsOf(c).includes("set"));
const serviceCalls = () => calls.filter(isService);

beforeEach(() => {
  calls = [];
  intercept = undefined;
  globalThis.fetch = (async (input: RequestInfo | URL, init?: RequestInit) => {
    const url = typeof input === "string" ? input : input instanceof URL ? input.href : input.url;
    if (!url.includes("/__control")) calls.push({ url, body: typeof init?.body === "string" ? init.body : "" });
    const replaced = intercept && (await intercept(url));
    return replaced ?? realFetch(input, init);
  }) as typeof fetch;
});

afterEach(async () => {
  globalThis.fetch = realFetch;
  await profileFault({});
});

// ---- fakes' control -----------------------------------------------------------------------------------------------
async function profileFault(fault: { fail?: boolean; garbage?: boolean; delayMs?: number }): Promise<void> {
  const res = await realFetch(`${env.PROFILE_SERVICE_URL}/__control`, {
    method: "POST",
    headers: { authorization: `Bearer ${env.PROFILE_SERVICE_TOKEN}`, "content-type": "application/json" },
    body: JSON.stringify({ fault }),
  });
  if (!res.ok) throw new Error(`profile service control answered ${res.status}`);
  await res.body?.cancel();
}

// ---- providers ----------------------------------------------------------------------------------------------------
function background() {
  const work: Promise<unknown>[] = [];
  return {
    waitUntil: (p: Promise<unknown>) => void work.push(p),
    /** Waits for every cache write and refresh handed to waitUntil so far (and any they start). */
    async settle() {
      while (work.length > 0) await Promise.allSettled(work.splice(0));
    },
  };
}

/** A provider on the shared stack with its own breaker (tests never trip each other's) and no memory unless asked. */
function provider(overrides: Partial<ProfileProviderOptions> = {}) {
  const bg = background();
  const p = createProfileProvider({
    serviceUrl: env.PROFILE_SERVICE_URL,
    serviceToken: env.PROFILE_SERVICE_TOKEN,
    timeoutMs: 2000,
    cacheTtlSeconds: TTL,
    redis: { url: env.UPSTASH_REDIS_REST_URL, token: env.UPSTASH_REDIS_REST_TOKEN },
    waitUntil: bg.waitUntil,
    breaker: new CircuitBreaker({ failureThreshold: 50, cooldownMs: 60_000 }),
    ...overrides,
  });
  return Object.assign(p, { settle: bg.settle });
}

/** What the fake answers for a known id: a generated name and a deterministic avatar. */
function expectFromService(profile: { id: string; name: string; avatarUrl: string | null; kind: string; stale?: true }, id: string) {
  expect(profile.id).toBe(id);
  expect(profile.avatarUrl).toBe(`https://avatars.example.test/${id}.png`);
  expect(profile.stale).toBeUndefined();
}

function expectPlaceholder(profile: { avatarUrl: string | null; stale?: true }) {
  expect(profile.avatarUrl).toBeNull();
  expect(profile.stale).toBeUndefined();
}

async function storedEntry(kind: "user" | "business", id: string): Promise<{ profile: unknown; fetchedAt: number } | null> {
  const raw = await rawRedis.get<unknown>(profileKey(kind, id));
  return (typeof raw === "string" ? JSON.parse(raw) : raw) as { profile: unknown; fetchedAt: number } | null;
}

// ---- tests ----------------------------------------------------------------------------------------------------------
describe("profile provider: cache", () => {
  it("misses once, then hits Redis without calling the service", async () => {
    const [u1, u2, b1] = [uuid(), uuid(), uuid()];
    const cold = provider();
    const first = await cold.load({ userIds: [u1, u2, u1.toUpperCase()], businessIds: [b1] });
    expectFromService(first.user(u1), u1);
    expectFromService(first.user(u2), u2);
    expectFromService(first.business(b1), b1);
    expect(first.business(b1).kind).toBe("business");
    expect(serviceCalls()).toHaveLength(1);
    // Deduplicated (case-insensitively) before the call.
    expect(JSON.parse(serviceCalls()[0].body)).toEqual({ user_uuids: [u1, u2], business_uuids: [b1] });
    await cold.settle();

    calls = [];
    const warm = provider();
    const second = await warm.load({ userIds: [u1, u2], businessIds: [b1] });
    expect(second.user(u1)).toEqual(first.user(u1));
    expect(second.business(b1)).toEqual(first.business(b1));
    expect(serviceCalls()).toHaveLength(0);
    expect(redisCalls()).toHaveLength(1);
    await warm.settle();
    expect(redisCalls()).toHaveLength(1); // nothing to write back
  });

  it("stores known profiles for keepFactor × TTL (the stale copy), with fetchedAt", async () => {
    const id = uuid();
    const p = provider();
    const before = Date.now();
    await p.load({ userIds: [id] });
    await p.settle();
    const entry = await storedEntry("user", id);
    expect(entry?.fetchedAt).toBeGreaterThanOrEqual(before);
    expect(entry?.profile).toMatchObject({ id, kind: "user" });
    const ttl = await rawRedis.ttl(profileKey("user", id));
    expect(ttl).toBeGreaterThan(TTL * 7 - 60);
    expect(ttl).toBeLessThanOrEqual(TTL * 7);
  });

  it("a 50-message page from 10 senders costs one Redis read and one service call cold, no service call warm", async () => {
    const senders = Array.from({ length: 10 }, uuid);
    const messages = Array.from({ length: 50 }, (_, i) => ({ seq: i + 1, senderId: senders[(i * 7) % 10], content: `m${i}` }));

    const cold = provider();
    const set = await cold.load(collectIds({ messages }));
    const page = enrichMessages(messages, set);
    // The write-back is issued as the answer is built but nobody waits for it (waitUntil): the answer costs the read.
    const coldReads = redisReads().length;
    const coldServiceCalls = serviceCalls().length;
    expect(coldReads).toBe(1);
    expect(coldServiceCalls).toBe(1);
    const [read] = JSON.parse(redisReads()[0].body) as string[][];
    expect(read[0].toLowerCase()).toBe("mget");
    expect(read.slice(1).sort()).toEqual(senders.map((s) => profileKey("user", s)).sort());
    expect(JSON.parse(serviceCalls()[0].body).user_uuids).toHaveLength(10);
    for (const m of page) expectFromService(m.sender, m.senderId);
    await cold.settle();
    const coldRoundTrips = redisCalls().length;
    expect(coldRoundTrips).toBe(2);
    expect(redisWrites()).toHaveLength(1);
    expect(redisWrites()[0].url).toMatch(/\/pipeline$/);
    expect(commandsOf(redisWrites()[0])).toEqual(Array(10).fill("set"));

    calls = [];
    const warm = provider();
    const again = enrichMessages(messages, await warm.load(collectIds({ messages })));
    await warm.settle();
    expect(serviceCalls()).toHaveLength(0);
    expect(redisCalls()).toHaveLength(1);
    expect(again).toEqual(page);

    // With the in-memory layer (what a Durable Object uses for broadcasts), a repeat costs no round trip at all.
    calls = [];
    const inObject = provider({ memory: { maxEntries: 100, ttlMs: 60_000 } });
    await inObject.load(collectIds({ messages }));
    const memoryRedisFirst = redisCalls().length;
    calls = [];
    await inObject.load(collectIds({ messages }));
    expect(memoryRedisFirst).toBe(1);
    expect(redisCalls()).toHaveLength(0);
    expect(serviceCalls()).toHaveLength(0);
  });

  it("chunks only above 100 ids per kind", async () => {
    const ids = Array.from({ length: 150 }, uuid);
    const p = provider();
    const set = await p.load({ userIds: ids });
    expect(serviceCalls()).toHaveLength(2);
    expect(redisReads()).toHaveLength(1);
    expectFromService(set.user(ids[149]), ids[149]);
    await p.settle();
    expect(redisWrites()).toHaveLength(1);
  });

  it("caches ids the service does not know as short-lived misses, served as placeholders", async () => {
    const unknown = `${UNKNOWN_ID_PREFIX}-${uuid().slice(0, 8)}`;
    const known = uuid();
    const p = provider();
    const first = await p.load({ userIds: [unknown, known] });
    expect(first.user(unknown, "ghost-kaha")).toEqual({ id: unknown, name: "ghost-kaha", avatarUrl: null, kind: "user" });
    expectFromService(first.user(known), known);
    await p.settle();
    expect(await storedEntry("user", unknown)).toMatchObject({ profile: null });
    const ttl = await rawRedis.ttl(profileKey("user", unknown));
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(60);

    calls = [];
    const again = await provider().load({ userIds: [unknown, known] });
    expect(serviceCalls()).toHaveLength(0);
    expectPlaceholder(again.user(unknown));
    expect(again.user(unknown).name).toBe(`User ${unknown.slice(0, 8)}`);
  });

  it("refreshes entries past 80% of the TTL in the background while serving them", async () => {
    const id = uuid();
    const seed = provider();
    const original = (await seed.load({ userIds: [id] })).user(id);
    await seed.settle();
    const seededAt = (await storedEntry("user", id))?.fetchedAt ?? 0;

    calls = [];
    const later = provider({ now: () => Date.now() + TTL * 850 }); // 85% of the TTL later
    const served = await later.load({ userIds: [id] });
    expect(served.user(id)).toEqual(original);
    await later.settle();
    expect(serviceCalls()).toHaveLength(1); // in the background, not before the answer
    expect((await storedEntry("user", id))?.fetchedAt).toBeGreaterThan(seededAt);
  });

  it("refreshHotProfiles refetches in one call and rewrites the cache", async () => {
    const ids = [uuid(), uuid(), `${UNKNOWN_ID_PREFIX}-${uuid().slice(0, 8)}`];
    const p = provider({ now: () => Date.now() + 1000 });
    const result = await refreshHotProfiles(p, { userIds: ids, businessIds: [ids[0]] });
    expect(result).toEqual({ requested: 4, refreshed: 4, unknown: 1, ok: true });
    expect(serviceCalls()).toHaveLength(1);
    expect(redisCalls()).toHaveLength(1); // one pipeline, already written when it resolves
    expect(await storedEntry("business", ids[0])).toMatchObject({ profile: { id: ids[0], kind: "business" } });

    p.breaker.recordFailure("timeout");
    expect(await refreshHotProfiles(p, { userIds: ids })).toMatchObject({ ok: false, refreshed: 0 });
  });
});

describe("profile provider: degradation", () => {
  it("serves the stale copy with stale: true when the service fails after the TTL", async () => {
    const id = uuid();
    const seed = provider();
    const fresh = (await seed.load({ userIds: [id] })).user(id);
    await seed.settle();

    calls = [];
    const afterTtl = provider({ now: () => Date.now() + (TTL + 60) * 1000 });
    await profileFault({ fail: true });
    const degraded = await afterTtl.load({ userIds: [id] });
    await profileFault({});
    expect(degraded.user(id)).toEqual({ ...fresh, stale: true });
    expect(serviceCalls()).toHaveLength(1);
    await afterTtl.settle();

    // Once the service answers again the profile is fresh (and no longer flagged).
    const recovered = await afterTtl.load({ userIds: [id] });
    expect(recovered.user(id)).toEqual(fresh);
    await afterTtl.settle();
  });

  it("answers never-seen ids with placeholders when the service is down, and caches nothing", async () => {
    const [id, other, biz] = [uuid(), uuid(), uuid()];
    const p = provider();
    await profileFault({ garbage: true });
    const set = await p.load({ userIds: [id, other], businessIds: [biz] });
    await profileFault({});
    expect(set.user(id, "alice-kaha")).toEqual({ id, name: "alice-kaha", avatarUrl: null, kind: "user" });
    expect(set.user(other).name).toBe(`User ${other.slice(0, 8)}`);
    expect(set.business(biz)).toEqual({ id: biz, name: `Business ${biz.slice(0, 8)}`, avatarUrl: null, kind: "business" });
    await p.settle();
    expect(await storedEntry("user", id)).toBeNull();
    expectFromService((await provider().load({ userIds: [id] })).user(id), id);
  });

  it("times out a slow service, opens the circuit at once and stops calling it", async () => {
    const id = uuid();
    const breaker = new CircuitBreaker({ failureThreshold: 5, cooldownMs: 60_000 });
    const p = provider({ timeoutMs: 100, breaker });
    await profileFault({ delayMs: 600 });
    const started = Date.now();
    const set = await p.load({ userIds: [id] });
    const elapsed = Date.now() - started;
    expectPlaceholder(set.user(id));
    expect(elapsed).toBeLessThan(500);
    expect(breaker.state).toBe("open");
    calls = [];
    await p.load({ userIds: [uuid()] });
    expect(serviceCalls()).toHaveLength(0);
    await profileFault({});
  });

  it("opens the circuit after N failures, then half-opens after the cool-down and closes on success", async () => {
    const breaker = new CircuitBreaker({ failureThreshold: 2, cooldownMs: 300 });
    const p = provider({ breaker });
    await profileFault({ garbage: true });
    await p.load({ userIds: [uuid()] });
    expect(breaker.state).toBe("closed");
    await p.load({ userIds: [uuid()] });
    expect(breaker.state).toBe("open");
    expect(serviceCalls()).toHaveLength(2);
    await profileFault({});

    // Open: no call at all, placeholders at once, even though the service is back.
    const id = uuid();
    const whileOpen = await p.load({ userIds: [id] });
    expectPlaceholder(whileOpen.user(id));
    expect(serviceCalls()).toHaveLength(2);

    await sleep(350);
    const probe = await p.load({ userIds: [id] });
    expect(serviceCalls()).toHaveLength(3);
    expect(breaker.state).toBe("closed");
    expectFromService(probe.user(id), id);
    await p.settle();
  });

  it("a failed probe re-opens the circuit for another cool-down", async () => {
    const breaker = new CircuitBreaker({ failureThreshold: 1, cooldownMs: 200 });
    const p = provider({ breaker });
    await profileFault({ garbage: true });
    await p.load({ userIds: [uuid()] });
    expect(breaker.state).toBe("open");
    await sleep(250);
    await p.load({ userIds: [uuid()] });
    expect(breaker.state).toBe("open");
    expect(serviceCalls()).toHaveLength(2);
    await p.load({ userIds: [uuid()] });
    expect(serviceCalls()).toHaveLength(2);
  });

  it("treats Redis down as a miss: profiles still come from the service; invalidation answers 503", async () => {
    const id = uuid();
    // What the Redis REST fake answers with its "down" fault, but for this isolate only (other files share the fake).
    intercept = async (url) =>
      url.startsWith(env.UPSTASH_REDIS_REST_URL) ? Response.json({ error: "Service Unavailable" }, { status: 503 }) : undefined;
    const p = provider();
    const set = await p.load({ userIds: [id] });
    expectFromService(set.user(id), id);
    expect(serviceCalls()).toHaveLength(1);
    await p.settle(); // the failed write-back is logged and swallowed
    await expect(p.evict({ userIds: [id] })).rejects.toThrow();
    const res = await api("POST", "/profiles/invalidate", { token: env.PROFILE_SERVICE_TOKEN, body: { user_uuids: [id] } });
    expectErrorShape(res, 503);
    expect(res.headers.get("retry-after")).toBe("5");
  });

  it("treats a slow Redis as a miss after ~300 ms", async () => {
    const id = uuid();
    intercept = async (url) => {
      if (url.startsWith(env.UPSTASH_REDIS_REST_URL)) await sleep(1500);
      return undefined;
    };
    const p = provider();
    const started = Date.now();
    const set = await p.load({ userIds: [id] });
    const elapsed = Date.now() - started;
    expectFromService(set.user(id), id);
    expect(elapsed).toBeGreaterThanOrEqual(290);
    expect(elapsed).toBeLessThan(1200);
    intercept = undefined;
    await p.settle();
  });

  it("treats Redis answering garbage, or holding garbage, as a miss", async () => {
    const [id, other] = [uuid(), uuid()];
    intercept = async (url) =>
      url.startsWith(env.UPSTASH_REDIS_REST_URL)
        ? new Response('{"result": <<garbage', { status: 200, headers: { "content-type": "application/json" } })
        : undefined;
    const p = provider();
    expectFromService((await p.load({ userIds: [id] })).user(id), id);
    await p.settle();
    intercept = undefined;

    // A value in the profile's key that is not an entry (another writer, an old format): refetched and overwritten.
    await rawRedis.set(profileKey("user", other), "definitely not an entry");
    calls = [];
    const q = provider();
    expectFromService((await q.load({ userIds: [other] })).user(other), other);
    expect(serviceCalls()).toHaveLength(1);
    await q.settle();
    expect(await storedEntry("user", other)).toMatchObject({ profile: { id: other } });
  });
});

describe("POST /profiles/invalidate", () => {
  async function warm(id: string) {
    const p = provider();
    await p.load({ userIds: [id], businessIds: [id] });
    await p.settle();
  }

  it("deletes cached entries for the service token; the next load refetches", async () => {
    const [id, never] = [uuid(), uuid()];
    await warm(id);
    const res = await api("POST", "/profiles/invalidate", {
      token: env.PROFILE_SERVICE_TOKEN,
      body: { user_uuids: [id, never], business_uuids: [id] },
    });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ invalidated: 2 });
    expect(await storedEntry("user", id)).toBeNull();

    calls = [];
    const set = await provider().load({ userIds: [id] });
    expect(serviceCalls()).toHaveLength(1);
    expectFromService(set.user(id), id);
  });

  it("accepts an admin JWT and refuses other users with 403", async () => {
    const id = uuid();
    await warm(id);
    const member = await newUser("profiles-member");
    expectErrorShape(await api("POST", "/profiles/invalidate", { token: member.token, body: { user_uuids: [id] } }), 403);
    expect(await storedEntry("user", id)).not.toBeNull();
    const admin = await newUser("profiles-admin", "admin");
    const res = await api("POST", "/profiles/invalidate", { token: admin.token, body: { user_uuids: [id] } });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ invalidated: 1 });
  });

  it("401 without a valid token, before looking at the body", async () => {
    expectErrorShape(await api("POST", "/profiles/invalidate", { body: { user_uuids: [uuid()] } }), 401);
    expectErrorShape(await api("POST", "/profiles/invalidate", { token: "wrong-token", body: { user_uuids: [uuid()] } }), 401);
    expectErrorShape(await api("POST", "/profiles/invalidate", { token: `${env.PROFILE_SERVICE_TOKEN}x`, body: { nope: 1 } }), 401);
  });

  it("validates the body strictly: uuids only, at most 500, no unknown fields", async () => {
    const token = env.PROFILE_SERVICE_TOKEN;
    for (const body of [
      { user_uuids: ["not-a-uuid"] },
      { user_uuids: [uuid()], extra: true },
      { business_uuids: Array.from({ length: 501 }, uuid) },
      { user_uuids: "x" },
    ]) {
      expectErrorShape(await api("POST", "/profiles/invalidate", { token, body }), 400);
    }
    const empty = await api("POST", "/profiles/invalidate", { token, body: {} });
    expect(empty.status).toBe(200);
    expect(empty.body).toEqual({ invalidated: 0 });
    const max = await api("POST", "/profiles/invalidate", { token, body: { user_uuids: Array.from({ length: 500 }, uuid) } });
    expect(max.status).toBe(200);
    // An empty body touches nothing; 500 ids are one DEL.
    expect(redisCalls().filter((c) => commandsOf(c).includes("del"))).toHaveLength(1);
  });

  it("is documented in the OpenAPI document", async () => {
    const doc = await api("GET", "/openapi.json");
    expect(doc.body.paths["/profiles/invalidate"].post).toBeDefined();
  });
});

describe("GET /auth/me through the adapter", () => {
  it("still returns the caller's profile", async () => {
    const user = await newUser("profiles-me");
    const res = await api("GET", "/auth/me", { token: user.token });
    expect(res.status).toBe(200);
    expect(res.body.profile.id).toBe(user.id);
    expect(res.body.profile.avatarUrl).toBe(`https://avatars.example.test/${user.id}.png`);
  });
});
