// The profile layer against the shared local stack (Redis REST fake + profile-service fake), with a healthy service:
// tests that switch the fake's faults on live in profiles.serial.test.ts. Shared setup: profile-helpers.ts.
import { describe, expect, it, vi } from "vitest";
import { env } from "cloudflare:test";
import { sql } from "drizzle-orm";
import { readyFrameData } from "../../src/protocol/frames";
import { collectIds, enrichMessages } from "../../src/profiles/enrich";
import { generationKey, profileKey, profileRef } from "../../src/profiles/keys";
import { refreshHotProfiles } from "../../src/profiles/refresh";
import { signDevToken } from "../../src/lib/jwt";
import { api, expectErrorShape, newUser, type TestUser } from "./helpers";
import { seedConversation, withDb } from "./fixtures";
import { openSocket, waitFor, type TestSocket } from "./sockets";
import {
  TTL,
  UNKNOWN_ID_PREFIX,
  commandsOf,
  expectFromService,
  expectPlaceholder,
  net,
  provider,
  rawRedis,
  redisCalls,
  redisReads,
  redisWrites,
  resetCalls,
  serviceCalls,
  sleep,
  storedEntry,
  trackFetch,
  uuid,
  waitUntilStored,
} from "./profile-helpers";

trackFetch();

const generationKeyOf = (kind: "user" | "business", id: string) => generationKey(profileRef(kind, id));

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

    resetCalls();
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
    // The entries and their ids' invalidation generations, in the same MGET.
    expect(read.slice(1).sort()).toEqual(senders.flatMap((s) => [profileKey("user", s), generationKeyOf("user", s)]).sort());
    expect(JSON.parse(serviceCalls()[0].body).user_uuids).toHaveLength(10);
    for (const m of page) expectFromService(m.sender, m.senderId);
    await cold.settle();
    const coldRoundTrips = redisCalls().length;
    expect(coldRoundTrips).toBe(2);
    expect(redisWrites()).toHaveLength(1);
    expect(redisWrites()[0].url).toMatch(/\/pipeline$/);
    expect(commandsOf(redisWrites()[0])).toEqual(Array(10).fill("set"));

    resetCalls();
    const warm = provider();
    const again = enrichMessages(messages, await warm.load(collectIds({ messages })));
    await warm.settle();
    expect(serviceCalls()).toHaveLength(0);
    expect(redisCalls()).toHaveLength(1);
    expect(again).toEqual(page);

    // With the in-memory layer (what a Durable Object uses for broadcasts), a repeat costs no round trip at all.
    resetCalls();
    const inObject = provider({ memory: { maxEntries: 100, ttlMs: 60_000 } });
    await inObject.load(collectIds({ messages }));
    const memoryRedisFirst = redisCalls().length;
    resetCalls();
    await inObject.load(collectIds({ messages }));
    expect(memoryRedisFirst).toBe(1);
    expect(redisCalls()).toHaveLength(0);
    expect(serviceCalls()).toHaveLength(0);
  });

  it("loads missing the same ids at once share one service call (a group opened by all its members, cold)", async () => {
    const [u1, u2, u3] = [uuid(), uuid(), uuid()];
    // The service answers slowly, so that every load has read Redis and missed before the first answer is in.
    net.intercept = async (url) => {
      if (url.endsWith("/api/batch/profiles")) await sleep(200);
      return undefined;
    };
    const loads = [provider(), provider(), provider()];
    const [a, b, c] = await Promise.all([
      loads[0].load({ userIds: [u1, u2] }),
      loads[1].load({ userIds: [u2, u1] }),
      loads[2].load({ userIds: [u1, u3] }),
    ]);
    for (const set of [a, b]) for (const u of [u1, u2]) expectFromService(set.user(u), u);
    expectFromService(c.user(u1), u1);
    expectFromService(c.user(u3), u3);
    // One call for u1 and u2, and one for u3 alone: the third load waited for u1's answer instead of asking again.
    const asked = serviceCalls().map((call) => (JSON.parse(call.body) as { user_uuids: string[] }).user_uuids.sort());
    expect(asked.sort((x, y) => x.length - y.length)).toEqual([[u3], [u1, u2].sort()]);
    await Promise.all(loads.map((l) => l.settle()));
  });

  it("a load after an invalidation asks the service anew, not waiting for an answer asked before it", async () => {
    const u1 = uuid();
    net.intercept = async (url) => {
      if (url.endsWith("/api/batch/profiles")) await sleep(200);
      return undefined;
    };
    const before = provider();
    const first = before.load({ userIds: [u1] });
    // Until its service call is on its way (a fixed 50 ms was not always enough on a loaded machine: the load was still
    // reading Redis, its call began after the invalidation, and the later load rightly shared it).
    for (let i = 0; serviceCalls().length === 0; i++) {
      if (i > 500) throw new Error("the first load never asked the service");
      await sleep(5);
    }
    await before.evict({ userIds: [u1] });
    const after = provider();
    expectFromService((await after.load({ userIds: [u1] })).user(u1), u1);
    expectFromService((await first).user(u1), u1);
    expect(serviceCalls()).toHaveLength(2);
    await Promise.all([before.settle(), after.settle()]);
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
    expect(first.user(unknown, "ghost-kaha")).toEqual({ id: unknown, name: "ghost-kaha", avatarUrl: null, kind: "user", placeholder: true });
    expectFromService(first.user(known), known);
    await p.settle();
    expect(await storedEntry("user", unknown)).toMatchObject({ profile: null });
    const ttl = await rawRedis.ttl(profileKey("user", unknown));
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(60);

    resetCalls();
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

    resetCalls();
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
    // The generations (read before the call, so an invalidation during it wins), then one pipeline, already written
    // when it resolves.
    expect(redisReads()).toHaveLength(1);
    expect(redisWrites()).toHaveLength(1);
    expect(redisCalls()).toHaveLength(2);
    expect(await storedEntry("business", ids[0])).toMatchObject({ profile: { id: ids[0], kind: "business" } });

    p.breaker.recordFailure("timeout");
    expect(await refreshHotProfiles(p, { userIds: ids })).toMatchObject({ ok: false, refreshed: 0 });
  });
});

describe("profile provider: a record with an empty or null name", () => {
  /** The service answers every id asked for with this name (and nothing else about it). */
  const answerName = (name: unknown) => {
    net.intercept = async (url, init) => {
      if (!url.endsWith("/api/batch/profiles")) return undefined;
      const asked = JSON.parse(String(init?.body)) as { user_uuids: string[] };
      return Response.json({ users: asked.user_uuids.map((uuid) => ({ uuid, name })), businesses: [] });
    };
  };

  it("keeps serving the last good name (stale) and keeps it in Redis, on a load, a refresh-ahead and the refresh job", async () => {
    const [expired, ahead, hot] = [uuid(), uuid(), uuid()];
    const seed = provider();
    const good = (await seed.load({ userIds: [expired, ahead, hot] })).user;
    const original = { expired: good(expired), ahead: good(ahead), hot: good(hot) };
    await seed.settle();

    answerName("");
    // Past the TTL: the service is asked before the answer, and its empty name is no answer.
    const late = provider({ now: () => Date.now() + (TTL + 60) * 1000 });
    expect((await late.load({ userIds: [expired] })).user(expired)).toEqual({ ...original.expired, stale: true });
    await late.settle();
    answerName(null);
    // Past 80% of the TTL: served from the cache, refetched in the background.
    const soon = provider({ now: () => Date.now() + TTL * 850 });
    expect((await soon.load({ userIds: [ahead] })).user(ahead)).toEqual(original.ahead);
    await soon.settle();
    expect(await refreshHotProfiles(provider(), { userIds: [hot] })).toMatchObject({ refreshed: 0, unknown: 0 });
    for (const id of [expired, ahead, hot]) expect((await storedEntry("user", id))?.profile, id).toMatchObject({ id, name: good(id).name });
    net.intercept = undefined;
  });

  it("an id never seen with a good name is shown as a placeholder, as an unknown one is", async () => {
    const id = uuid();
    answerName("  ");
    const set = await provider().load({ userIds: [id] });
    expectPlaceholder(set.user(id, "blank-kaha"));
    expect(set.user(id, "blank-kaha").name).toBe("blank-kaha");
    net.intercept = undefined;
  });
});

describe("profile provider: Redis degradation", () => {
  it("treats Redis down as a miss: profiles still come from the service; invalidation answers 503", async () => {
    const id = uuid();
    // What the Redis REST fake answers with its "down" fault, but for this isolate only (other files share the fake).
    net.intercept = async (url) =>
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
    net.intercept = async (url) => {
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
    net.intercept = undefined;
    await p.settle();
  });

  it("treats Redis answering garbage, or holding garbage, as a miss", async () => {
    const [id, other] = [uuid(), uuid()];
    net.intercept = async (url) =>
      url.startsWith(env.UPSTASH_REDIS_REST_URL)
        ? new Response('{"result": <<garbage', { status: 200, headers: { "content-type": "application/json" } })
        : undefined;
    const p = provider();
    expectFromService((await p.load({ userIds: [id] })).user(id), id);
    await p.settle();
    net.intercept = undefined;

    // A value in the profile's key that is not an entry (another writer, an old format): refetched and overwritten.
    await rawRedis.set(profileKey("user", other), "definitely not an entry");
    resetCalls();
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

    resetCalls();
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

describe("conversation socket: the ready frame's participants", () => {
  const readyOf = (socket: TestSocket) => waitFor(() => socket.frames.find((f) => f.type === "ready"), "ready frame");

  it("carry the profiles REST shows: one Redis read and one service call cold, no lookup on the next connect", async () => {
    const { id, users } = await seedConversation("group", 4);
    const ghost = await unknownUser(id);
    const sockets: TestSocket[] = [];
    try {
      resetCalls();
      sockets.push(await openSocket(`/conversations/${id}/ws`, users[0]));
      const ready = await readyOf(sockets[0]);
      expect(sockets[0].frames[0].type).toBe("ready");
      expect(readyFrameData.safeParse(ready.data).error).toBeUndefined();
      const byUser = new Map((ready.data.participants as { userId: string; profile?: never }[]).map((p) => [p.userId, p.profile]));
      expect([...byUser.keys()].sort()).toEqual([...users.map((u) => u.id), ghost.id].sort());
      for (const u of users) expectFromService(byUser.get(u.id)!, u.id);
      expect(byUser.get(ghost.id)).toEqual({ id: ghost.id, name: ghost.kahaId, avatarUrl: null, kind: "user", placeholder: true });
      // The names a client shows are the ones REST shows for the same conversation.
      const rest = await api("GET", `/conversations/${id}`, { token: users[0].token });
      for (const p of rest.body.participants as { userId: string; profile: unknown }[]) expect(byUser.get(p.userId)).toEqual(p.profile);
      expect(serviceCalls()).toHaveLength(1);
      expect(redisReads()).toHaveLength(1);

      // The room keeps what it looked up: the next member's socket costs no cache or service round trip.
      resetCalls();
      sockets.push(await openSocket(`/conversations/${id}/ws`, users[1]));
      const again = await readyOf(sockets[1]);
      expect(again.data.participants.map((p: { profile: unknown }) => p.profile)).toEqual(ready.data.participants.map((p: { profile: unknown }) => p.profile));
      expect(serviceCalls()).toHaveLength(0);
      expect(redisReads()).toHaveLength(0);
    } finally {
      for (const s of sockets) s.ws.close(1000, "done");
    }
  });

  it("sockets of a group opening together share one lookup", async () => {
    const { id, users } = await seedConversation("group", 5);
    resetCalls();
    const sockets = await Promise.all(users.map((u) => openSocket(`/conversations/${id}/ws`, u)));
    try {
      for (const socket of sockets) {
        const ready = await readyOf(socket);
        for (const p of ready.data.participants as { userId: string; profile: never }[]) expectFromService(p.profile, p.userId);
      }
      expect(serviceCalls()).toHaveLength(1);
      expect(redisReads()).toHaveLength(1);
    } finally {
      for (const s of sockets) s.ws.close(1000, "done");
    }
  });
});

/** Sends `perSender` messages from each user, the users in parallel; resolves when every send was answered. */
async function sendFrom(conversationId: string, users: TestUser[], perSender: number): Promise<void> {
  await Promise.all(
    users.map(async (u, i) => {
      for (let k = 0; k < perSender; k++) {
        const res = await api("POST", `/conversations/${conversationId}/messages`, { token: u.token, body: { content: `page message ${i}-${k}` } });
        expect(res.status).toBe(201);
      }
    }),
  );
}

/** The fake's one id it does not know, as a user of this stack with its own kahaId (placeholders are named after it). */
async function unknownUser(conversationId: string): Promise<TestUser> {
  const user = { id: UNKNOWN_ID_PREFIX, kahaId: `ghost-${uuid().slice(0, 8)}` };
  await withDb(async (db) => {
    await db.execute(sql`INSERT INTO users (id, kaha_id) VALUES (${user.id}, ${user.kahaId}) ON CONFLICT (id) DO UPDATE SET kaha_id = EXCLUDED.kaha_id`);
    await db.execute(sql`INSERT INTO participants (conversation_id, user_id, role) VALUES (${conversationId}, ${user.id}, 'member')`);
  });
  return { ...user, token: await signDevToken(user, env.JWT_SECRET, 3600) };
}

describe("conversation list: participants, senders and businesses", () => {
  it("a list of 5 conversations costs one profile-service call and one Redis read cold, every profile from the service", { timeout: 90_000 }, async () => {
    const me = await newUser("lister");
    const others = await Promise.all([1, 2, 3, 4, 5].map((i) => newUser(`other${i}`)));
    const businessId = uuid();
    const created: string[] = [];
    for (const o of others.slice(0, 3)) {
      const res = await api("POST", "/conversations/direct", { token: me.token, body: { targetUserId: o.id } });
      created.push(res.body.id);
    }
    const group = await api("POST", "/conversations/group", { token: me.token, body: { participantIds: [others[3].id, others[4].id], name: "Five" } });
    created.push(group.body.id);
    const business = await api("POST", "/conversations/business", { token: me.token, body: { businessId } });
    created.push(business.body.id);
    for (const [i, id] of created.entries()) {
      const author = i < 3 ? others[i] : me;
      expect((await api("POST", `/conversations/${id}/messages`, { token: author.token, body: { content: `hello ${i}` } })).status).toBe(201);
    }
    const userIds = [me.id, ...others.map((o) => o.id)];
    const dropped = await api("POST", "/profiles/invalidate", { token: env.PROFILE_SERVICE_TOKEN, body: { user_uuids: userIds, business_uuids: [businessId] } });
    expect(dropped.status).toBe(200);

    resetCalls();
    const list = await api("GET", "/conversations?limit=20", { token: me.token });
    expect(list.status).toBe(200);
    const listed = (list.body.conversations as { id: string; participants: { userId: string; profile: never }[]; lastMessage: { senderId: string; sender: never }; business?: never }[])
      .filter((c) => created.includes(c.id));
    expect(listed).toHaveLength(5);
    for (const c of listed) {
      for (const p of c.participants) expectFromService(p.profile, p.userId);
      expectFromService(c.lastMessage.sender, c.lastMessage.senderId);
    }
    expectFromService(listed.find((c) => c.id === business.body.id)!.business!, businessId);
    // One call for the whole list, each id once; the request waited for one MGET.
    expect(serviceCalls()).toHaveLength(1);
    const body = JSON.parse(serviceCalls()[0].body) as { user_uuids: string[]; business_uuids: string[] };
    expect([...body.user_uuids].sort()).toEqual([...userIds].sort());
    expect(body.business_uuids).toEqual([businessId]);
    expect(redisReads()).toHaveLength(1);
  });
});

describe("message routes: senders", () => {
  it("answers a retried send with the same placeholder sender as the first answer", async () => {
    // The profile service does not know this id: the placeholder is named after the caller's kahaId.
    const ghost = { id: UNKNOWN_ID_PREFIX, kahaId: "ghost-unknown" };
    const token = await signDevToken(ghost, env.JWT_SECRET, 600);
    const peer = await newUser("peer");
    const id = uuid();
    await withDb(async (db) => {
      for (const u of [ghost, peer]) await db.execute(sql`INSERT INTO users (id, kaha_id) VALUES (${u.id}, ${u.kahaId}) ON CONFLICT DO NOTHING`);
      await db.execute(sql`INSERT INTO conversations (id, type, name, created_by) VALUES (${id}, 'group', 'ghosts', ${peer.id})`);
      for (const u of [ghost, peer]) await db.execute(sql`INSERT INTO participants (conversation_id, user_id, role) VALUES (${id}, ${u.id}, 'member')`);
    });
    const body = { content: "boo", clientMessageId: `g-${uuid()}` };
    const first = await api("POST", `/conversations/${id}/messages`, { token, body });
    expect(first.status).toBe(201);
    expect(first.body.sender).toEqual({ id: ghost.id, name: ghost.kahaId, avatarUrl: null, kind: "user", placeholder: true });
    const retry = await api("POST", `/conversations/${id}/messages`, { token, body });
    expect(retry.status).toBe(200);
    expect(retry.body.sender).toEqual(first.body.sender);
  });

  it("a 50-message page from 10 senders: one profile-service call and one Redis read cold, no service call warm", { timeout: 90_000 }, async () => {
    const { id, users } = await seedConversation("group", 10);
    await sendFrom(id, users, 5);
    const ids = users.map((u) => u.id);
    // The sends warmed the caches (the room looks up its participants); start the page cold.
    const dropped = await api("POST", "/profiles/invalidate", { token: env.PROFILE_SERVICE_TOKEN, body: { user_uuids: ids } });
    expect(dropped.status).toBe(200);

    resetCalls();
    const cold = await api("GET", `/conversations/${id}/messages?limit=50`, { token: users[0].token });
    expect(cold.status).toBe(200);
    expect(cold.body.messages).toHaveLength(50);
    for (const m of cold.body.messages) expectFromService(m.sender, m.senderId);
    expect(serviceCalls()).toHaveLength(1);
    expect(JSON.parse(serviceCalls()[0].body).user_uuids.sort()).toEqual([...ids].sort());
    // Cache write-back and metrics go to Redis under waitUntil, after the answer: the request itself waits for one MGET.
    expect(redisReads()).toHaveLength(1);
    const [read] = JSON.parse(redisReads()[0].body) as string[][];
    expect(read.slice(1).sort()).toEqual(ids.flatMap((u) => [profileKey("user", u), generationKeyOf("user", u)]).sort());

    // Warm, same isolate: the isolate's in-memory LRU (60 s) answers before Redis, so not even the MGET is paid.
    resetCalls();
    const warm = await api("GET", `/conversations/${id}/messages?limit=50`, { token: users[1].token });
    expect(warm.body.messages).toEqual(cold.body.messages);
    expect(serviceCalls()).toHaveLength(0);
    expect(redisReads()).toHaveLength(0);

    // Warm in Redis only (what another isolate sees; here the LRU's 60 s are made to pass): one MGET, no service call.
    // The cold page's write-back ran under waitUntil: wait until it has landed.
    for (const u of ids) await waitUntilStored(u);
    const realNow = Date.now.bind(Date);
    const later = vi.spyOn(Date, "now").mockImplementation(() => realNow() + 61_000);
    try {
      resetCalls();
      const fromRedis = await api("GET", `/conversations/${id}/messages?limit=50`, { token: users[2].token });
      expect(fromRedis.body.messages).toEqual(cold.body.messages);
      expect(serviceCalls()).toHaveLength(0);
      expect(redisReads()).toHaveLength(1);
    } finally {
      later.mockRestore();
    }

    // Every other message route answers with senders too.
    const found = await api("GET", `/conversations/${id}/messages/search?q=${encodeURIComponent("page message")}`, { token: users[3].token });
    expect(found.status).toBe(200);
    expect(found.body.messages.length).toBeGreaterThan(0);
    for (const m of found.body.messages) expectFromService(m.sender, m.senderId);
    const mine = cold.body.messages.find((m: { senderId: string }) => m.senderId === users[4].id);
    const edited = await api("PATCH", `/conversations/${id}/messages/${mine.id}`, { token: users[4].token, body: { content: "edited" } });
    expect(edited.status).toBe(200);
    expect(edited.body.content).toBe("edited");
    expectFromService(edited.body.sender, users[4].id);
    const one = await api("GET", `/conversations/${id}/messages/${mine.id}`, { token: users[5].token });
    expectFromService(one.body.sender, users[4].id);
  });

  it("names a sender the profile service does not know after their kahaId", async () => {
    const { id, users } = await seedConversation("group", 2);
    const ghost = await unknownUser(id);
    const sent = await api("POST", `/conversations/${id}/messages`, { token: ghost.token, body: { content: "who am I" } });
    expect(sent.status).toBe(201);
    await sendFrom(id, users.slice(0, 1), 1);
    const placeholder = { id: ghost.id, name: ghost.kahaId, avatarUrl: null, kind: "user", placeholder: true };

    const history = await api("GET", `/conversations/${id}/messages`, { token: users[1].token });
    const bySender = new Map(history.body.messages.map((m: { senderId: string; sender: unknown }) => [m.senderId, m.sender]));
    expect(bySender.get(ghost.id)).toEqual(placeholder);
    expectFromService(bySender.get(users[0].id) as never, users[0].id);
    const found = await api("GET", `/conversations/${id}/messages/search?q=${encodeURIComponent("who am I")}`, { token: users[1].token });
    expect(found.body.messages.map((m: { sender: unknown }) => m.sender)).toEqual([placeholder]);
  });
});
