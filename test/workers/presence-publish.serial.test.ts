import { afterEach, describe, expect, it } from "vitest";
import { env, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import type { UserSession } from "../../src/durable-objects/user-session";
import { sql } from "drizzle-orm";
import { direct, send, users } from "./conversation-helpers";
import { postgres, withDb } from "./fixtures";
import { openSocket, waitFor } from "./sockets";

const session = (userId: string) => env.USER_SESSION.get(env.USER_SESSION.idFromName(userId));
const onlineFlag = (userId: string) =>
  withDb(async (db) => (await db.execute<{ online: boolean }>(sql`SELECT online FROM users WHERE id = ${userId}`)).rows[0]?.online);

afterEach(async () => {
  await postgres({});
});

describe("a presence change Postgres did not take", () => {
  it("is published again from the session's alarm once Postgres is back, so the user's rooms notify them and the unread counts arrive", async () => {
    const [alice, bob] = await users(2, "republish");
    // Bob asks for it, so this isolate has his row (a user socket needs it before the session starts).
    const id = await direct(bob, alice);
    await send(id, alice, "the room is loaded, with bob offline");

    await postgres({ down: true });
    // The upgrade waits for the publish, which fails: Postgres still says offline, and the room was not told.
    const phone = await openSocket("/ws", bob);
    await waitFor(() => phone.frames.find((f) => f.type === "connected"), "connected");
    await postgres({});
    expect(await onlineFlag(bob.id)).toBe(false);

    expect(await runDurableObjectAlarm(session(bob.id))).toBe(true);
    expect(await onlineFlag(bob.id)).toBe(true);
    // The connect's unread counts failed too; they come with the publish.
    const badge = await waitFor(() => phone.frames.find((f) => f.type === "unread_count" && f.data.conversationId === id), "unread_count");
    expect(badge.data.unreadCount).toBe(1);
    const { seq } = await send(id, alice, "bob should hear of this");
    const note = await waitFor(() => phone.frames.find((f) => f.type === "notification" && f.data.message.seq === seq), "notification");
    expect(note.data.conversationId).toBe(id);
    phone.ws.close(1000, "done");
  });

  it("unread counts a connect could not read are sent from the alarm once Postgres is back (no presence change to retry)", async () => {
    const [alice, bob] = await users(2, "rebadge");
    const id = await direct(alice, bob);
    await send(id, alice, "unread for bob");
    // Bob is online on one device already: a second one changes no presence, so only its badge read needs Postgres.
    const laptop = await openSocket("/ws", bob);
    await waitFor(() => laptop.frames.find((f) => f.type === "unread_count"), "the first device's counts");
    await postgres({ down: true });
    const phone = await openSocket("/ws", bob);
    await waitFor(() => phone.frames.find((f) => f.type === "connected"), "connected");
    await new Promise((r) => setTimeout(r, 200));
    expect(phone.frames.filter((f) => f.type === "unread_count")).toEqual([]);
    await postgres({});

    expect(await runDurableObjectAlarm(session(bob.id))).toBe(true);
    const badge = await waitFor(() => phone.frames.find((f) => f.type === "unread_count" && f.data.conversationId === id), "unread_count");
    expect(badge.data.unreadCount).toBe(1);
    for (const s of [laptop, phone]) s.ws.close(1000, "done");
  });
});

describe("get_presence with Postgres down", () => {
  it("answers the frame with an unavailable error instead of leaving it unanswered", async () => {
    const [alice, bob] = await users(2, "getpres");
    await direct(bob, alice);
    const phone = await openSocket("/ws", bob);
    await waitFor(() => phone.frames.find((f) => f.type === "connected"), "connected");
    await postgres({ down: true });
    phone.ws.send(JSON.stringify({ type: "get_presence", data: { userIds: [alice.id] }, id: "p1" }));
    const reply = await waitFor(() => phone.frames.find((f) => f.id === "p1"), "a reply to get_presence");
    expect({ type: reply.type, code: reply.data.code }).toEqual({ type: "error", code: "unavailable" });
    await postgres({});
    phone.ws.send(JSON.stringify({ type: "get_presence", data: { userIds: [alice.id] }, id: "p2" }));
    const state = await waitFor(() => phone.frames.find((f) => f.id === "p2"), "presence_state");
    expect(state.type).toBe("presence_state");
    phone.ws.close(1000, "done");
  });
});

describe("a device back just after the offline grace, while the offline publish is still on its way", () => {
  it("leaves the user online, in Postgres and to contacts: the slower offline publish no longer lands last", async () => {
    const [alice, bob] = await users(2, "repub-order");
    await direct(bob, alice);
    const watcher = await openSocket("/ws", bob);
    await waitFor(() => watcher.frames.find((f) => f.type === "connected"), "connected");
    const laptop = await openSocket("/ws", alice);
    await waitFor(() => watcher.frames.find((f) => f.type === "presence_update" && f.data.userId === alice.id), "online");
    laptop.ws.close(1000, "network change");
    const stub = session(alice.id);
    for (let i = 0; ; i++) {
      const since = await runInDurableObject(stub, (_s: UserSession, state) => state.storage.kv.get<number>("offlineSince"));
      if (since !== undefined) break;
      if (i > 200) throw new Error("the session never started its offline grace");
      await new Promise((r) => setTimeout(r, 10));
    }
    // The grace is over (moved back rather than waited for); the offline publish meets a slow database.
    await runInDurableObject(stub, (_s: UserSession, state) => state.storage.kv.put("offlineSince", Date.now() - 60_000));
    await postgres({ delayMs: 1500 });
    const offline = runDurableObjectAlarm(stub);
    await new Promise((r) => setTimeout(r, 300));
    // The laptop is back: its publish (online) finds the database fast again, and used to finish first.
    await postgres({});
    const again = await openSocket("/ws", alice);
    await waitFor(() => again.frames.find((f) => f.type === "connected"), "connected");
    await offline;
    await waitFor(() => watcher.frames.filter((f) => f.type === "presence_update" && f.data.userId === alice.id).length >= 3 || undefined, "the pushes");
    await new Promise((r) => setTimeout(r, 200));
    const pushed = watcher.frames.filter((f) => f.type === "presence_update" && f.data.userId === alice.id).map((f) => f.data.status);
    expect(pushed.at(-1)).toBe("online");
    expect(await onlineFlag(alice.id)).toBe(true);
    for (const s of [watcher, again]) s.ws.close(1000, "done");
  });
});
