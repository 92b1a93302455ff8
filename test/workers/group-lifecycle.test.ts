import { describe, expect, it, vi } from "vitest";
import { env, runInDurableObject, SELF } from "cloudflare:test";
import { sql } from "drizzle-orm";
import type { ConversationRoom } from "../../src/durable-objects/conversation-room";
import type { UserConversationEvent } from "../../src/durable-objects/user-session";
import { api, type TestUser } from "./helpers";
import { direct, group, send, users } from "./conversation-helpers";
import { openSocket, waitFor, type TestSocket } from "./sockets";
import { withDb } from "./fixtures";
import { addParticipant, changeRole, removeParticipant } from "../../src/db/queries/participants";
import { renameConversation } from "../../src/db/queries/conversations";
import { provisionUserIds } from "../../src/db/queries/users";

/** Membership changes as a member's apps see them: the user socket's list events and badges against REST. */

const add = (id: string, token: string, body: unknown) => api("POST", `/conversations/${id}/participants`, { token, body });
const remove = (id: string, userId: string, token: string) => api("DELETE", `/conversations/${id}/participants/${userId}`, { token });
const frame = (s: TestSocket, type: string, pred: (d: any) => boolean = () => true) =>
  waitFor(() => s.frames.find((f) => f.type === type && pred(f.data)), type);
const restCounts = async (u: TestUser) => (await api("GET", "/notifications/unread-counts", { token: u.token })).body;

async function connected(u: TestUser): Promise<TestSocket> {
  const s = await openSocket("/ws", u);
  await frame(s, "connected");
  return s;
}

describe("a member's user socket across membership changes", () => {
  it("drops a removed conversation's unread messages from the live total", async () => {
    const [admin, a, b] = await users(3, "life");
    const [id, other] = [await group(admin, [a, b]), await group(admin, [a, b])];
    const phone = await connected(a);
    try {
      await send(id, admin, "one");
      await send(id, admin, "two");
      await send(other, admin, "elsewhere");
      await waitFor(() => phone.frames.find((f) => f.type === "unread_count" && f.data.totalUnread === 3), "total of 3");
      expect((await remove(id, a.id, admin.token)).status).toBe(204);
      await frame(phone, "conversation_removed", (d) => d.conversationId === id);
      expect(await restCounts(a)).toMatchObject({ unreadCounts: { [other]: 1 }, totalUnread: 1 });
      // The connect's counts carried this conversation's 0 too: the badge that matters comes with the removal.
      const badge = await frame(phone, "unread_count", (d) => d.conversationId === id && d.unreadCount === 0 && d.totalUnread !== 0);
      expect(badge.data.totalUnread).toBe(1);
    } finally {
      phone.ws.close(1000, "done");
    }
  });

  it("gives a member brought back to a group their own unread count, live and in conversation_created", async () => {
    const [admin, a, b] = await users(3, "life");
    const id = await group(admin, [a, b]);
    const phone = await connected(a);
    try {
      await send(id, admin, "before");
      await waitFor(() => phone.frames.find((f) => f.type === "unread_count" && f.data.unreadCount === 1), "badge of 1");
      await api("PUT", `/conversations/${id}/mute`, { token: a.token, body: { isMuted: true } });
      expect((await remove(id, a.id, admin.token)).status).toBe(204);
      await frame(phone, "conversation_removed");
      await send(id, admin, "while a was away");
      expect((await add(id, admin.token, { userId: a.id })).status).toBe(201);
      const rest = await restCounts(a);
      expect(rest.unreadCounts[id]).toBe(2);
      const created = await frame(phone, "conversation_created", (d) => d.conversation.id === id);
      // Kept marks (README): what REST says for this member, not a broadcast's zeros.
      expect(created.data.conversation).toMatchObject({ unreadCount: 2, isMuted: true });
      await frame(phone, "unread_count", (d) => d.conversationId === id && d.unreadCount === 2 && d.totalUnread === 2);
      await send(id, admin, "back");
      await frame(phone, "unread_count", (d) => d.conversationId === id && d.unreadCount === 3 && d.totalUnread === 3);
      expect((await restCounts(a)).unreadCounts[id]).toBe(3);
    } finally {
      phone.ws.close(1000, "done");
    }
  });

  it("tells the side brought back to a direct conversation, with their unread count", async () => {
    const [a, b] = await users(2, "life");
    const id = await direct(a, b);
    await send(id, a, "hi");
    expect((await remove(id, b.id, b.token)).status).toBe(204);
    const phone = await connected(b);
    try {
      await send(id, a, "are you there?");
      const again = await api("POST", "/conversations/direct", { token: a.token, body: { targetUserId: b.id } });
      expect(again.status).toBe(200);
      expect(again.body.id).toBe(id);
      expect((await restCounts(b)).unreadCounts[id]).toBe(2);
      const created = await frame(phone, "conversation_created", (d) => d.conversation.id === id);
      expect(created.data.conversation).toMatchObject({ type: "direct", unreadCount: 2 });
      await frame(phone, "unread_count", (d) => d.conversationId === id && d.unreadCount === 2);
    } finally {
      phone.ws.close(1000, "done");
    }
  });

  it("updates the other members' lists when someone joins, leaves or changes role, each with their own unread count", async () => {
    const [admin, a, b, c] = await users(4, "life");
    const id = await group(admin, [a, b]);
    const phone = await connected(b);
    const members = (d: any) => d.conversation.participants.map((p: { userId: string }) => p.userId).sort();
    const listed = (expected: string[]) =>
      frame(phone, "conversation_updated", (d) => d.conversation.id === id && JSON.stringify(members(d)) === JSON.stringify([...expected].sort()));
    try {
      await send(id, admin, "unread for b");
      await frame(phone, "unread_count", (d) => d.conversationId === id && d.unreadCount === 1);
      expect((await add(id, admin.token, { userId: c.id })).status).toBe(201);
      const joined = await listed([admin.id, a.id, b.id, c.id]);
      expect(joined.data.conversation.unreadCount).toBe(1);
      // A role change too: lists show who the admins are.
      expect((await api("PUT", `/conversations/${id}/participants/${c.id}/role`, { token: admin.token, body: { role: "admin" } })).status).toBe(200);
      const promoted = await frame(phone, "conversation_updated", (d) =>
        d.conversation.id === id && d.conversation.participants.some((p: { userId: string; role: string }) => p.userId === c.id && p.role === "admin"),
      );
      expect(promoted.data.conversation.unreadCount).toBe(1);
      expect((await remove(id, c.id, admin.token)).status).toBe(204);
      await listed([admin.id, a.id, b.id]);
      expect((await remove(id, a.id, a.token)).status).toBe(204);
      const left = await listed([admin.id, b.id]);
      expect(left.data.conversation).toMatchObject({ unreadCount: 1, isMuted: false });
    } finally {
      phone.ws.close(1000, "done");
    }
  });

  it("puts a group first in the lists of a member just added to it, and of the others, as a message would", async () => {
    const [admin, a, b, c] = await users(4, "life");
    const old = await group(admin, [a, b]);
    const newer = await group(admin, [a, c]);
    await send(newer, admin, "newer activity");
    expect((await add(old, admin.token, { userId: c.id })).status).toBe(201);
    for (const u of [c, admin]) {
      const list = (await api("GET", "/conversations", { token: u.token })).body.conversations;
      expect(list[0].id).toBe(old);
    }
  });

  it("drops a membership notice that arrives after a later change of the same member (removal after the re-add, add after a removal)", async () => {
    const [admin, a, b] = await users(3, "life");
    const id = await group(admin, [a, b]);
    const phone = await connected(a);
    const session = env.USER_SESSION.get(env.USER_SESSION.idFromName(a.id));
    const deliver = (event: UserConversationEvent) => session.conversationEvent(event);
    const count = (type: string) => phone.frames.filter((f) => f.type === type && (f.data.conversationId ?? f.data.conversation?.id) === id).length;
    try {
      expect((await remove(id, a.id, admin.token)).status).toBe(204);
      await frame(phone, "conversation_removed", (d) => d.conversationId === id);
      const leftAt = await withDb((db) =>
        db.execute<{ left_at: string }>(sql`SELECT left_at FROM participants WHERE conversation_id = ${id} AND user_id = ${a.id}`),
      );
      expect((await add(id, admin.token, { userId: a.id })).status).toBe(201);
      const created = await frame(phone, "conversation_created", (d) => d.conversation.id === id);
      // The removal's notice, overtaken by the re-add's: the conversation stays on a's list and keeps counting.
      await deliver({ type: "conversation_removed", conversationId: id, at: new Date(leftAt.rows[0].left_at).toISOString() });
      await send(id, admin, "still yours");
      await frame(phone, "unread_count", (d) => d.conversationId === id && d.unreadCount === 1 && d.totalUnread === 1);
      expect(count("conversation_removed")).toBe(1);
      // Removed again; the add's notice comes late: the conversation stays off the list, with no badge.
      expect((await remove(id, a.id, admin.token)).status).toBe(204);
      await waitFor(() => (count("conversation_removed") === 2 ? true : undefined), "the second removal");
      await deliver({ type: "conversation_created", conversation: created.data.conversation, unread: { unreadCount: 1, asOfSeq: 1, readSeq: 0 } });
      await send(id, admin, "not for a");
      await new Promise((r) => setTimeout(r, 300));
      expect(count("conversation_created")).toBe(1);
      expect(phone.frames.filter((f) => f.type === "unread_count").at(-1)?.data.totalUnread).toBe(0);
    } finally {
      phone.ws.close(1000, "done");
    }
  });
});

describe("conversation_updated of changes made in quick succession", () => {
  it("drops one that arrives after a later change's, on the user socket and the conversation socket", async () => {
    const [admin, a, b, c] = await users(4, "life-order");
    const id = await group(admin, [a, b], "Trip");
    const phone = await connected(b);
    const open = await openSocket(`/conversations/${id}/ws`, b);
    const updates = (s: TestSocket) => s.frames.filter((f) => f.type === "conversation_updated").map((f) => f.data.conversation);
    try {
      await frame(open, "ready");
      const rename = (name: string) => api("PATCH", `/conversations/${id}`, { token: admin.token, body: { name } });
      expect((await rename("Trip 2026")).status).toBe(200);
      // The first rename's push, held on its way (as a slow Worker's would be) while the next changes land.
      const held = (await api("GET", `/conversations/${id}`, { token: admin.token })).body;
      expect((await rename("Trip 2027")).status).toBe(200);
      expect((await add(id, admin.token, { userId: c.id })).status).toBe(201);
      await frame(phone, "conversation_updated", (d) => d.conversation.name === "Trip 2027" && d.conversation.participants.length === 4);
      await frame(open, "conversation_updated", (d) => d.conversation.name === "Trip 2027");
      await env.USER_SESSION.get(env.USER_SESSION.idFromName(b.id)).conversationEvent({ type: "conversation_updated", conversation: held });
      const room = env.CONVERSATION_ROOM.get(env.CONVERSATION_ROOM.idFromName(id));
      await runInDurableObject(room, (r: ConversationRoom) => r.notify({ kind: "conversation_updated", conversationId: id, conversation: held }));
      // Whatever came after the held push: a mute from b's laptop (user socket), a message (conversation socket).
      expect((await api("PUT", `/conversations/${id}/mute`, { token: b.token, body: { isMuted: true } })).status).toBe(200);
      await frame(phone, "conversation_updated", (d) => d.conversation.isMuted === true);
      const message = await send(id, admin, "after the held push");
      await frame(open, "new_message", (d) => d.message.id === message.id);
      const names = updates(phone).map((v) => v.name);
      expect(names.slice(names.indexOf("Trip 2027"))).not.toContain("Trip 2026");
      expect(updates(phone).at(-1)).toMatchObject({ name: "Trip 2027", isMuted: true });
      expect(updates(phone).at(-1).participants).toHaveLength(4);
      expect(updates(open).map((v) => v.name)).toEqual(["Trip 2026", "Trip 2027"]);
    } finally {
      for (const s of [phone, open]) s.ws.close(1000, "done");
    }
  });
});

describe("membership times from Workers whose clocks differ", () => {
  it("lists a member re-added after a removal made by a Worker whose clock ran a minute ahead", async () => {
    const [admin, a, b] = await users(3, "life-clock");
    const id = await group(admin, [a, b]);
    const phone = await connected(a);
    try {
      // The removal runs where the clock is a minute fast; the re-add, a moment later, on a Worker with the right time.
      vi.useFakeTimers({ toFake: ["Date"], now: Date.now() + 60_000 });
      let left: Awaited<ReturnType<typeof removeParticipant>>;
      try {
        left = await withDb((db) => removeParticipant(db, "group", id, a.id, admin.id));
      } finally {
        vi.useRealTimers();
      }
      const at = left && "left" in left ? left.left.leftAt?.toISOString() : undefined;
      await env.USER_SESSION.get(env.USER_SESSION.idFromName(a.id)).conversationEvent({ type: "conversation_removed", conversationId: id, at });
      await frame(phone, "conversation_removed", (d) => d.conversationId === id);
      expect((await add(id, admin.token, { userId: a.id })).status).toBe(201);
      await frame(phone, "conversation_created", (d) => d.conversation.id === id);
    } finally {
      phone.ws.close(1000, "done");
    }
  });
});

describe("an admin's membership changes racing their own demotion", () => {
  // The route checks the caller's role before its transaction; these call the transactions as a request that passed
  // that check just before the demotion (or removal) committed would.
  it("refuses, under the conversation's lock, a demoted admin's rename, add, removal and role change (403) and a removed one's (404)", async () => {
    const [admin, a, b, c] = await users(4, "life");
    const id = await group(admin, [a, b, c]);
    const setRole = (userId: string, role: string) =>
      api("PUT", `/conversations/${id}/participants/${userId}/role`, { token: admin.token, body: { role } });
    expect((await setRole(a.id, "admin")).status).toBe(200);
    expect((await setRole(a.id, "member")).status).toBe(200);
    const newcomer = (await users(1, "life"))[0];
    await withDb(async (db) => {
      // A rename that read the group while `a` was still admin: its statement writes nothing (the route reads again).
      expect(await renameConversation(db, { conversationId: id, actorId: a.id, from: null, to: "renamed by a demoted admin", version: 2 })).toBe(false);
      expect(await removeParticipant(db, "group", id, c.id, a.id)).toMatchObject({ status: 403 });
      expect(await changeRole(db, id, b.id, "admin", a.id)).toMatchObject({ status: 403 });
      expect(await addParticipant(db, id, newcomer.id, "member", a.id)).toMatchObject({ status: 403 });
      // Leaving needs no role.
      expect(await removeParticipant(db, "group", id, a.id, a.id)).toMatchObject({ left: { userId: a.id } });
      expect(await changeRole(db, id, b.id, "admin", a.id)).toMatchObject({ status: 404 });
    });
    const view = (await api("GET", `/conversations/${id}`, { token: admin.token })).body;
    expect(view.name).toBeNull();
    const members = view.participants;
    expect(Object.fromEntries(members.map((p: { userId: string; role: string }) => [p.userId, p.role]))).toEqual({
      [admin.id]: "admin",
      [b.id]: "member",
      [c.id]: "member",
    });
  });
});

describe("typing of a member who is removed", () => {
  it("ends with the removal: typing_stop before participant_left, and sockets opened after it do not list them", async () => {
    const [admin, a, b] = await users(3, "life-typing");
    const id = await group(admin, [a, b]);
    const [typist, watcher] = [await openSocket(`/conversations/${id}/ws`, a), await openSocket(`/conversations/${id}/ws`, b)];
    for (const s of [typist, watcher]) await frame(s, "ready");
    // Her app does not answer the server's close (a phone that lost the network): only the removal can end the lease.
    typist.ws.addEventListener("close", () => {});
    typist.ws.send(JSON.stringify({ type: "start_typing", data: {} }));
    await frame(watcher, "typing_start", (d) => d.userId === a.id);
    expect((await remove(id, a.id, admin.token)).status).toBe(204);
    await frame(watcher, "participant_left", (d) => d.userId === a.id);
    const order = watcher.frames.filter((f) => ["typing_stop", "participant_left"].includes(f.type) && f.data.userId === a.id).map((f) => f.type);
    expect(order).toEqual(["typing_stop", "participant_left"]);
    const later = await openSocket(`/conversations/${id}/ws`, admin);
    expect((await frame(later, "ready")).data.typing).toEqual([]);
    for (const s of [watcher, later]) s.ws.close(1000, "done");
  });
});

describe("presence of a member who is removed", () => {
  it("no longer reaches the group's sockets, though their session's publish was on its way before the removal", async () => {
    const [admin, a, b] = await users(3, "life-presence");
    const id = await group(admin, [a, b]);
    const watcher = await openSocket(`/conversations/${id}/ws`, b);
    await frame(watcher, "ready");
    expect((await remove(id, a.id, admin.token)).status).toBe(204);
    await frame(watcher, "participant_left", (d) => d.userId === a.id);
    // Her session read its audience (this group among them) just before the removal committed; the call lands now.
    const room = env.CONVERSATION_ROOM.get(env.CONVERSATION_ROOM.idFromName(id));
    await room.presence({ userId: a.id, status: "away", lastSeen: new Date().toISOString() });
    await room.presence({ userId: admin.id, status: "away", lastSeen: new Date().toISOString() });
    await frame(watcher, "presence_update", (d) => d.userId === admin.id);
    expect(watcher.frames.filter((f) => f.type === "presence_update" && f.data.userId === a.id)).toEqual([]);
    watcher.ws.close(1000, "done");
  });
});

describe("open conversation sockets of a member the room learns is gone", () => {
  // A removal whose room notification was lost (tellRoom only logs a failure: the room was unreachable) is caught by
  // the room's next look at Postgres's member list. Any membership event brings one (here a mute).
  it("closes a removed member's socket with 4403, and keeps the next messages from it, when the room learns it from another change", async () => {
    const [admin, a, b, c] = await users(4, "life");
    const id = await group(admin, [a, b, c]);
    const removed = await openSocket(`/conversations/${id}/ws`, a);
    const watcher = await openSocket(`/conversations/${id}/ws`, b);
    await frame(removed, "ready");
    await frame(watcher, "ready");
    const closed = new Promise<number>((resolve) => removed.ws.addEventListener("close", (e) => resolve(e.code)));
    await withDb((db) => removeParticipant(db, "group", id, a.id, admin.id));
    expect((await api("PUT", `/conversations/${id}/mute`, { token: c.token, body: { isMuted: true } })).status).toBe(200);
    const message = await send(id, admin, "not for a");
    await frame(watcher, "new_message", (d) => d.message.id === message.id);
    expect(removed.frames.find((f) => f.type === "new_message")).toBeUndefined();
    expect(await closed).toBe(4403);
    // The others' member lists drop them too.
    await frame(watcher, "participant_left", (d) => d.userId === a.id);
    watcher.ws.close(1000, "done");
  });

  it("tells open sockets of a member whose add the room missed, when it learns it from another change", async () => {
    const [admin, a, b] = await users(3, "life");
    const newcomer = (await users(1, "life"))[0];
    const id = await group(admin, [a, b]);
    const watcher = await openSocket(`/conversations/${id}/ws`, b);
    await frame(watcher, "ready");
    await withDb(async (db) => {
      await provisionUserIds(db, [newcomer.id]);
      await addParticipant(db, id, newcomer.id, "member", admin.id);
    });
    expect((await api("PUT", `/conversations/${id}/mute`, { token: a.token, body: { isMuted: true } })).status).toBe(200);
    const joined = await frame(watcher, "participant_joined", (d) => d.participant.userId === newcomer.id);
    expect(joined.data.participant).toMatchObject({ userId: newcomer.id, role: "member" });
    watcher.ws.close(1000, "done");
  });

  it("lets a member whose add the room missed open the conversation's socket (it was a 404, and apps gave up)", async () => {
    const [admin, a, b] = await users(3, "life");
    const newcomer = (await users(1, "life"))[0];
    const id = await group(admin, [a, b]);
    await send(id, a, "before");
    await withDb(async (db) => {
      await provisionUserIds(db, [newcomer.id]);
      await addParticipant(db, id, newcomer.id, "member", admin.id);
    });
    const socket = await openSocket(`/conversations/${id}/ws`, newcomer);
    const ready = await frame(socket, "ready");
    expect(ready.data.participants.map((p: { userId: string }) => p.userId)).toContain(newcomer.id);
    socket.ws.close(1000, "done");
    // Someone never added is still refused.
    const [stranger] = await users(1, "life");
    const refused = await SELF.fetch(`http://chat.test/conversations/${id}/ws`, { headers: { Upgrade: "websocket", authorization: `Bearer ${stranger.token}` } });
    expect(refused.status).toBe(404);
  });
});
