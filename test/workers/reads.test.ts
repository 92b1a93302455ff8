import { describe, expect, it } from "vitest";
import { env, runInDurableObject } from "cloudflare:test";
import type { ConversationRoom } from "../../src/durable-objects/conversation-room";
import { api, expectErrorShape, type TestUser } from "./helpers";
import { direct, get, group, send, users } from "./conversation-helpers";
import { openSocket, waitFor } from "./sockets";
import { slowRoomFlushes, withDb } from "./fixtures";
import { flushBatch } from "../../src/db/queries/messages";

const read = (id: string, token: string, body?: unknown) => api("PUT", `/conversations/${id}/read`, { token, body });
const unread = (id: string, token: string) => api("GET", `/conversations/${id}/unread-count`, { token });

describe("read marks", () => {
  it("counts others' messages after the read mark, moves forward only, and reports receipts", async () => {
    const [a, b] = await users(2, "read");
    const id = await direct(a, b);
    const m1 = await send(id, b, "one");
    await send(id, b, "two");
    await send(id, a, "mine");
    await send(id, b, "three");
    expect((await unread(id, a.token)).body).toEqual({ conversationId: id, unreadCount: 3 });
    expect((await unread(id, b.token)).body.unreadCount).toBe(1);

    const toFirst = await read(id, a.token, { messageId: m1.id });
    expect(toFirst.status).toBe(200);
    expect(toFirst.body).toEqual({ conversationId: id, lastReadSeq: 1, unreadCount: 2 });

    const all = await read(id, a.token);
    expect(all.body).toEqual({ conversationId: id, lastReadSeq: 4, unreadCount: 0 });
    const backwards = await read(id, a.token, { seq: 2 });
    expect(backwards.body.lastReadSeq).toBe(4);
    expect((await unread(id, a.token)).body.unreadCount).toBe(0);
    expect((await get(id, a)).body.unreadCount).toBe(0);

    const receipts = await api("GET", `/conversations/${id}/read-receipts`, { token: b.token });
    expect(receipts.status).toBe(200);
    expect(receipts.body.conversationId).toBe(id);
    const mine = receipts.body.participants.find((p: { userId: string }) => p.userId === a.id);
    expect(mine).toMatchObject({ lastReadSeq: 4, lastDeliveredSeq: expect.any(Number) });
    expect(typeof mine.lastReadAt).toBe("string");
    expect(receipts.body.participants.find((p: { userId: string }) => p.userId === b.id)).toMatchObject({ lastReadSeq: 0, lastReadAt: null });
  });

  it("does not count deleted messages as unread", async () => {
    const [a, b] = await users(2, "read");
    const id = await direct(a, b);
    const gone = await send(id, b, "oops");
    await send(id, b, "kept");
    expect((await api("DELETE", `/conversations/${id}/messages/${gone.id}`, { token: b.token })).status).toBe(204);
    expect((await unread(id, a.token)).body.unreadCount).toBe(1);
  });

  it("marks read up to a message sent while the mark looked its message up", async () => {
    const [a, b] = await users(2, "read");
    const id = await direct(a, b);
    await send(id, b, "one");
    const room = env.CONVERSATION_ROOM.get(env.CONVERSATION_ROOM.idFromName(id));
    const marked = await runInDurableObject(room, async (instance: ConversationRoom) => {
      // The lookup waits (Postgres, for a message the room does not hold) while b sends "two", the message it finds:
      // newer than the newest seq the mark knew when it began.
      const find = instance.findMessage.bind(instance);
      instance.findMessage = async () => {
        const { message } = await instance.sendMessage({ conversationId: id, actor: { id: b.id, kahaId: b.kahaId }, content: "two" });
        return find(message.id);
      };
      try {
        return await instance.markRead({ conversationId: id, actor: { id: a.id, kahaId: a.kahaId }, messageId: crypto.randomUUID() });
      } finally {
        instance.findMessage = find;
      }
    });
    expect(marked).toMatchObject({ ok: true, value: { lastReadSeq: 2, unreadCount: 0 } });
    expect((await unread(id, a.token)).body.unreadCount).toBe(0);
  });

  it("validates its body", async () => {
    const [a, b] = await users(2, "read");
    const id = await direct(a, b);
    const m = await send(id, b);
    for (const body of [{ seq: -1 }, { seq: 1.5 }, { seq: "1" }, { messageId: "x" }, { seq: 1, messageId: m.id }, { lastReadSeq: 1 }]) {
      expectErrorShape(await read(id, a.token, body), 400);
    }
    expectErrorShape(await read(id, a.token, { messageId: crypto.randomUUID() }), 404);
  });

  it("takes a JSON Content-Type with no body as no body: the latest (optional body, contract §5)", async () => {
    const [a, b] = await users(2, "read");
    const id = await direct(a, b);
    await send(id, b, "one");
    await send(id, b, "two");
    // Clients that set the JSON Content-Type on every request sent this and got "Malformed JSON in request body".
    const empty = await api("PUT", `/conversations/${id}/read`, { token: a.token, rawBody: "", headers: { "content-type": "application/json" } });
    expect(empty.status, JSON.stringify(empty.body)).toBe(200);
    expect(empty.body).toEqual({ conversationId: id, lastReadSeq: 2, unreadCount: 0 });
    await send(id, b, "three");
    const none = await api("PUT", `/conversations/${id}/read`, { token: a.token, headers: { "content-type": "application/json; charset=utf-8" } });
    expect(none.status, JSON.stringify(none.body)).toBe(200);
    expect(none.body.lastReadSeq).toBe(3);
    // A body that is there and is not JSON is still a 400.
    expectErrorShape(await api("PUT", `/conversations/${id}/read`, { token: a.token, rawBody: "{", headers: { "content-type": "application/json" } }), 400);
  });
});

describe("receipts on a conversation socket", () => {
  const roomOf = (id: string) => env.CONVERSATION_ROOM.get(env.CONVERSATION_ROOM.idFromName(id));
  const receiptOf = async (id: string, as: { token: string }, userId: string) => {
    const res = await api("GET", `/conversations/${id}/read-receipts`, { token: as.token });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    return res.body.participants.find((p: { userId: string }) => p.userId === userId);
  };

  it("read receipts are never older than the marks the room acknowledged, before its flush reaches Postgres", async () => {
    const [a, b] = await users(2, "rcpt");
    const id = await direct(a, b);
    for (const text of ["one", "two", "three"]) await send(id, b, text);
    // a reads on a conversation socket: the room has the mark and tells everyone (message_read); its flush to
    // Postgres is on its way (a round trip at best, the outbox's backoff while Postgres is unreachable).
    await runInDurableObject(roomOf(id), (instance: ConversationRoom) => {
      instance.applyWatermark(a.id, { read: 2 });
      instance.applyWatermark(b.id, { delivered: 3 });
    });
    // The app reads the receipts right after: before, its own read went back to 0 (Postgres's mark).
    const mine = await receiptOf(id, a, a.id);
    expect(mine).toMatchObject({ lastReadSeq: 2, lastDeliveredSeq: 2 });
    expect(typeof mine.lastReadAt).toBe("string");
    expect(await receiptOf(id, b, b.id)).toMatchObject({ lastDeliveredSeq: 3 });
    // Flushed, Postgres says the same.
    await runInDurableObject(roomOf(id), (instance: ConversationRoom) => instance.waitForCommit());
    expect(await receiptOf(id, b, a.id)).toMatchObject({ lastReadSeq: 2, lastReadAt: mine.lastReadAt, lastDeliveredSeq: 2 });
  });

  it("one conversation's participants are never older than the receipts the room sent, before its flush", async () => {
    const [a, b] = await users(2, "rcpt");
    const id = await direct(a, b);
    for (const text of ["one", "two", "three"]) await send(id, a, text);
    // b's phone reads 2 and gets 3 on its socket: a's app shows the ticks (message_read, message_delivered), then
    // opens the conversation's details while the room's flush is on its way.
    await runInDurableObject(roomOf(id), (instance: ConversationRoom) => {
      instance.applyWatermark(b.id, { read: 2, delivered: 3 });
    });
    const theirs = (await get(id, a)).body.participants.find((p: { userId: string }) => p.userId === b.id);
    // Before, Postgres's marks: nothing read, nothing delivered, the ticks went back.
    expect(theirs).toMatchObject({ lastReadSeq: 2, lastDeliveredSeq: 3 });
    expect(typeof theirs.lastReadAt).toBe("string");
  });

  it("one conversation's unread count follows the reader's own mark the room holds, before its flush", async () => {
    const [a, b] = await users(2, "rcpt");
    const id = await direct(a, b);
    for (const text of ["one", "two", "three"]) await send(id, b, text);
    const undoSlow = await slowRoomFlushes(id, 3000);
    try {
      // a read all three on a socket (answered at the write-through deadline while Postgres is slow), then opens the
      // conversation's details.
      await runInDurableObject(roomOf(id), (instance: ConversationRoom) => void instance.applyWatermark(a.id, { read: 3 }));
      const view = (await get(id, a)).body;
      expect(view.participants.find((p: { userId: string }) => p.userId === a.id)).toMatchObject({ lastReadSeq: 3 });
      // Before, Postgres's count for its older mark: three unread beside a mark that says all read.
      expect(view.unreadCount).toBe(0);
    } finally {
      await undoSlow();
    }
  });

  it("a flush that commits after a newer one leaves the read time of the newer read mark", async () => {
    const [a, b] = await users(2, "rcpt");
    const id = await direct(a, b);
    for (const text of ["one", "two", "three"]) await send(id, b, text);
    // A flush carrying a's read up to 2 timed out and was retried with the mark as it was by then (3); the first
    // statement still committed, after the retry (Postgres finishes a statement whose client gave up on it).
    const earlier = { userId: a.id, lastReadSeq: 2, lastReadAt: "2026-01-01T10:00:00.000Z", lastDeliveredSeq: 2 };
    const later = { userId: a.id, lastReadSeq: 3, lastReadAt: "2026-01-01T10:00:05.000Z", lastDeliveredSeq: 3 };
    await withDb((db) => flushBatch(db, id, [], [later]));
    await withDb((db) => flushBatch(db, id, [], [earlier]));
    // Before, the seq stayed at 3 and the time went back to when 2 was read: "read at 10:00:00" for a later message.
    expect(await receiptOf(id, b, a.id)).toMatchObject({ lastReadSeq: 3, lastReadAt: later.lastReadAt, lastDeliveredSeq: 3 });
  });

  it("read receipts do not load a room that never loaded (Postgres is all there is)", async () => {
    const [a, b] = await users(2, "rcpt");
    const id = await direct(a, b);
    expect(await receiptOf(id, a, b.id)).toMatchObject({ lastReadSeq: 0, lastDeliveredSeq: 0, lastReadAt: null });
    const loaded = await runInDurableObject(roomOf(id), (instance: ConversationRoom) => instance.store.meta() !== undefined);
    expect(loaded).toBe(false);
  });

  it("a role change does not carry a member's read and delivered marks back to before their latest receipts", async () => {
    const [admin, b, c] = await users(3, "rcpt");
    const id = await group(admin, [b, c]);
    for (const text of ["one", "two", "three"]) await send(id, admin, text);
    const watcher = await openSocket(`/conversations/${id}/ws`, c);
    try {
      await waitFor(() => watcher.frames.find((f) => f.type === "ready"), "ready");
      // b reads on a conversation socket: the room has the mark and tells everyone; its flush to Postgres is on its
      // way (a round trip at best, the outbox's backoff while Postgres is unreachable).
      const room = env.CONVERSATION_ROOM.get(env.CONVERSATION_ROOM.idFromName(id));
      await runInDurableObject(room, (instance: ConversationRoom) => {
        instance.applyWatermark(b.id, { read: 3 });
      });
      await waitFor(() => watcher.frames.find((f) => f.type === "message_read" && f.data.userId === b.id), "b's read receipt");
      // The admin promotes b meanwhile.
      expect((await api("PUT", `/conversations/${id}/participants/${b.id}/role`, { token: admin.token, body: { role: "admin" } })).status).toBe(200);
      const updated = await waitFor(() => watcher.frames.find((f) => f.type === "participant_updated"), "participant_updated");
      // Apps take the frame's participant as the member's new state: older marks put the ticks back to unread.
      expect(updated.data.participant).toMatchObject({ userId: b.id, role: "admin", lastReadSeq: 3, lastDeliveredSeq: 3 });
      expect(typeof updated.data.participant.lastReadAt).toBe("string");
    } finally {
      watcher.ws.close(1000, "done");
    }
  });
});

describe("notifications", () => {
  it("sums unread counts over every conversation, flags muted ones, and marks all read", async () => {
    const [me, a, b, c] = await users(4, "notif");
    const d1 = await direct(me, a);
    const g = await group(b, [me, c]);
    const quiet = await direct(me, c);
    await send(d1, a, "1");
    await send(d1, a, "2");
    await send(g, b, "3");
    await send(g, me, "mine does not count");
    await api("PUT", `/conversations/${g}/mute`, { token: me.token, body: { isMuted: true } });

    const counts = await api("GET", "/notifications/unread-counts", { token: me.token });
    expect(counts.status).toBe(200);
    expect(counts.body).toEqual({ userId: me.id, unreadCounts: { [d1]: 2, [g]: 1, [quiet]: 0 }, totalUnread: 3, muted: [g] });

    const marked = await api("PUT", "/notifications/mark-all-read", { token: me.token });
    expect(marked.status).toBe(200);
    expect(marked.body).toEqual({ markedConversations: 2 });
    const after = await api("GET", "/notifications/unread-counts", { token: me.token });
    expect(after.body).toMatchObject({ totalUnread: 0, unreadCounts: { [d1]: 0, [g]: 0, [quiet]: 0 } });
    // Others' counts are theirs alone.
    const forA = await api("GET", "/notifications/unread-counts", { token: a.token });
    expect(forA.body).toMatchObject({ unreadCounts: { [d1]: 0 }, totalUnread: 0, muted: [] });
    expect((await api("PUT", "/notifications/mark-all-read", { token: me.token })).body).toEqual({ markedConversations: 0 });
  });

  it("mark-all-read refuses a body it cannot honour, and marks nothing (strict bodies, contract §1)", async () => {
    const [me, a, b] = await users(3, "notif");
    const keep = await direct(me, a);
    const other = await direct(me, b);
    await send(keep, a, "still unread");
    await send(other, b, "to be read");
    // A client that meant to mark only some conversations got 200 and every conversation marked read.
    for (const body of [{ conversationIds: [other] }, [other]]) {
      expectErrorShape(await api("PUT", "/notifications/mark-all-read", { token: me.token, body }), 400);
    }
    expectErrorShape(await api("PUT", "/notifications/mark-all-read", { body: { conversationIds: [other] } }), 401);
    const malformed = { token: me.token, rawBody: "{", headers: { "content-type": "application/json" } };
    expectErrorShape(await api("PUT", "/notifications/mark-all-read", malformed), 400);
    const counts = await api("GET", "/notifications/unread-counts", { token: me.token });
    expect(counts.body).toMatchObject({ unreadCounts: { [keep]: 1, [other]: 1 }, totalUnread: 2 });
    // No body, an empty one with the JSON Content-Type, or {} still mark everything.
    const empty = await api("PUT", "/notifications/mark-all-read", { token: me.token, rawBody: "", headers: { "content-type": "application/json" } });
    expect(empty.body).toEqual({ markedConversations: 2 });
    expect((await api("PUT", "/notifications/mark-all-read", { token: me.token, body: {} })).body).toEqual({ markedConversations: 0 });
  });

  it("leaves out conversations the user left", async () => {
    const [me, a, b] = await users(3, "notif");
    const g = await group(a, [me, b]);
    await send(g, a, "hi");
    await api("DELETE", `/conversations/${g}/participants/${me.id}`, { token: me.token });
    const counts = await api("GET", "/notifications/unread-counts", { token: me.token });
    expect(counts.body).toEqual({ userId: me.id, unreadCounts: {}, totalUnread: 0, muted: [] });
  });
});

describe("badges right after a read", () => {
  /** The caller's unread count of one conversation as the badge endpoint and the conversation list say it. */
  const badges = async (id: string, as: TestUser) => {
    const counts = await api("GET", "/notifications/unread-counts", { token: as.token });
    const list = await api("GET", "/conversations", { token: as.token });
    return {
      counts: counts.body.unreadCounts[id],
      total: counts.body.totalUnread,
      listed: list.body.conversations.find((c: { id: string }) => c.id === id)?.unreadCount,
    };
  };
  const cleared = { counts: 0, total: 0, listed: 0 };

  it("a read answered on the conversation socket is cleared in the list and the badge count at once", async () => {
    const [a, b] = await users(2, "badge");
    const id = await direct(a, b);
    for (const text of ["one", "two", "three"]) await send(id, b, text);
    const laptop = await openSocket("/ws", a);
    const phone = await openSocket(`/conversations/${id}/ws`, a);
    await waitFor(() => phone.frames.find((f) => f.type === "ready"), "ready");
    await waitFor(() => laptop.frames.find((f) => f.type === "unread_count" && f.data.unreadCount === 3), "badge of 3");
    // The room's flushes are slow to reach Postgres: this read's is still on its way when the room has the mark.
    const undoSlow = await slowRoomFlushes(id);
    try {
      phone.ws.send(JSON.stringify({ type: "mark_as_read", data: { seq: 3 } }));
      await waitFor(() => phone.frames.find((f) => f.type === "message_read" && f.data.userId === a.id), "the phone's read");
      // Before, the list and the badge count still said 3 until the flush committed.
      expect(await badges(id, a)).toEqual(cleared);
      await waitFor(() => laptop.frames.find((f) => f.type === "unread_count" && f.data.unreadCount === 0), "badge of 0");
      expect(await badges(id, a)).toEqual(cleared);
    } finally {
      await undoSlow();
      phone.ws.close(1000, "done");
      laptop.ws.close(1000, "done");
    }
  });

  it("a read answered by PUT /read is cleared in the list and the badge count at once, on every device", async () => {
    const [a, b] = await users(2, "badge");
    const id = await direct(a, b);
    for (const text of ["one", "two"]) await send(id, b, text);
    const phone = await openSocket(`/conversations/${id}/ws`, a);
    await waitFor(() => phone.frames.find((f) => f.type === "ready"), "ready");
    const undoSlow = await slowRoomFlushes(id);
    try {
      const marking = read(id, a.token);
      // The phone, conversation open, hears of the read the laptop made: before, at once, ahead of the commit.
      await waitFor(() => phone.frames.find((f) => f.type === "message_read" && f.data.userId === a.id), "the read on the phone");
      expect(await badges(id, a)).toEqual(cleared);
      expect((await marking).body).toEqual({ conversationId: id, lastReadSeq: 2, unreadCount: 0 });
      expect(await badges(id, a)).toEqual(cleared);
    } finally {
      await undoSlow();
      phone.ws.close(1000, "done");
    }
  });

  it("mark-all-read marks a message the user was shown before Postgres had it", async () => {
    const [a, b] = await users(2, "badge");
    const id = await direct(a, b);
    await send(id, b, "one");
    expect((await read(id, a.token)).status).toBe(200);
    const phone = await openSocket(`/conversations/${id}/ws`, a);
    await waitFor(() => phone.frames.find((f) => f.type === "ready"), "ready");
    // The room's flushes are slow to reach Postgres: a has message 2 on the screen, Postgres does not yet.
    const undoSlow = await slowRoomFlushes(id);
    try {
      const sending = api("POST", `/conversations/${id}/messages`, { token: b.token, body: { content: "two" } });
      await waitFor(() => phone.frames.find((f) => f.type === "new_message"), "the message on the phone");
      const marked = await api("PUT", "/notifications/mark-all-read", { token: a.token });
      expect(marked.body).toEqual({ markedConversations: 1 });
      expect((await sending).status).toBe(201);
      // Before, the message came back as unread once its commit landed.
      expect(await badges(id, a)).toEqual(cleared);
    } finally {
      await undoSlow();
      phone.ws.close(1000, "done");
    }
  });

  it("mark-all-read leaves unread a message sent after it was asked, before it reached that conversation's room", async () => {
    const [a, b] = await users(2, "badge");
    const id = await direct(a, b);
    await send(id, b, "one");
    await new Promise((r) => setTimeout(r, 5));
    const room = env.CONVERSATION_ROOM.get(env.CONVERSATION_ROOM.idFromName(id));
    await runInDurableObject(room, (instance: ConversationRoom) => {
      // RPC calls methods of the class: "two" is sent while this conversation waits its turn among the rooms asked.
      const proto = Object.getPrototypeOf(instance) as ConversationRoom;
      const markRead = proto.markRead;
      proto.markRead = async function (this: ConversationRoom, input: Parameters<ConversationRoom["markRead"]>[0]) {
        if (input.conversationId !== id) return markRead.call(this, input);
        proto.markRead = markRead;
        await new Promise((r) => setTimeout(r, 5));
        await send(id, b, "two");
        return markRead.call(this, input);
      };
    });
    expect((await api("PUT", "/notifications/mark-all-read", { token: a.token })).body).toEqual({ markedConversations: 1 });
    // Before, "two" was marked read too: a message the user never saw, and no badge ever showed it.
    expect((await unread(id, a.token)).body.unreadCount).toBe(1);
  });
});
