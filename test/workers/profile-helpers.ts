// Shared by profiles.test.ts (parallel pass) and profiles.serial.test.ts (tests that switch the shared profile-service
// faults on, run after the parallel pass so files expecting a healthy service never see them).
// Counts come from a wrapper around this isolate's fetch: the fakes' own counters are shared with test files running
// in parallel, a wrapper sees exactly this file's calls (SELF.fetch runs the Worker in this isolate too).
import { afterEach, beforeEach, expect } from "vitest";
import { env } from "cloudflare:test";
import { createRedis } from "../../src/lib/redis";
import { CircuitBreaker } from "../../src/profiles/breaker";
import { profileKey } from "../../src/profiles/keys";
import { createProfileProvider, type ProfileProviderOptions } from "../../src/profiles/provider";

export const TTL = 3600;
// The fake's "unknown to the service" rule: any id starting with this (scripts/local/profile-service.ts).
export const UNKNOWN_ID_PREFIX = "00000000-0000-4000-8000-0000000000ff";
export const uuid = () => crypto.randomUUID();
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
export const rawRedis = createRedis({ UPSTASH_REDIS_REST_URL: env.UPSTASH_REDIS_REST_URL, UPSTASH_REDIS_REST_TOKEN: env.UPSTASH_REDIS_REST_TOKEN });

// ---- fetch accounting -------------------------------------------------------------------------------------------
export interface Call {
  url: string;
  body: string;
}
type Interceptor = (url: string, init?: RequestInit) => Promise<Response | undefined>;
const realFetch = globalThis.fetch;
/** What this isolate fetched since the last resetCalls(); `intercept` may answer instead of the network. */
export const net: { calls: Call[]; intercept: Interceptor | undefined } = { calls: [], intercept: undefined };
export const resetCalls = () => {
  net.calls = [];
};

const isRedis = (c: Call) => c.url.startsWith(env.UPSTASH_REDIS_REST_URL);
const isService = (c: Call) => c.url.endsWith("/api/batch/profiles");
export const redisCalls = () => net.calls.filter(isRedis);
// Commands in a call's body (the client sends every command through /pipeline): reads are MGETs, writes SETs.
export const commandsOf = (c: Call) => (JSON.parse(c.body) as string[][]).map((cmd) => cmd[0].toLowerCase());
export const redisReads = () => redisCalls().filter((c) => commandsOf(c).includes("mget"));
export const redisWrites = () => redisCalls().filter((c) => commandsOf(c).includes("set"));
export const serviceCalls = () => net.calls.filter(isService);

/** Installs the fetch wrapper around every test of the calling file; `resetFaults` clears the fake's faults after each. */
export function trackFetch(options: { resetFaults?: boolean } = {}): void {
  beforeEach(() => {
    net.calls = [];
    net.intercept = undefined;
    globalThis.fetch = (async (input: RequestInfo | URL, init?: RequestInit) => {
      const url = typeof input === "string" ? input : input instanceof URL ? input.href : input.url;
      if (!url.includes("/__control")) net.calls.push({ url, body: typeof init?.body === "string" ? init.body : "" });
      const replaced = net.intercept && (await net.intercept(url, init));
      return replaced ?? realFetch(input, init);
    }) as typeof fetch;
  });

  afterEach(async () => {
    globalThis.fetch = realFetch;
    if (options.resetFaults) await profileFault({});
  });
}

// ---- fakes' control -----------------------------------------------------------------------------------------------
/** Replaces the shared fake's fault state (fields left out are reset): only for profiles.serial.test.ts. */
export async function profileFault(fault: { fail?: boolean; garbage?: boolean; delayMs?: number; partial?: boolean }): Promise<void> {
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
export function provider(overrides: Partial<ProfileProviderOptions> = {}) {
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
export function expectFromService(profile: { id: string; name: string; avatarUrl: string | null; kind: string; stale?: true }, id: string) {
  expect(profile.id).toBe(id);
  expect(profile.avatarUrl).toBe(`https://avatars.example.test/${id}.png`);
  expect(profile.stale).toBeUndefined();
}

export function expectPlaceholder(profile: { avatarUrl: string | null; stale?: true }) {
  expect(profile.avatarUrl).toBeNull();
  expect(profile.stale).toBeUndefined();
}

export async function storedEntry(kind: "user" | "business", id: string): Promise<{ profile: unknown; fetchedAt: number } | null> {
  const raw = await rawRedis.get<unknown>(profileKey(kind, id));
  return (typeof raw === "string" ? JSON.parse(raw) : raw) as { profile: unknown; fetchedAt: number } | null;
}

/** Waits for a background write-back to land in Redis. */
export async function waitUntilStored(userId: string): Promise<void> {
  for (let i = 0; !(await storedEntry("user", userId))?.profile; i++) {
    if (i > 100) throw new Error(`profile of ${userId} never reached Redis`);
    await sleep(20);
  }
}
