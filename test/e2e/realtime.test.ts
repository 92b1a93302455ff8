import { afterEach, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { Client, faults, http, login, pool, seedConversation, sleep, until, type User, socketPool, pgSeqs, WS_BASE, BASE } from "./harness";

/** The local profile service's avatar for a user: a profile from the service, not a placeholder (avatarUrl null). */
const serviceAvatar = (userId: string) => `https://avatars.example.test/${userId}.png`;

const sockets = socketPool();
const { open, connect } = sockets;

afterEach(async () => {
  sockets.closeAll();
  await faults.postgres({});
});

describe("conversation socket", () => {
  it("sends ready first, acks sends and delivers them to the other participant", async () => {
    const [a, b] = [await login("rt-a"), await login("rt-b")];
    const id = await seedConversation("direct", [a, b]);
    const ca = await Client.connect(`/conversations/${id}/ws`, a.token);
    open.push(ca);
    const ready = await ca.next("ready");
    expect(ready.data).toMatchObject({ conversationId: id, lastSeq: 0, you: { lastReadSeq: 0 } });
    expect(ready.data.participants).toHaveLength(2);
    const cb = await connect(id, b);
    const ack = await ca.request("send_message", { content: "hello", clientMessageId: "m1" }, "message_ack");
    expect(ack.data).toMatchObject({ clientMessageId: "m1", message: { seq: 1, content: "hello", senderId: a.id, status: "sent" } });
    const got = await cb.next("new_message");
    expect(got.data.message).toMatchObject({ seq: 1, content: "hello", senderId: a.id });
    expect(got.data.message.sender).toMatchObject({ id: a.id, kind: "user", avatarUrl: serviceAvatar(a.id) });
  });

  it("eight users in a group see the same messages in the same order", async () => {
    const users = await Promise.all(Array.from({ length: 8 }, (_, i) => login(`g${i}`)));
    const id = await seedConversation("group", users);
    const clients = await Promise.all(users.map((u) => connect(id, u)));
    await Promise.all(clients.map((c, i) => Promise.all([0, 1, 2].map((k) => c.request("send_message", { content: `u${i}-${k}`, clientMessageId: `k${k}` }, "message_ack")))));
    const orders = await Promise.all(
      clients.map(async (c) => {
        await until(async () => (c.all("new_message").length >= 24 ? true : undefined));
        return c.all("new_message").map((f) => `${f.data.message.seq}:${f.data.message.content}`);
      }),
    );
    expect(new Set(orders.map((o) => o.join("|"))).size).toBe(1);
    expect(orders[0].map((o) => Number(o.split(":")[0]))).toEqual(Array.from({ length: 24 }, (_, i) => i + 1));
    expect(await pgSeqs(id)).toEqual(Array.from({ length: 24 }, (_, i) => i + 1));
  });

  it("typing: start, explicit stop, stop on send, and expiry of the lease", async () => {
    const [a, b] = [await login(), await login()];
    const id = await seedConversation("direct", [a, b]);
    const [ca, cb] = [await connect(id, a), await connect(id, b)];
    ca.send("start_typing");
    expect((await cb.next("typing_start")).data).toMatchObject({ userId: a.id, conversationId: id });
    ca.send("stop_typing");
    expect((await cb.next("typing_stop")).data.userId).toBe(a.id);
    ca.send("start_typing");
    await cb.next("typing_start");
    await ca.request("send_message", { content: "done typing", clientMessageId: "t1" }, "message_ack");
    await cb.next("typing_stop");
  });

  it("typing: the lease expires without a refresh (typing_stop from the alarm)", async () => {
    const [a, b] = [await login(), await login()];
    const id = await seedConversation("direct", [a, b]);
    const [ca, cb] = [await connect(id, a), await connect(id, b)];
    ca.send("start_typing");
    await cb.next("typing_start");
    const started = Date.now();
    expect((await cb.next("typing_stop", () => true, 15_000)).data.userId).toBe(a.id);
    expect(Date.now() - started).toBeGreaterThanOrEqual(5_000);
  });

  it("receipts move forward only, are broadcast and persisted", async () => {
    const [a, b] = [await login(), await login()];
    const id = await seedConversation("direct", [a, b]);
    const [ca, cb] = [await connect(id, a), await connect(id, b)];
    for (let i = 1; i <= 3; i++) await ca.request("send_message", { content: `r${i}`, clientMessageId: `r${i}` }, "message_ack");
    cb.send("mark_delivered", { seq: 3 });
    expect((await ca.next("message_delivered")).data).toMatchObject({ userId: b.id, lastDeliveredSeq: 3 });
    // A late, lower delivery mark (a slow device catching up) must not move the watermark back.
    cb.send("mark_delivered", { seq: 1 });
    cb.send("mark_as_read", { seq: 2 });
    expect((await ca.next("message_read")).data).toMatchObject({ userId: b.id, conversationId: id, lastReadSeq: 2 });
    cb.send("mark_as_read", { seq: 1 });
    cb.send("mark_as_read", { seq: 99 });
    expect((await ca.next("message_read")).data.lastReadSeq).toBe(3);
    // b's frames are handled in order and ca's socket delivers in order: a receipt for the lower mark would be here.
    expect(ca.all("message_delivered").map((f) => f.data.lastDeliveredSeq)).toEqual([3]);
    const again = await Client.connect(`/conversations/${id}/ws`, b.token);
    open.push(again);
    expect((await again.next("ready")).data.you).toMatchObject({ lastReadSeq: 3, lastDeliveredSeq: 3 });
    const db = pool();
    try {
      const row = await until(async () => {
        const r = await db.query<{ last_read_seq: string; last_delivered_seq: string }>(
          "SELECT last_read_seq, last_delivered_seq FROM participants WHERE conversation_id = $1 AND user_id = $2",
          [id, b.id],
        );
        return Number(r.rows[0]?.last_read_seq) === 3 ? r.rows[0] : undefined;
      });
      expect(Number(row.last_delivered_seq)).toBe(3);
    } finally {
      await db.end();
    }
  });

  it("a client that drops during 200 messages resumes with exactly the missing ones, in order", async () => {
    const [a, b] = [await login(), await login()];
    const id = await seedConversation("direct", [a, b]);
    const ca = await connect(id, a);
    let cb = await connect(id, b);
    const sending = (async () => {
      for (let i = 1; i <= 200; i++) await ca.request("send_message", { content: `s${i}`, clientMessageId: `s${i}` }, "message_ack");
    })();
    await until(async () => (cb.all("new_message").length >= 40 ? true : undefined));
    cb.terminate();
    const seen = cb.all("new_message").map((f) => f.data.message.seq as number);
    const lastSeen = Math.max(...seen);
    await sleep(200);
    // Resume on connect: the replay comes before any live frame, so nothing is missed or repeated.
    cb = await Client.connect(`/conversations/${id}/ws?afterSeq=${lastSeen}`, b.token);
    open.push(cb);
    await cb.next("ready");
    const done = await cb.next("resumed");
    await sending;
    expect(done.data.fromSeq).toBe(lastSeen + 1);
    await until(async () => (cb.all("new_message").at(-1)?.data.message.seq === 200 ? true : undefined));
    const replayed = cb.all("new_message").map((f) => f.data.message.seq as number);
    expect([...seen, ...replayed]).toEqual(Array.from({ length: 200 }, (_, i) => i + 1));
  });

  it("a resume frame on an open socket replays missed messages; live overlap is deduplicated by seq", async () => {
    const [a, b] = [await login(), await login()];
    const id = await seedConversation("direct", [a, b]);
    const ca = await connect(id, a);
    for (let i = 1; i <= 5; i++) await ca.request("send_message", { content: `x${i}`, clientMessageId: `x${i}` }, "message_ack");
    const cb = await connect(id, b);
    const done = await cb.request("resume", { afterSeq: 2 }, "resumed");
    expect(done.data).toMatchObject({ fromSeq: 3, toSeq: 5 });
    expect(cb.all("new_message").map((f) => f.data.message.seq)).toEqual([3, 4, 5]);
  });

  it("takes a resume from past the newest message as from the newest: messages sent during it are not dropped", async () => {
    const [a, b] = [await login(), await login()];
    const id = await seedConversation("direct", [a, b]);
    const ca = await connect(id, a);
    await ca.request("send_message", { content: "one", clientMessageId: "p1" }, "message_ack");
    const cb = await Client.connect(`/conversations/${id}/ws?afterSeq=500`, b.token);
    open.push(cb);
    await cb.next("ready");
    // Before, the replay covered up to 500, and live messages 2..500 held meanwhile were thrown away as replayed.
    expect((await cb.next("resumed")).data).toMatchObject({ fromSeq: 2, toSeq: 1 });
    await ca.request("send_message", { content: "two", clientMessageId: "p2" }, "message_ack");
    expect((await cb.next("new_message")).data.message.seq).toBe(2);
  });

  it("completes a close the client starts on either socket at once: the code comes back, not a 1006 seconds later", async () => {
    const [a, b] = [await login(), await login()];
    const id = await seedConversation("direct", [a, b]);
    for (const path of [`/conversations/${id}/ws`, "/ws"]) {
      // A plain ws client without the harness's 1 s give-up: it waits for the server's close frame.
      const ws = new WebSocket(`${WS_BASE}${path}`, { headers: { authorization: `Bearer ${a.token}` } });
      await new Promise((resolve, reject) => ws.once("message", resolve).once("error", reject));
      const started = Date.now();
      const closed = new Promise<{ code: number; ms: number }>((resolve) => ws.once("close", (code) => resolve({ code, ms: Date.now() - started })));
      ws.close(1000, "bye");
      const result = await closed;
      expect({ path, code: result.code, fast: result.ms < 3000 }).toEqual({ path, code: 1000, fast: true });
    }
  });

  it("replays edits and deletes of older messages made while away", async () => {
    const [a, b] = [await login(), await login()];
    const id = await seedConversation("direct", [a, b]);
    const ca = await connect(id, a);
    const m1 = await ca.request("send_message", { content: "first", clientMessageId: "e1" }, "message_ack");
    const m2 = await ca.request("send_message", { content: "second", clientMessageId: "e2" }, "message_ack");
    await http("PATCH", `/conversations/${id}/messages/${m1.data.message.id}`, a.token, { content: "first (edited)" });
    await http("DELETE", `/conversations/${id}/messages/${m2.data.message.id}`, a.token);
    const cb = await connect(id, b);
    await cb.request("resume", { afterSeq: 2 }, "resumed");
    expect(cb.all("message_updated").map((f) => f.data.message.content)).toEqual(["first (edited)"]);
    expect(cb.all("message_deleted").map((f) => f.data.seq)).toEqual([2]);
  });

  it("replayed messages and edits carry their sender's profile", async () => {
    const [a, b] = [await login("rp-a"), await login("rp-b")];
    const id = await seedConversation("group", [a, b]);
    const ca = await connect(id, a);
    const cb0 = await connect(id, b);
    const m1 = await ca.request("send_message", { content: "from a", clientMessageId: "p1" }, "message_ack");
    await cb0.request("send_message", { content: "from b", clientMessageId: "p2" }, "message_ack");
    await http("PATCH", `/conversations/${id}/messages/${m1.data.message.id}`, a.token, { content: "from a (edited)" });
    const cb = await Client.connect(`/conversations/${id}/ws?afterSeq=0`, b.token);
    open.push(cb);
    await cb.next("resumed");
    const replayed = cb.all("new_message").map((f) => f.data.message);
    expect(replayed.map((m) => m.seq)).toEqual([1, 2]);
    for (const m of replayed) expect(m.sender).toMatchObject({ id: m.senderId, kind: "user", avatarUrl: serviceAvatar(m.senderId) });
    expect(replayed.map((m) => m.sender.id)).toEqual([a.id, b.id]);
    await cb.request("resume", { afterSeq: 2 }, "resumed");
    const [edited] = cb.all("message_updated").map((f) => f.data.message);
    expect(edited).toMatchObject({ content: "from a (edited)", sender: { id: a.id } });
  });

  it("typing_start carries the typer's profile in a fresh room, before the typer ever sent", async () => {
    const [a, b] = [await login("tp-a"), await login("tp-b")];
    const id = await seedConversation("direct", [a, b]);
    const [ca, cb] = [await connect(id, a), await connect(id, b)];
    cb.send("start_typing");
    const typing = await ca.next("typing_start");
    expect(typing.data).toMatchObject({ userId: b.id, profile: { id: b.id, kind: "user", avatarUrl: serviceAvatar(b.id) } });
  });

  it("a sender that retries after a dropped ack gets one message", async () => {
    const [a, b] = [await login(), await login()];
    const id = await seedConversation("direct", [a, b]);
    const first = await connect(id, a);
    first.send("send_message", { content: "exactly once", clientMessageId: "once-1" });
    first.terminate();
    const again = await connect(id, a);
    const ack = await again.request("send_message", { content: "exactly once", clientMessageId: "once-1" }, "message_ack");
    expect(ack.data.message.seq).toBe(1);
    await sleep(300);
    expect(await pgSeqs(id)).toEqual([1]);
  });

  it("answers bad frames with error frames and keeps the socket usable; closes on oversized frames", async () => {
    const [a, b] = [await login(), await login()];
    const id = await seedConversation("direct", [a, b]);
    const ca = await connect(id, a);
    ca.raw("{not json");
    expect((await ca.next("error")).data.code).toBe("invalid_json");
    ca.send("fly_to_the_moon", {}, "x1");
    expect((await ca.next("error", (f) => f.id === "x1")).data.code).toBe("unknown_type");
    ca.send("send_message", { content: 42, clientMessageId: "c" }, "x2");
    expect((await ca.next("error", (f) => f.id === "x2")).data.code).toBe("invalid_frame");
    ca.send("send_message", { content: "ok", clientMessageId: "c", senderId: b.id }, "x3");
    expect((await ca.next("error", (f) => f.id === "x3")).data.code).toBe("invalid_frame");
    ca.raw(Buffer.from([1, 2, 3]));
    expect((await ca.next("error")).data.code).toBe("invalid_frame");
    // Ids are strings (contract §6); a client that numbers its requests still learns which one was refused.
    ca.raw(JSON.stringify({ type: "heartbeat", data: {}, id: 7 }));
    const numbered = await ca.next("error", (f) => (f.id as unknown) === 7);
    expect(numbered.data).toMatchObject({ code: "invalid_frame", message: expect.stringContaining("id") });
    const hb = await ca.request("heartbeat", {}, "heartbeat_ack");
    expect(typeof hb.data.timestamp).toBe("string");
    ca.raw(JSON.stringify({ type: "send_message", data: { content: "x".repeat(70_000), clientMessageId: "big" } }));
    expect((await ca.waitClosed()).code).toBe(1009);
  });

  it("rate-limits frame floods with an error, then closes 1008", async () => {
    const [a, b] = [await login(), await login()];
    const id = await seedConversation("direct", [a, b]);
    const ca = await connect(id, a);
    for (let i = 0; i < 500; i++) ca.send("heartbeat");
    const err = await ca.next("error", (f) => f.data.code === "rate_limited");
    expect(err.data.code).toBe("rate_limited");
    expect((await ca.waitClosed()).code).toBe(1008);
  });

  it("refuses upgrades without auth (401), for non-members and unknown ids (404), from foreign origins (403)", async () => {
    const [a, b, stranger] = [await login(), await login(), await login()];
    const id = await seedConversation("direct", [a, b]);
    expect(await Client.refused(`/conversations/${id}/ws`)).toBe(401);
    expect(await Client.refused(`/conversations/${id}/ws`, "garbage")).toBe(401);
    expect(await Client.refused(`/conversations/${id}/ws`, stranger.token)).toBe(404);
    expect(await Client.refused(`/conversations/${crypto.randomUUID()}/ws`, a.token)).toBe(404);
    expect(await Client.refused(`/conversations/${id}/ws`, a.token, { origin: "https://evil.example" })).toBe(403);
    // The service's own origin is always allowed; the same host under the other scheme is another origin.
    const own = new URL(BASE);
    expect(await Client.refused(`/conversations/${id}/ws`, a.token, { origin: own.origin })).toBe(101);
    const otherScheme = `${own.protocol === "https:" ? "http:" : "https:"}//${own.host}`;
    expect(await Client.refused(`/conversations/${id}/ws`, a.token, { origin: otherScheme })).toBe(403);
    expect(await Client.refused(`/conversations/${id}/ws?token=${a.token}`)).toBe(401);
  });

  it("connects browsers with a single-use ticket", async () => {
    const [a, b] = [await login(), await login()];
    const id = await seedConversation("direct", [a, b]);
    const t = await http("POST", "/realtime/tickets", a.token);
    expect(t.status).toBe(200);
    const c = await Client.connect(`/conversations/${id}/ws?ticket=${t.body.ticket}`);
    open.push(c);
    await c.next("ready");
    expect(await Client.refused(`/conversations/${id}/ws?ticket=${t.body.ticket}`)).toBe(401);
  });
});

describe("user socket", () => {
  it("notifies other participants of new messages with unread counts, not the sender", async () => {
    const [a, b] = [await login(), await login()];
    const id = await seedConversation("direct", [a, b]);
    const ua = await Client.connect("/ws", a.token);
    const ub = await Client.connect("/ws", b.token);
    open.push(ua, ub);
    await ua.next("connected");
    expect((await ub.next("connected")).data.userId).toBe(b.id);
    const room = await connect(id, a);
    await room.request("send_message", { content: "ping", clientMessageId: "n1" }, "message_ack");
    const note = await ub.next("notification");
    expect(note.data).toMatchObject({ conversationId: id, message: { content: "ping", seq: 1 } });
    const badge = await ub.next("unread_count", (f) => f.data.conversationId === id);
    expect(badge.data.unreadCount).toBe(1);
    await http("PUT", `/conversations/${id}/read`, b.token, {});
    const cleared = await ub.next("unread_count", (f) => f.data.conversationId === id && f.data.unreadCount === 0);
    expect(cleared.data.unreadCount).toBe(0);
    await sleep(300);
    expect(ua.all("notification")).toHaveLength(0);
  });

  it("a device that got the notification marks it delivered on the user socket; the sender sees message_delivered", async () => {
    const [a, b, stranger] = [await login(), await login(), await login()];
    const id = await seedConversation("direct", [a, b]);
    const ub = await Client.connect("/ws", b.token);
    const us = await Client.connect("/ws", stranger.token);
    open.push(ub, us);
    await ub.next("connected");
    await us.next("connected");
    const room = await connect(id, a);
    const sent = await room.request("send_message", { content: "are you there?", clientMessageId: "d1" }, "message_ack");
    const note = await ub.next("notification");
    ub.send("mark_delivered", { conversationId: id, seq: note.data.message.seq }, "md1");
    const receipt = await room.next("message_delivered", (f) => f.data.userId === b.id);
    expect(receipt.data).toMatchObject({ conversationId: id, lastDeliveredSeq: sent.data.message.seq });
    const db = pool();
    try {
      await until(async () => {
        const r = await db.query("SELECT last_delivered_seq AS n FROM participants WHERE conversation_id = $1 AND user_id = $2", [id, b.id]);
        return Number(r.rows[0]?.n) === 1 ? true : undefined;
      });
    } finally {
      await db.end();
    }
    // Someone else's conversation, an unknown one and a malformed frame: error frames, and no receipt moves.
    us.send("mark_delivered", { conversationId: id, seq: 1 }, "md2");
    expect((await us.next("error", (f) => f.id === "md2")).data.code).toBe("not_found");
    us.send("mark_delivered", { conversationId: crypto.randomUUID(), seq: 1 }, "md3");
    expect((await us.next("error", (f) => f.id === "md3")).data.code).toBe("not_found");
    us.send("mark_delivered", { conversationId: "nope", seq: 1 }, "md4");
    expect((await us.next("error", (f) => f.id === "md4")).data.code).toBe("invalid_frame");
    await sleep(300);
    expect(room.all("message_delivered").filter((f) => f.data.userId === stranger.id)).toHaveLength(0);
    // A mark past the newest message is clamped to it.
    ub.send("mark_delivered", { conversationId: id, seq: 99 });
    await sleep(300);
    expect(room.all("message_delivered").filter((f) => f.data.userId === b.id).map((f) => f.data.lastDeliveredSeq)).toEqual([1]);
  });

  it("presence: online → away → offline across two devices, pushed to contacts", async () => {
    const [a, b] = [await login(), await login()];
    await seedConversation("direct", [a, b]);
    const watcher = await Client.connect("/ws", b.token);
    open.push(watcher);
    await watcher.next("connected");
    const phone = await Client.connect("/ws", a.token);
    const laptop = await Client.connect("/ws", a.token);
    open.push(phone, laptop);
    expect((await watcher.next("presence_update", (f) => f.data.userId === a.id)).data.status).toBe("online");
    const state = await watcher.request("get_presence", { userIds: [a.id, crypto.randomUUID()] }, "presence_state");
    expect(state.data.presences).toEqual([expect.objectContaining({ userId: a.id, status: "online" })]);
    phone.send("set_presence", { status: "away" });
    await sleep(300);
    expect(watcher.all("presence_update").filter((f) => f.data.status === "away")).toHaveLength(0);
    laptop.send("set_presence", { status: "away" });
    expect((await watcher.next("presence_update", (f) => f.data.userId === a.id)).data.status).toBe("away");
    phone.close();
    laptop.close();
    expect((await watcher.next("presence_update", (f) => f.data.userId === a.id, 15_000)).data.status).toBe("offline");
  });

  it("membership changes reach user sockets; a removed member's conversation socket closes with 4403", async () => {
    const [admin, m1, m2] = [await login("adm"), await login("m1"), await login("m2")];
    const u1 = await Client.connect("/ws", m1.token);
    open.push(u1);
    await u1.next("connected");
    const created = await http("POST", "/conversations/group", admin.token, { participantIds: [m1.id, m2.id], name: "Team" });
    expect(created.status).toBe(201);
    const id = created.body.id as string;
    expect((await u1.next("conversation_created")).data.conversation).toMatchObject({ id, name: "Team", type: "group" });
    const [room1, roomAdmin] = [await connect(id, m1), await connect(id, admin)];
    expect((await http("DELETE", `/conversations/${id}/participants/${m1.id}`, admin.token)).status).toBe(204);
    expect((await room1.waitClosed(5_000)).code).toBe(4403);
    expect((await roomAdmin.next("participant_left")).data.userId).toBe(m1.id);
    expect((await u1.next("conversation_removed")).data.conversationId).toBe(id);
    expect(await Client.refused(`/conversations/${id}/ws`, m1.token)).toBe(404);
    expect((await http("POST", `/conversations/${id}/messages`, m1.token, { content: "still here?" })).status).toBe(404);
  });
});
