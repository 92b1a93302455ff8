import { describe, expect, it } from "vitest";
import { env, runInDurableObject } from "cloudflare:test";
import type { TestUser } from "./helpers";
import { badgeOf, type StoredBadge } from "../../src/domain/badges";
import type { Message } from "../../src/protocol/resources";
import { direct, group, send, users } from "./conversation-helpers";
import { openSocket, waitFor } from "./sockets";
import { api } from "./helpers";
import { sql } from "drizzle-orm";
import { getConfig } from "../../src/lib/config";
import { createLogger } from "../../src/lib/log";
import { runJob } from "../../src/jobs/runner";
import { archiveJob } from "../../src/jobs/retention";
import { slowMessageInserts, slowRoomFlushes, withDb } from "./fixtures";
import type { ConversationRoom } from "../../src/durable-objects/conversation-room";
import type { UserSession } from "../../src/durable-objects/user-session";
import type { Db } from "../../src/db/client";

const connectUser = (user: TestUser) => openSocket("/ws", user);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** What the user's session has recorded of this conversation's badge; undefined when it never heard of it. */
function sessionBadge(user: TestUser, conversationId: string): Promise<number | undefined> {
  const stub = env.USER_SESSION.get(env.USER_SESSION.idFromName(user.id));
  return runInDurableObject(stub, async (_instance, state) => {
    const stored = state.storage.kv.get<Record<string, StoredBadge>>("badges")?.[conversationId];
    return stored === undefined ? undefined : badgeOf(stored).count;
  });
}

/**
 * Runs `between` once the user's session has read from Postgres the summary covering `conversationId`, before that
 * answer reaches the session: a change committed and told in between races the read's older count.
 */
function beforeSessionReadAnswers(user: TestUser, conversationId: string, between: () => Promise<void>): Promise<void> {
  const session = env.USER_SESSION.get(env.USER_SESSION.idFromName(user.id));
  return runInDurableObject(session, (instance: UserSession) => {
    const held = instance as unknown as { withDb: <T>(work: (db: Db) => Promise<T>) => Promise<T> };
    const read = held.withDb.bind(instance);
    held.withDb = async <T>(work: (db: Db) => Promise<T>): Promise<T> => {
      const result = await read(work);
      if (!Array.isArray(result) || !result.some((s: { conversationId?: string }) => s.conversationId === conversationId)) return result;
      held.withDb = read;
      await between();
      return result;
    };
  });
}

describe("new-message notifications follow reachability", () => {
  it("leaves an offline member's session asleep, gives the right badge on connect, then notifies live", async () => {
    const [a, b] = await users(2, "reach");
    const id = await direct(a, b);
    await send(id, a, "while b is away");
    await send(id, a, "still away");
    // Notifications go out after the commit, in a task of their own: give them time to arrive if they were sent.
    await sleep(300);
    expect(await sessionBadge(b, id)).toBeUndefined();

    const phone = await connectUser(b);
    const badge = await waitFor(() => phone.frames.find((f) => f.type === "unread_count" && f.data.conversationId === id), "badge on connect");
    expect(badge.data.unreadCount).toBe(2);

    const third = await send(id, a, "now b is here");
    const note = await waitFor(() => phone.frames.find((f) => f.type === "notification"), "live notification");
    expect(note.data).toMatchObject({ conversationId: id, message: { id: third.id, seq: 3 } });
    const live = await waitFor(
      () => phone.frames.find((f) => f.type === "unread_count" && f.data.conversationId === id && f.data.unreadCount === 3),
      "badge after the live message",
    );
    expect(live.data.totalUnread).toBe(3);

    // Offline again (after the session's grace period): the room stops waking the session.
    phone.ws.close(1000, "done");
    await sleep(4500);
    await send(id, a, "b left again");
    await sleep(300);
    expect(await sessionBadge(b, id)).toBe(3);
  });

  it("notifies a member who came online before the room first loaded (the room reads Postgres)", async () => {
    const [a, b] = await users(2, "reach");
    const phone = await connectUser(b);
    await waitFor(() => phone.frames.find((f) => f.type === "connected"), "connected");
    // The conversation, and so its room, is created after b came online: the room reads b's state from Postgres.
    const id = await direct(a, b);
    await send(id, a, "hello");
    const note = await waitFor(() => phone.frames.find((f) => f.type === "notification"), "notification");
    expect(note.data.conversationId).toBe(id);
    phone.ws.close(1000, "done");
  });

  it("ends a read-as-it-arrives at zero, whichever reaches the session first: the read's count or the notification", async () => {
    const [a, b] = await users(2, "race");
    const id = await direct(a, b);
    await send(id, a, "one");
    const phone = await connectUser(b);
    await waitFor(() => phone.frames.find((f) => f.type === "unread_count" && f.data.unreadCount === 1), "badge on connect");
    const session = env.USER_SESSION.get(env.USER_SESSION.idFromName(b.id));
    const message = (seq: number): Message => ({
      id: crypto.randomUUID(),
      conversationId: id,
      seq,
      senderId: a.id,
      clientMessageId: null,
      type: "text",
      content: `m${seq}`,
      replyToId: null,
      createdAt: new Date().toISOString(),
      editedAt: null,
      deletedAt: null,
      status: "sent",
    });
    // b read message 2 as it arrived: the room counted it in (0 unread as of seq 2), and its notification, which
    // waits for the Postgres commit, lands after that count.
    await session.unreadChanged({ conversationId: id, unreadCount: 0, asOfSeq: 2, readSeq: 2 });
    await session.messageNotifications({ conversationId: id, messages: [message(2)], muted: false });
    expect(await sessionBadge(b, id)).toBe(0);
    // Read already: the user's other devices are not told of it either.
    expect(phone.frames.filter((f) => f.type === "notification" && f.data.message.seq === 2)).toEqual([]);
    // And the other order, for message 3.
    await session.messageNotifications({ conversationId: id, messages: [message(3)], muted: false });
    await session.unreadChanged({ conversationId: id, unreadCount: 0, asOfSeq: 3, readSeq: 3 });
    expect(await sessionBadge(b, id)).toBe(0);
    const badges = phone.frames.filter((f) => f.type === "unread_count");
    expect(badges[badges.length - 1].data).toMatchObject({ conversationId: id, unreadCount: 0, totalUnread: 0 });
    phone.ws.close(1000, "done");
  });

  it("lowers an open device's badge when an unread message is deleted", async () => {
    const [a, b] = await users(2, "delbadge");
    const id = await direct(a, b);
    const phone = await connectUser(b);
    await waitFor(() => phone.frames.find((f) => f.type === "connected"), "connected");
    const sent = [];
    for (const text of ["one", "two", "three"]) sent.push(await send(id, a, text));
    await waitFor(() => phone.frames.find((f) => f.type === "unread_count" && f.data.unreadCount === 3), "badge of 3");
    const seen = phone.frames.length;
    const del = await api("DELETE", `/conversations/${id}/messages/${sent[1].id}`, { token: a.token });
    expect(del.status).toBe(204);
    const after = await waitFor(() => phone.frames.slice(seen).find((f) => f.type === "unread_count"), "a badge after the delete");
    expect(after.data).toMatchObject({ conversationId: id, unreadCount: 2, totalUnread: 2 });
    expect(await sessionBadge(b, id)).toBe(2);
    phone.ws.close(1000, "done");
  });

  it("keeps a mute made while a device's connect read the flags from Postgres", async () => {
    const [a, b, c] = await users(3, "mutebadge");
    const id = await group(a, [b, c], "Crew");
    await send(id, a, "one");
    const phone = await connectUser(b);
    await waitFor(() => phone.frames.find((f) => f.type === "unread_count" && f.data.unreadCount === 1), "badge on connect");
    await beforeSessionReadAnswers(b, id, async () => {
      expect((await api("PUT", `/conversations/${id}/mute`, { token: b.token, body: { isMuted: true } })).status).toBe(200);
      await waitFor(() => phone.frames.find((f) => f.type === "conversation_updated" && f.data.conversation.isMuted), "the mute");
    });
    const laptop = await connectUser(b);
    try {
      await waitFor(() => laptop.frames.find((f) => f.type === "unread_count" && f.data.conversationId === id), "the connect's badge");
      expect((await api("PATCH", `/conversations/${id}`, { token: a.token, body: { name: "Crew 2026" } })).status).toBe(200);
      const renamed = await waitFor(() => laptop.frames.find((f) => f.type === "conversation_updated" && f.data.conversation.name === "Crew 2026"), "rename");
      // Before, the read's older flag won: the list showed the conversation unmuted on every device.
      expect(renamed.data.conversation.isMuted).toBe(true);
    } finally {
      laptop.ws.close(1000, "done");
      phone.ws.close(1000, "done");
    }
  });

  it("keeps a delete's lower badge when a device's connect read the counts from Postgres before the delete committed", async () => {
    const [a, b] = await users(2, "delbadge");
    const id = await direct(a, b);
    const phone = await connectUser(b);
    await waitFor(() => phone.frames.find((f) => f.type === "connected"), "connected");
    const sent: { id: string; seq: number }[] = [];
    for (const text of ["one", "two", "three"]) sent.push(await send(id, a, text));
    await waitFor(() => phone.frames.find((f) => f.type === "unread_count" && f.data.unreadCount === 3), "badge of 3");
    // The laptop's connect reads every badge from Postgres; the delete commits, and its recount reaches the session,
    // while that read's answer (three unread) is on its way back.
    await beforeSessionReadAnswers(b, id, async () => {
      const seen = phone.frames.length;
      expect((await api("DELETE", `/conversations/${id}/messages/${sent[1].id}`, { token: a.token })).status).toBe(204);
      await waitFor(() => phone.frames.slice(seen).find((f) => f.type === "unread_count" && f.data.unreadCount === 2), "the delete's badge");
    });
    const laptop = await connectUser(b);
    try {
      // The delete's badge reaches the laptop first (it is connected by then), the connect's own one last.
      const badges = () => laptop.frames.filter((f) => f.type === "unread_count" && f.data.conversationId === id);
      await waitFor(() => (badges().length >= 2 ? true : undefined), "the delete's badge and the connect's");
      // Before, the read's count won (same seq, same read mark): the deleted message counted again.
      expect(badges().map((f) => f.data.unreadCount)).toEqual([2, 2]);
      expect(await sessionBadge(b, id)).toBe(2);
    } finally {
      laptop.ws.close(1000, "done");
      phone.ws.close(1000, "done");
    }
  });

  it("keeps a delete's lower badge when it commits while a session reads the count of a conversation it was brought back to", async () => {
    const [a, b] = await users(2, "delbadge");
    const id = await direct(a, b);
    const sent: { id: string; seq: number }[] = [];
    for (const text of ["one", "two", "three"]) sent.push(await send(id, a, text));
    expect((await api("DELETE", `/conversations/${id}/participants/${b.id}`, { token: b.token })).status).toBe(204);
    const phone = await connectUser(b);
    await waitFor(() => phone.frames.find((f) => f.type === "connected"), "connected");
    // a opens the conversation again, which brings b back: b's session reads b's own count from Postgres, and the
    // delete commits, its recount reaching the session, while that read's answer (three unread) is on its way back.
    await beforeSessionReadAnswers(b, id, async () => {
      const seen = phone.frames.length;
      expect((await api("DELETE", `/conversations/${id}/messages/${sent[1].id}`, { token: a.token })).status).toBe(204);
      await waitFor(() => phone.frames.slice(seen).find((f) => f.type === "unread_count" && f.data.unreadCount === 2), "the delete's badge");
    });
    try {
      expect((await api("POST", "/conversations/direct", { token: a.token, body: { targetUserId: b.id } })).status).toBe(200);
      const created = await waitFor(() => phone.frames.find((f) => f.type === "conversation_created"), "conversation_created");
      // Before, the read's count won (same seq, same read mark): the deleted message counted again.
      expect(created.data.conversation.unreadCount).toBe(2);
      expect(phone.frames.filter((f) => f.type === "unread_count").map((f) => f.data.unreadCount)).not.toContain(3);
      expect(await sessionBadge(b, id)).toBe(2);
    } finally {
      phone.ws.close(1000, "done");
    }
  });

  it("never shows a recipient the text of a message deleted before its notification went out", async () => {
    const [a, b] = await users(2, "delnote");
    const id = await direct(a, b);
    const phone = await connectUser(b);
    await waitFor(() => phone.frames.find((f) => f.type === "connected"), "connected");
    const chat = await openSocket(`/conversations/${id}/ws`, a);
    await waitFor(() => chat.frames.find((f) => f.type === "ready"), "ready");
    // Postgres is slow to take this conversation's messages (a second each): the notification follows the commit.
    const undoSlow = await slowMessageInserts(id);
    try {
      const sending = api("POST", `/conversations/${id}/messages`, { token: a.token, body: { content: "wrong chat: the door code is 4711" } });
      const shown = await waitFor(() => chat.frames.find((f) => f.type === "new_message"), "the sender's own message");
      // The sender takes it back at once, before the ack.
      const deleting = api("DELETE", `/conversations/${id}/messages/${shown.data.message.id}`, { token: a.token });
      const sent = await sending;
      expect(sent.status).toBe(201);
      // The sender's own answer is the message as it is by then: it carried the text, and an app that takes the
      // answer as the message put the deleted text back on the sender's screen after the socket's message_deleted.
      expect(sent.body).toMatchObject({ id: shown.data.message.id, content: "", deletedAt: expect.any(String) });
      expect((await deleting).status).toBe(204);
      await sleep(500);
      const leaked = phone.frames.filter((f) => f.type === "notification" && JSON.stringify(f.data).includes("4711"));
      expect(leaked).toEqual([]);
      expect(await sessionBadge(b, id)).not.toBe(1);
    } finally {
      await undoSlow();
      phone.ws.close(1000, "done");
      chat.ws.close(1000, "done");
    }
  });

  it("updates the other side's conversation list when the message it previews is edited or deleted", async () => {
    const [a, b] = await users(2, "preview");
    const id = await direct(a, b);
    const phone = await connectUser(b);
    await waitFor(() => phone.frames.find((f) => f.type === "connected"), "connected");
    const first = await send(id, a, "see you at 5");
    const last = await send(id, a, "the door code is 4711");
    // The app previews the last message from this notification; nothing told it of a change afterwards.
    await waitFor(() => phone.frames.find((f) => f.type === "notification" && f.data.message.id === last.id), "notification");
    const updates = () => phone.frames.filter((f) => f.type === "conversation_updated" && f.data.conversation.id === id);

    // An older message is not in the preview: nothing to tell.
    expect((await api("PATCH", `/conversations/${id}/messages/${first.id}`, { token: a.token, body: { content: "see you at 6" } })).status).toBe(200);
    expect((await api("PATCH", `/conversations/${id}/messages/${last.id}`, { token: a.token, body: { content: "the door code is ****" } })).status).toBe(200);
    const edited = await waitFor(() => updates().find((f) => f.data.conversation.lastMessage?.editedAt), "the edited preview");
    expect(edited.data.conversation.lastMessage).toMatchObject({ id: last.id, content: "the door code is ****" });

    expect((await api("DELETE", `/conversations/${id}/messages/${last.id}`, { token: a.token })).status).toBe(204);
    const deleted = await waitFor(() => updates().find((f) => f.data.conversation.lastMessage?.deletedAt), "the deleted preview");
    expect(deleted.data.conversation.lastMessage).toMatchObject({ id: last.id, content: "", deletedAt: expect.any(String) });
    // With the member's own count and mute flag (the count follows the badge: the delete's recount may come after).
    expect(deleted.data.conversation.isMuted).toBe(false);
    expect([1, 2]).toContain(deleted.data.conversation.unreadCount);
    expect(updates()).toHaveLength(2);
    phone.ws.close(1000, "done");
  });

  it("updates the conversation lists once an edit or delete of the last message answered pending commits", async () => {
    const [a, b] = await users(2, "preview");
    const id = await direct(a, b);
    const phone = await connectUser(b);
    await waitFor(() => phone.frames.find((f) => f.type === "connected"), "connected");
    const last = await send(id, a, "the door code is 4711");
    await waitFor(() => phone.frames.find((f) => f.type === "notification" && f.data.message.id === last.id), "notification");
    const updates = () => phone.frames.filter((f) => f.type === "conversation_updated" && f.data.conversation.id === id);
    // The commit takes longer than the write-through deadline (1.5 s here): the changes are answered `pending`.
    const undoSlow = await slowRoomFlushes(id, 2000);
    try {
      const edited = await api("PATCH", `/conversations/${id}/messages/${last.id}`, { token: a.token, body: { content: "the door code is ****" } });
      expect(edited.body.status).toBe("pending");
      // Before, the list kept "the door code is 4711" until it was loaded again.
      const preview = await waitFor(() => updates().find((f) => f.data.conversation.lastMessage?.editedAt), "the edited preview", 8000);
      expect(preview.data.conversation.lastMessage).toMatchObject({ id: last.id, content: "the door code is ****" });
      expect((await api("DELETE", `/conversations/${id}/messages/${last.id}`, { token: a.token })).status).toBe(204);
      const deleted = await waitFor(() => updates().find((f) => f.data.conversation.lastMessage?.deletedAt), "the deleted preview", 8000);
      expect(deleted.data.conversation.lastMessage).toMatchObject({ id: last.id, content: "" });
    } finally {
      await undoSlow();
      phone.ws.close(1000, "done");
    }
  });

  it("tells nobody's list anything when an edit keeps the text or a delete finds the message deleted", async () => {
    const [a, b] = await users(2, "preview");
    const id = await direct(a, b);
    const phone = await connectUser(b);
    await waitFor(() => phone.frames.find((f) => f.type === "connected"), "connected");
    const first = await send(id, a, "lunch at noon");
    const updates = () => phone.frames.filter((f) => f.type === "conversation_updated" && f.data.conversation.id === id);
    const same = await api("PATCH", `/conversations/${id}/messages/${first.id}`, { token: a.token, body: { content: "lunch at noon" } });
    // The contract: the message as it was, not marked edited.
    expect(same.status).toBe(200);
    expect(same.body).toMatchObject({ id: first.id, content: "lunch at noon", editedAt: null });
    expect((await api("DELETE", `/conversations/${id}/messages/${first.id}`, { token: a.token })).status).toBe(204);
    await waitFor(() => updates().find((f) => f.data.conversation.lastMessage?.deletedAt), "the deleted preview");
    expect((await api("DELETE", `/conversations/${id}/messages/${first.id}`, { token: a.token })).status).toBe(204);
    // A real change after them: its update comes after anything the two repeats would have sent.
    const second = await send(id, a, "lunch at one");
    await api("PATCH", `/conversations/${id}/messages/${second.id}`, { token: a.token, body: { content: "lunch at two" } });
    await waitFor(() => updates().find((f) => f.data.conversation.lastMessage?.content === "lunch at two"), "the edited preview");
    // Before, each repeat sent every member the same conversation again.
    expect(updates()).toHaveLength(2);
    phone.ws.close(1000, "done");
  });

  it("lowers an open device's badge when unread messages move to the archive", async () => {
    const [a, b] = await users(2, "archbadge");
    const id = await direct(a, b);
    const phone = await connectUser(b);
    await waitFor(() => phone.frames.find((f) => f.type === "connected"), "connected");
    for (const text of ["one", "two", "three"]) await send(id, a, text);
    await waitFor(() => phone.frames.find((f) => f.type === "unread_count" && f.data.unreadCount === 3), "badge of 3");
    const seen = phone.frames.length;
    // The first two are past retention; the archive job moves them (REST's count becomes 1).
    await withDb((db) => db.execute(sql`UPDATE messages SET created_at = now() - interval '100 days' WHERE conversation_id = ${id}::uuid AND seq <= 2`));
    const job = archiveJob({ conversationIds: [id], name: `retention.archive:${crypto.randomUUID().slice(0, 8)}` });
    await withDb((db) => runJob(job, { env, config: getConfig(env), db, log: createLogger({ test: "notifications" }), force: true }));
    expect((await api("GET", `/conversations/${id}/unread-count`, { token: b.token })).body.unreadCount).toBe(1);
    const after = await waitFor(() => phone.frames.slice(seen).find((f) => f.type === "unread_count"), "a badge after archiving");
    expect(after.data).toMatchObject({ conversationId: id, unreadCount: 1, totalUnread: 1 });
    phone.ws.close(1000, "done");
  });
});

describe("badges of a user reading on two devices", () => {
  it("ends at the true count when another device reads further while a REST read is committing", async () => {
    const [a, b] = await users(2, "tworeads");
    const id = await direct(a, b);
    for (const text of ["one", "two", "three"]) await send(id, a, text);
    const phone = await connectUser(b);
    await waitFor(() => phone.frames.find((f) => f.type === "unread_count" && f.data.unreadCount === 3), "badge of 3");
    const alice = { id: a.id, kahaId: a.kahaId };
    const room = env.CONVERSATION_ROOM.get(env.CONVERSATION_ROOM.idFromName(id));
    // While the phone's read (up to 3) waits for its commit, message 4 arrives, the laptop (conversation open) reads
    // it, and message 5 arrives unread.
    await runInDurableObject(room, (instance: ConversationRoom) => {
      const commit = instance.waitForCommit.bind(instance);
      let once = true;
      instance.waitForCommit = async () => {
        const committed = await commit();
        if (once) {
          once = false;
          await instance.send({ conversationId: id, actor: alice, content: "four" });
          instance.applyWatermark(b.id, { read: 4 });
          await instance.readMarked(b.id, 4);
          await instance.send({ conversationId: id, actor: alice, content: "five" });
        }
        return committed;
      };
    });
    const read = await api("PUT", `/conversations/${id}/read`, { token: b.token, body: { seq: 3 } });
    expect(read.status).toBe(200);
    // The session's RPCs go out in tasks of their own: give the last of them time to land.
    await sleep(500);
    // Only message 5 is unread: a count for the phone's older mark put 4 back on every device's badge.
    expect(await sessionBadge(b, id)).toBe(1);
    const badges = phone.frames.filter((f) => f.type === "unread_count" && f.data.conversationId === id);
    expect(badges[badges.length - 1].data).toMatchObject({ unreadCount: 1, totalUnread: 1 });
    // The mark is the laptop's: the phone's answer must not report an older one, nor a count for it.
    expect(read.body).toEqual({ conversationId: id, lastReadSeq: 4, unreadCount: 1 });
    expect((await api("GET", `/conversations/${id}/unread-count`, { token: b.token })).body.unreadCount).toBe(1);
    phone.ws.close(1000, "done");
  });
});

describe("notifications of a message the user already read on another device", () => {
  it("neither notifies nor raises a badge on the laptop for a message the phone read before its notification went out", async () => {
    const [a, b] = await users(2, "readfirst");
    const id = await direct(a, b);
    const laptop = await connectUser(b);
    await waitFor(() => laptop.frames.find((f) => f.type === "connected"), "connected");
    const phone = await openSocket(`/conversations/${id}/ws`, b);
    await waitFor(() => phone.frames.find((f) => f.type === "ready"), "ready");
    // Postgres is slow to take this conversation's messages: the notification waits for the commit, and the phone,
    // which has the conversation open, reads the message meanwhile.
    const undoSlow = await slowMessageInserts(id);
    try {
      const sending = api("POST", `/conversations/${id}/messages`, { token: a.token, body: { content: "read on the phone" } });
      const shown = await waitFor(() => phone.frames.find((f) => f.type === "new_message"), "the message on the phone");
      phone.ws.send(JSON.stringify({ type: "mark_as_read", data: { seq: shown.data.message.seq } }));
      await waitFor(() => phone.frames.find((f) => f.type === "message_read" && f.data.userId === b.id), "the phone's read");
      expect((await sending).status).toBe(201);
      await sleep(500);
      expect(laptop.frames.filter((f) => f.type === "notification")).toEqual([]);
      expect(laptop.frames.filter((f) => f.type === "unread_count" && f.data.unreadCount > 0)).toEqual([]);
      expect(await sessionBadge(b, id)).toBe(0);
      // A message nobody has read still notifies.
      const next = await send(id, a, "not read yet");
      const note = await waitFor(() => laptop.frames.find((f) => f.type === "notification"), "the unread message's notification");
      expect(note.data.message.id).toBe(next.id);
      await waitFor(() => laptop.frames.find((f) => f.type === "unread_count" && f.data.unreadCount === 1), "badge of 1");
    } finally {
      await undoSlow();
      laptop.ws.close(1000, "done");
      phone.ws.close(1000, "done");
    }
  });
});

describe("notifications that reach the session after the user left the conversation", () => {
  it("restore no badge for a conversation the user was removed from, and count again once they are added back", async () => {
    const [admin, b, c] = await users(3, "rmrace");
    const gid = await group(admin, [b, c]);
    const laptop = await connectUser(b);
    await waitFor(() => laptop.frames.find((f) => f.type === "connected"), "connected");
    await send(gid, admin, "one");
    await waitFor(() => laptop.frames.find((f) => f.type === "unread_count" && f.data.unreadCount === 1), "badge of 1");
    expect((await api("DELETE", `/conversations/${gid}/participants/${b.id}`, { token: admin.token })).status).toBe(204);
    await waitFor(() => laptop.frames.find((f) => f.type === "conversation_removed" && f.data.conversationId === gid), "conversation_removed");
    await waitFor(() => laptop.frames.find((f) => f.type === "unread_count" && f.data.conversationId === gid && f.data.unreadCount === 0), "badge of 0");
    const seen = laptop.frames.length;
    // What the room sent before it heard of the removal lands after it: a batch of message 2, a recount.
    const session = env.USER_SESSION.get(env.USER_SESSION.idFromName(b.id));
    const late: Message = {
      id: crypto.randomUUID(),
      conversationId: gid,
      seq: 2,
      senderId: admin.id,
      clientMessageId: null,
      type: "text",
      content: "two",
      replyToId: null,
      createdAt: new Date().toISOString(),
      editedAt: null,
      deletedAt: null,
      status: "sent",
    };
    await session.messageNotifications({ conversationId: gid, messages: [late], muted: false });
    await session.unreadChanged({ conversationId: gid, unreadCount: 2, asOfSeq: 2, readSeq: 0 });
    // And a rename told to the members as the Worker read them before the removal: the conversation came back into
    // the removed member's list.
    const view = (await api("GET", `/conversations/${gid}`, { token: admin.token })).body;
    await session.conversationEvent({ type: "conversation_updated", conversation: { ...view, name: "renamed meanwhile" } });
    // Frames sent before the heartbeat's answer have arrived by then.
    laptop.ws.send(JSON.stringify({ type: "heartbeat", data: {}, id: "barrier" }));
    await waitFor(() => laptop.frames.find((f) => f.id === "barrier"), "heartbeat_ack");
    expect(laptop.frames.slice(seen).filter((f) => f.id !== "barrier")).toEqual([]);
    expect(await sessionBadge(b, gid)).toBeUndefined();
    expect((await api("GET", "/notifications/unread-counts", { token: b.token })).body.totalUnread).toBe(0);

    // Added back: messages count again.
    expect((await api("POST", `/conversations/${gid}/participants`, { token: admin.token, body: { userId: b.id } })).status).toBe(201);
    await waitFor(() => laptop.frames.slice(seen).find((f) => f.type === "conversation_created"), "conversation_created");
    const next = await send(gid, admin, "welcome back");
    const note = await waitFor(() => laptop.frames.slice(seen).find((f) => f.type === "notification"), "notification after coming back");
    expect(note.data.message.id).toBe(next.id);
    const restUnread = (await api("GET", `/conversations/${gid}/unread-count`, { token: b.token })).body.unreadCount;
    await waitFor(
      () => laptop.frames.slice(seen).find((f) => f.type === "unread_count" && f.data.conversationId === gid && f.data.unreadCount === restUnread),
      `badge of ${restUnread}`,
    );
    expect(await sessionBadge(b, gid)).toBe(restUnread);
    laptop.ws.close(1000, "done");
  });
});
