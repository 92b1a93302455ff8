// An invalidation that arrives while a cache miss is still at the profile service. The miss got the profile as it
// was before the change; its write-back lands after the invalidation's delete, and must not be what readers get
// for the rest of PROFILE_CACHE_TTL. The profile service is played by this isolate's fetch wrapper (every service
// call of the Worker and its objects goes through it), so the test decides exactly when the old answer returns,
// and switching it never disturbs files that share the fake.
import { describe, expect, it } from "vitest";
import { env } from "cloudflare:test";
import { sql } from "drizzle-orm";
import { api, type TestUser } from "./helpers";
import { seedConversation, withDb } from "./fixtures";
import { RoomProfiles } from "../../src/durable-objects/room/profiles";
import { getConfig } from "../../src/lib/config";
import { refreshHotProfiles } from "../../src/profiles/refresh";
import { net, provider, storedEntry, trackFetch, sleep, uuid } from "./profile-helpers";

trackFetch();

interface Hold {
  /** The held call has its answer (computed from the names as they were when it arrived). */
  reached: boolean;
  released: boolean;
}

interface Upstream {
  names: Map<string, string>;
  /** Holds the next call's answer until released. */
  hold(): Hold;
}

/**
 * A profile service whose answer is computed when a call arrives; a held call returns it only once released.
 * Flags, polled on both sides, instead of promises: the call runs in the Worker's request context and the test in its
 * own, and workerd does not reliably resume a promise resolved from another request's context.
 */
function fakeUpstream(): Upstream {
  const names = new Map<string, string>();
  let next: Hold | undefined;
  net.intercept = async (url, init) => {
    if (!url.endsWith("/api/batch/profiles")) return undefined;
    const body = JSON.parse(String(init?.body)) as { user_uuids: string[] };
    const users = body.user_uuids.map((uuid) => ({ uuid, name: names.get(uuid) ?? `Someone ${uuid.slice(0, 4)}`, avatar_url: null }));
    const answer = Response.json({ users, businesses: [] });
    const held = next;
    next = undefined;
    if (held) {
      held.reached = true;
      await until(() => held.released);
    }
    return answer;
  };
  return {
    names,
    hold() {
      next = { reached: false, released: false };
      return next;
    },
  };
}

async function until(condition: () => boolean | Promise<boolean>, what = "condition"): Promise<void> {
  for (let i = 0; !(await condition()); i++) {
    if (i > 500) throw new Error(`${what}: still not true after 10 s`);
    await sleep(20);
  }
}

async function seedMessages(conversationId: string, senderId: string, n: number): Promise<void> {
  await withDb(async (db) => {
    for (let seq = 1; seq <= n; seq++) {
      await db.execute(
        sql`INSERT INTO messages (id, conversation_id, seq, sender_id, type, content, created_at, event_seq)
            VALUES (${crypto.randomUUID()}, ${conversationId}, ${seq}, ${senderId}, 'text', ${`hello ${seq}`}, now(), ${seq})`,
      );
    }
    await db.execute(sql`UPDATE conversations SET last_seq = ${n} WHERE id = ${conversationId}`);
  });
}

const invalidate = (userIds: string[]) =>
  api("POST", "/profiles/invalidate", { token: env.PROFILE_SERVICE_TOKEN, body: { user_uuids: userIds } });

const senderNames = (page: { body: { messages: { sender: { name: string } }[] } }) => [...new Set(page.body.messages.map((m) => m.sender.name))];

/**
 * A history page misses the cache and asks the service; while the service answers, the sender's profile changes
 * upstream and the invalidation comes and goes; then the old answer returns and its write-back lands.
 */
async function raceInvalidationWithMiss(): Promise<{ conversationId: string; sender: TestUser; reader: TestUser }> {
  const { id, users } = await seedConversation("direct", 2);
  const [sender, reader] = users;
  await seedMessages(id, sender.id, 3);
  const upstream = fakeUpstream();
  upstream.names.set(sender.id, "Old Name");
  expect((await invalidate([sender.id])).status).toBe(200); // start cold

  const call = upstream.hold();
  const page = api("GET", `/conversations/${id}/messages?limit=50`, { token: reader.token });
  await until(() => call.reached, "the page's service call");
  upstream.names.set(sender.id, "New Name");
  expect((await invalidate([sender.id])).status).toBe(200);
  call.released = true;
  const first = await page;
  expect(first.status).toBe(200);
  // It asked before the change: the old name is a fair answer for this one page.
  expect(senderNames(first)).toEqual(["Old Name"]);

  // The page's write-back runs after its response (waitUntil): wait until it has landed in Redis.
  await until(async () => Boolean((await storedEntry("user", sender.id))?.profile), "the page's write-back");
  return { conversationId: id, sender, reader };
}

describe("POST /profiles/invalidate racing a cache miss", () => {
  it("another isolate (Redis, no in-memory copy) gets the new profile after the old answer's write-back", async () => {
    const { sender } = await raceInvalidationWithMiss();
    const elsewhere = provider(); // no in-memory layer: what any other isolate or object reads
    const set = await elsewhere.load({ userIds: [sender.id] });
    expect(set.user(sender.id).name).toBe("New Name");
    await elsewhere.settle();
  });

  it("the isolate that served the racing page shows the new profile on its next page", async () => {
    const { conversationId, reader } = await raceInvalidationWithMiss();
    const later = await api("GET", `/conversations/${conversationId}/messages?limit=50`, { token: reader.token });
    expect(later.status).toBe(200);
    expect(senderNames(later)).toEqual(["New Name"]);
  });

  it("the refresh-hot job's rewrite does not outlast an invalidation that came during its call", async () => {
    const id = uuid();
    const upstream = fakeUpstream();
    upstream.names.set(id, "Old Name");
    const call = upstream.hold();
    const refreshing = refreshHotProfiles(provider(), { userIds: [id] });
    await until(() => call.reached, "the job's service call");
    upstream.names.set(id, "New Name");
    expect((await invalidate([id])).status).toBe(200);
    call.released = true;
    expect(await refreshing).toMatchObject({ ok: true, refreshed: 1 });

    const set = await provider().load({ userIds: [id] });
    expect(set.user(id).name).toBe("New Name");
  });
});

describe("a room's profiles after an invalidation", () => {
  it("keeps no copy beyond its isolate's in-memory cache, so what clears that clears the room's frames", async () => {
    const id = uuid();
    const upstream = fakeUpstream();
    upstream.names.set(id, "Old Name");
    const config = getConfig(env);
    const room = new RoomProfiles({ config: () => config, participantIds: () => [], waitUntil: (p) => void p.catch(() => {}), kahaIdsOf: async () => new Map() });
    expect((await room.user(id)).name).toBe("Old Name");
    expect(room.cached(id)?.name).toBe("Old Name");

    upstream.names.set(id, "New Name");
    expect((await invalidate([id])).status).toBe(200); // handled in this isolate: its in-memory cache forgets at once
    expect(room.cached(id)).toBeUndefined();
    expect((await room.user(id)).name).toBe("New Name");
  });
});
