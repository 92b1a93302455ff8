// Pure parts of the profile layer: keys, normalisation, cache entries, the LRU, the breaker, enrichment.
import { describe, expect, it } from "vitest";
import { CircuitBreaker, type BreakerState } from "../../src/profiles/breaker";
import { decodeEntry, encodeEntry, freshness, redisExpirySeconds, remainingFreshMs, type CachePolicy } from "../../src/profiles/cache-entry";
import { collectIds, enrichConversation, enrichMessages, withSenderProfiles, withSenderProfilesJson } from "../../src/profiles/enrich";
import { profileKey, profileRef, refsOf } from "../../src/profiles/keys";
import { MemoryCache } from "../../src/lib/memory-cache";
import { batchResponseSchema, normaliseProfile } from "../../src/profiles/normalise";
import { placeholderProfile } from "../../src/profiles/placeholder";
import type { ProfileSet } from "../../src/profiles/types";
import type { Conversation, Profile } from "../../src/protocol/resources";

const A = "3F1C2A52-8E43-4C4B-9A3E-7E2D2F0B1A11";
const a = A.toLowerCase();
const B = "0b3c9a1e-1111-4a4a-8b8b-222233334444";

describe("profile keys", () => {
  it("are versioned, per kind and case-insensitive", () => {
    expect(profileKey("user", A)).toBe(`profile:v1:user:${a}`);
    expect(profileKey("business", ` ${a} `)).toBe(`profile:v1:business:${a}`);
    expect(profileRef("user", A)).toEqual({ kind: "user", id: a, key: `profile:v1:user:${a}` });
  });

  it("deduplicate a request, keep kinds apart and drop empty or oversized ids", () => {
    const refs = refsOf({ userIds: [A, a, B, "", "x".repeat(200)], businessIds: new Set([a, a]) });
    expect(refs.map((r) => r.key)).toEqual([`profile:v1:user:${a}`, `profile:v1:user:${B}`, `profile:v1:business:${a}`]);
    expect(refsOf({})).toEqual([]);
  });
});

describe("profile normalisation", () => {
  it("maps the service's record to {id, name, avatarUrl, kind}", () => {
    expect(normaliseProfile({ uuid: A, name: "  Ada ", avatar_url: "https://x.test/a.png", extra: 1 }, "user")).toEqual({
      id: a,
      name: "Ada",
      avatarUrl: "https://x.test/a.png",
      kind: "user",
    });
    expect(normaliseProfile({ uuid: B, name: "Cafe" }, "business")).toEqual({ id: B, name: "Cafe", avatarUrl: null, kind: "business" });
  });

  it("drops unusable records and unsafe values", () => {
    expect(normaliseProfile({ uuid: A }, "user")).toBeUndefined();
    expect(normaliseProfile({ uuid: 42, name: "x" }, "user")).toBeUndefined();
    expect(normaliseProfile({ uuid: A, name: " \u0000\u202e " }, "user")).toBeUndefined();
    expect(normaliseProfile("nope", "user")).toBeUndefined();
    expect(normaliseProfile({ uuid: A, name: "x", avatar_url: "javascript:alert(1)" }, "user")?.avatarUrl).toBeNull();
    expect(normaliseProfile({ uuid: A, name: "x", avatar_url: "not a url" }, "user")?.avatarUrl).toBeNull();
    expect(normaliseProfile({ uuid: A, name: "e\u0301\u202evil" }, "user")?.name).toBe("\u00e9vil");
    expect([...(normaliseProfile({ uuid: A, name: "😀".repeat(500) }, "user")?.name ?? "")]).toHaveLength(200);
  });

  it("keeps the name of a record whose avatar_url is not even a string (only the avatar is unusable)", () => {
    // Dropped whole, the user showed as a placeholder on every page although the service had sent their name.
    for (const avatar_url of [42, false, { url: "https://x.test/a.png" }, ["https://x.test/a.png"]]) {
      expect(normaliseProfile({ uuid: A, name: "Ada", avatar_url }, "user"), JSON.stringify(avatar_url)).toEqual({ id: a, name: "Ada", avatarUrl: null, kind: "user" });
    }
  });

  it("accepts the envelope only when it looks like the contract's", () => {
    expect(batchResponseSchema.safeParse({ users: [], businesses: [] }).success).toBe(true);
    expect(batchResponseSchema.safeParse({ users: [{ uuid: A, name: "x" }] }).success).toBe(true);
    for (const garbage of [{}, [], "x", null, { users: "x" }, { error: "boom" }]) {
      expect(batchResponseSchema.safeParse(garbage).success, JSON.stringify(garbage)).toBe(false);
    }
  });
});

describe("cache entries", () => {
  const policy: CachePolicy = { ttlSeconds: 100, missTtlSeconds: 10, keepFactor: 7, refreshAheadRatio: 0.8 };
  const profile: Profile = { id: a, name: "Ada", avatarUrl: null, kind: "user" };
  const ref = profileRef("user", a);

  it("round-trip through JSON, whether the client parsed it or not", () => {
    const entry = { profile, fetchedAt: 1234 };
    expect(decodeEntry(encodeEntry(entry), ref)).toEqual(entry);
    expect(decodeEntry(JSON.parse(encodeEntry(entry)), ref)).toEqual(entry);
    expect(decodeEntry(encodeEntry({ profile: null, fetchedAt: 5 }), ref)).toEqual({ profile: null, fetchedAt: 5 });
    // The invalidation generation it was fetched under travels with it; entries from before generations have none.
    const generated = { profile, fetchedAt: 7, generation: "3b0c1f6e-gen" };
    expect(decodeEntry(encodeEntry(generated), ref)).toEqual(generated);
    expect(decodeEntry(JSON.stringify({ profile, fetchedAt: 7 }), ref)).toStrictEqual({ profile, fetchedAt: 7 });
    // The stale flag is a property of an answer, never of what is stored.
    expect(encodeEntry({ profile: { ...profile, stale: true }, fetchedAt: 1 })).not.toContain("stale");
  });

  it("treat garbage and entries stored under the wrong key as misses", () => {
    for (const garbage of ["not json", "{}", 42, [], { profile, fetchedAt: "yesterday" }, { profile: { id: a }, fetchedAt: 1 }]) {
      expect(decodeEntry(garbage, ref), JSON.stringify(garbage)).toBeUndefined();
    }
    expect(decodeEntry(encodeEntry({ profile, fetchedAt: 1 }), profileRef("user", B))).toBeUndefined();
    expect(decodeEntry(encodeEntry({ profile, fetchedAt: 1 }), profileRef("business", a))).toBeUndefined();
  });

  it("are fresh, then refreshed ahead, then expired (but kept in Redis as the stale copy)", () => {
    const entry = { profile, fetchedAt: 0 };
    expect(freshness(entry, 79_999, policy)).toBe("fresh");
    expect(freshness(entry, 80_000, policy)).toBe("refresh-ahead");
    expect(freshness(entry, 100_000, policy)).toBe("expired");
    expect(freshness(entry, -5_000, policy)).toBe("fresh");
    expect(redisExpirySeconds(entry, policy)).toBe(700);
    expect(remainingFreshMs(entry, 30_000, policy)).toBe(70_000);
  });

  it("record unknown ids briefly and never refresh them ahead", () => {
    const miss = { profile: null, fetchedAt: 0 };
    expect(freshness(miss, 9_000, policy)).toBe("fresh");
    expect(freshness(miss, 10_000, policy)).toBe("expired");
    expect(redisExpirySeconds(miss, policy)).toBe(10);
  });
});

describe("memory cache", () => {
  it("evicts the least recently used entry beyond its size", () => {
    const lru = new MemoryCache<number>({ maxEntries: 2, ttlMs: 1000 });
    lru.set("a", 1, 0);
    lru.set("b", 2, 0);
    expect(lru.get("a", 1)).toBe(1); // a is now the most recent
    lru.set("c", 3, 1);
    expect(lru.get("b", 2)).toBeUndefined();
    expect(lru.get("a", 2)).toBe(1);
    expect(lru.get("c", 2)).toBe(3);
    expect(lru.size).toBe(2);
  });

  it("expires entries after its ttl or the value's own remaining life, whichever is shorter", () => {
    const lru = new MemoryCache<string>({ maxEntries: 10, ttlMs: 1000 });
    lru.set("a", "x", 0);
    lru.set("b", "y", 0, 100);
    lru.set("c", "z", 0, 0);
    expect(lru.get("b", 99)).toBe("y");
    expect(lru.get("b", 100)).toBeUndefined();
    expect(lru.get("c", 0)).toBeUndefined();
    expect(lru.get("a", 999)).toBe("x");
    expect(lru.get("a", 1000)).toBeUndefined();
    lru.set("d", "w", 0);
    lru.delete("d");
    expect(lru.get("d", 1)).toBeUndefined();
  });

  it("refuses a value fetched before its key was deleted (an invalidation during the fetch), and only for that key", () => {
    const lru = new MemoryCache<string>({ maxEntries: 2, ttlMs: 1000 });
    const mark = lru.mark();
    lru.delete("a");
    expect(lru.setUnlessDeletedSince(mark, "a", "old", 0)).toBe(false);
    expect(lru.get("a", 1)).toBeUndefined();
    expect(lru.setUnlessDeletedSince(mark, "b", "fine", 0)).toBe(true);
    expect(lru.setUnlessDeletedSince(lru.mark(), "a", "new", 0)).toBe(true);
    expect(lru.get("a", 1)).toBe("new");

    // Beyond maxEntries deletes the oldest records are forgotten: a mark from before them is refused for every key.
    const early = lru.mark();
    lru.delete("x");
    lru.delete("y");
    lru.delete("z");
    expect(lru.setUnlessDeletedSince(early, "c", "unsure", 0)).toBe(false);
    const late = lru.mark();
    expect(lru.setUnlessDeletedSince(late, "c", "sure", 0)).toBe(true);
    lru.clear();
    expect(lru.setUnlessDeletedSince(late, "c", "after clear", 0)).toBe(false);
  });
});

describe("circuit breaker", () => {
  function breaker(settings: { failureThreshold?: number; cooldownMs?: number; openOnTimeout?: boolean } = {}) {
    let now = 0;
    const transitions: string[] = [];
    const b = new CircuitBreaker({
      failureThreshold: 3,
      cooldownMs: 1000,
      ...settings,
      now: () => now,
      onTransition: (from: BreakerState, to: BreakerState) => transitions.push(`${from}->${to}`),
    });
    return { b, transitions, advance: (ms: number) => (now += ms) };
  }

  it("opens after N consecutive failures; a success in between resets the count", () => {
    const { b } = breaker();
    b.recordFailure("error");
    b.recordFailure("error");
    b.recordSuccess();
    b.recordFailure("error");
    b.recordFailure("error");
    expect(b.state).toBe("closed");
    expect(b.tryAcquire()).toBe(true);
    b.recordFailure("error");
    expect(b.state).toBe("open");
    expect(b.tryAcquire()).toBe(false);
  });

  it("opens at once on a timeout (unless told otherwise)", () => {
    const { b } = breaker();
    b.recordFailure("timeout");
    expect(b.state).toBe("open");
    const lenient = breaker({ openOnTimeout: false }).b;
    lenient.recordFailure("timeout");
    expect(lenient.state).toBe("closed");
  });

  it("lets exactly one probe through after the cool-down; success closes, failure re-opens", () => {
    const { b, transitions, advance } = breaker({ failureThreshold: 1 });
    b.recordFailure("error");
    advance(999);
    expect(b.tryAcquire()).toBe(false);
    advance(1);
    expect(b.tryAcquire()).toBe(true);
    expect(b.state).toBe("half-open");
    expect(b.tryAcquire()).toBe(false); // the probe is in flight
    b.recordFailure("error");
    expect(b.state).toBe("open");
    advance(500);
    expect(b.tryAcquire()).toBe(false); // a fresh cool-down
    advance(500);
    expect(b.tryAcquire()).toBe(true);
    b.recordSuccess();
    expect(b.state).toBe("closed");
    expect(b.tryAcquire()).toBe(true);
    expect(transitions).toEqual(["closed->open", "open->half-open", "half-open->open", "open->half-open", "half-open->closed"]);
  });

  it("does not stay half-open forever when a probe never reports", () => {
    const { b, advance } = breaker({ failureThreshold: 1 });
    b.recordFailure("error");
    advance(1000);
    expect(b.tryAcquire()).toBe(true);
    advance(999);
    expect(b.tryAcquire()).toBe(false);
    advance(1);
    expect(b.tryAcquire()).toBe(true);
  });
});

describe("enrichment helpers", () => {
  const set: ProfileSet = {
    user: (id, kahaId) => (id === a ? { id, name: "Ada", avatarUrl: null, kind: "user" } : placeholderProfile(id, "user", kahaId)),
    business: (id) => ({ id, name: "Cafe", avatarUrl: null, kind: "business" }),
    hasUser: (id) => id === a,
  };

  it("collects each id once from messages, participants and conversations", () => {
    const ids = collectIds({
      messages: [{ senderId: a }, { senderId: B }, { senderId: a }],
      participants: [{ userId: B }],
      conversations: [{ businessId: "biz", participants: [{ userId: "c" }], lastMessage: { senderId: "d" } }, { businessId: null }],
    });
    expect(ids.userIds.sort()).toEqual([a, B, "c", "d"].sort());
    expect(ids.businessIds).toEqual(["biz"]);
  });

  it("fills sender, keeps the rest, and names placeholders after a known kahaId", () => {
    const out = enrichMessages([{ senderId: a, seq: 1 }, { senderId: B, seq: 2 }], set, new Map([[B, "bob-kaha"]]));
    expect(out[0]).toEqual({ senderId: a, seq: 1, sender: { id: a, name: "Ada", avatarUrl: null, kind: "user" } });
    expect(out[1].sender).toEqual({ id: B, name: "bob-kaha", avatarUrl: null, kind: "user", placeholder: true });
  });

  it("withSenderProfiles: one load, kahaIds only for placeholders, id-named placeholders when that lookup fails", async () => {
    const messages = [{ senderId: a }, { senderId: B }, { senderId: a }];
    const loads: unknown[] = [];
    const asked: string[][] = [];
    const load = async (request: unknown) => (loads.push(request), set);
    const out = await withSenderProfiles(messages, load, async (ids) => (asked.push(ids), new Map([[B, "bob-kaha"]])));
    expect(loads).toEqual([{ userIds: [a, B], businessIds: [] }]);
    expect(asked).toEqual([[B]]);
    expect(out.map((m) => m.sender.name)).toEqual(["Ada", "bob-kaha", "Ada"]);
    const failed = await withSenderProfiles(messages, load, () => Promise.reject(new Error("db down")));
    expect(failed[1].sender.name).toBe(`User ${B.slice(0, 8)}`);
    let called = false;
    await withSenderProfiles([{ senderId: a }], load, async () => ((called = true), new Map()));
    expect(called).toBe(false);
  });

  it("withSenderProfilesJson: the same page as withSenderProfiles, as JSON text, from messages already in JSON", async () => {
    const messages = [
      { senderId: a, seq: 1, content: 'say "hi" \\ \u2028' },
      { senderId: B, seq: 2, content: "" },
      { senderId: a, seq: 3, content: "é" },
    ];
    const load = async () => set;
    const kaha = async () => new Map([[B, "bob-kaha"]]);
    const asObjects = await withSenderProfiles(messages, load, kaha);
    const text = await withSenderProfilesJson(
      messages.map((m) => ({ json: JSON.stringify(m), senderId: m.senderId })),
      load,
      kaha,
    );
    expect(JSON.parse(text)).toEqual(asObjects);
    expect(await withSenderProfilesJson([], load, kaha)).toBe("[]");
  });

  it("a kahaId still awaiting its user ('unknown:…') names no placeholder", () => {
    expect(placeholderProfile(B, "user", `unknown:${B}`).name).toBe(`User ${B.slice(0, 8)}`);
    expect(placeholderProfile(B, "user", "bob-kaha").name).toBe("bob-kaha");
  });

  it("enriches a conversation's participants, last message and business", () => {
    const participant = { userId: a, role: "customer" as const, joinedAt: "t", isMuted: false, lastReadSeq: 0, lastReadAt: null, lastDeliveredSeq: 0 };
    const conversation = {
      id: "c", type: "business", name: null, businessId: B, createdAt: "t", lastActivity: "t", lastSeq: 1,
      participants: [participant], unreadCount: 0, isMuted: false,
      lastMessage: { senderId: a } as Conversation["lastMessage"],
    } as Conversation;
    const out = enrichConversation(conversation, set);
    expect(out.participants[0].profile?.name).toBe("Ada");
    expect(out.lastMessage?.sender?.name).toBe("Ada");
    expect(out.business).toEqual({ id: B, name: "Cafe", avatarUrl: null, kind: "business" });
    expect(conversation.participants[0]).not.toHaveProperty("profile");
  });
});
