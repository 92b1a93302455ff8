import { describe, expect, it } from "vitest";
import { env, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import type { UserSession } from "../../src/durable-objects/user-session";
import { getConfig } from "../../src/lib/config";
import { TYPING_LEASE_MS } from "../../src/domain/typing";
import { sql } from "drizzle-orm";
import { withDb } from "./fixtures";
import { api } from "./helpers";
import { direct, group, send, users } from "./conversation-helpers";
import { openSocket, waitFor, type TestSocket } from "./sockets";

/** The first frame of `type` whose data matches (10 s: an offline change waits for the session's grace alarm). */
const frame = (s: TestSocket, type: string, match: (data: any) => boolean = () => true) =>
  waitFor(() => s.frames.find((f) => f.type === type && match(f.data)), type, 10_000);

const request = (s: TestSocket, type: string, data: unknown, id: string) => {
  s.ws.send(JSON.stringify({ type, data, id }));
  return waitFor(() => s.frames.find((f) => f.id === id), `reply to ${id}`);
};

describe("presence of a user with two devices", () => {
  it("goes offline with lastSeen when the last device left, not when the user came online", async () => {
    const [alice, bob] = await users(2, "md-seen");
    await direct(alice, bob);
    const watcher = await openSocket("/ws", bob);
    await frame(watcher, "connected");
    const [phone, laptop] = [await openSocket("/ws", alice), await openSocket("/ws", alice)];
    const online = await frame(watcher, "presence_update", (d) => d.userId === alice.id && d.status === "online");
    // Some time with both devices up; the laptop's heartbeat is the server's word for "alice was here then".
    await new Promise((r) => setTimeout(r, 300));
    phone.ws.close(1000, "done");
    const ack = await request(laptop, "heartbeat", {}, "hb");
    expect(Date.parse(ack.data.timestamp)).toBeGreaterThan(Date.parse(online.data.lastSeen));
    laptop.ws.close(1000, "done");
    const offline = await frame(watcher, "presence_update", (d) => d.userId === alice.id && d.status === "offline");
    expect(Date.parse(offline.data.lastSeen)).toBeGreaterThanOrEqual(Date.parse(ack.data.timestamp));
    // What get_presence answers from Postgres for an offline contact is the same.
    const seen = await withDb((db) => db.execute<{ seen: string }>(sql`SELECT last_seen_at AS seen FROM users WHERE id = ${alice.id}`));
    expect(new Date(seen.rows[0].seen).toISOString()).toBe(offline.data.lastSeen);
    watcher.ws.close(1000, "done");
  });
});

/** What `watcher` has been pushed about `userId`, in order. */
const pushedStatuses = (watcher: TestSocket, userId: string) =>
  watcher.frames.filter((f) => f.type === "presence_update" && f.data.userId === userId).map((f) => f.data.status);

/** Runs the session's pending alarm now (the end of any grace), then gives its pushes time to arrive. */
async function settle(userId: string): Promise<void> {
  await runDurableObjectAlarm(env.USER_SESSION.get(env.USER_SESSION.idFromName(userId)));
  await new Promise((r) => setTimeout(r, 300));
}

describe("presence across a blip of one device's connection", () => {
  it("a user whose app said away does not flash online to contacts when the user socket reconnects", async () => {
    const [alice, bob] = await users(2, "md-blip-away");
    await direct(alice, bob);
    const watcher = await openSocket("/ws", bob);
    await frame(watcher, "connected");
    const laptop = await openSocket("/ws", alice);
    await frame(watcher, "presence_update", (d) => d.userId === alice.id && d.status === "online");
    laptop.ws.send(JSON.stringify({ type: "set_presence", data: { status: "away" } }));
    await frame(watcher, "presence_update", (d) => d.userId === alice.id && d.status === "away");

    // The network changes: the socket drops and the SDK reconnects, saying `away` again first thing (client/user.ts).
    laptop.ws.close(1001, "network change");
    const again = await openSocket("/ws", alice);
    again.ws.send(JSON.stringify({ type: "set_presence", data: { status: "away" } }));
    await request(again, "heartbeat", {}, "after-away");
    await settle(alice.id);
    expect(pushedStatuses(watcher, alice.id)).toEqual(["online", "away"]);
    for (const s of [watcher, again]) s.ws.close(1000, "done");
  });

  it("a user online on the laptop, phone in the background, stays online to contacts when the laptop's connection blips", async () => {
    const [alice, bob] = await users(2, "md-blip-two");
    await direct(alice, bob);
    const watcher = await openSocket("/ws", bob);
    await frame(watcher, "connected");
    const laptop = await openSocket("/ws", alice);
    await frame(watcher, "presence_update", (d) => d.userId === alice.id && d.status === "online");
    const phone = await openSocket("/ws", alice);
    phone.ws.send(JSON.stringify({ type: "set_presence", data: { status: "away" } }));
    await request(phone, "heartbeat", {}, "phone-away");

    laptop.ws.close(1001, "network change");
    const session = env.USER_SESSION.get(env.USER_SESSION.idFromName(alice.id));
    for (let i = 0; (await runInDurableObject(session, (_i: UserSession, state) => state.getWebSockets().length)) > 1; i++) {
      if (i > 250) throw new Error("the laptop's socket never left");
      await new Promise((r) => setTimeout(r, 20));
    }
    // Meanwhile she types in a conversation (its room tells her session): the backgrounded phone still says away.
    await runInDurableObject(session, (instance: UserSession) => instance.activity());
    const back = await openSocket("/ws", alice);
    await frame(back, "connected");
    await settle(alice.id);
    expect(pushedStatuses(watcher, alice.id)).toEqual(["online"]);
    for (const s of [watcher, phone, back]) s.ws.close(1000, "done");
  });
});

describe("an app that toggles away and back many times in a row", () => {
  it("reaches contacts coalesced and in order, ending in the state the app said last", async () => {
    const [alice, bob] = await users(2, "md-toggle");
    await direct(alice, bob);
    const watcher = await openSocket("/ws", bob);
    await frame(watcher, "connected");
    const laptop = await openSocket("/ws", alice);
    await frame(watcher, "presence_update", (d) => d.userId === alice.id && d.status === "online");
    // Focus and blur events of a window being dragged about: twenty changes within a few milliseconds.
    for (let i = 0; i < 20; i++) laptop.ws.send(JSON.stringify({ type: "set_presence", data: { status: i % 2 ? "online" : "away" } }));
    // The app's last word comes once the burst is in: the pool's wrapper of the object awaits an import before each
    // webSocketMessage, so under load two frames sent back to back reached the session in the opposite order. workerd
    // itself hands a socket's frames over in order (README, Tests). The publisher's order is what is tested.
    await request(laptop, "heartbeat", {}, "after-burst");
    laptop.ws.send(JSON.stringify({ type: "set_presence", data: { status: "away" } }));
    await request(laptop, "heartbeat", {}, "after-toggles");
    await settle(alice.id);
    await new Promise((r) => setTimeout(r, 3000));
    const pushed = pushedStatuses(watcher, alice.id);
    console.log("DIAG pushed", JSON.stringify(pushed));
    // Each change was published side by side with the others: twenty pushes, in whatever order they landed.
    expect(pushed.length).toBeLessThanOrEqual(4);
    expect(pushed.at(-1)).toBe("away");
    expect(await statusOf(alice.id)).toBe("away");
    for (const s of [watcher, laptop]) s.ws.close(1000, "done");
  });
});

/** Moves every device's last sign of a person back by `ms`, as if the user had not touched them since. */
function idle(userId: string, ms: number): Promise<void> {
  const stub = env.USER_SESSION.get(env.USER_SESSION.idFromName(userId));
  return runInDurableObject(stub, async (_instance: UserSession, state) => {
    for (const ws of state.getWebSockets()) {
      const att = ws.deserializeAttachment() as { lastActive: number };
      ws.serializeAttachment({ ...att, lastActive: att.lastActive - ms });
    }
  });
}

const statusOf = (userId: string) =>
  runInDurableObject(env.USER_SESSION.get(env.USER_SESSION.idFromName(userId)), (instance: UserSession) => instance.presenceOf(userId)).then((p) => p.status);

describe("activity in a conversation", () => {
  it("keeps a user who is chatting online: sending on a conversation socket or over REST, typing, reading", async () => {
    const [alice, ...others] = await users(5, "md-active");
    // A room passes a user's activity on at most once a minute: one conversation per kind of activity.
    const [a, b, c, d] = await Promise.all(others.map((o) => direct(alice, o)));
    await send(d, others[3], "read me");
    const awayAfter = getConfig(env).PRESENCE_AWAY_AFTER * 1000;
    const laptop = await openSocket("/ws", alice);
    await frame(laptop, "connected");
    const [roomA, roomC] = [await openSocket(`/conversations/${a}/ws`, alice), await openSocket(`/conversations/${c}/ws`, alice)];
    for (const r of [roomA, roomC]) await frame(r, "ready");
    const activities: [string, () => Promise<unknown>][] = [
      ["send on the socket", () => request(roomA, "send_message", { content: "still here", clientMessageId: crypto.randomUUID() }, "s1")],
      ["send over REST", () => send(b, alice, "and here")],
      ["typing", async () => roomC.ws.send(JSON.stringify({ type: "start_typing", data: {} }))],
      ["reading", () => api("PUT", `/conversations/${d}/read`, { token: alice.token, body: {} })],
    ];
    for (const [what, act] of activities) {
      // The user socket itself saw nothing but heartbeats since: idle there for longer than PRESENCE_AWAY_AFTER.
      await idle(alice.id, awayAfter + 1000);
      expect(await statusOf(alice.id), what).toBe("away");
      await act();
      const until = Date.now() + 5000;
      while ((await statusOf(alice.id)) !== "online") {
        if (Date.now() > until) throw new Error(`${what}: still away`);
        await new Promise((r) => setTimeout(r, 20));
      }
    }
    for (const s of [laptop, roomA, roomC]) s.ws.close(1000, "done");
  });
});

describe("an idle user", () => {
  it("stays away when their app asks for contacts' presence on its own (the web app does on every new conversation)", async () => {
    const [alice, bob] = await users(2, "md-idle-ask");
    await direct(alice, bob);
    const watcher = await openSocket("/ws", bob);
    await frame(watcher, "connected");
    const laptop = await openSocket("/ws", alice);
    await frame(watcher, "presence_update", (d) => d.userId === alice.id && d.status === "online");
    // Alice left her laptop with the tab visible; then Bob starts a conversation and her app asks who is online.
    await idle(alice.id, getConfig(env).PRESENCE_AWAY_AFTER * 1000 + 1000);
    await request(laptop, "get_presence", { userIds: [bob.id] }, "ask");
    await runDurableObjectAlarm(env.USER_SESSION.get(env.USER_SESSION.idFromName(alice.id)));
    await frame(watcher, "presence_update", (d) => d.userId === alice.id && d.status === "away");
    for (const s of [watcher, laptop]) s.ws.close(1000, "done");
  });
});

/** Alice with a phone and a laptop in a direct conversation with Bob (watching), typing on the phone. */
async function typingOnPhone(prefix: string) {
  const [alice, bob] = await users(2, prefix);
  const id = await direct(alice, bob);
  const [phone, laptop, watcher] = [
    await openSocket(`/conversations/${id}/ws`, alice),
    await openSocket(`/conversations/${id}/ws`, alice),
    await openSocket(`/conversations/${id}/ws`, bob),
  ];
  for (const s of [phone, laptop, watcher]) await frame(s, "ready");
  phone.ws.send(JSON.stringify({ type: "start_typing", data: {} }));
  await frame(watcher, "typing_start", (d) => d.userId === alice.id);
  return { alice, bob, id, phone, laptop, watcher };
}

describe("typing of a user with two devices in the conversation", () => {
  it("stops as soon as the device that was typing leaves, though another of the user's sockets stays open", async () => {
    const { alice, phone, laptop, watcher } = await typingOnPhone("md-typing");
    // She locks the phone mid-sentence; the laptop still has the conversation open.
    const left = Date.now();
    phone.ws.close(1000, "locked");
    await frame(watcher, "typing_stop", (d) => d.userId === alice.id);
    // Not the lease running out (6 s): the phone's leaving ended it.
    expect(Date.now() - left).toBeLessThan(TYPING_LEASE_MS / 2);
    for (const s of [laptop, watcher]) s.ws.close(1000, "done");
  });
});

describe("typing frames go to the other participants only", () => {
  it("neither the typist's own socket nor their other devices get typing_start/typing_stop, nor see themselves in ready.typing", async () => {
    const { alice, bob, id, phone, laptop, watcher } = await typingOnPhone("md-typing-echo");
    // A socket that opens while she types: Bob's lists her, her own does not.
    const [tablet, bobsTablet] = [await openSocket(`/conversations/${id}/ws`, alice), await openSocket(`/conversations/${id}/ws`, bob)];
    expect((await frame(tablet, "ready")).data.typing).toEqual([]);
    expect((await frame(bobsTablet, "ready")).data.typing).toEqual([alice.id]);
    phone.ws.send(JSON.stringify({ type: "stop_typing", data: {} }));
    await frame(watcher, "typing_stop", (d) => d.userId === alice.id);
    // Frames to one socket arrive in order: any typing frame for Alice's sockets was sent before these answers.
    for (const [s, i] of [[phone, 1], [laptop, 2], [tablet, 3]] as const) await request(s, "heartbeat", {}, `hb-echo-${i}`);
    for (const s of [phone, laptop, tablet]) expect(s.frames.filter((f) => f.type.startsWith("typing_")).map((f) => f.type)).toEqual([]);
    for (const s of [phone, laptop, watcher, tablet, bobsTablet]) s.ws.close(1000, "done");
  });

  it("a client flooding start/stop (on one device or spread over two) is refused past a few starts a second; the others see no flicker", async () => {
    const { alice, phone, laptop, watcher } = await typingOnPhone("md-typing-flood");
    const before = watcher.frames.length;
    for (let i = 0; i < 40; i++) (i % 4 < 2 ? phone : laptop).ws.send(JSON.stringify({ type: i % 2 ? "stop_typing" : "start_typing", data: {} }));
    for (const [s, i] of [[phone, 1], [laptop, 2], [watcher, 3]] as const) await request(s, "heartbeat", {}, `hb-flood-${i}`);
    const relayed = watcher.frames.slice(before).filter((f) => f.type.startsWith("typing_"));
    // Every relayed start went to every other member's socket: 20 of them turned Bob's screen on and off 20 times.
    expect(relayed.length).toBeLessThanOrEqual(12);
    expect(relayed.at(-1)).toMatchObject({ type: "typing_stop", data: { userId: alice.id } });
    const refused = [...phone.frames, ...laptop.frames].filter((f) => f.type === "error");
    expect(refused.length).toBeGreaterThan(0);
    expect(refused.every((f) => f.data.code === "rate_limited")).toBe(true);
    // A refusal closes nothing, and a second later she types as usual.
    await new Promise((r) => setTimeout(r, 1000));
    const starts = () => watcher.frames.filter((f) => f.type === "typing_start" && f.data.userId === alice.id).length;
    const startsBefore = starts();
    phone.ws.send(JSON.stringify({ type: "start_typing", data: {}, id: "after-flood" }));
    await waitFor(() => (starts() > startsBefore ? true : undefined), "typing_start after the flood");
    expect(phone.frames.find((f) => f.id === "after-flood")).toBeUndefined();
    for (const s of [phone, laptop, watcher]) s.ws.close(1000, "done");
  });
});

describe("unread badges of a user with two devices", () => {
  it("a conversation the user is removed from leaves totalUnread on every device", async () => {
    const [admin, bob, carol] = await users(3, "md-rm");
    const gid = await group(admin, [bob, carol]);
    const did = await direct(carol, bob);
    const [phone, laptop] = [await openSocket("/ws", bob), await openSocket("/ws", bob)];
    for (const s of [phone, laptop]) await frame(s, "connected");
    await send(gid, admin, "one");
    await send(gid, admin, "two");
    await send(did, carol, "dm");
    for (const s of [phone, laptop]) await frame(s, "unread_count", (d) => d.totalUnread === 3);
    expect((await api("DELETE", `/conversations/${gid}/participants/${bob.id}`, { token: admin.token })).status).toBe(204);
    for (const s of [phone, laptop]) {
      await frame(s, "conversation_removed", (d) => d.conversationId === gid);
      // The connect's counts carried this conversation's 0 too: the badge that matters comes with the removal.
      const badge = await frame(s, "unread_count", (d) => d.conversationId === gid && d.unreadCount === 0 && d.totalUnread !== 0);
      expect(badge.data.totalUnread).toBe(1);
    }
    // And REST agrees with what the devices show.
    expect((await api("GET", "/notifications/unread-counts", { token: bob.token })).body.totalUnread).toBe(1);
    for (const s of [phone, laptop]) s.ws.close(1000, "done");
  });
});

describe("conversation_updated on a member's user socket", () => {
  it("carries the member's own unread count and mute flag, not the shared view's 0 and false", async () => {
    const [admin, bob, carol] = await users(3, "md-upd");
    const gid = await group(admin, [bob, carol], "Trip");
    expect((await api("PUT", `/conversations/${gid}/mute`, { token: bob.token, body: { isMuted: true } })).status).toBe(200);
    const phone = await openSocket("/ws", bob);
    await frame(phone, "connected");
    await send(gid, admin, "one");
    await send(gid, admin, "two");
    await frame(phone, "unread_count", (d) => d.conversationId === gid && d.unreadCount === 2);
    expect((await api("PATCH", `/conversations/${gid}`, { token: admin.token, body: { name: "Trip 2026" } })).status).toBe(200);
    const updated = await frame(phone, "conversation_updated", (d) => d.conversation.name === "Trip 2026");
    expect(updated.data.conversation).toMatchObject({ id: gid, unreadCount: 2, isMuted: true });
    phone.ws.close(1000, "done");
  });

  it("tells the user's other devices when they mute or unmute a conversation", async () => {
    const [alice, bob] = await users(2, "md-mute");
    const id = await direct(alice, bob);
    await send(id, bob, "hi");
    const laptop = await openSocket("/ws", alice);
    await frame(laptop, "connected");
    // Muted from the phone (REST): the laptop's list hears it, with the unread message still counted.
    expect((await api("PUT", `/conversations/${id}/mute`, { token: alice.token, body: { isMuted: true } })).status).toBe(200);
    const muted = await frame(laptop, "conversation_updated", (d) => d.conversation.id === id && d.conversation.isMuted === true);
    expect(muted.data.conversation.unreadCount).toBe(1);
    expect((await api("PUT", `/conversations/${id}/mute`, { token: alice.token, body: { isMuted: false } })).status).toBe(200);
    await frame(laptop, "conversation_updated", (d) => d.conversation.id === id && d.conversation.isMuted === false);
    // Nothing of it reaches the other member.
    const bobs = await openSocket("/ws", bob);
    await frame(bobs, "connected");
    expect((await api("PUT", `/conversations/${id}/mute`, { token: alice.token, body: { isMuted: true } })).status).toBe(200);
    await frame(laptop, "conversation_updated", (d) => d.conversation.id === id && d.conversation.isMuted === true && laptop.frames.filter((f) => f.type === "conversation_updated").length === 3);
    expect(bobs.frames.some((f) => f.type === "conversation_updated")).toBe(false);
    for (const s of [laptop, bobs]) s.ws.close(1000, "done");
  });

  it("keeps a mute when a notification batch the room made before it lands after it", async () => {
    const [admin, bob, carol] = await users(3, "md-mute-late");
    const gid = await group(admin, [bob, carol], "Band");
    const sent = await send(gid, admin, "one");
    const phone = await openSocket("/ws", bob);
    await frame(phone, "connected");
    expect((await api("PUT", `/conversations/${gid}/mute`, { token: bob.token, body: { isMuted: true } })).status).toBe(200);
    await frame(phone, "conversation_updated", (d) => d.conversation.id === gid && d.conversation.isMuted === true);
    // The batch for "two" left the room with bob's flag as it was before the mute, and reaches his session now.
    const session = env.USER_SESSION.get(env.USER_SESSION.idFromName(bob.id));
    const two = { ...(await api("GET", `/conversations/${gid}/messages`, { token: bob.token })).body.messages[0], id: crypto.randomUUID(), seq: sent.seq + 1 };
    await session.messageNotifications({ conversationId: gid, messages: [two], muted: false });
    expect((await api("PATCH", `/conversations/${gid}`, { token: admin.token, body: { name: "Band 2026" } })).status).toBe(200);
    const renamed = await frame(phone, "conversation_updated", (d) => d.conversation.name === "Band 2026");
    expect(renamed.data.conversation).toMatchObject({ id: gid, isMuted: true });
    phone.ws.close(1000, "done");
  });

  it("shows a mute on the other devices when its view was read before a rename that reached them first", async () => {
    const [admin, bob, carol] = await users(3, "md-mute-older");
    const gid = await group(admin, [bob, carol], "Choir");
    const phone = await openSocket("/ws", bob);
    await frame(phone, "connected");
    // Bob's laptop mutes: its view is read now, and the admin's rename commits before that view reaches the session.
    const read = (await api("GET", `/conversations/${gid}`, { token: bob.token })).body;
    expect((await api("PATCH", `/conversations/${gid}`, { token: admin.token, body: { name: "Choir 2026" } })).status).toBe(200);
    await frame(phone, "conversation_updated", (d) => d.conversation.name === "Choir 2026");
    const session = env.USER_SESSION.get(env.USER_SESSION.idFromName(bob.id));
    await session.conversationEvent({ type: "conversation_updated", conversation: { ...read, isMuted: true }, own: true });
    const muted = await frame(phone, "conversation_updated", (d) => d.conversation.isMuted === true);
    // The mute, with the name as it is now (the older view's name is not put back).
    expect(muted.data.conversation).toMatchObject({ id: gid, name: "Choir 2026", isMuted: true });
    phone.ws.close(1000, "done");
  });
});

describe("badges of a device that comes back", () => {
  it("clears on connect what the user read on another device while it was away, down to a total of 0", async () => {
    const [alice, bob] = await users(2, "md-back");
    const id = await direct(alice, bob);
    const laptop = await openSocket("/ws", bob);
    await frame(laptop, "connected");
    await send(id, alice, "one");
    await send(id, alice, "two");
    await frame(laptop, "unread_count", (d) => d.conversationId === id && d.unreadCount === 2 && d.totalUnread === 2);
    laptop.ws.close(1000, "lid closed");
    // Read on the phone while the laptop is away.
    expect((await api("PUT", `/conversations/${id}/read`, { token: bob.token, body: {} })).body.unreadCount).toBe(0);
    const back = await openSocket("/ws", bob);
    const badge = await frame(back, "unread_count", (d) => d.conversationId === id);
    expect(badge.data).toMatchObject({ unreadCount: 0, totalUnread: 0 });
    back.ws.close(1000, "done");
  });
});
