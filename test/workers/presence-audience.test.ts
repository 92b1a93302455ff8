import { describe, expect, it } from "vitest";
import { env, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import type { UserSession } from "../../src/durable-objects/user-session";
import { sql } from "drizzle-orm";
import { publishPresence } from "../../src/db/queries/user-session";
import { direct, users } from "./conversation-helpers";
import { seedConversation, withDb } from "./fixtures";
import { openSocket, waitFor, type TestSocket } from "./sockets";

const setOnline = (ids: string[], online: boolean) =>
  withDb((db) => db.execute(sql`UPDATE users SET online = ${online} WHERE id IN (${sql.join(ids.map((id) => sql`${id}::uuid`), sql`, `)})`));

describe("publishPresence (one statement per presence change)", () => {
  it("writes the flag and returns the online contacts, the conversations (all, and those others watch) and businesses, each once", async () => {
    const a = await seedConversation("group", 3);
    const [me, bob, carol] = a.users;
    const b = await seedConversation("group", 2);
    const dave = b.users[1];
    const business = crypto.randomUUID();
    await withDb(async (db) => {
      // me joins b instead of its seeded first member; carol is in both, so she must come back once.
      await db.execute(sql`UPDATE participants SET user_id = ${me.id} WHERE conversation_id = ${b.id} AND user_id = ${b.users[0].id}`);
      await db.execute(sql`INSERT INTO participants (conversation_id, user_id, role) VALUES (${b.id}, ${carol.id}, 'member')`);
      // Bob has left a: he is no longer a contact through it.
      await db.execute(sql`UPDATE participants SET left_at = now() WHERE conversation_id = ${a.id} AND user_id = ${bob.id}`);
      await db.execute(sql`INSERT INTO business_agents (business_id, user_id) VALUES (${business}, ${me.id})`);
    });
    const seen = new Date("2026-11-26T12:00:00Z");
    await setOnline([bob.id, carol.id, dave.id], true);

    const online = await withDb((db) => publishPresence(db, me.id, true, seen));
    expect(online.contacts.sort()).toEqual([carol.id, dave.id].sort());
    expect(online.conversations.sort()).toEqual([a.id, b.id].sort());
    expect(online.watched.sort()).toEqual([a.id, b.id].sort());
    expect(online.businesses).toEqual([business]);
    const flag = () =>
      withDb(async (db) => (await db.execute<{ online: boolean; seen: string }>(sql`SELECT online, last_seen_at AS seen FROM users WHERE id = ${me.id}`)).rows[0]);
    expect(await flag()).toMatchObject({ online: true });
    expect(new Date((await flag()).seen).getTime()).toBe(seen.getTime());

    // Offline with no lastSeen keeps the one written before; after leaving a, only b's people remain.
    await withDb((db) => db.execute(sql`UPDATE participants SET left_at = now() WHERE conversation_id = ${a.id} AND user_id = ${me.id}`));
    const offline = await withDb((db) => publishPresence(db, me.id, false, null));
    expect(offline.conversations).toEqual([b.id]);
    expect(offline.contacts.sort()).toEqual([carol.id, dave.id].sort());

    expect(await flag()).toMatchObject({ online: false });
    expect(new Date((await flag()).seen).getTime()).toBe(seen.getTime());

    // Offline contacts have no device to tell; a conversation where nobody else is online is not watched.
    await setOnline([carol.id, dave.id], false);
    const alone = await withDb((db) => publishPresence(db, me.id, true, null));
    expect(alone).toMatchObject({ contacts: [], conversations: [b.id], watched: [] });
    await setOnline([dave.id], true);
    expect(await withDb((db) => publishPresence(db, me.id, true, null))).toMatchObject({ contacts: [dave.id], watched: [b.id] });
  });

  it("a closed conversation's room hears online ⇄ offline only while another member is online there", async () => {
    // A business agent keeps every conversation they ever handled; a closed one takes no messages, so its room needs
    // no reachability, only its open sockets need the change.
    const open = await seedConversation("direct", 2);
    const closed = await seedConversation("direct", 2);
    const [me, customer] = closed.users;
    await withDb(async (db) => {
      await db.execute(sql`UPDATE participants SET user_id = ${me.id} WHERE conversation_id = ${open.id} AND user_id = ${open.users[0].id}`);
      await db.execute(sql`UPDATE conversations SET status = 'closed', closed_at = now() WHERE id = ${closed.id}`);
    });
    expect(await withDb((db) => publishPresence(db, me.id, true, null))).toMatchObject({ conversations: [open.id], watched: [] });
    await setOnline([customer.id], true);
    const watched = await withDb((db) => publishPresence(db, me.id, false, null));
    expect(watched.conversations.sort()).toEqual([open.id, closed.id].sort());
    expect(watched).toMatchObject({ contacts: [customer.id], watched: [closed.id] });
  });

  it("returns empty lists for a user with no conversations", async () => {
    const { users } = await seedConversation("direct", 2);
    await withDb((db) => db.execute(sql`UPDATE participants SET left_at = now() WHERE user_id = ${users[0].id}`));
    expect(await withDb((db) => publishPresence(db, users[0].id, true, null))).toEqual({ contacts: [], conversations: [], watched: [], businesses: [] });
  });
});

describe("who hears a user's presence change", () => {
  const isOnline = async (id: string) =>
    (await withDb((db) => db.execute<{ online: boolean }>(sql`SELECT online FROM users WHERE id = ${id}`))).rows[0]?.online ? true : undefined;
  const statusesOf = (socket: TestSocket, userId: string) =>
    socket.frames.filter((f) => f.type === "presence_update" && f.data.userId === userId).map((f) => f.data.status);

  it("coming online reaches every room; online ⇄ away only rooms where another member is online, and online contacts", async () => {
    const [alice, bob, carol] = await users(3, "watchers");
    const withBob = await direct(alice, bob);
    const withCarol = await direct(alice, carol);
    const bobUser = await openSocket("/ws", bob);
    for (let i = 0; !(await isOnline(bob.id)); i++) {
      if (i > 100) throw new Error("bob never came online");
      await new Promise((r) => setTimeout(r, 20));
    }
    // Carol has her conversation open but no user socket: presence counts her offline.
    const [bobRoom, carolRoom] = [await openSocket(`/conversations/${withBob}/ws`, bob), await openSocket(`/conversations/${withCarol}/ws`, carol)];
    for (const s of [bobRoom, carolRoom]) await waitFor(() => s.frames.find((f) => f.type === "ready"), "ready");

    const aliceUser = await openSocket("/ws", alice);
    for (const s of [bobRoom, carolRoom, bobUser]) await waitFor(() => (statusesOf(s, alice.id).includes("online") ? true : undefined), "online");
    aliceUser.ws.send(JSON.stringify({ type: "set_presence", data: { status: "away" } }));
    for (const s of [bobRoom, bobUser]) await waitFor(() => (statusesOf(s, alice.id).includes("away") ? true : undefined), "away");
    // The rooms were told at once, in parallel: a room that was going to hear it would have by now.
    await new Promise((r) => setTimeout(r, 300));
    expect(statusesOf(carolRoom, alice.id)).toEqual(["online"]);
    for (const s of [aliceUser, bobUser, bobRoom, carolRoom]) s.ws.close(1000, "done");
  });
});

describe("get_presence", () => {
  it("answers contacts only, in the order asked: online ones from their sessions, offline ones from Postgres", async () => {
    const [alice, bob, carol, dave] = await users(4, "getpres");
    await direct(alice, bob);
    await direct(alice, carol);
    const seen = "2026-11-20T08:30:00.000Z";
    // Carol's session has never run: had it been asked, it would not know when she was last seen.
    await withDb((db) => db.execute(sql`UPDATE users SET online = false, last_seen_at = ${seen}::timestamptz WHERE id = ${carol.id}`));
    const bobUser = await openSocket("/ws", bob);
    for (let i = 0; !(await withDb((db) => db.execute<{ online: boolean }>(sql`SELECT online FROM users WHERE id = ${bob.id}`))).rows[0]?.online; i++) {
      if (i > 100) throw new Error("bob never came online");
      await new Promise((r) => setTimeout(r, 20));
    }
    bobUser.ws.send(JSON.stringify({ type: "set_presence", data: { status: "away" } }));
    bobUser.ws.send(JSON.stringify({ type: "heartbeat", id: "after-away", data: {} }));
    await waitFor(() => bobUser.frames.find((f) => f.type === "heartbeat_ack" && f.id === "after-away"), "heartbeat_ack");
    const aliceUser = await openSocket("/ws", alice);
    await waitFor(() => aliceUser.frames.find((f) => f.type === "connected"), "connected");
    aliceUser.ws.send(JSON.stringify({ type: "get_presence", id: "g1", data: { userIds: [carol.id, dave.id, bob.id, carol.id] } }));
    const state = await waitFor(() => aliceUser.frames.find((f) => f.type === "presence_state" && f.id === "g1"), "presence_state");
    expect(state.data.presences).toEqual([
      { userId: carol.id, status: "offline", lastSeen: seen },
      expect.objectContaining({ userId: bob.id, status: "away" }),
    ]);
    for (const s of [aliceUser, bobUser]) s.ws.close(1000, "done");
  });
});

describe("get_presence when a contact's session fails", () => {
  // One session that failed to answer (a deploy resets every object; calls in flight fail) failed the whole request:
  // the app got an error instead of its contacts' presence.
  it("answers the others, and that contact from Postgres's flag", async () => {
    const [alice, bob, carol] = await users(3, "getpres-fail");
    await direct(alice, bob);
    await direct(alice, carol);
    const seen = "2026-11-21T09:00:00.000Z";
    await withDb((db) => db.execute(sql`UPDATE users SET online = true, last_seen_at = ${seen}::timestamptz WHERE id = ${carol.id}`));
    const bobUser = await openSocket("/ws", bob);
    await waitFor(() => bobUser.frames.find((f) => f.type === "connected"), "connected");
    const aliceUser = await openSocket("/ws", alice);
    await waitFor(() => aliceUser.frames.find((f) => f.type === "connected"), "connected");
    // Alice's session reaches Carol's through a namespace whose calls to Carol fail (injected).
    await runInDurableObject(env.USER_SESSION.get(env.USER_SESSION.idFromName(alice.id)), (instance: UserSession) => {
      const holder = instance as unknown as { env: Env };
      const sessions = holder.env.USER_SESSION;
      const failing = { presenceOf: () => Promise.reject(new Error("Durable Object reset because its code was updated.")) };
      const faulty = Object.create(sessions) as typeof sessions;
      const carolId = sessions.idFromName(carol.id);
      faulty.get = (id: DurableObjectId) => (id.equals(carolId) ? (failing as unknown as ReturnType<typeof sessions.get>) : sessions.get(id));
      faulty.idFromName = (name: string) => sessions.idFromName(name);
      holder.env = { ...holder.env, USER_SESSION: faulty };
    });
    aliceUser.ws.send(JSON.stringify({ type: "get_presence", id: "g2", data: { userIds: [bob.id, carol.id] } }));
    const reply = await waitFor(() => aliceUser.frames.find((f) => f.id === "g2"), "reply to get_presence");
    expect(reply.type).toBe("presence_state");
    expect(reply.data.presences).toEqual([
      expect.objectContaining({ userId: bob.id, status: "online" }),
      { userId: carol.id, status: "online", lastSeen: seen },
    ]);
    for (const s of [aliceUser, bobUser]) s.ws.close(1000, "done");
  });
});

describe("get_presence while a user's last device has just left", () => {
  it("answers what contacts were told (online) during the offline grace, so a reconnect within it leaves no one seeing offline", async () => {
    const [alice, bob] = await users(2, "getpres-grace");
    await direct(alice, bob);
    const session = env.USER_SESSION.get(env.USER_SESSION.idFromName(alice.id));
    const bobUser = await openSocket("/ws", bob);
    await waitFor(() => bobUser.frames.find((f) => f.type === "connected"), "connected");
    const laptop = await openSocket("/ws", alice);
    await waitFor(() => bobUser.frames.find((f) => f.type === "presence_update" && f.data.userId === alice.id && f.data.status === "online"), "online");

    // The laptop's connection blips: its socket closes, and the session holds the offline change for its grace.
    laptop.ws.close(1000, "network change");
    for (let i = 0; ; i++) {
      const since = await runInDurableObject(session, (_i: UserSession, state) => state.storage.kv.get<number>("offlineSince"));
      if (since !== undefined) break;
      if (i > 200) throw new Error("the session never started its offline grace");
      await new Promise((r) => setTimeout(r, 10));
    }
    // Bob opens his contact list right then.
    bobUser.ws.send(JSON.stringify({ type: "get_presence", id: "during-grace", data: { userIds: [alice.id] } }));
    const answer = await waitFor(() => bobUser.frames.find((f) => f.id === "during-grace"), "presence_state");

    // The laptop is back within the grace: nothing is published, so no later push would correct an "offline" answer.
    const again = await openSocket("/ws", alice);
    await waitFor(() => again.frames.find((f) => f.type === "connected"), "connected");
    await runDurableObjectAlarm(session);
    const pushed = bobUser.frames.filter((f) => f.type === "presence_update" && f.data.userId === alice.id).map((f) => f.data.status);
    expect(pushed).toEqual(["online"]);
    expect(answer.data.presences).toEqual([expect.objectContaining({ userId: alice.id, status: "online" })]);
    for (const s of [bobUser, again]) s.ws.close(1000, "done");
  });
});
