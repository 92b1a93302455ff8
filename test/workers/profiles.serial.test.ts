// Profile-service faults (slow, failing, garbage, partial data) switch the shared fake for every test file, so these
// run in the serial pass (workers-serial), one file at a time. Shared setup: profile-helpers.ts.
import { afterEach, describe, expect, it, vi } from "vitest";
import { env } from "cloudflare:test";
import { READY_PROFILE_WAIT_MS, REPLAY_PROFILE_WAIT_MS, RoomProfiles, SEND_PROFILE_WAIT_MS } from "../../src/durable-objects/room/profiles";
import { encodeEntry } from "../../src/profiles/cache-entry";
import { profileKey } from "../../src/profiles/keys";
import { getConfig } from "../../src/lib/config";
import { CircuitBreaker } from "../../src/profiles/breaker";
import { PAGE_PROFILE_WAIT_MS } from "../../src/worker/profiles";
import { api } from "./helpers";
import { seedConversation, seedMessages } from "./fixtures";
import { openSocket, waitFor, type TestSocket } from "./sockets";
import {
  TTL,
  expectFromService,
  expectPlaceholder,
  profileFault,
  provider,
  rawRedis,
  resetCalls,
  serviceCalls,
  sleep,
  storedEntry,
  trackFetch,
  uuid,
  waitUntilStored,
} from "./profile-helpers";

trackFetch({ resetFaults: true });

describe("profile provider: degradation", () => {
  it("serves the stale copy with stale: true when the service fails after the TTL", async () => {
    const id = uuid();
    const seed = provider();
    const fresh = (await seed.load({ userIds: [id] })).user(id);
    await seed.settle();

    resetCalls();
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
    expect(set.user(id, "alice-kaha")).toEqual({ id, name: "alice-kaha", avatarUrl: null, kind: "user", placeholder: true });
    expect(set.user(other).name).toBe(`User ${other.slice(0, 8)}`);
    expect(set.business(biz)).toEqual({ id: biz, name: `Business ${biz.slice(0, 8)}`, avatarUrl: null, kind: "business", placeholder: true });
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
    resetCalls();
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
});

describe("/health/detailed with the profile service failing", () => {
  it("says the service answered 500, not that it is unreachable", async () => {
    // Every failure read "unreachable", and sent the operator to check the network of a service that was up.
    await profileFault({ fail: true });
    const res = await api("GET", "/health/detailed");
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ status: "degraded", checks: { profileService: { status: "down", error: "answered 500" } } });
  });
});

describe("profile service answering with partial data", () => {
  it("a history page still costs one call; senders it leaves out get placeholders named after their kahaId", async () => {
    const { id, users } = await seedConversation("group", 4);
    for (const u of users) {
      expect((await api("POST", `/conversations/${id}/messages`, { token: u.token, body: { content: `from ${u.kahaId}` } })).status).toBe(201);
    }
    // The sends warmed the caches (the room looks up its participants); the page must ask the service.
    await api("POST", "/profiles/invalidate", { token: env.PROFILE_SERVICE_TOKEN, body: { user_uuids: users.map((u) => u.id) } });

    await profileFault({ partial: true });
    resetCalls();
    const page = await api("GET", `/conversations/${id}/messages`, { token: users[0].token });
    await profileFault({});
    expect(page.status).toBe(200);
    expect(serviceCalls()).toHaveLength(1);
    // The fake leaves out every second id of each list; an answer without an id means "unknown" (a 60 s miss).
    const asked = JSON.parse(serviceCalls()[0].body).user_uuids as string[];
    const leftOut = new Set(asked.filter((_, i) => i % 2 === 1));
    expect(leftOut.size).toBe(2);
    expect(page.body.messages).toHaveLength(4);
    for (const m of page.body.messages as { senderId: string; sender: { id: string; name: string; avatarUrl: string | null; kind: string } }[]) {
      const sender = users.find((u) => u.id === m.senderId)!;
      if (leftOut.has(m.senderId)) expect(m.sender).toEqual({ id: sender.id, name: sender.kahaId, avatarUrl: null, kind: "user", placeholder: true });
      else expectFromService(m.sender, sender.id);
    }
  });
});

describe("a room's profiles for typing frames", () => {
  it("keeps no stale copy: typing frames carry the fresh profile as soon as the service is back", async () => {
    const id = uuid();
    const config = getConfig(env);
    const room = new RoomProfiles({ config: () => config, participantIds: () => [], waitUntil: (p) => void p.catch(() => {}), kahaIdsOf: async () => new Map() });
    const fresh = await room.user(id);
    expectFromService(fresh, id);
    expect(room.cached(id)).toEqual(fresh);
    await waitUntilStored(id);
    // Past the TTL: Redis holds only the stale copy, and the service fails.
    const realNow = Date.now.bind(Date);
    const later = vi.spyOn(Date, "now").mockImplementation(() => realNow() + (config.PROFILE_CACHE_TTL + 60) * 1000);
    try {
      await profileFault({ fail: true });
      expect(await room.user(id)).toEqual({ ...fresh, stale: true });
      await profileFault({});
      // Not remembered: the next typing frame looks the profile up again instead of repeating `stale: true`.
      expect(room.cached(id)).toBeUndefined();
      expect(await room.user(id)).toEqual(fresh);
      expect(room.cached(id)).toEqual(fresh);
    } finally {
      later.mockRestore();
    }
  });
});

describe("the ready frame while the profile service fails", () => {
  const sockets: TestSocket[] = [];
  const connect = async (conversationId: string, user: Parameters<typeof openSocket>[1]) => {
    const started = Date.now();
    const socket = await openSocket(`/conversations/${conversationId}/ws`, user);
    sockets.push(socket);
    const ready = await waitFor(() => socket.frames.find((f) => f.type === "ready"), "ready frame");
    return { ready, ms: Date.now() - started, profiles: new Map(ready.data.participants.map((p: { userId: string; profile?: unknown }) => [p.userId, p.profile])) };
  };
  // Generous beside the bound (a loaded machine), far below the service's delay: the frame did not wait for it.
  const PROMPT_MS = READY_PROFILE_WAIT_MS + 1000;

  afterEach(() => {
    for (const s of sockets.splice(0)) s.ws.close(1000, "done");
  });

  it("goes out without profiles after a short wait when the service is slow; the next socket gets them", async () => {
    const { id, users } = await seedConversation("group", 3);
    // Below the service timeout (5 s): slow, not failing, and the isolate's shared circuit stays closed.
    await profileFault({ delayMs: 2500 });
    const first = await connect(id, users[0]);
    expect(first.ms).toBeLessThan(PROMPT_MS);
    expect(first.ready.data.participants).toHaveLength(3);
    for (const u of users) expect(first.profiles.get(u.id)).toBeUndefined();
    // The lookup went on after the frame and filled the caches.
    await profileFault({});
    // The service answers 2.5 s after the connect: longer than waitUntilStored's own patience on a busy machine.
    const deadline = Date.now() + 10_000;
    for (const u of users) while (!(await storedEntry("user", u.id))?.profile && Date.now() < deadline) await sleep(50);
    const second = await connect(id, users[1]);
    for (const u of users) expectFromService(second.profiles.get(u.id) as never, u.id);
  });

  it("carries the stale copy (stale: true) or a placeholder named after the kahaId when the service answers errors", async () => {
    const { id, users } = await seedConversation("group", 3);
    const config = getConfig(env);
    const known = { id: users[1].id, name: "Known Before", avatarUrl: "https://avatars.example.test/before.png", kind: "user" as const };
    // Past its freshness, within the stale copy's lifetime.
    const fetchedAt = Date.now() - (config.PROFILE_CACHE_TTL + 60) * 1000;
    await rawRedis.set(profileKey("user", known.id), encodeEntry({ profile: known, fetchedAt }), { ex: 3600 });
    await profileFault({ fail: true });
    const { ms, profiles } = await connect(id, users[0]);
    expect(ms).toBeLessThan(PROMPT_MS);
    expect(profiles.get(known.id)).toEqual({ ...known, stale: true });
    for (const u of [users[0], users[2]]) expect(profiles.get(u.id)).toEqual({ id: u.id, name: u.kahaId, avatarUrl: null, kind: "user", placeholder: true });
  });
});


describe("a send waiting for its sender's profile", () => {
  // The room looks the sender's profile up before it assigns a seq; with a slow service that is seconds, in which the
  // sender can be removed.
  it("waits at most SEND_PROFILE_WAIT_MS, then goes with the sender's placeholder (a slow service held sends for up to its 5 s timeout)", async () => {
    const { id, users } = await seedConversation("group", 3);
    const [, member] = users;
    await profileFault({ delayMs: 4000 });
    const started = Date.now();
    const sent = await api("POST", `/conversations/${id}/messages`, { token: member.token, body: { content: "quick" } });
    const ms = Date.now() - started;
    await profileFault({});
    expect(sent.status).toBe(201);
    expect(ms).toBeLessThan(SEND_PROFILE_WAIT_MS + 1200);
    expect(sent.body.sender).toEqual({ id: member.id, name: member.kahaId, avatarUrl: null, kind: "user", placeholder: true });
  });

  it("is refused (404) when the sender was removed meanwhile: the group never sees a message from a non-member", async () => {
    const { id, users } = await seedConversation("group", 3);
    const [admin, member] = users;
    await profileFault({ delayMs: 1500 });
    resetCalls();
    const sending = api("POST", `/conversations/${id}/messages`, { token: member.token, body: { content: "after my removal" } });
    await waitFor(() => serviceCalls().find((c) => c.body.includes(member.id)), "the sender's profile lookup");
    expect((await api("DELETE", `/conversations/${id}/participants/${member.id}`, { token: admin.token })).status).toBe(204);
    expect((await sending).status).toBe(404);
    await profileFault({});
    const history = await api("GET", `/conversations/${id}/messages`, { token: admin.token });
    expect(history.body.messages).toEqual([]);
  });
});

describe("a history page while the profile service is slow", () => {
  // REST waited for the service up to its timeout (5 s): a slow service held every page that missed the caches,
  // while sends, ready frames and replays went after a bounded wait with stale copies and placeholders.
  it("waits at most PAGE_PROFILE_WAIT_MS, then answers with the stale copy and placeholders; the lookup fills the cache", async () => {
    const { id, users } = await seedConversation("group", 3);
    const [reader, known, unseen] = users;
    await seedMessages(id, known.id, 1, 2, new Date());
    await seedMessages(id, unseen.id, 3, 3, new Date());
    const cachedCopy = { id: known.id, name: "Known Before", avatarUrl: "https://avatars.example.test/before.png", kind: "user" as const };
    const fetchedAt = Date.now() - (getConfig(env).PROFILE_CACHE_TTL + 60) * 1000;
    await rawRedis.set(profileKey("user", known.id), encodeEntry({ profile: cachedCopy, fetchedAt }), { ex: 3600 });
    await profileFault({ delayMs: 3500 });
    const started = Date.now();
    const page = await api("GET", `/conversations/${id}/messages`, { token: reader.token });
    const ms = Date.now() - started;
    await profileFault({});
    expect(page.status).toBe(200);
    expect(ms).toBeLessThan(PAGE_PROFILE_WAIT_MS + 1000);
    const senders = new Map((page.body.messages as { seq: number; sender: unknown }[]).map((m) => [m.seq, m.sender]));
    expect(senders.get(1)).toEqual({ ...cachedCopy, stale: true });
    expect(senders.get(3)).toEqual({ id: unseen.id, name: unseen.kahaId, avatarUrl: null, kind: "user", placeholder: true });
    // The call went on after the answer and filled the cache for the next page.
    const deadline = Date.now() + 10_000;
    while (!(await storedEntry("user", unseen.id))?.profile && Date.now() < deadline) await sleep(50);
    expectFromService((await storedEntry("user", unseen.id))!.profile as never, unseen.id);
  });
});

describe("a resume while the profile service is slow", () => {
  // The replay waited for its senders' profiles for as long as the service took (up to its 5 s timeout), and the
  // socket's live frames were held behind it: a reconnect showed nothing, not even new messages, for seconds.
  it("replays after a bounded wait, with placeholders named after the kahaId, and goes live", async () => {
    const { id, users } = await seedConversation("group", 3);
    const [reader, sender] = users;
    await seedMessages(id, sender.id, 1, 3, new Date());
    await profileFault({ delayMs: 3500 });
    const started = Date.now();
    const socket = await openSocket(`/conversations/${id}/ws?afterSeq=0`, reader);
    const resumed = await waitFor(() => socket.frames.find((f) => f.type === "resumed"), "resumed", 8000);
    const ms = Date.now() - started;
    await profileFault({});
    expect(ms).toBeLessThan(READY_PROFILE_WAIT_MS + REPLAY_PROFILE_WAIT_MS + 1000);
    expect(resumed.data).toMatchObject({ fromSeq: 1, toSeq: 3, complete: true });
    const replayed = socket.frames.filter((f) => f.type === "new_message").map((f) => f.data.message);
    expect(replayed.map((m) => m.seq)).toEqual([1, 2, 3]);
    for (const m of replayed) expect(m.sender).toEqual({ id: sender.id, name: sender.kahaId, avatarUrl: null, kind: "user", placeholder: true });
    socket.ws.close(1000, "done");
  });
});
