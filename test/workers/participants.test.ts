import { describe, expect, it } from "vitest";
import { env, runInDurableObject } from "cloudflare:test";
import { sql } from "drizzle-orm";
import type { ConversationRoom } from "../../src/durable-objects/conversation-room";
import { api, expectErrorShape, newUser } from "./helpers";
import { afterNextRead, holdNextRead, refuseInserts, slowRoomFlushes, withDb } from "./fixtures";
import { direct, get, group, roles, send, users } from "./conversation-helpers";
import { openSocket, waitFor } from "./sockets";

const add = (id: string, token: string, body: unknown) => api("POST", `/conversations/${id}/participants`, { token, body });
const remove = (id: string, userId: string, token: string) => api("DELETE", `/conversations/${id}/participants/${userId}`, { token });
const setRole = (id: string, userId: string, token: string, body: unknown) =>
  api("PUT", `/conversations/${id}/participants/${userId}/role`, { token, body });

/** Once the room has written what it held to Postgres, the member has nothing unread there. */
async function expectNothingUnreadOnceFlushed(id: string, member: { token: string }): Promise<void> {
  const room = env.CONVERSATION_ROOM.get(env.CONVERSATION_ROOM.idFromName(id));
  expect((await room.flushNow()).pending).toBe(0);
  expect((await api("GET", `/conversations/${id}/unread-count`, { token: member.token })).body.unreadCount).toBe(0);
}

describe("POST /conversations/:id/participants", () => {
  it("lets a group admin add a member or an admin (201 Participant with profile)", async () => {
    const [admin, a, b, c, d] = await users(5, "grp");
    const id = await group(admin, [a, b]);
    const res = await add(id, admin.token, { userId: c.id });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ userId: c.id, role: "member", isMuted: false, lastReadSeq: 0, profile: { id: c.id, kind: "user" } });
    expect((await add(id, admin.token, { userId: d.id, role: "admin" })).body.role).toBe("admin");
    expect((await get(id, c)).status).toBe(200);
    expect(roles((await get(id, admin)).body)).toMatchObject({ [c.id]: "member", [d.id]: "admin" });
  });

  it("tells open conversation sockets with participant_joined and participant_updated, each with the member's profile", async () => {
    const [admin, a, b, c] = await users(4, "grp");
    const id = await group(admin, [a, b]);
    const socket = await openSocket(`/conversations/${id}/ws`, a);
    try {
      await waitFor(() => socket.frames.find((f) => f.type === "ready"), "ready frame");
      expect((await add(id, admin.token, { userId: c.id })).status).toBe(201);
      const joined = await waitFor(() => socket.frames.find((f) => f.type === "participant_joined"), "participant_joined");
      expect(joined.data.participant).toMatchObject({ userId: c.id, role: "member", profile: { id: c.id, kind: "user" } });
      expect((await setRole(id, c.id, admin.token, { role: "admin" })).status).toBe(200);
      const updated = await waitFor(() => socket.frames.find((f) => f.type === "participant_updated"), "participant_updated");
      expect(updated.data.participant).toMatchObject({ userId: c.id, role: "admin", profile: joined.data.participant.profile });
    } finally {
      socket.ws.close(1000, "done");
    }
  });

  it("starts a new member's read mark at the newest message: the history is theirs to read, not unread", async () => {
    const [admin, a, b, c] = await users(4, "grp");
    const id = await group(admin, [a, b]);
    for (const text of ["one", "two", "three"]) await send(id, a, text);
    const added = await add(id, admin.token, { userId: c.id });
    expect(added.body).toMatchObject({ lastReadSeq: 3, lastDeliveredSeq: 3 });
    expect((await api("GET", `/conversations/${id}/unread-count`, { token: c.token })).body.unreadCount).toBe(0);
    expect((await api("GET", `/conversations/${id}/messages`, { token: c.token })).body.messages).toHaveLength(3);
    await send(id, a, "four");
    expect((await api("GET", `/conversations/${id}/unread-count`, { token: c.token })).body.unreadCount).toBe(1);
  });

  it("starts a new member's read mark at the room's newest message, one still on its way to Postgres included", async () => {
    const [admin, a, b, c] = await users(4, "grp");
    const id = await group(admin, [a, b]);
    await send(id, a, "one");
    // The room cannot write this conversation's new messages to Postgres yet: "two" waits in the room.
    const undo = await refuseInserts("messages", id);
    try {
      expect((await send(id, a, "two")).seq).toBe(2);
      expect((await add(id, admin.token, { userId: c.id })).status).toBe(201);
      const socket = await openSocket(`/conversations/${id}/ws`, c);
      try {
        const ready = await waitFor(() => socket.frames.find((f) => f.type === "ready"), "ready frame");
        expect(ready.data.you).toMatchObject({ lastReadSeq: 2, lastDeliveredSeq: 2 });
      } finally {
        socket.ws.close(1000, "done");
      }
    } finally {
      await undo();
    }
    await expectNothingUnreadOnceFlushed(id, c);
    const receipts = await api("GET", `/conversations/${id}/read-receipts`, { token: admin.token });
    expect(receipts.body.participants.find((p: { userId: string }) => p.userId === c.id)).toMatchObject({ lastReadSeq: 2 });
  });

  it("counts a message sent while the add was on its way as read for the new member: it came before they joined", async () => {
    const [admin, a, b, c] = await users(4, "grp");
    const id = await group(admin, [a, b]);
    await send(id, a, "one");
    const undo = await refuseInserts("messages", id);
    try {
      // "two" is sent after the room told the add its newest seq (1), and waits in the room when the add commits.
      const room = env.CONVERSATION_ROOM.get(env.CONVERSATION_ROOM.idFromName(id));
      await runInDurableObject(room, (instance: ConversationRoom) => {
        // RPC calls methods of the class, not of the instance.
        const proto = Object.getPrototypeOf(instance) as ConversationRoom;
        const newest = proto.newestSeq;
        proto.newestSeq = async function (this: ConversationRoom, conversationId: string) {
          const answer = await newest.call(this, conversationId);
          if (conversationId !== id) return answer;
          proto.newestSeq = newest;
          expect((await send(id, a, "two")).seq).toBe(2);
          return answer;
        };
      });
      expect((await add(id, admin.token, { userId: c.id })).status).toBe(201);
    } finally {
      await undo();
    }
    await expectNothingUnreadOnceFlushed(id, c);
    const listed = (await api("GET", "/conversations", { token: c.token })).body.conversations.find((x: { id: string }) => x.id === id);
    expect(listed).toMatchObject({ unreadCount: 0 });
  });

  it("provisions an unknown user id", async () => {
    const [admin, a, b] = await users(3, "grp");
    const id = await group(admin, [a, b]);
    const newcomer = crypto.randomUUID();
    expect((await add(id, admin.token, { userId: newcomer })).status).toBe(201);
  });

  it("refuses members (403), direct and business conversations (400), bad roles and bodies (400), duplicates (409)", async () => {
    const [admin, a, b, c] = await users(4, "grp");
    const id = await group(admin, [a, b]);
    expectErrorShape(await add(id, a.token, { userId: c.id }), 403);
    const d = await direct(admin, a);
    expectErrorShape(await add(d, admin.token, { userId: c.id }), 400);
    const biz = await api("POST", "/conversations/business", { token: admin.token, body: { businessId: crypto.randomUUID() } });
    expectErrorShape(await add(biz.body.id, admin.token, { userId: c.id, role: "agent" }), 400);
    for (const body of [
      {},
      { userId: "nope" },
      { userId: c.id, role: "customer" },
      { userId: c.id, role: "agent" },
      { userId: c.id, role: "owner" },
      { userId: c.id, joinedAt: "2020-01-01T00:00:00Z" },
      { userId: c.id, lastReadSeq: 5 },
    ]) {
      expectErrorShape(await add(id, admin.token, body), 400);
    }
    expectErrorShape(await add(id, admin.token, { userId: a.id }), 409);
    expectErrorShape(await add(id, admin.token, { userId: admin.id }), 409);
    expect((await get(id, admin)).body.participants).toHaveLength(3);
  });

  it("never lets a group exceed 8, even under concurrent adds", async () => {
    const [admin, ...rest] = await users(12, "grp");
    const id = await group(admin, rest.slice(0, 4));
    const results = await Promise.all(rest.slice(4).map((u) => add(id, admin.token, { userId: u.id })));
    expect(results.filter((r) => r.status === 201)).toHaveLength(3);
    for (const r of results.filter((r) => r.status !== 201)) expectErrorShape(r, 409);
    const rows = await withDb((db) =>
      db.execute<{ n: string }>(sql`SELECT count(*) AS n FROM participants WHERE conversation_id = ${id} AND left_at IS NULL`),
    );
    expect(Number(rows.rows[0].n)).toBe(8);
  });

  it("reactivates the row of a member who left, and still counts the cap after shrinking and re-growing", async () => {
    const [admin, ...rest] = await users(9, "grp");
    const id = await group(admin, rest.slice(0, 7));
    const leaver = rest[0];
    await send(id, admin, "before leaving");
    expect((await remove(id, leaver.id, leaver.token)).status).toBe(204);
    expectErrorShape(await get(id, leaver), 404);
    const back = await add(id, admin.token, { userId: leaver.id });
    expect(back.status).toBe(201);
    expect(back.body.userId).toBe(leaver.id);
    const rows = await withDb((db) =>
      db.execute<{ n: string }>(sql`SELECT count(*) AS n FROM participants WHERE conversation_id = ${id} AND user_id = ${leaver.id}`),
    );
    expect(Number(rows.rows[0].n)).toBe(1);
    expect((await get(id, leaver)).status).toBe(200);
    // Full again at 8: the ninth user is refused.
    expectErrorShape(await add(id, admin.token, { userId: rest[7].id }), 409);
  });
});

describe("DELETE /conversations/:id/participants/:userId", () => {
  it("refuses a body (the target belongs in the path), and removes nobody (strict bodies, contract §1)", async () => {
    const [admin, b, c] = await users(3, "leave-body");
    const id = await group(admin, [b, c]);
    // An admin naming the member to remove in the body, on their own path, answered 204 and had left the group.
    const wrong = await api("DELETE", `/conversations/${id}/participants/${admin.id}`, { token: admin.token, body: { userId: c.id } });
    expectErrorShape(wrong, 400);
    expect(roles((await get(id, admin)).body)).toEqual({ [admin.id]: "admin", [b.id]: "member", [c.id]: "member" });
    expect((await api("DELETE", `/conversations/${id}/participants/${c.id}`, { token: admin.token, body: {} })).status).toBe(204);
    expect((await api("DELETE", `/conversations/${id}/participants/${b.id}`, { token: b.token })).status).toBe(204);
  });

  it("lets anyone leave (history stays) and a group admin remove others", async () => {
    const [admin, a, b, c] = await users(4, "grp");
    const id = await group(admin, [a, b, c]);
    const message = await send(id, a, "a was here");
    expect((await remove(id, a.id, a.token)).status).toBe(204);
    expect((await remove(id, b.id, admin.token)).status).toBe(204);
    const after = await get(id, admin);
    expect(after.body.participants.map((p: { userId: string }) => p.userId).sort()).toEqual([admin.id, c.id].sort());
    const history = await api("GET", `/conversations/${id}/messages`, { token: admin.token });
    expect(history.body.messages.map((m: { id: string }) => m.id)).toContain(message.id);
    const row = await withDb((db) =>
      db.execute<{ left_at: string | null }>(sql`SELECT left_at FROM participants WHERE conversation_id = ${id} AND user_id = ${a.id}`),
    );
    expect(row.rows[0].left_at).not.toBeNull();
    // A removed member no longer sees or acts on the conversation.
    expectErrorShape(await get(id, b), 404);
    expectErrorShape(await send_(id, b), 404);
  });

  it("refuses a member removing someone else (403) and answers 404 for non-participants", async () => {
    const [admin, a, b, outsider] = await users(4, "grp");
    const id = await group(admin, [a, b]);
    expectErrorShape(await remove(id, b.id, a.token), 403);
    expectErrorShape(await remove(id, admin.id, a.token), 403);
    expectErrorShape(await remove(id, outsider.id, admin.token), 404);
    expectErrorShape(await remove(id, "not-a-uuid", admin.token), 404);
    const d = await direct(a, b);
    expectErrorShape(await remove(d, b.id, a.token), 403);
    expect((await get(id, admin)).body.participants).toHaveLength(3);
  });

  it("promotes the member who joined first when the last admin leaves", async () => {
    const [admin, first, second, third] = await users(4, "grp");
    const id = await group(admin, [first, second]);
    // Make the join order unambiguous, whatever the insert timestamps were.
    await withDb((db) =>
      db.execute(sql`UPDATE participants SET joined_at = now() - interval '1 hour' WHERE conversation_id = ${id} AND user_id = ${second.id}`),
    );
    expect((await add(id, admin.token, { userId: third.id })).status).toBe(201);
    expect((await remove(id, admin.id, admin.token)).status).toBe(204);
    const after = await get(id, first);
    expect(roles(after.body)).toEqual({ [first.id]: "member", [second.id]: "admin", [third.id]: "member" });
    // The new admin can act as one.
    expect((await api("PATCH", `/conversations/${id}`, { token: second.token, body: { name: "Renamed" } })).status).toBe(200);
  });

  it("promotes nobody while another admin remains", async () => {
    const [admin, other, m] = await users(3, "grp");
    const id = await group(admin, [other, m]);
    expect((await setRole(id, other.id, admin.token, { role: "admin" })).status).toBe(200);
    expect((await remove(id, admin.id, admin.token)).status).toBe(204);
    expect(roles((await get(id, m)).body)).toEqual({ [other.id]: "admin", [m.id]: "member" });
  });

  it("keeps a group working after it shrinks below 3", async () => {
    const [admin, a, b, c] = await users(4, "grp");
    const id = await group(admin, [a, b]);
    expect((await remove(id, a.id, admin.token)).status).toBe(204);
    expect((await remove(id, b.id, b.token)).status).toBe(204);
    const now = await get(id, admin);
    expect(now.body.participants).toHaveLength(1);
    expect((await send(id, admin, "alone")).seq).toBe(1);
    expect((await add(id, admin.token, { userId: c.id })).status).toBe(201);
    expect((await send(id, c, "hello")).seq).toBe(2);
  });

  it("keeps a removed member out when an older read of the member list comes back after the removal's", async () => {
    const [admin, a, b, c] = await users(4, "grp");
    const id = await group(admin, [a, b, c]);
    const socket = await openSocket(`/conversations/${id}/ws`, a);
    try {
      await waitFor(() => socket.frames.find((f) => f.type === "ready"), "ready frame");
      const room = env.CONVERSATION_ROOM.get(env.CONVERSATION_ROOM.idFromName(id));
      // A member-list read (any earlier change's) has its answer, with c, when c's removal is made and read.
      const members = await runInDurableObject(room, async (instance: ConversationRoom) => {
        afterNextRead(instance, async () => expect((await remove(id, c.id, admin.token)).status).toBe(204));
        await instance.notify({ kind: "participants", conversationId: id });
        return instance.participants().map((p) => p.userId);
      });
      expect(members.sort()).toEqual([admin.id, a.id, b.id].sort());
      await waitFor(() => socket.frames.find((f) => f.type === "participant_left" && f.data.userId === c.id), "participant_left");
      expect(socket.frames.filter((f) => f.type === "participant_joined")).toEqual([]);
      expectErrorShape(await send_(id, c), 404);
    } finally {
      socket.ws.close(1000, "done");
    }
  });

  it("refuses a removed member's frames as soon as the removal reaches the room, while its member-list read is out", async () => {
    const [admin, a, b] = await users(3, "grp");
    const id = await group(admin, [a, b]);
    const [watcher, leaving] = [await openSocket(`/conversations/${id}/ws`, admin), await openSocket(`/conversations/${id}/ws`, b)];
    let closedWith: number | undefined;
    leaving.ws.addEventListener("close", (e) => (closedWith = e.code));
    try {
      for (const s of [watcher, leaving]) await waitFor(() => s.frames.find((f) => f.type === "ready"), "ready frame");
      // The room's read of the member list (the removal's notice) is held until b has tried to send and to read.
      const { reading, release } = await holdNextRead(id);
      const removal = remove(id, b.id, admin.token);
      await waitFor(() => (reading() ? true : undefined), "the removal's member-list read");
      try {
        leaving.ws.send(JSON.stringify({ type: "send_message", id: "late", data: { content: "sent after my removal", clientMessageId: crypto.randomUUID() } }));
        leaving.ws.send(JSON.stringify({ type: "mark_as_read", data: { seq: 0 } }));
      } catch {
        // The socket is already closed on this side: nothing was sent.
      }
      await waitFor(() => closedWith ?? leaving.frames.find((f) => f.id === "late"), "the late frame's answer or the close");
      release();
      expect((await removal).status).toBe(204);
      expect(closedWith).toBe(4403);
      expect(leaving.frames.filter((f) => f.type === "message_ack")).toEqual([]);
      await waitFor(() => watcher.frames.find((f) => f.type === "participant_left" && f.data.userId === b.id), "participant_left");
      expect(watcher.frames.filter((f) => f.type === "new_message")).toEqual([]);
      expect((await api("GET", `/conversations/${id}/messages`, { token: admin.token })).body.messages).toEqual([]);
    } finally {
      for (const s of [watcher, leaving]) s.ws.close(1000, "done");
    }
  });

  it("keeps a member dropped at their removal's notice out when a read begun before the removal lands during its own read", async () => {
    const [admin, a, b, c] = await users(4, "grp");
    const id = await group(admin, [a, b, c]);
    const socket = await openSocket(`/conversations/${id}/ws`, a);
    try {
      await waitFor(() => socket.frames.find((f) => f.type === "ready"), "ready frame");
      const room = env.CONVERSATION_ROOM.get(env.CONVERSATION_ROOM.idFromName(id));
      let release = () => {};
      const released = new Promise<void>((r) => (release = r));
      let removal: Promise<unknown> | undefined;
      const members = await runInDurableObject(room, async (instance: ConversationRoom) => {
        const read = instance.pgOr503.bind(instance);
        let calls = 0;
        instance.pgOr503 = async <T>(work: () => Promise<T>): Promise<T> => {
          const call = ++calls;
          const result = await read(work);
          if (call === 1) {
            // This read has its answer, with c, when c is removed; the removal's own read is still out.
            removal = remove(id, c.id, admin.token);
            await waitFor(() => (instance.member(c.id) ? undefined : true), "c dropped at the removal's notice");
          }
          if (call === 2) await released;
          return result;
        };
        await instance.notify({ kind: "participants", conversationId: id });
        return instance.participants().map((p) => p.userId);
      });
      expect(members.sort()).toEqual([admin.id, a.id, b.id].sort());
      release();
      await removal;
      expect(socket.frames.filter((f) => f.type === "participant_joined")).toEqual([]);
      expect(socket.frames.filter((f) => f.type === "participant_left").map((f) => f.data.userId)).toEqual([c.id]);
    } finally {
      socket.ws.close(1000, "done");
    }
  });

  it("keeps a member re-added after their removal when the removal's notice reaches the room last", async () => {
    const [admin, a, b] = await users(3, "grp");
    const id = await group(admin, [a, b]);
    expect((await remove(id, b.id, admin.token)).status).toBe(204);
    const [{ left_at }] = (
      await withDb((db) => db.execute<{ left_at: string }>(sql`SELECT left_at FROM participants WHERE conversation_id = ${id} AND user_id = ${b.id}`))
    ).rows;
    expect((await add(id, admin.token, { userId: b.id })).status).toBe(201);
    const [watcher, back] = [await openSocket(`/conversations/${id}/ws`, admin), await openSocket(`/conversations/${id}/ws`, b)];
    try {
      for (const s of [watcher, back]) await waitFor(() => s.frames.find((f) => f.type === "ready"), "ready frame");
      const room = env.CONVERSATION_ROOM.get(env.CONVERSATION_ROOM.idFromName(id));
      // The removal's notice, late: notices travel independently, and the re-add's came first.
      const leftAt = new Date(left_at).toISOString();
      await runInDurableObject(room, (instance: ConversationRoom) => instance.notify({ kind: "participants", conversationId: id, left: [b.id], leftAt }));
      back.ws.send(JSON.stringify({ type: "send_message", id: "back", data: { content: "back again", clientMessageId: crypto.randomUUID() } }));
      expect((await waitFor(() => back.frames.find((f) => f.id === "back"), "the send's answer")).type).toBe("message_ack");
      await waitFor(() => watcher.frames.find((f) => f.type === "new_message"), "new_message");
      expect(watcher.frames.filter((f) => f.type === "participant_left")).toEqual([]);
      expect((await get(id, b)).status).toBe(200);
    } finally {
      for (const s of [watcher, back]) s.ws.close(1000, "done");
    }
  });

  it("keeps the read mark of a member who leaves and is added back before the room's flush of their read lands", async () => {
    const [admin, a, b] = await users(3, "grp");
    const id = await group(admin, [a, b]);
    for (const text of ["one", "two", "three"]) await send(id, b, text);
    const room = env.CONVERSATION_ROOM.get(env.CONVERSATION_ROOM.idFromName(id));
    // The room's flushes are slow to reach Postgres: a's read stays in the room through the leave and the re-add.
    const undoSlow = await slowRoomFlushes(id, 3000);
    const laptop = await openSocket("/ws", a);
    try {
      await waitFor(() => laptop.frames.find((f) => f.type === "unread_count" && f.data.unreadCount === 3), "badge on connect");
      const seen = laptop.frames.length;
      await runInDurableObject(room, (instance: ConversationRoom) => void instance.applyWatermark(a.id, { read: 3 }));
      expect((await remove(id, a.id, a.token)).status).toBe(204);
      expect((await add(id, admin.token, { userId: a.id })).status).toBe(201);
      // Before, Postgres's older mark: the three messages a had read showed as unread again, in the list and badge.
      const created = await waitFor(() => laptop.frames.find((f) => f.type === "conversation_created"), "conversation_created");
      expect(created.data.conversation.unreadCount).toBe(0);
      const socket = await openSocket(`/conversations/${id}/ws`, a);
      try {
        const ready = await waitFor(() => socket.frames.find((f) => f.type === "ready"), "ready frame");
        expect(ready.data.you).toMatchObject({ lastReadSeq: 3, lastDeliveredSeq: 3 });
        const receipts = await api("GET", `/conversations/${id}/read-receipts`, { token: admin.token });
        expect(receipts.body.participants.find((p: { userId: string }) => p.userId === a.id)).toMatchObject({ lastReadSeq: 3 });
      } finally {
        socket.ws.close(1000, "done");
      }
      await undoSlow();
      await runInDurableObject(room, (instance: ConversationRoom) => instance.waitForCommit());
      expect(laptop.frames.slice(seen).filter((f) => f.type === "unread_count" && f.data.unreadCount > 0)).toEqual([]);
      expect((await api("GET", "/notifications/unread-counts", { token: a.token })).body.totalUnread).toBe(0);
    } finally {
      laptop.ws.close(1000, "done");
      await undoSlow();
    }
  });

  it("gives one who leaves a direct conversation and opens it again before the room's flush of their read the read", async () => {
    const [a, b] = await users(2, "dm");
    const id = await direct(a, b);
    for (const text of ["one", "two", "three"]) await send(id, b, text);
    const room = env.CONVERSATION_ROOM.get(env.CONVERSATION_ROOM.idFromName(id));
    const undoSlow = await slowRoomFlushes(id, 3000);
    try {
      await runInDurableObject(room, (instance: ConversationRoom) => void instance.applyWatermark(a.id, { read: 3 }));
      expect((await remove(id, a.id, a.token)).status).toBe(204);
      const again = await api("POST", "/conversations/direct", { token: a.token, body: { targetUserId: b.id } });
      expect(again.status).toBe(200);
      // Before, Postgres's older mark and count: the three messages a had read came back as unread.
      expect(again.body.unreadCount).toBe(0);
      expect(again.body.participants.find((p: { userId: string }) => p.userId === a.id)).toMatchObject({ lastReadSeq: 3 });
    } finally {
      await undoSlow();
    }
  });

  it("gives the side brought back to a direct conversation before the room's flush of their read the read", async () => {
    const [a, b] = await users(2, "dm");
    const id = await direct(a, b);
    for (const text of ["one", "two", "three"]) await send(id, b, text);
    const phone = await openSocket("/ws", a);
    const room = env.CONVERSATION_ROOM.get(env.CONVERSATION_ROOM.idFromName(id));
    const undoSlow = await slowRoomFlushes(id, 3000);
    try {
      await waitFor(() => phone.frames.find((f) => f.type === "connected"), "connected");
      await runInDurableObject(room, (instance: ConversationRoom) => void instance.applyWatermark(a.id, { read: 3 }));
      expect((await remove(id, a.id, a.token)).status).toBe(204);
      const seen = phone.frames.length;
      expect((await api("POST", "/conversations/direct", { token: b.token, body: { targetUserId: a.id } })).status).toBe(200);
      const created = await waitFor(() => phone.frames.find((f) => f.type === "conversation_created" && f.data.conversation.id === id), "conversation_created");
      // Before, a's session counted from Postgres's older mark: the three messages a had read came back as unread.
      expect(created.data.conversation.unreadCount).toBe(0);
      const badges = phone.frames.slice(seen).filter((f) => f.type === "unread_count" && f.data.conversationId === id);
      expect(badges.map((f) => f.data.unreadCount)).not.toContain(3);
    } finally {
      phone.ws.close(1000, "done");
      await undoSlow();
    }
  });

  it("lets a side leave a direct conversation, which never gains members", async () => {
    const [a, b, c] = await users(3, "dm");
    const id = await direct(a, b);
    expect((await remove(id, b.id, b.token)).status).toBe(204);
    expectErrorShape(await add(id, a.token, { userId: c.id }), 400);
    expect((await get(id, a)).body.participants.map((p: { userId: string }) => p.userId)).toEqual([a.id]);
  });
});

describe("PUT /conversations/:id/participants/:userId/role", () => {
  it("lets a group admin promote and demote", async () => {
    const [admin, a, b] = await users(3, "grp");
    const id = await group(admin, [a, b]);
    const up = await setRole(id, a.id, admin.token, { role: "admin" });
    expect(up.status).toBe(200);
    expect(up.body).toMatchObject({ userId: a.id, role: "admin", profile: { id: a.id } });
    const down = await setRole(id, admin.id, a.token, { role: "member" });
    expect(down.body.role).toBe("member");
    expect(roles((await get(id, b)).body)).toEqual({ [admin.id]: "member", [a.id]: "admin", [b.id]: "member" });
  });

  it("refuses members (403), non-group conversations and bad roles (400), the last admin's demotion (409), strangers (404)", async () => {
    const [admin, a, b, outsider] = await users(4, "grp");
    const id = await group(admin, [a, b]);
    expectErrorShape(await setRole(id, b.id, a.token, { role: "admin" }), 403);
    expectErrorShape(await setRole(id, a.id, a.token, { role: "admin" }), 403);
    for (const body of [{}, { role: "agent" }, { role: "owner" }, { role: "admin", userId: b.id }]) {
      expectErrorShape(await setRole(id, a.id, admin.token, body), 400);
    }
    expectErrorShape(await setRole(id, admin.id, admin.token, { role: "member" }), 409);
    expectErrorShape(await setRole(id, outsider.id, admin.token, { role: "admin" }), 404);
    expectErrorShape(await setRole(id, "nope", admin.token, { role: "admin" }), 404);
    const d = await direct(admin, a);
    expectErrorShape(await setRole(d, a.id, admin.token, { role: "admin" }), 400);
  });

  it("refuses a demoted admin's delete of someone else's message once the demotion reaches the room, during its read", async () => {
    const [admin, other, m] = await users(3, "grp");
    const id = await group(admin, [other, m]);
    expect((await setRole(id, other.id, admin.token, { role: "admin" })).status).toBe(200);
    const message = await send(id, m, "keep me");
    const { reading, release } = await holdNextRead(id);
    const demotion = setRole(id, other.id, admin.token, { role: "member" });
    await waitFor(() => (reading() ? true : undefined), "the demotion's member-list read");
    const deleted = await api("DELETE", `/conversations/${id}/messages/${message.id}`, { token: other.token });
    release();
    expect((await demotion).status).toBe(200);
    expectErrorShape(deleted, 403);
    const history = await api("GET", `/conversations/${id}/messages`, { token: m.token });
    expect(history.body.messages.map((x: { content: string }) => x.content)).toEqual(["keep me"]);
    // Promoted again, they may (a promotion is not taken ahead of its read, and this one has had it).
    expect((await setRole(id, other.id, admin.token, { role: "admin" })).status).toBe(200);
    expect((await api("DELETE", `/conversations/${id}/messages/${message.id}`, { token: other.token })).status).toBe(204);
  });

  it("keeps a demotion taken at its notice when a read begun before it lands during the demotion's own read", async () => {
    const [admin, other, m] = await users(3, "grp");
    const id = await group(admin, [other, m]);
    expect((await setRole(id, other.id, admin.token, { role: "admin" })).status).toBe(200);
    const message = await send(id, m, "keep me");
    const room = env.CONVERSATION_ROOM.get(env.CONVERSATION_ROOM.idFromName(id));
    let release = () => {};
    const released = new Promise<void>((r) => (release = r));
    let demotion: Promise<unknown> | undefined;
    const role = await runInDurableObject(room, async (instance: ConversationRoom) => {
      const read = instance.pgOr503.bind(instance);
      let calls = 0;
      instance.pgOr503 = async <T>(work: () => Promise<T>): Promise<T> => {
        const call = ++calls;
        const result = await read(work);
        if (call === 1) {
          // This read has its answer, other still an admin, when they are demoted; the demotion's own read is out.
          demotion = setRole(id, other.id, admin.token, { role: "member" });
          await waitFor(() => (instance.member(other.id)?.role === "member" ? true : undefined), "the demotion taken at its notice");
        }
        if (call === 2) await released;
        return result;
      };
      await instance.notify({ kind: "participants", conversationId: id });
      return instance.member(other.id)?.role;
    });
    expect(role).toBe("member");
    release();
    await demotion;
    expectErrorShape(await api("DELETE", `/conversations/${id}/messages/${message.id}`, { token: other.token }), 403);
  });
});

describe("PUT /conversations/:id/mute", () => {
  it("sets the caller's own mute flag only", async () => {
    const [a, b] = await users(2, "mute");
    const id = await direct(a, b);
    const res = await api("PUT", `/conversations/${id}/mute`, { token: a.token, body: { isMuted: true } });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ conversationId: id, isMuted: true });
    expect((await get(id, a)).body.isMuted).toBe(true);
    expect((await get(id, b)).body.isMuted).toBe(false);
    const off = await api("PUT", `/conversations/${id}/mute`, { token: a.token, body: { isMuted: false } });
    expect(off.body.isMuted).toBe(false);
  });

  it("shows whether a member muted the conversation to that member alone: lists, pages, sockets and member events", async () => {
    const [admin, a, b, c] = await users(4, "mute");
    const id = await group(admin, [a, b]);
    expect((await api("PUT", `/conversations/${id}/mute`, { token: a.token, body: { isMuted: true } })).status).toBe(200);
    const flagOf = (conv: { participants: { userId: string; isMuted: boolean }[] }) => conv.participants.find((p) => p.userId === a.id)?.isMuted;
    expect(flagOf((await get(id, a)).body)).toBe(true);
    expect(flagOf((await get(id, b)).body)).toBe(false);
    const list = await api("GET", "/conversations", { token: b.token });
    expect(flagOf(list.body.conversations.find((x: { id: string }) => x.id === id))).toBe(false);
    const [mine, theirs] = [await openSocket(`/conversations/${id}/ws`, a), await openSocket(`/conversations/${id}/ws`, b)];
    const users_ = await openSocket("/ws", b);
    try {
      const readyOf = async (s: typeof mine) => (await waitFor(() => s.frames.find((f) => f.type === "ready"), "ready")).data;
      expect(flagOf(await readyOf(mine))).toBe(true);
      expect(flagOf(await readyOf(theirs))).toBe(false);
      await waitFor(() => users_.frames.find((f) => f.type === "connected"), "connected");
      // A role change and a join are broadcast as they are, to every member: nobody's flag in them.
      expect((await setRole(id, a.id, admin.token, { role: "admin" })).body.isMuted).toBe(false);
      const updated = await waitFor(() => theirs.frames.find((f) => f.type === "participant_updated"), "participant_updated");
      expect(updated.data.participant).toMatchObject({ userId: a.id, isMuted: false });
      expect((await add(id, admin.token, { userId: c.id })).status).toBe(201);
      const listed = await waitFor(() => users_.frames.find((f) => f.type === "conversation_updated" && f.data.conversation.participants.length === 4), "conversation_updated");
      expect(flagOf(listed.data.conversation)).toBe(false);
    } finally {
      for (const s of [mine, theirs, users_]) s.ws.close(1000, "done");
    }
  });

  it("validates its body", async () => {
    const [a, b] = await users(2, "mute");
    const id = await direct(a, b);
    for (const body of [{}, { isMuted: "yes" }, { isMuted: true, userId: b.id }]) {
      expectErrorShape(await api("PUT", `/conversations/${id}/mute`, { token: a.token, body }), 400);
    }
  });
});

async function send_(id: string, from: { token: string }) {
  return api("POST", `/conversations/${id}/messages`, { token: from.token, body: { content: "still here?" } });
}

it("a user who never joined cannot manage anything", async () => {
  const [admin, a, b] = await users(3, "grp");
  const id = await group(admin, [a, b]);
  const stranger = await newUser("stranger");
  expectErrorShape(await add(id, stranger.token, { userId: stranger.id }), 404);
  expectErrorShape(await remove(id, a.id, stranger.token), 404);
});
