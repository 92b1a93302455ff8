import WebSocket from "ws";
import { afterEach, describe, expect, it } from "vitest";
import { ChatApiError, ChatClient, type ConversationSocket, type Message, type StateChange, type UserSocket } from "../../src/client";
import { BASE, login, pool, sleep, until, type User } from "./harness";

/**
 * The SDK in Node against the running stack: real REST and sockets through `wrangler dev`. The WebSocket class is
 * `ws`, subclassed so a test can watch the frames the SDK sends and make the network lose frames on purpose.
 */
interface Wire {
  sent: { type: string; data: any; at: number }[];
  /** While true, frames from the server vanish (as on a dying connection). */
  deaf: boolean;
  /** While true, frames to the server vanish after they are recorded (written to a connection that is already dead). */
  mute?: boolean;
  sockets: WebSocket[];
}

function wiredWebSocket(wire: Wire) {
  return class WiredWebSocket extends WebSocket {
    constructor(url: string, options?: WebSocket.ClientOptions) {
      super(url, options);
      wire.sockets.push(this);
    }
    override send(data: any, ...rest: any[]): void {
      try {
        wire.sent.push({ ...JSON.parse(String(data)), at: Date.now() });
      } catch {
        // not JSON: not ours
      }
      if (wire.mute) return;
      (super.send as (...args: any[]) => void)(data, ...rest);
    }
    override emit(event: string | symbol, ...args: any[]): boolean {
      if (event === "message" && wire.deaf) return false;
      return super.emit(event, ...args);
    }
  };
}

const opened: { close(): void }[] = [];
afterEach(() => {
  for (const s of opened.splice(0)) s.close();
});

function sdk(user: User, wire: Wire = { sent: [], deaf: false, sockets: [] }) {
  const chat = new ChatClient({
    baseUrl: BASE,
    token: user.token,
    WebSocket: wiredWebSocket(wire),
    backoff: { initialMs: 100, maxMs: 2000 },
  });
  return { chat, wire };
}

async function live(socket: ConversationSocket | UserSocket): Promise<void> {
  if (socket.state !== "open") await (socket as ConversationSocket).next("state", (s) => s.state === "open", 30_000);
}

function room(chat: ChatClient, id: string, options: Parameters<ChatClient["conversation"]>[1] = {}) {
  const s = chat.conversation(id, options);
  opened.push(s);
  const messages: Message[] = [];
  s.on("new_message", ({ message }) => messages.push(message));
  return { socket: s, messages };
}

async function storedWithClientId(conversationId: string, clientMessageId: string): Promise<number> {
  const db = pool();
  try {
    const r = await db.query("SELECT count(*)::int AS n FROM messages WHERE conversation_id = $1 AND client_message_id = $2", [
      conversationId,
      clientMessageId,
    ]);
    return Number(r.rows[0].n);
  } finally {
    await db.end();
  }
}

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe("SDK against the running stack", () => {
  it("two clients chat in real time over REST and sockets, with receipts, notifications and typed errors", async () => {
    const [alice, bob] = [await login("sdk-a"), await login("sdk-b")];
    const a = sdk(alice).chat;
    const b = sdk(bob).chat;
    expect(await a.userId()).toBe(alice.id);
    const conversation = await a.createDirect(bob.id);
    expect(conversation).toMatchObject({ type: "direct", lastSeq: 0 });
    expect((await b.createDirect(alice.id)).id).toBe(conversation.id);

    const bobUser = b.user();
    opened.push(bobUser);
    const ra = room(a, conversation.id);
    const rb = room(b, conversation.id);
    await Promise.all([live(ra.socket), live(rb.socket), live(bobUser)]);

    const notified = bobUser.next("notification", (n) => n.conversationId === conversation.id, 15_000);
    const badge = bobUser.next("unread_count", (u) => u.conversationId === conversation.id && u.unreadCount === 1, 15_000);
    const sent = await ra.socket.send("hi bob");
    expect(sent).toMatchObject({ seq: 1, content: "hi bob", senderId: alice.id });
    await until(async () => (rb.messages.length === 1 ? true : undefined));
    expect(rb.messages[0]).toMatchObject({ seq: 1, content: "hi bob", senderId: alice.id, clientMessageId: sent.clientMessageId });
    expect((await notified).message.content).toBe("hi bob");
    expect((await badge).totalUnread).toBeGreaterThanOrEqual(1);

    const receipt = ra.socket.next("receipt", (r) => r.kind === "read" && r.userId === bob.id, 15_000);
    rb.socket.markRead();
    expect(await receipt).toMatchObject({ kind: "read", seq: 1 });
    expect(ra.socket.participants.find((p) => p.userId === bob.id)?.lastReadSeq).toBe(1);

    const reply = await rb.socket.send("hello alice");
    await until(async () => (ra.messages.length === 2 ? true : undefined));
    expect(ra.messages.map((m) => m.content)).toEqual(["hi bob", "hello alice"]);
    expect(reply.seq).toBe(2);

    const history = await b.listMessages(conversation.id);
    expect(history.messages.map((m) => [m.seq, m.content])).toEqual([
      [1, "hi bob"],
      [2, "hello alice"],
    ]);
    const update = rb.socket.next("message_updated", (u) => u.message.id === sent.id, 15_000);
    const edited = await a.editMessage(conversation.id, sent.id, "hi bob (edited)");
    expect(edited.editedAt).not.toBeNull();
    expect((await update).message.content).toBe("hi bob (edited)");

    const err = await a.getConversation(crypto.randomUUID()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ChatApiError);
    expect(err).toMatchObject({ statusCode: 404, error: "Not Found" });
    expect((err as ChatApiError).requestId).toBeTruthy();
    const bad = await a.sendMessage(conversation.id, { content: "   " }).catch((e: unknown) => e);
    expect(bad).toMatchObject({ name: "ChatApiError", statusCode: 400 });
  });

  it("the user socket marks notified messages delivered, coalesced per conversation, unless autoDeliver is off", async () => {
    const [alice, bob, carol] = [await login("sdk-a"), await login("sdk-b"), await login("sdk-c")];
    const a = sdk(alice).chat;
    const bobSide = sdk(bob);
    const toBob = await a.createDirect(bob.id);
    const toCarol = await a.createDirect(carol.id);
    // Neither opens the conversation: they only have their user sockets; Carol's does not mark.
    const bobUser = bobSide.chat.user();
    const carolUser = sdk(carol).chat.user({ autoDeliver: false });
    opened.push(bobUser, carolUser);
    const ra = room(a, toBob.id);
    const rc = room(a, toCarol.id);
    await Promise.all([live(ra.socket), live(rc.socket), live(bobUser), live(carolUser)]);

    const delivered = ra.socket.next("receipt", (r) => r.kind === "delivered" && r.userId === bob.id && r.seq === 3, 15_000);
    for (const text of ["one", "two", "three"]) await ra.socket.send(text);
    expect(await delivered).toMatchObject({ kind: "delivered", seq: 3 });
    expect(ra.socket.participants.find((p) => p.userId === bob.id)?.lastDeliveredSeq).toBe(3);
    // Three notifications, fewer marks (coalesced), the last one for seq 3.
    const marks = bobSide.wire.sent.filter((f) => f.type === "mark_delivered");
    expect(marks.length).toBeLessThan(3);
    expect(marks.at(-1)?.data).toEqual({ conversationId: toBob.id, seq: 3 });

    const carolNote = carolUser.next("notification", (n) => n.conversationId === toCarol.id, 15_000);
    await rc.socket.send("hi carol");
    await carolNote;
    await sleep(600);
    expect(rc.socket.participants.find((p) => p.userId === carol.id)?.lastDeliveredSeq ?? 0).toBe(0);
  });

  it("a socket cut mid-stream reconnects by itself and resumes with no gap and no duplicate", async () => {
    const [alice, bob] = [await login("sdk-a"), await login("sdk-b")];
    const a = sdk(alice).chat;
    const bobSide = sdk(bob);
    const conversation = await a.createDirect(bob.id);
    const ra = room(a, conversation.id);
    const rb = room(bobSide.chat, conversation.id);
    const states: StateChange[] = [];
    rb.socket.on("state", (s) => states.push(s));
    await Promise.all([live(ra.socket), live(rb.socket)]);

    const N = 80;
    const sending = (async () => {
      for (let i = 1; i <= N; i++) await ra.socket.send(`n${i}`);
    })();
    await until(async () => (rb.messages.length >= 20 ? true : undefined), 30_000);
    // The network drops the connection: no close frame, the server only notices later.
    bobSide.wire.sockets.at(-1)!.terminate();
    await sending;
    await until(async () => (rb.messages.length >= N ? true : undefined), 30_000);
    await sleep(300);
    expect(rb.messages.map((m) => m.seq)).toEqual(range(1, N));
    expect(rb.messages.map((m) => m.content)).toEqual(range(1, N).map((i) => `n${i}`));
    expect(states.map((s) => s.state)).toContain("reconnecting");
    expect(states.at(-1)).toMatchObject({ state: "open", reconnected: true });
    expect(bobSide.wire.sockets.length).toBe(2);
    expect(rb.socket.lastSeq).toBe(N);
  });

  it("the outbox re-sends after drops and every message is stored and delivered exactly once", async () => {
    const [alice, bob] = [await login("sdk-a"), await login("sdk-b")];
    const aliceSide = sdk(alice);
    const b = sdk(bob).chat;
    const conversation = await aliceSide.chat.createDirect(bob.id);
    const ra = room(aliceSide.chat, conversation.id);
    const rb = room(b, conversation.id);
    await Promise.all([live(ra.socket), live(rb.socket)]);

    // 1. The message reaches the server but the ack is lost with the connection.
    aliceSide.wire.deaf = true;
    const lostAck = ra.socket.send("ack lost");
    const cmid1 = ra.socket.outbox()[0].clientMessageId;
    await until(async () => ((await storedWithClientId(conversation.id, cmid1)) === 1 ? true : undefined), 15_000);
    expect(ra.socket.outbox().map((e) => e.clientMessageId)).toEqual([cmid1]);
    const down = ra.socket.next("state", (s) => s.state !== "open", 15_000);
    aliceSide.wire.sockets.at(-1)!.terminate();
    await down;
    aliceSide.wire.deaf = false;

    // 2. Sent while the socket is down: queued, sent after the reconnect.
    const queued = [ra.socket.send("queued 1"), ra.socket.send("queued 2")];
    expect(ra.socket.state).not.toBe("open");
    expect(ra.socket.outbox()).toHaveLength(3);

    // 3. Sent and cut at once: it may or may not have left the machine.
    await live(ra.socket);
    const cutAtOnce = ra.socket.send("cut at once");
    aliceSide.wire.sockets.at(-1)!.terminate();

    const results = await Promise.all([lostAck, ...queued, cutAtOnce]);
    expect(results.map((m) => m.content)).toEqual(["ack lost", "queued 1", "queued 2", "cut at once"]);
    expect(results.map((m) => m.seq)).toEqual([1, 2, 3, 4]);
    expect(ra.socket.outbox()).toEqual([]);
    // An ack may say "pending" (the room holds it until Postgres confirms): wait for the rows, then count them.
    for (const m of results) {
      await until(async () => ((await storedWithClientId(conversation.id, m.clientMessageId!)) >= 1 ? true : undefined), 30_000, 250);
      expect(await storedWithClientId(conversation.id, m.clientMessageId!)).toBe(1);
    }

    await until(async () => (rb.messages.length >= 4 ? true : undefined), 15_000);
    await sleep(500);
    expect(rb.messages.map((m) => m.content)).toEqual(["ack lost", "queued 1", "queued 2", "cut at once"]);
    const history = await b.listMessages(conversation.id);
    expect(history.messages.map((m) => m.seq)).toEqual([1, 2, 3, 4]);
    // Retries reuse the clientMessageId: at least one message went out more than once, yet exactly one row each.
    const sends = aliceSide.wire.sent.filter((f) => f.type === "send_message");
    expect(sends.length).toBeGreaterThan(4);
    expect(new Set(sends.map((f) => f.data.clientMessageId)).size).toBe(4);
  });

  it("throttles typing: start_typing at most every 2 s while typing, stop_typing once after idle", async () => {
    const [alice, bob] = [await login("sdk-a"), await login("sdk-b")];
    const aliceSide = sdk(alice);
    const b = sdk(bob).chat;
    const conversation = await aliceSide.chat.createDirect(bob.id);
    const ra = room(aliceSide.chat, conversation.id, { typing: { refreshMs: 2000, idleMs: 1500 } });
    const rb = room(b, conversation.id);
    await Promise.all([live(ra.socket), live(rb.socket)]);
    const seen: { isTyping: boolean; at: number }[] = [];
    rb.socket.on("typing", (t) => {
      if (t.userId === alice.id) seen.push({ isTyping: t.isTyping, at: Date.now() });
    });
    // Diagnostics for a failure: any reconnect on either side changes what is expected.
    const events: string[] = [];
    ra.socket.on("state", (s) => events.push(`alice ${s.state} ${s.reason ?? ""}`));
    rb.socket.on("state", (s) => events.push(`bob ${s.state} ${s.reason ?? ""}`));

    const started = Date.now();
    while (Date.now() - started < 5000) {
      ra.socket.typing();
      await sleep(100);
    }
    await until(async () => (seen.some((s) => !s.isTyping) ? true : undefined), 10_000);
    const sent = aliceSide.wire.sent.filter((f) => f.type === "start_typing" || f.type === "stop_typing");
    const diagnostics = JSON.stringify({ events, sent: sent.map((f) => f.type), seen });
    const starts = sent.filter((f) => f.type === "start_typing");
    const stops = sent.filter((f) => f.type === "stop_typing");
    // ~50 keystrokes over 5 s: one start, then a refresh every 2 s.
    expect(starts.length, diagnostics).toBeGreaterThanOrEqual(2);
    expect(starts.length, diagnostics).toBeLessThanOrEqual(3);
    for (let i = 1; i < starts.length; i++) expect(starts[i].at - starts[i - 1].at, diagnostics).toBeGreaterThanOrEqual(2000);
    expect(stops, diagnostics).toHaveLength(1);
    // The other side sees one start (the server broadcasts transitions) and one stop.
    expect(seen.map((s) => s.isTyping), diagnostics).toEqual([true, false]);
    expect(rb.socket.typingUsers).toEqual([]);
  });

  it("read marks and read receipts lost with dying connections arrive after the reconnects, once", async () => {
    const [alice, bob] = [await login("sdk-a"), await login("sdk-b")];
    const aliceSide = sdk(alice);
    const bobSide = sdk(bob);
    const conversation = await aliceSide.chat.createDirect(bob.id);
    const ra = room(aliceSide.chat, conversation.id);
    const rb = room(bobSide.chat, conversation.id, { autoDeliver: false });
    await Promise.all([live(ra.socket), live(rb.socket)]);
    await ra.socket.send("one");
    await ra.socket.send("two");
    await until(async () => (rb.messages.length === 2 ? true : undefined), 15_000);
    const receipts: { kind: string; userId: string; seq: number }[] = [];
    ra.socket.on("receipt", (r) => receipts.push(r));

    // Bob reads on a connection that is already dead: the mark never reaches the room.
    aliceSide.wire.deaf = true;
    bobSide.wire.mute = true;
    rb.socket.markRead();
    expect(bobSide.wire.sent.filter((f) => f.type === "mark_as_read").map((f) => f.data)).toEqual([{ seq: 2 }]);
    const bobDown = rb.socket.next("state", (s) => s.state !== "open", 15_000);
    bobSide.wire.sockets.at(-1)!.terminate();
    await bobDown;
    bobSide.wire.mute = false;
    await live(rb.socket);
    // Bob's badge clears (REST reads Postgres: wait for the room's flush).
    await until(async () => ((await bobSide.chat.getUnreadCount(conversation.id)).unreadCount === 0 ? true : undefined), 15_000, 250);

    // Alice's socket was deaf while Bob's read went out: her reconnect tells it.
    await sleep(300);
    expect(receipts.filter((r) => r.kind === "read")).toEqual([]);
    const told = ra.socket.next("receipt", (r) => r.kind === "read" && r.userId === bob.id, 15_000);
    const aliceDown = ra.socket.next("state", (s) => s.state !== "open", 15_000);
    aliceSide.wire.sockets.at(-1)!.terminate();
    await aliceDown;
    aliceSide.wire.deaf = false;
    expect(await told).toMatchObject({ kind: "read", userId: bob.id, seq: 2 });
    await live(ra.socket);
    await sleep(300);
    expect(receipts.filter((r) => r.kind === "read" && r.userId === bob.id).map((r) => r.seq)).toEqual([2]);
    expect(ra.socket.participants.find((p) => p.userId === bob.id)?.lastReadSeq).toBe(2);
  });
});

describe("SDK REST sends against the running stack", () => {
  it("a REST send whose answer is lost on the way back is retried with its clientMessageId: resolves, stored once", async () => {
    const [alice, bob] = [await login("sdk-a"), await login("sdk-b")];
    let dropNextSendAnswer = true;
    // The network loses the answer of the first send: the server stored the message, the app never heard back.
    const lossy = (async (input: RequestInfo | URL, init?: RequestInit) => {
      const res = await fetch(input, init);
      if (dropNextSendAnswer && init?.method === "POST" && String(input).endsWith("/messages")) {
        dropNextSendAnswer = false;
        throw new TypeError("fetch failed: connection reset");
      }
      return res;
    }) as typeof fetch;
    const a = new ChatClient({ baseUrl: BASE, token: alice.token, fetch: lossy });
    const conversation = await a.createDirect(bob.id);
    const sent = await a.sendMessage(conversation.id, { content: "did it arrive?" });
    expect(sent).toMatchObject({ seq: 1, content: "did it arrive?" });
    expect(dropNextSendAnswer).toBe(false);
    expect(await storedWithClientId(conversation.id, sent.clientMessageId!)).toBe(1);
    const history = await a.listMessages(conversation.id);
    expect(history.messages.map((m) => m.content)).toEqual(["did it arrive?"]);
  });
});

describe("SDK presence against the running stack", () => {
  it("a user who set away stays away for their contacts across a reconnect of their user socket", async () => {
    const [alice, bob] = [await login("sdk-a"), await login("sdk-b")];
    const aliceSide = sdk(alice);
    const b = sdk(bob).chat;
    await aliceSide.chat.createDirect(bob.id);
    const aliceUser = aliceSide.chat.user();
    const bobUser = b.user();
    opened.push(aliceUser, bobUser);
    await Promise.all([live(aliceUser), live(bobUser)]);
    const away = bobUser.next("presence", (p) => p.userId === alice.id && p.status === "away", 15_000);
    aliceUser.setPresence("away");
    await away;

    // The network drops Alice's socket; the SDK reconnects by itself.
    const back = aliceUser.next("state", (s) => s.state === "open" && s.reconnected === true, 30_000);
    aliceSide.wire.sockets.at(-1)!.terminate();
    await back;
    await sleep(1500);
    const [now] = await bobUser.getPresence([alice.id]);
    expect(now).toMatchObject({ userId: alice.id, status: "away" });
    // Asked in uppercase (the server answers in lowercase): answered with the id as asked.
    const upper = alice.id.toUpperCase();
    expect(await bobUser.getPresence([upper])).toEqual([expect.objectContaining({ userId: upper, status: "away" })]);
    // Asked at once on a user socket still connecting: answered once it is open (it was refused "Not connected").
    const bobAgain = sdk(bob).chat.user();
    opened.push(bobAgain);
    expect(bobAgain.state).not.toBe("open");
    expect(await bobAgain.getPresence([alice.id])).toEqual([expect.objectContaining({ userId: alice.id, status: "away" })]);
  });
});

describe("SDK user socket marks against the running stack", () => {
  it("a delivered mark written to a dying user socket reaches the sender after the reconnect", async () => {
    const [alice, bob] = [await login("sdk-a"), await login("sdk-b")];
    const a = sdk(alice).chat;
    const bobSide = sdk(bob);
    const conversation = await a.createDirect(bob.id);
    // Bob has only his user socket: the notification is how his device says "delivered".
    const bobUser = bobSide.chat.user();
    opened.push(bobUser);
    const ra = room(a, conversation.id);
    await Promise.all([live(ra.socket), live(bobUser)]);

    bobSide.wire.mute = true;
    const notified = bobUser.next("notification", (n) => n.conversationId === conversation.id, 15_000);
    await ra.socket.send("are you there?");
    await notified;
    await until(async () => (bobSide.wire.sent.some((f) => f.type === "mark_delivered") ? true : undefined), 5000);
    const delivered = ra.socket.next("receipt", (r) => r.kind === "delivered" && r.userId === bob.id && r.seq === 1, 15_000);
    const back = bobUser.next("state", (s) => s.state === "open" && s.reconnected === true, 30_000);
    bobSide.wire.sockets.at(-1)!.terminate();
    bobSide.wire.mute = false;
    await back;
    expect(await delivered).toMatchObject({ kind: "delivered", seq: 1 });
    expect(ra.socket.participants.find((p) => p.userId === bob.id)?.lastDeliveredSeq).toBe(1);
  });
});

describe("SDK token expiry and resume edge cases against the running stack", () => {
  it("sockets whose tokens keep expiring (4401) reconnect with fresh tokens and miss nothing", async () => {
    const { signDevToken } = await import("../../src/lib/jwt");
    const { LOCAL_JWT_SECRET } = await import("../../scripts/lib/stack");
    const [alice, bob] = [await login("sdk-a"), await login("sdk-b")];
    const a = sdk(alice).chat;
    const conversation = await a.createDirect(bob.id);
    const wire: Wire = { sent: [], deaf: false, sockets: [] };
    let minted = 0;
    // Every token lives 2 s: each socket is closed with 4401 several times during the test.
    const b = new ChatClient({
      baseUrl: BASE,
      token: () => (minted++, signDevToken(bob, LOCAL_JWT_SECRET, 2)),
      WebSocket: wiredWebSocket(wire),
      backoff: { initialMs: 100, maxMs: 2000 },
    });
    const ra = room(a, conversation.id);
    const rb = room(b, conversation.id);
    const user = b.user({ auth: "ticket" });
    opened.push(user);
    const states: StateChange[] = [];
    rb.socket.on("state", (s) => states.push(s));
    const errors: unknown[] = [];
    rb.socket.on("error", (e) => errors.push(e));
    user.on("error", (e) => errors.push(e));
    await Promise.all([live(ra.socket), live(rb.socket), live(user)]);
    const N = 25;
    for (let i = 1; i <= N; i++) {
      await ra.socket.send(`t${i}`);
      await sleep(250);
    }
    const sent = rb.socket.send("from bob");
    await until(async () => (rb.messages.length >= N + 1 ? true : undefined), 30_000);
    await sent;
    await sleep(300);
    expect(rb.messages.map((m) => m.seq)).toEqual(range(1, N + 1));
    expect(states.filter((s) => s.state === "open" && s.reconnected).length).toBeGreaterThanOrEqual(2);
    expect(rb.socket.state === "open" || rb.socket.state === "connecting" || rb.socket.state === "reconnecting").toBe(true);
    expect(user.state).not.toBe("closed");
    expect(errors).toEqual([]);
    expect(minted).toBeGreaterThan(4);
  });

  it("edits and deletes made while a socket was away are told after the resume; the app's view matches history", async () => {
    const [alice, bob] = [await login("sdk-a"), await login("sdk-b")];
    const a = sdk(alice).chat;
    const bobSide = sdk(bob);
    const conversation = await a.createDirect(bob.id);
    const ra = room(a, conversation.id);
    const rb = room(bobSide.chat, conversation.id);
    const view = new Map<string, { seq: number; content: string; deleted: boolean }>();
    const told: string[] = [];
    rb.socket.on("new_message", ({ message: m }) => {
      told.push(`new ${m.seq}`);
      view.set(m.id, { seq: m.seq, content: m.content, deleted: m.deletedAt !== null });
    });
    rb.socket.on("message_updated", ({ message: m }) => {
      told.push(`upd ${m.seq}`);
      view.set(m.id, { seq: m.seq, content: m.content, deleted: m.deletedAt !== null });
    });
    rb.socket.on("message_deleted", ({ messageId, seq }) => {
      told.push(`del ${seq}`);
      const v = view.get(messageId);
      view.set(messageId, { seq, content: v?.content ?? "", deleted: true });
    });
    await Promise.all([live(ra.socket), live(rb.socket)]);
    const first = [await ra.socket.send("one"), await ra.socket.send("two"), await ra.socket.send("three")];
    await until(async () => (rb.messages.length === 3 ? true : undefined), 15_000);

    // Bob's connection dies silently; meanwhile Alice edits and deletes old and new messages.
    bobSide.wire.deaf = true;
    await a.editMessage(conversation.id, first[0].id, "one (edited)");
    await a.deleteMessage(conversation.id, first[1].id);
    const later = [await ra.socket.send("four"), await ra.socket.send("five")];
    await a.editMessage(conversation.id, later[0].id, "four (edited)");
    await a.deleteMessage(conversation.id, later[1].id);
    const down = rb.socket.next("state", (s) => s.state !== "open", 15_000);
    bobSide.wire.sockets.at(-1)!.terminate();
    await down;
    bobSide.wire.deaf = false;
    await live(rb.socket);
    await sleep(500);

    const history = await bobSide.chat.listMessages(conversation.id);
    const expected = new Map(history.messages.map((m) => [m.id, { seq: m.seq, content: m.content, deleted: m.deletedAt !== null }]));
    const shown = new Map([...view].map(([id, v]) => [id, v.deleted ? { ...v, content: expected.get(id)?.content ?? v.content } : v]));
    expect(shown).toEqual(expected);
    // Each change told once.
    expect(told.filter((t) => t.startsWith("new")).map((t) => Number(t.slice(4)))).toEqual([1, 2, 3, 4, 5]);
    expect(new Set(told).size).toBe(told.length);
  });
});

describe("SDK outbox bursts against the running stack", () => {
  // The room allows WS_MAX_FRAMES_PER_SECOND (200) frames a second, then says rate_limited and closes 1008. An outbox
  // holding more than that (a bot sending a batch, a user who wrote offline) went out in one burst: the socket was
  // thrown out, the app got an error, and the rest waited for a reconnect.
  it("a batch of 260 sends goes out without being thrown out by the frame limit, each stored once, in order", async () => {
    const [alice, bob] = [await login("sdk-a"), await login("sdk-b")];
    const aliceSide = sdk(alice);
    const conversation = await aliceSide.chat.createDirect(bob.id);
    const ra = room(aliceSide.chat, conversation.id);
    await live(ra.socket);
    const errors: unknown[] = [];
    const states: string[] = [];
    ra.socket.on("error", (e) => errors.push(e));
    ra.socket.on("state", (s) => states.push(s.state));
    const N = 260;
    const results = await Promise.all(range(1, N).map((i) => ra.socket.send(`b${i}`)));
    expect(results.map((m) => m.content)).toEqual(range(1, N).map((i) => `b${i}`));
    expect(results.map((m) => m.seq)).toEqual(range(1, N));
    expect(errors).toEqual([]);
    expect(states).toEqual([]);
    expect(new Set(aliceSide.wire.sent.filter((f) => f.type === "send_message").map((f) => f.data.clientMessageId)).size).toBe(N);
  });
});
