import { afterEach, describe, expect, it, vi } from "vitest";
import { ChatClient } from "../../src/client";
import { ChatRest } from "../../src/client/rest";
import { ConversationSocket } from "../../src/client/conversation";
import { UserSocket } from "../../src/client/user";
import type { Message } from "../../src/client/types";

/** A scripted stand-in for a WebSocket: the test plays the server. */
class FakeSocket {
  static all: FakeSocket[] = [];
  /** What the server answers to a frame (played synchronously); none by default. */
  static answer: ((frame: { type: string; data: any; id?: string }, ws: FakeSocket) => void) | undefined;
  readyState = 0;
  readonly extra: unknown[];
  sent: { type: string; data: any; id?: string }[] = [];
  onopen: ((e: unknown) => void) | null = null;
  onmessage: ((e: { data: unknown }) => void) | null = null;
  onclose: ((e: { code: number; reason: string }) => void) | null = null;
  onerror: ((e: unknown) => void) | null = null;
  constructor(
    readonly url: string,
    ...extra: unknown[]
  ) {
    this.extra = extra;
    FakeSocket.all.push(this);
    queueMicrotask(() => {
      this.readyState = 1;
      this.onopen?.({});
    });
  }
  send(data: string) {
    const frame = JSON.parse(data);
    this.sent.push(frame);
    FakeSocket.answer?.(frame, this);
  }
  closedWith: { code?: number; reason?: string } | undefined;
  close(code?: number, reason?: string) {
    // As browsers and `ws` do: a reason over 123 UTF-8 bytes is refused with an exception.
    if (reason !== undefined && new TextEncoder().encode(reason).length > 123) throw new SyntaxError("reason too long");
    this.closedWith = { code, reason };
    this.readyState = 3;
  }
  frame(type: string, data: unknown, id?: string) {
    this.onmessage?.({ data: JSON.stringify(id ? { type, data, id } : { type, data }) });
  }
  /** The network dies under the socket. */
  cut() {
    this.readyState = 3;
    this.onclose?.({ code: 1006, reason: "" });
  }
  sentOf(type: string) {
    return this.sent.filter((f) => f.type === type);
  }
}

const ME = "00000000-0000-4000-8000-000000000001";
const OTHER = "00000000-0000-4000-8000-000000000002";
const CONV = "00000000-0000-4000-8000-0000000000c0";

function msg(seq: number, over: Partial<Message> = {}): Message {
  return {
    id: `00000000-0000-4000-8000-${String(seq).padStart(12, "0")}`,
    conversationId: CONV,
    seq,
    senderId: OTHER,
    clientMessageId: null,
    type: "text",
    content: `m${seq}`,
    replyToId: null,
    createdAt: new Date(0).toISOString(),
    editedAt: null,
    deletedAt: null,
    status: "sent",
    ...over,
  };
}

const ready = (lastSeq: number) => ({ conversationId: CONV, lastSeq, participants: [], typing: [], you: { lastReadSeq: 0, lastDeliveredSeq: 0 } });
const tick = (ms = 0) => new Promise((r) => setTimeout(r, ms));
async function until(probe: () => boolean, ms = 2000) {
  const end = Date.now() + ms;
  while (!probe()) {
    if (Date.now() > end) throw new Error("condition not met");
    await tick(2);
  }
}

let sockets: { close(): void }[] = [];
function open(options: ConstructorParameters<typeof ConversationSocket>[4] = {}) {
  const rest = new ChatRest({ baseUrl: "http://chat.test", token: "t", fetch: async () => new Response("{}", { status: 200 }) });
  const s = new ConversationSocket(rest, "ws://chat.test", CONV, async () => ME, {
    WebSocket: FakeSocket as never,
    backoff: { initialMs: 5, maxMs: 20, jitter: 0 },
    watchNetwork: false,
    autoDeliver: false,
    ...options,
  });
  sockets.push(s);
  return s.connect();
}

/** A conversation socket past its `ready` (no history), with the fake server socket it talks to. */
async function openReady() {
  const s = open();
  await until(() => FakeSocket.all.length === 1);
  const ws = latest();
  ws.frame("ready", ready(0));
  return { s, ws };
}
const latest = () => FakeSocket.all[FakeSocket.all.length - 1];

afterEach(() => {
  for (const s of sockets) s.close();
  sockets = [];
  FakeSocket.all = [];
  FakeSocket.answer = undefined;
  vi.unstubAllGlobals();
});

describe("client conversation socket (scripted server)", () => {
  it("goes live on ready, emits each seq once, and resumes from the last seq after a drop", async () => {
    const s = open();
    const seen: number[] = [];
    s.on("new_message", ({ message }) => seen.push(message.seq));
    await until(() => FakeSocket.all.length === 1);
    const ws1 = latest();
    expect(ws1.url).toBe(`ws://chat.test/conversations/${CONV}/ws`);
    ws1.frame("ready", ready(4));
    expect(s.state).toBe("open");
    ws1.frame("new_message", { message: msg(5) });
    ws1.frame("new_message", { message: msg(5) });
    ws1.frame("new_message", { message: msg(6) });
    ws1.cut();
    expect(s.state).toBe("reconnecting");
    await until(() => FakeSocket.all.length === 2);
    const ws2 = latest();
    expect(ws2.url).toContain("afterSeq=6");
    ws2.frame("ready", ready(8));
    expect(s.state).toBe("connecting");
    ws2.frame("new_message", { message: msg(6) });
    ws2.frame("new_message", { message: msg(7) });
    ws2.frame("new_message", { message: msg(8) });
    ws2.frame("resumed", { fromSeq: 7, toSeq: 8, complete: true });
    expect(s.state).toBe("open");
    expect(seen).toEqual([5, 6, 7, 8]);
  });

  it("holds messages after a gap and asks the server to resume from the last contiguous seq", async () => {
    const s = open();
    const seen: number[] = [];
    s.on("new_message", ({ message }) => seen.push(message.seq));
    await until(() => FakeSocket.all.length === 1);
    const ws = latest();
    ws.frame("ready", ready(0));
    ws.frame("new_message", { message: msg(1) });
    ws.frame("new_message", { message: msg(3) });
    expect(seen).toEqual([1]);
    expect(ws.sentOf("resume").map((f) => f.data)).toEqual([{ afterSeq: 1 }]);
    ws.frame("new_message", { message: msg(2) });
    ws.frame("new_message", { message: msg(3) });
    ws.frame("resumed", { fromSeq: 2, toSeq: 3 }, ws.sentOf("resume")[0].id);
    expect(seen).toEqual([1, 2, 3]);
  });

  it("keeps an unacknowledged message through a drop and re-sends it with the same clientMessageId", async () => {
    const { s, ws: ws1 } = await openReady();
    const sending = s.send("hello");
    expect(ws1.sentOf("send_message")).toHaveLength(1);
    const cmid = ws1.sentOf("send_message")[0].data.clientMessageId as string;
    expect(s.outbox().map((e) => e.clientMessageId)).toEqual([cmid]);
    ws1.cut();
    await until(() => FakeSocket.all.length === 2);
    const ws2 = latest();
    ws2.frame("ready", ready(0));
    // Not sent during the replay: the replay may show it was stored after all.
    expect(ws2.sentOf("send_message")).toHaveLength(0);
    ws2.frame("resumed", { fromSeq: 1, toSeq: 0 });
    expect(ws2.sentOf("send_message").map((f) => f.data.clientMessageId)).toEqual([cmid]);
    const stored = msg(1, { senderId: ME, clientMessageId: cmid, content: "hello" });
    ws2.frame("message_ack", { clientMessageId: cmid, message: stored }, ws2.sentOf("send_message")[0].id);
    await expect(sending).resolves.toMatchObject({ seq: 1, clientMessageId: cmid });
    expect(s.outbox()).toEqual([]);
  });

  it("does not re-send a message the replay shows was stored before the drop", async () => {
    const s = open();
    const own: boolean[] = [];
    s.on("new_message", (e) => own.push(e.own));
    await until(() => FakeSocket.all.length === 1);
    const ws1 = latest();
    ws1.frame("ready", ready(0));
    const sending = s.send("stored but unacked");
    const cmid = ws1.sentOf("send_message")[0].data.clientMessageId as string;
    ws1.cut();
    await until(() => FakeSocket.all.length === 2);
    const ws2 = latest();
    ws2.frame("ready", ready(1));
    ws2.frame("new_message", { message: msg(1, { senderId: ME, clientMessageId: cmid }) });
    ws2.frame("resumed", { fromSeq: 1, toSeq: 1 });
    await expect(sending).resolves.toMatchObject({ seq: 1 });
    expect(ws2.sentOf("send_message")).toHaveLength(0);
    expect(own).toEqual([true]);
  });

  it("drops a message refused with a 4xx, retries one refused as unavailable", async () => {
    const s = open();
    const failed: string[] = [];
    s.on("send_failed", (e) => failed.push(e.error.code ?? ""));
    await until(() => FakeSocket.all.length === 1);
    const ws = latest();
    ws.frame("ready", ready(0));
    const bad = s.send("x".repeat(10), { replyToId: "00000000-0000-4000-8000-00000000dead" });
    const badFrame = ws.sentOf("send_message")[0];
    ws.frame("error", { code: "bad_request", message: "replyToId: must be a message of this conversation" }, badFrame.id);
    await expect(bad).rejects.toMatchObject({ name: "ChatApiError", statusCode: 400 });
    expect(failed).toEqual(["bad_request"]);
    const flaky = s.send("try again");
    const first = ws.sentOf("send_message")[1];
    ws.frame("error", { code: "unavailable", message: "Database unavailable" }, first.id);
    await until(() => ws.sentOf("send_message").length === 3, 5000);
    const again = ws.sentOf("send_message")[2];
    expect(again.data.clientMessageId).toBe(first.data.clientMessageId);
    ws.frame("message_ack", { clientMessageId: again.data.clientMessageId, message: msg(1, { senderId: ME, clientMessageId: again.data.clientMessageId }) }, again.id);
    await expect(flaky).resolves.toMatchObject({ seq: 1 });
  });

  it("rejects empty content at once, without touching the outbox", async () => {
    const s = open();
    await expect(s.send("   ")).rejects.toMatchObject({ statusCode: 400 });
    expect(s.outbox()).toEqual([]);
  });

  it("passes each version of an edit once, even when a replay repeats it", async () => {
    const s = open();
    const edits: string[] = [];
    s.on("message_updated", ({ message }) => edits.push(message.content));
    await until(() => FakeSocket.all.length === 1);
    const ws = latest();
    ws.frame("ready", ready(1));
    const edited = msg(1, { content: "edited", editedAt: new Date(5).toISOString() });
    ws.frame("message_updated", { message: edited });
    ws.frame("message_updated", { message: edited });
    ws.frame("message_updated", { message: { ...edited, content: "edited twice", editedAt: new Date(9).toISOString() } });
    expect(edits).toEqual(["edited", "edited twice"]);
  });

  it("closes for good when the server removes us (4403) and fails pending sends", async () => {
    const { s, ws } = await openReady();
    const pending = s.send("too late");
    ws.readyState = 3;
    ws.onclose?.({ code: 4403, reason: "No longer a participant" });
    expect(s.state).toBe("closed");
    await expect(pending).rejects.toMatchObject({ code: "closed" });
    await tick(50);
    expect(FakeSocket.all).toHaveLength(1);
  });

  it("sends heartbeats; a server that answers keeps the socket, one that goes silent is dropped and replaced", async () => {
    const s = open({ heartbeatIntervalMs: 20, heartbeatTimeoutMs: 40 });
    const states: string[] = [];
    s.on("state", (e) => states.push(e.state));
    await until(() => FakeSocket.all.length === 1);
    const ws1 = latest();
    ws1.frame("ready", ready(3));
    FakeSocket.answer = (f, ws) => f.type === "heartbeat" && ws.frame("heartbeat_ack", {}, f.id);
    await until(() => ws1.sentOf("heartbeat").length >= 4);
    expect(ws1.sentOf("heartbeat")[0]).toMatchObject({ type: "heartbeat", data: {} });
    expect(FakeSocket.all).toHaveLength(1);
    expect(s.state).toBe("open");

    // The server stops answering (a half-open connection): the SDK gives up on it and reconnects, resuming.
    FakeSocket.answer = undefined;
    await until(() => FakeSocket.all.length === 2, 2000);
    expect(ws1.readyState).toBe(3);
    expect(states).toContain("reconnecting");
    const ws2 = latest();
    expect(ws2.url).toContain("afterSeq=3");
    ws2.frame("ready", ready(3));
    ws2.frame("resumed", { fromSeq: 4, toSeq: 3, complete: true });
    expect(s.state).toBe("open");
  });

  it("authenticates a browser socket with a ticket in the URL, never the token", async () => {
    const calls: { url: string; method: string; auth: string | undefined }[] = [];
    let n = 0;
    const fetchImpl = (async (input: RequestInfo | URL, init?: RequestInit) => {
      calls.push({ url: String(input), method: init?.method ?? "GET", auth: (init?.headers as Record<string, string>)?.authorization });
      return new Response(JSON.stringify({ ticket: `tk-${++n}`, expiresAt: new Date(60_000).toISOString() }), { status: 201 });
    }) as typeof fetch;
    // A browser: the global WebSocket, which cannot carry headers.
    vi.stubGlobal("WebSocket", FakeSocket);
    const token = "secret.jwt.token";
    const chat = new ChatClient({ baseUrl: "http://chat.test", token, fetch: fetchImpl, watchNetwork: false, backoff: { initialMs: 5, maxMs: 20, jitter: 0 } });
    const room = chat.conversation(CONV);
    const user = chat.user();
    sockets.push(room);
    try {
      await until(() => FakeSocket.all.length === 2);
      FakeSocket.all.find((w) => w.url.includes("/conversations/"))!.frame("ready", ready(0));
      // A reconnect fetches a fresh ticket (they are single-use).
      FakeSocket.all.find((w) => w.url.includes("/conversations/"))!.cut();
      await until(() => FakeSocket.all.length === 3);
      const urls = FakeSocket.all.map((w) => w.url);
      expect(urls.map((u) => new URL(u).searchParams.get("ticket")).sort()).toEqual(["tk-1", "tk-2", "tk-3"]);
      for (const ws of FakeSocket.all) {
        expect(ws.url).not.toContain(token);
        expect(ws.url).not.toContain(encodeURIComponent(token));
        expect(ws.extra).toEqual([]);
      }
      expect(calls.map((c) => `${c.method} ${new URL(c.url).pathname}`)).toEqual(Array(3).fill("POST /realtime/tickets"));
      // The token only travels in the ticket request's header.
      expect(calls.every((c) => c.auth === `Bearer ${token}`)).toBe(true);
    } finally {
      user.close();
    }
  });
});

describe("client conversation socket: archived messages", () => {
  it("a resume from below the archived mark emits messages_archived and delivers what follows it", async () => {
    const s = open({ afterSeq: 0 });
    const seen: number[] = [];
    const archived: { conversationId: string; upToSeq: number }[] = [];
    s.on("new_message", ({ message }) => seen.push(message.seq));
    s.on("messages_archived", (e) => archived.push(e));
    await until(() => FakeSocket.all.length === 1);
    const ws = latest();
    ws.frame("ready", ready(5));
    ws.frame("messages_archived", { conversationId: CONV, upToSeq: 3 });
    ws.frame("new_message", { message: msg(4) });
    ws.frame("new_message", { message: msg(5) });
    ws.frame("resumed", { fromSeq: 1, toSeq: 5, complete: true });
    expect(archived).toEqual([{ conversationId: CONV, upToSeq: 3 }]);
    expect(seen).toEqual([4, 5]);
    expect(ws.sentOf("resume")).toHaveLength(0);
    expect(s.state).toBe("open");
  });
});

describe("client conversation socket: audit findings (fifteenth session)", () => {
  it("starts from the server's newest seq when its own position is past it (stale afterSeq)", async () => {
    const s = open({ afterSeq: 10 });
    const seen: number[] = [];
    s.on("new_message", ({ message }) => seen.push(message.seq));
    await until(() => FakeSocket.all.length === 1);
    const ws = latest();
    expect(ws.url).toContain("afterSeq=10");
    ws.frame("ready", ready(3));
    ws.frame("resumed", { fromSeq: 4, toSeq: 3, complete: true });
    ws.frame("new_message", { message: msg(4) });
    ws.frame("new_message", { message: msg(5) });
    expect(seen).toEqual([4, 5]);
  });

  it("tells who is typing again after a reconnect (it had told they stopped when the socket dropped)", async () => {
    const s = open();
    const events: [string, boolean][] = [];
    s.on("typing", ({ userId, isTyping }) => events.push([userId, isTyping]));
    await until(() => FakeSocket.all.length === 1);
    latest().frame("ready", { ...ready(0), typing: [OTHER] });
    latest().cut();
    await until(() => FakeSocket.all.length === 2);
    latest().frame("ready", { ...ready(0), typing: [OTHER] });
    expect(events).toEqual([
      [OTHER, true],
      [OTHER, false],
      [OTHER, true],
    ]);
  });

  it("counts content as the server does (characters, not UTF-16 units)", async () => {
    const { s } = await openReady();
    const emoji = "😀".repeat(2500); // 5,000 UTF-16 units, 2,500 characters
    const sent = s.send(emoji);
    await until(() => latest().sentOf("send_message").length === 1);
    expect(latest().sentOf("send_message")[0].data.content).toBe(emoji);
    await expect(s.send("x".repeat(4001))).rejects.toMatchObject({ statusCode: 400 });
    void sent.catch(() => {});
  });

  // The server drops \r (CRLF becomes LF) and other control characters before it counts: text with Windows line
  // endings (a Node bot, a paste) under the limit once stored was refused by the SDK without a round trip.
  it("counts content after removing the control characters the server removes (CRLF text under the limit)", async () => {
    const { s } = await openReady();
    const crlf = "line\r\n".repeat(700); // 4,200 characters sent, 3,500 stored
    const sent = s.send(crlf);
    await until(() => latest().sentOf("send_message").length === 1);
    expect(latest().sentOf("send_message")[0].data.content).toBe(crlf);
    await expect(s.send("\u0000\u0007 \r")).rejects.toMatchObject({ statusCode: 400 });
    void sent.catch(() => {});
  });

  // The server's schema reads at most 16,000 units as written: a short text pasted with thousands of blank lines went
  // out, came back refused, and the rest of the outbox waited for that round trip.
  it("refuses at once a short text whose blank lines and spaces take it over what the server reads as written", async () => {
    const { s, ws } = await openReady();
    const padded = `see the attached notes${"\n ".repeat(8_000)}`;
    await expect(Promise.race([s.send(padded), tick(20).then(() => "pending")])).rejects.toMatchObject({ statusCode: 400, code: "bad_request", message: expect.stringContaining("16000") });
    expect(s.outbox()).toEqual([]);
    expect(ws.sentOf("send_message")).toEqual([]);
    // Just under it goes.
    const fits = s.send(`see the attached notes${"\n ".repeat(7_980)}`);
    await until(() => ws.sentOf("send_message").length === 1);
    void fits.catch(() => {});
  });
});

describe("client sockets in Node with ws (real sockets)", () => {
  it("abandons a socket whose upgrade never answers without crashing the process, and leaves no timers after close", async () => {
    const net = await import("node:net");
    const WebSocket = (await import("ws")).default;
    const server = net.createServer(() => {}).listen(0, "127.0.0.1");
    await new Promise((r) => server.once("listening", r));
    const port = (server.address() as { port: number }).port;
    const errors: unknown[] = [];
    const onError = (err: unknown) => errors.push(err);
    process.on("uncaughtException", onError);
    try {
      const rest = new ChatRest({ baseUrl: `http://127.0.0.1:${port}`, token: "t", fetch: async () => new Response("{}", { status: 200 }) });
      const room = new ConversationSocket(rest, `ws://127.0.0.1:${port}`, CONV, async () => ME, {
        WebSocket: WebSocket as never,
        connectTimeoutMs: 100,
        backoff: { initialMs: 5, maxMs: 20, jitter: 0 },
        watchNetwork: false,
        afterSeq: 0,
      }).connect();
      await tick(400); // a few connect timeouts, each closing a socket that is still connecting
      room.close();
      expect(errors).toEqual([]);
      // Nothing keeps running after close: no resume wait armed by the afterSeq position.
      expect((room as unknown as { resumeTimer?: unknown }).resumeTimer).toBeUndefined();
    } finally {
      process.off("uncaughtException", onError);
      server.close();
    }
  });
});

describe("client conversation socket: SDK hunt (twenty-second session)", () => {
  it("sends a read mark again after a reconnect when the server never got it (the frame died with the connection)", async () => {
    const s = open();
    await until(() => FakeSocket.all.length === 1);
    const ws1 = latest();
    ws1.frame("ready", ready(5));
    s.markRead(5);
    // Written to the socket, but the connection was already dead: the server never saw it.
    expect(ws1.sentOf("mark_as_read").map((f) => f.data)).toEqual([{ seq: 5 }]);
    ws1.cut();
    await until(() => FakeSocket.all.length === 2);
    const ws2 = latest();
    // The server's view: nothing read (and nothing delivered).
    ws2.frame("ready", ready(5));
    ws2.frame("resumed", { fromSeq: 6, toSeq: 5, complete: true });
    expect(s.state).toBe("open");
    expect(ws2.sentOf("mark_as_read").map((f) => f.data)).toEqual([{ seq: 5 }]);
  });

  it("sends a delivered mark again after a reconnect when the server never got it", async () => {
    const s = open({ autoDeliver: true });
    await until(() => FakeSocket.all.length === 1);
    const ws1 = latest();
    ws1.frame("ready", ready(0));
    ws1.frame("new_message", { message: msg(1) });
    ws1.frame("new_message", { message: msg(2) });
    await until(() => ws1.sentOf("mark_delivered").length === 1);
    expect(ws1.sentOf("mark_delivered")[0].data).toEqual({ seq: 2 });
    ws1.cut();
    await until(() => FakeSocket.all.length === 2);
    const ws2 = latest();
    ws2.frame("ready", ready(2));
    ws2.frame("resumed", { fromSeq: 3, toSeq: 2, complete: true });
    expect(ws2.sentOf("mark_delivered").map((f) => f.data)).toEqual([{ seq: 2 }]);
  });
});

describe("client conversation socket: receipts missed during a drop", () => {
  const member = (userId: string, read: number, delivered: number, readAt: string | null = null) => ({
    userId,
    role: "member" as const,
    joinedAt: new Date(0).toISOString(),
    isMuted: false,
    lastReadSeq: read,
    lastReadAt: readAt,
    lastDeliveredSeq: delivered,
  });

  it("tells the read and delivered marks that moved while the socket was down, once, after the reconnect", async () => {
    const s = open();
    const receipts: unknown[] = [];
    s.on("receipt", (r) => receipts.push(r));
    await until(() => FakeSocket.all.length === 1);
    latest().frame("ready", { ...ready(3), participants: [member(ME, 3, 3), member(OTHER, 0, 1)] });
    latest().cut();
    await until(() => FakeSocket.all.length === 2);
    const readAt = new Date(7000).toISOString();
    // While we were away the other side read up to 3 (the message_read frame went to the dead socket).
    latest().frame("ready", { ...ready(3), participants: [member(ME, 3, 3), member(OTHER, 3, 3, readAt)] });
    latest().frame("resumed", { fromSeq: 4, toSeq: 3, complete: true });
    expect(receipts).toEqual([
      { kind: "read", conversationId: CONV, userId: OTHER, seq: 3, at: readAt },
      { kind: "delivered", conversationId: CONV, userId: OTHER, seq: 3 },
    ]);
    expect(s.participants.find((p) => p.userId === OTHER)).toMatchObject({ lastReadSeq: 3, lastDeliveredSeq: 3 });
  });

  it("keeps a member's read time with their read seq when an older mark arrives after a newer one", async () => {
    const s = open();
    await until(() => FakeSocket.all.length === 1);
    const [older, newer] = [new Date(5000).toISOString(), new Date(9000).toISOString()];
    latest().frame("ready", { ...ready(3), participants: [member(ME, 3, 3), member(OTHER, 3, 3, newer)] });
    latest().frame("message_read", { userId: OTHER, conversationId: CONV, lastReadSeq: 2, readAt: older });
    expect(s.participants.find((p) => p.userId === OTHER)).toMatchObject({ lastReadSeq: 3, lastReadAt: newer });
    latest().frame("message_read", { userId: OTHER, conversationId: CONV, lastReadSeq: 4, readAt: older });
    expect(s.participants.find((p) => p.userId === OTHER)).toMatchObject({ lastReadSeq: 4, lastReadAt: older });
  });

  it("close() from a receipt listener told on reconnect stops there: no further receipt, no ready after it", async () => {
    const s = open();
    const told: string[] = [];
    await until(() => FakeSocket.all.length === 1);
    latest().frame("ready", { ...ready(3), participants: [member(ME, 3, 3), member(OTHER, 0, 1)] });
    latest().cut();
    await until(() => FakeSocket.all.length === 2);
    s.on("receipt", ({ kind }) => {
      told.push(kind);
      s.close();
    });
    s.on("ready", () => told.push("ready"));
    latest().frame("ready", { ...ready(3), participants: [member(ME, 3, 3), member(OTHER, 3, 3)] });
    expect(told).toEqual(["read"]);
    expect(s.state).toBe("closed");
  });
});

describe("client user socket (scripted server)", () => {
  it("tells the server again after a reconnect that the user is away (a new socket starts online)", async () => {
    const rest = new ChatRest({ baseUrl: "http://chat.test", token: "t", fetch: async () => new Response("{}", { status: 200 }) });
    const u = new UserSocket(rest, "ws://chat.test", { WebSocket: FakeSocket as never, backoff: { initialMs: 5, maxMs: 20, jitter: 0 }, watchNetwork: false });
    sockets.push(u);
    u.connect();
    await until(() => FakeSocket.all.length === 1);
    latest().frame("connected", { userId: ME, timestamp: new Date(0).toISOString() });
    u.setPresence("away");
    expect(latest().sentOf("set_presence").map((f) => f.data)).toEqual([{ status: "away" }]);
    latest().cut();
    await until(() => FakeSocket.all.length === 2);
    latest().frame("connected", { userId: ME, timestamp: new Date(0).toISOString() });
    expect(u.state).toBe("open");
    expect(latest().sentOf("set_presence").map((f) => f.data)).toEqual([{ status: "away" }]);
    // Back to online: a later reconnect has nothing to correct (a new socket is online).
    u.setPresence("online");
    latest().cut();
    await until(() => FakeSocket.all.length === 3);
    latest().frame("connected", { userId: ME, timestamp: new Date(0).toISOString() });
    expect(latest().sentOf("set_presence")).toEqual([]);
  });
});

describe("client sockets: conversation_updated out of order", () => {
  // Two renames in quick succession: the first one's push arrives last. Frames carry only what the SDK reads.
  const view = (name: string, version: number) => ({ id: CONV, name, version });

  it("the user socket passes on no view older than one it has passed on (created or updated)", async () => {
    const rest = new ChatRest({ baseUrl: "http://chat.test", token: "t", fetch: async () => new Response("{}", { status: 200 }) });
    const u = new UserSocket(rest, "ws://chat.test", { WebSocket: FakeSocket as never, backoff: { initialMs: 5, maxMs: 20, jitter: 0 }, watchNetwork: false });
    sockets.push(u);
    const names: string[] = [];
    u.on("conversation_created", ({ conversation }) => names.push(`created ${conversation.name}`));
    u.on("conversation_updated", ({ conversation }) => names.push(conversation.name ?? ""));
    u.connect();
    await until(() => FakeSocket.all.length === 1);
    latest().frame("connected", { userId: ME, timestamp: new Date(0).toISOString() });
    latest().frame("conversation_created", { conversation: view("Trip", 4) });
    latest().frame("conversation_updated", { conversation: view("Older than the add", 3) });
    latest().frame("conversation_updated", { conversation: view("Trip 2027", 6) });
    latest().frame("conversation_updated", { conversation: view("Trip 2026", 5) });
    // The same version again is not older: a mute or a new preview changes nothing the version counts.
    latest().frame("conversation_updated", { conversation: view("Trip 2027", 6) });
    expect(names).toEqual(["created Trip", "Trip 2027", "Trip 2027"]);
  });

  it("the conversation socket passes on no view older than one it has passed on", async () => {
    const s = open();
    const names: string[] = [];
    s.on("conversation_updated", ({ conversation }) => names.push(conversation.name ?? ""));
    await until(() => FakeSocket.all.length === 1);
    latest().frame("ready", ready(0));
    latest().frame("conversation_updated", { conversation: view("Trip 2027", 6) });
    latest().frame("conversation_updated", { conversation: view("Trip 2026", 5) });
    expect(names).toEqual(["Trip 2027"]);
  });
});

describe("client user socket: delivered marks", () => {
  const CONV2 = "00000000-0000-4000-8000-0000000000c2";
  function user(options: ConstructorParameters<typeof UserSocket>[2] = {}) {
    const rest = new ChatRest({ baseUrl: "http://chat.test", token: "t", fetch: async () => new Response("{}", { status: 200 }) });
    const u = new UserSocket(rest, "ws://chat.test", { WebSocket: FakeSocket as never, backoff: { initialMs: 5, maxMs: 20, jitter: 0 }, watchNetwork: false, ...options });
    sockets.push(u);
    return u.connect();
  }
  const connected = () => latest().frame("connected", { userId: ME, timestamp: new Date(0).toISOString() });
  const marks = (ws: FakeSocket) => ws.sentOf("mark_delivered").map((f) => f.data);

  it("sends a delivered mark again after a reconnect when the connection died before the server had it", async () => {
    user();
    await until(() => FakeSocket.all.length === 1);
    connected();
    const ws1 = latest();
    ws1.frame("notification", { conversationId: CONV, message: msg(3) });
    await until(() => marks(ws1).length === 1);
    expect(marks(ws1)).toEqual([{ conversationId: CONV, seq: 3 }]);
    ws1.cut();
    await until(() => FakeSocket.all.length === 2);
    connected();
    expect(marks(latest())).toEqual([{ conversationId: CONV, seq: 3 }]);
  });

  it("does not send again a mark the server has had (a heartbeat sent after it was answered)", async () => {
    user({ heartbeatIntervalMs: 20, heartbeatTimeoutMs: 1000 });
    await until(() => FakeSocket.all.length === 1);
    connected();
    const ws1 = latest();
    FakeSocket.answer = (f, ws) => f.type === "heartbeat" && ws.frame("heartbeat_ack", { timestamp: new Date(0).toISOString() }, f.id);
    ws1.frame("notification", { conversationId: CONV, message: msg(3) });
    await until(() => marks(ws1).length === 1);
    const after = ws1.sent.length;
    await until(() => ws1.sent.slice(after).some((f) => f.type === "heartbeat"));
    ws1.cut();
    await until(() => FakeSocket.all.length === 2);
    connected();
    await tick(250);
    expect(marks(latest())).toEqual([]);
  });

  it("retries a mark the server could not take now, and tells the app of a refusal", async () => {
    const u = user();
    const errors: (string | undefined)[] = [];
    u.on("error", (e) => errors.push(e.code));
    await until(() => FakeSocket.all.length === 1);
    connected();
    const ws = latest();
    let refusals = 0;
    FakeSocket.answer = (f, socket) => {
      if (f.type !== "mark_delivered") return;
      if (f.data.conversationId === CONV2) return socket.frame("error", { code: "not_found", message: "Conversation not found" }, f.id);
      if (refusals++ === 0) socket.frame("error", { code: "unavailable", message: "Conversation unavailable; try again" }, f.id);
    };
    ws.frame("notification", { conversationId: CONV, message: msg(4) });
    ws.frame("notification", { conversationId: CONV2, message: msg(1, { conversationId: CONV2 }) });
    await until(() => marks(ws).filter((m) => m.conversationId === CONV).length === 2, 5000);
    expect(marks(ws)).toEqual([
      { conversationId: CONV, seq: 4 },
      { conversationId: CONV2, seq: 1 },
      { conversationId: CONV, seq: 4 },
    ]);
    expect(errors).toEqual(["not_found"]);
  });
});

describe("client conversation socket: order of messages refused for now", () => {
  /**
   * A room that refuses the first send for the moment (`code`) and stores what comes later in arrival order. Its
   * answers come back over the network, after the send returned.
   */
  function refuseFirstThenStore(code: string, message: string): { refused: () => boolean } {
    let seq = 0;
    let refused = false;
    FakeSocket.answer = (f, socket) => {
      if (f.type !== "send_message") return;
      setTimeout(() => {
        if (!refused) {
          refused = true;
          return socket.frame("error", { code, message }, f.id);
        }
        const stored = msg(++seq, { senderId: ME, clientMessageId: f.data.clientMessageId, content: f.data.content });
        socket.frame("message_ack", { clientMessageId: f.data.clientMessageId, message: stored }, f.id);
      }, 1);
    };
    return { refused: () => refused };
  }

  it("a message sent after one the server could not take yet waits for it, so they are stored in the order written", async () => {
    const { s, ws } = await openReady();
    // Its database is down for a moment.
    const room = refuseFirstThenStore("unavailable", "Database unavailable");
    const first = s.send("first");
    await until(() => room.refused());
    await tick(5);
    const second = s.send("second");
    const [a, b] = await Promise.all([first, second]);
    expect([a.content, a.seq, b.content, b.seq]).toEqual(["first", 1, "second", 2]);
  });

  it("a message written just after one the server then refuses for the moment is stored after it, not before", async () => {
    // Fake clocks: the retry waits its backoff (about a second), which the test need not sit through.
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "setInterval", "clearInterval", "Date"] });
    try {
      const s = open();
      await vi.waitFor(() => expect(FakeSocket.all.length).toBe(1));
      const ws = latest();
      ws.frame("ready", ready(0));
      refuseFirstThenStore("rate_limited", "Slow down");
      // Written one after the other, before any answer: the room refuses the first (its answer comes after the
      // second was written) and takes what comes next.
      const both = Promise.all([s.send("first"), s.send("second")]);
      await vi.advanceTimersByTimeAsync(5_000);
      const [a, b] = await both;
      expect([a.content, a.seq, b.content, b.seq]).toEqual(["first", 1, "second", 2]);
    } finally {
      vi.useRealTimers();
    }
  });
});

/**
 * An HTTP server that answers every upgrade with `response` and records when each came. Its upgrade sockets get an
 * error listener: Node hands them over without one, and a client that gives up mid-handshake (closing a socket whose
 * refusal it has not read) resets the connection, whose ECONNRESET would otherwise surface as an uncaught exception
 * in whichever test runs next.
 */
async function refusingServer(response: string) {
  const http = await import("node:http");
  const attempts: number[] = [];
  const urls: string[] = [];
  const server = http.createServer((_req, res) => res.end("{}"));
  server.on("upgrade", (req, socket) => {
    attempts.push(Date.now());
    urls.push(req.url ?? "");
    socket.on("error", () => {});
    socket.end(response);
  });
  server.listen(0, "127.0.0.1");
  await new Promise((r) => server.once("listening", r));
  return { server, attempts, urls, port: (server.address() as { port: number }).port };
}

/** The SDK's conversation socket in Node (`ws`), against a local server on `port`, with a quick backoff. */
async function nodeSocket(port: number, fetchImpl: typeof fetch = async () => new Response("{}", { status: 200 }), auth?: "ticket"): Promise<ConversationSocket> {
  const WebSocket = (await import("ws")).default;
  const rest = new ChatRest({ baseUrl: `http://127.0.0.1:${port}`, token: "t", fetch: fetchImpl });
  const room = new ConversationSocket(rest, `ws://127.0.0.1:${port}`, CONV, async () => ME, {
    WebSocket: WebSocket as never,
    ...(auth ? { auth } : {}),
    backoff: { initialMs: 5, maxMs: 20, jitter: 0 },
    watchNetwork: false,
  });
  sockets.push(room);
  return room;
}

describe("client sockets in Node with ws: refused upgrades", () => {
  // The Worker answers an upgrade it cannot serve now (token keys or Postgres unreachable, too many sockets) with
  // 503/429 and Retry-After. With `ws` (header auth) the SDK saw only "Unexpected server response: 503" and retried
  // on its own backoff, every few hundred ms, against a server that had asked for seconds.
  it("waits the Retry-After of a 503 upgrade refusal before the next attempt", async () => {
    const { port, attempts, server } = await refusingServer(
      "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
    );
    try {
      const room = await nodeSocket(port);
      room.connect();
      await until(() => attempts.length >= 2, 3000);
      room.close();
      expect(attempts[1] - attempts[0]).toBeGreaterThanOrEqual(900);
    } finally {
      server.close();
    }
  });
});

describe("client sockets in Node with ws: refused upgrades, tickets", () => {
  // The server keeps a ticket usable after a refusal that passes; the SDK fetched a new one for every retry, each
  // charged to the upgrade budget a 429 had just said was short.
  it("retries a 429 upgrade refusal with the same ticket, and fetches a new one when it is near its expiry", async () => {
    for (const [lifeMs, expected] of [
      [60_000, ["tk-1", "tk-1", "tk-1"]],
      [1_000, ["tk-1", "tk-2", "tk-3"]],
    ] as const) {
      const { port, urls, server } = await refusingServer("HTTP/1.1 429 Too Many Requests\r\nContent-Length: 0\r\n\r\n");
      let issued = 0;
      const fetchImpl = (async (input: RequestInfo | URL) => {
        const body = String(input).endsWith("/realtime/tickets") ? { ticket: `tk-${++issued}`, expiresAt: new Date(Date.now() + lifeMs).toISOString() } : {};
        return new Response(JSON.stringify(body), { status: 200 });
      }) as typeof fetch;
      try {
        const room = await nodeSocket(port, fetchImpl, "ticket");
        room.connect();
        await until(() => urls.length >= 3, 3000);
        room.close();
        expect(urls.slice(0, 3).map((u) => new URL(u, "http://x").searchParams.get("ticket")), `${lifeMs} ms`).toEqual(expected);
      } finally {
        server.close();
      }
    }
  });
});

describe("client sockets in Node with ws: refused upgrades, for good", () => {
  it("still closes for good on a 404 upgrade refusal, without an uncaught error", async () => {
    const { port, server } = await refusingServer("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
    const uncaught: unknown[] = [];
    const onError = (err: unknown) => uncaught.push(err);
    process.on("uncaughtException", onError);
    try {
      const room = await nodeSocket(port);
      const errors: { statusCode: number }[] = [];
      room.on("error", (e) => errors.push(e));
      room.connect();
      await until(() => room.state === "closed", 3000);
      expect(errors.map((e) => e.statusCode)).toEqual([404]);
      expect(uncaught).toEqual([]);
    } finally {
      process.off("uncaughtException", onError);
      server.close();
    }
  });
});

describe("client conversation socket: outbox pacing", () => {
  // The room throws out a socket that writes more than WS_MAX_FRAMES_PER_SECOND (200) frames in a second.
  it("sends a large outbox at a bounded rate instead of in one burst, and still sends every entry", async () => {
    const { s } = await openReady();
    let seq = 0;
    FakeSocket.answer = (f, ws) => {
      if (f.type !== "send_message") return;
      const stored = msg(++seq, { senderId: ME, clientMessageId: f.data.clientMessageId, content: f.data.content });
      setTimeout(() => ws.frame("message_ack", { clientMessageId: f.data.clientMessageId, message: stored }, f.id));
    };
    const pending = Array.from({ length: 200 }, (_, i) => s.send(`m${i}`));
    for (const p of pending) void p.catch(() => {});
    await tick(20);
    expect(latest().sentOf("send_message").length).toBeLessThanOrEqual(100);
    await until(() => latest().sentOf("send_message").length === 200, 4000);
    expect(latest().sentOf("send_message").map((f) => f.data.content)).toEqual(Array.from({ length: 200 }, (_, i) => `m${i}`));
  });
});

describe("client sockets: nothing left running after close()", () => {
  it("a conversation socket with pending sends, typing, marks and a gap leaves no timer after close()", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "setInterval", "clearInterval"] });
    try {
      const s = open({ autoDeliver: true });
      await vi.waitFor(() => expect(FakeSocket.all.length).toBe(1));
      latest().frame("ready", ready(0));
      void s.send("pending").catch(() => {});
      s.typing();
      latest().frame("new_message", { message: msg(1) });
      latest().frame("new_message", { message: msg(3) }); // a gap: a resume wait
      s.markRead(1);
      const waiting = s.next("ready", () => true, 60_000).catch((e: unknown) => e);
      s.close();
      // The app's own next() ends with the socket, its timer too.
      expect(vi.getTimerCount()).toBe(0);
      expect(await waiting).toMatchObject({ code: "closed" });
    } finally {
      vi.useRealTimers();
    }
  });

  it("a user socket with marks waiting and a presence request in flight leaves no timer after close()", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "setInterval", "clearInterval"] });
    try {
      const rest = new ChatRest({ baseUrl: "http://chat.test", token: "t", fetch: async () => new Response("{}", { status: 200 }) });
      const u = new UserSocket(rest, "ws://chat.test", { WebSocket: FakeSocket as never, watchNetwork: false });
      sockets.push(u);
      u.connect();
      await vi.waitFor(() => expect(FakeSocket.all.length).toBe(1));
      latest().frame("connected", { userId: ME, timestamp: new Date(0).toISOString() });
      latest().frame("notification", { conversationId: CONV, message: msg(4) });
      const presence = u.getPresence([OTHER]).catch(() => "rejected");
      u.close();
      expect(await presence).toBe("rejected");
      expect(vi.getTimerCount()).toBe(0);
    } finally {
      vi.useRealTimers();
    }
  });
});

describe("client conversation socket: sends pending when the socket closes for good", () => {
  // The web app (like any app drawing failures from `send_failed`) dropped the pending bubble on the `outbox` event
  // that emptied the outbox: a message written just before the user was removed vanished without "Not sent".
  it("tells send_failed for each message still pending when the server closes the socket for good, before the outbox empties", async () => {
    const { s, ws } = await openReady();
    const events: string[] = [];
    s.on("send_failed", ({ clientMessageId }) => events.push(`failed ${clientMessageId}`));
    s.on("outbox", ({ pending }) => events.push(`outbox ${pending.length}`));
    const pending = s.send("too late", { clientMessageId: "cmid-1" });
    void pending.catch(() => {});
    ws.readyState = 3;
    ws.onclose?.({ code: 4403, reason: "No longer a participant" });
    expect(s.state).toBe("closed");
    await expect(pending).rejects.toMatchObject({ code: "closed" });
    expect(events).toEqual(["outbox 1", "failed cmid-1", "outbox 0"]);
  });

  it("still tells send_failed with the server's reason when the app calls close() from its error listener", async () => {
    const { s, ws } = await openReady();
    const failed: string[] = [];
    s.on("send_failed", ({ clientMessageId }) => failed.push(clientMessageId));
    s.on("error", () => s.close("signed out"));
    const pending = s.send("too late", { clientMessageId: "cmid-1" });
    void pending.catch(() => {});
    ws.readyState = 3;
    ws.onclose?.({ code: 4403, reason: "No longer a participant" });
    expect(s.state).toBe("closed");
    await expect(pending).rejects.toThrow(/No longer a participant/);
    expect(failed).toEqual(["cmid-1"]);
  });
});

describe("client conversation socket: slow replays", () => {
  // The connect timeout kept running after `ready` until the replay ended: a replay slower than connectTimeoutMs
  // (20 s) was abandoned although resumeTimeoutMs (30 s) is the replay's own budget, and a backlog whose replay
  // always took that long was never caught up.
  it("a replay that takes longer than the connect timeout, but not the resume timeout, is waited for", async () => {
    const s = open({ afterSeq: 0, connectTimeoutMs: 60, resumeTimeoutMs: 1000 });
    const seen: number[] = [];
    s.on("new_message", ({ message }) => seen.push(message.seq));
    await until(() => FakeSocket.all.length === 1);
    const ws = latest();
    ws.frame("ready", ready(2));
    await tick(150);
    ws.frame("new_message", { message: msg(1) });
    ws.frame("new_message", { message: msg(2) });
    ws.frame("resumed", { fromSeq: 1, toSeq: 2, complete: true });
    expect(s.state).toBe("open");
    expect(seen).toEqual([1, 2]);
    expect(FakeSocket.all).toHaveLength(1);
  });
});

describe("client conversation socket: Retry-After of the probe", () => {
  // After failed attempts the socket asks REST why; a 503 with a Retry-After too long for REST to wait out itself
  // (30 s: the service is misconfigured or starting) was ignored, and the next attempt came after the usual backoff.
  it("waits the Retry-After of a refused probe before the next attempt", async () => {
    const fetch = async () => new Response('{"statusCode":503,"message":"Starting"}', { status: 503, headers: { "retry-after": "30" } });
    const rest = new ChatRest({ baseUrl: "http://chat.test", token: "t", fetch });
    const s = new ConversationSocket(rest, "ws://chat.test", CONV, async () => ME, {
      WebSocket: FakeSocket as never,
      backoff: { initialMs: 5, maxMs: 20, jitter: 0 },
      watchNetwork: false,
    });
    sockets.push(s);
    const delays: (number | undefined)[] = [];
    s.on("state", (c) => c.state === "reconnecting" && delays.push(c.delayMs));
    s.connect();
    for (let i = 1; i <= 3; i++) {
      await until(() => FakeSocket.all.length === i && latest().readyState === 1);
      latest().cut();
    }
    // The third failure probes (no delay yet), then schedules after the probe's answer.
    await until(() => delays.length === 4);
    expect(delays[3]).toBeGreaterThanOrEqual(30_000);
  });
});

describe("client conversation socket: changes of messages held back behind a gap", () => {
  // Held back behind a gap (between the parts of a long replay, live frames come in ahead of it), a message was
  // delivered later as first seen: an edit or delete told meanwhile came before the message itself, so an app that
  // applies events in order showed the old text, or a deleted message, and the replay's newer copy was dropped.
  it("a message edited or deleted while held back is delivered as it is now, and nothing about it comes before it", async () => {
    const s = open();
    await until(() => FakeSocket.all.length === 1);
    const ws = latest();
    ws.frame("ready", ready(1));
    const log: string[] = [];
    const view = new Map<number, string>();
    s.on("new_message", ({ message: m }) => (log.push(`new ${m.seq}`), view.set(m.seq, m.deletedAt ? "(deleted)" : m.content)));
    s.on("message_updated", ({ message: m }) => (log.push(`upd ${m.seq}`), view.set(m.seq, m.deletedAt ? "(deleted)" : m.content)));
    s.on("message_deleted", ({ seq }) => (log.push(`del ${seq}`), view.set(seq, "(deleted)")));
    ws.frame("new_message", { message: msg(3) });
    ws.frame("new_message", { message: msg(4) });
    ws.frame("message_updated", { message: msg(3, { content: "m3 edited", editedAt: new Date(1000).toISOString() }) });
    ws.frame("message_deleted", { messageId: msg(4).id, seq: 4 });
    expect(log).toEqual([]);
    // The replay that fills the gap.
    ws.frame("new_message", { message: msg(2) });
    ws.frame("resumed", { fromSeq: 2, toSeq: 4, complete: true });
    expect(log.filter((l) => l.startsWith("new"))).toEqual(["new 2", "new 3", "new 4"]);
    expect(Object.fromEntries(view)).toEqual({ 2: "m2", 3: "m3 edited", 4: "(deleted)" });
  });

  it("the replay's copy of a held message replaces the older one held", async () => {
    const s = open();
    await until(() => FakeSocket.all.length === 1);
    const ws = latest();
    ws.frame("ready", ready(1));
    const got: Message[] = [];
    s.on("new_message", ({ message }) => got.push(message));
    ws.frame("new_message", { message: msg(3) });
    ws.frame("new_message", { message: msg(2) });
    expect(got.map((m) => m.seq)).toEqual([2, 3]);
    ws.frame("new_message", { message: msg(5) });
    ws.frame("new_message", { message: msg(5, { content: "m5 edited", editedAt: new Date(1000).toISOString() }) });
    ws.frame("new_message", { message: msg(4) });
    expect(got.map((m) => m.content)).toEqual(["m2", "m3", "m4", "m5 edited"]);
  });
});

describe("client conversation socket: archive mark over a gap", () => {
  // messages_archived moved the position past the gap, but the message held just after it stayed held: the replay's
  // copy of it counted as already held, `resumed` still saw a gap, and the socket asked to resume again and again.
  it("delivers what was held just past the archived mark, and stops asking to resume", async () => {
    const s = open();
    await until(() => FakeSocket.all.length === 1);
    const ws = latest();
    ws.frame("ready", ready(5));
    const seen: number[] = [];
    s.on("new_message", ({ message }) => seen.push(message.seq));
    ws.frame("new_message", { message: msg(12) });
    expect(ws.sentOf("resume").map((f) => f.data)).toEqual([{ afterSeq: 5 }]);
    ws.frame("messages_archived", { conversationId: CONV, upToSeq: 11 });
    ws.frame("new_message", { message: msg(12) });
    ws.frame("resumed", { fromSeq: 12, toSeq: 12, complete: true });
    expect(seen).toEqual([12]);
    expect(ws.sentOf("resume")).toHaveLength(1);
    expect(s.lastSeq).toBe(12);
  });
});

describe("client sockets: close() ends the REST calls of connecting", () => {
  // The probe after a refused connection (here a 4401) waited out a 503's Retry-After (up to 10 s) after close(),
  // and then asked again: a Node process that closed everything stayed alive for it.
  it("a probe waiting out a Retry-After is given up on close(): no timer left, no further call", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "setInterval", "clearInterval"] });
    try {
      const calls: string[] = [];
      const rest = new ChatRest({
        baseUrl: "http://chat.test",
        token: "t",
        fetch: async (input) => {
          calls.push(String(input));
          return new Response(JSON.stringify({ statusCode: 503, message: "down" }), { status: 503, headers: { "retry-after": "5" } });
        },
      });
      const u = new UserSocket(rest, "ws://chat.test", { WebSocket: FakeSocket as never, watchNetwork: false });
      sockets.push(u);
      u.connect();
      await vi.waitFor(() => expect(FakeSocket.all.length).toBe(1));
      latest().onclose?.({ code: 4401, reason: "Token expired" });
      await vi.waitFor(() => expect(calls).toEqual(["http://chat.test/auth/me"]));
      await vi.waitFor(() => expect(vi.getTimerCount()).toBe(1)); // the Retry-After wait
      u.close();
      await vi.waitFor(() => expect(vi.getTimerCount()).toBe(0));
      await vi.advanceTimersByTimeAsync(30_000);
      expect(calls.length).toBe(1);
      expect(FakeSocket.all.length).toBe(1);
    } finally {
      vi.useRealTimers();
    }
  });
});

describe("client sockets: close() from inside a listener wins", () => {
  const fake = () => vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "setInterval", "clearInterval"] });

  it("close() in a ready listener leaves the conversation closed, with no heartbeat running", async () => {
    fake();
    try {
      const s = open();
      s.on("ready", () => s.close());
      await vi.waitFor(() => expect(FakeSocket.all.length).toBe(1));
      latest().frame("ready", ready(0));
      expect(s.state).toBe("closed");
      expect(vi.getTimerCount()).toBe(0);
    } finally {
      vi.useRealTimers();
    }
  });

  it("close() in a resumed listener leaves the conversation closed, with no heartbeat running", async () => {
    fake();
    try {
      const s = open({ afterSeq: 2 });
      s.on("resumed", () => s.close());
      await vi.waitFor(() => expect(FakeSocket.all.length).toBe(1));
      latest().frame("ready", ready(3));
      latest().frame("new_message", { message: msg(3) });
      latest().frame("resumed", { fromSeq: 3, toSeq: 3, complete: true });
      expect(s.state).toBe("closed");
      expect(vi.getTimerCount()).toBe(0);
    } finally {
      vi.useRealTimers();
    }
  });

  it("close() in a connected listener leaves the user socket closed, with no heartbeat running", async () => {
    fake();
    try {
      const rest = new ChatRest({ baseUrl: "http://chat.test", token: "t", fetch: async () => new Response("{}", { status: 200 }) });
      const u = new UserSocket(rest, "ws://chat.test", { WebSocket: FakeSocket as never, watchNetwork: false });
      sockets.push(u);
      u.on("connected", () => u.close());
      u.connect();
      await vi.waitFor(() => expect(FakeSocket.all.length).toBe(1));
      latest().frame("connected", { userId: ME, timestamp: new Date(0).toISOString() });
      expect(u.state).toBe("closed");
      expect(vi.getTimerCount()).toBe(0);
    } finally {
      vi.useRealTimers();
    }
  });

  it("close() when told of reconnecting stops the reconnect: no timer, no new socket", async () => {
    fake();
    try {
      const s = open();
      s.on("state", ({ state }) => state === "reconnecting" && s.close());
      await vi.waitFor(() => expect(FakeSocket.all.length).toBe(1));
      latest().frame("ready", ready(0));
      latest().cut();
      expect(s.state).toBe("closed");
      expect(vi.getTimerCount()).toBe(0);
      await vi.advanceTimersByTimeAsync(1000);
      expect(FakeSocket.all.length).toBe(1);
      expect(s.state).toBe("closed");
    } finally {
      vi.useRealTimers();
    }
  });

  it("close() when told of connecting leaves no resume wait behind", async () => {
    fake();
    try {
      const s = open();
      await vi.waitFor(() => expect(FakeSocket.all.length).toBe(1));
      latest().frame("ready", ready(0));
      latest().frame("new_message", { message: msg(1) });
      s.on("state", ({ state }) => state === "connecting" && s.close());
      latest().cut();
      await vi.advanceTimersByTimeAsync(50);
      expect(s.state).toBe("closed");
      expect(FakeSocket.all.length).toBe(1);
      expect(vi.getTimerCount()).toBe(0);
    } finally {
      vi.useRealTimers();
    }
  });
});

describe("client sockets: close() from a listener told of the drop", () => {
  it("close() from a typing listener during reconnectNow() stays closed, with no new socket", async () => {
    const { s } = await openReady();
    latest().frame("typing_start", { userId: OTHER, conversationId: CONV });
    s.on("typing", ({ isTyping }) => !isTyping && s.close());
    s.reconnectNow();
    await tick(20);
    expect(s.state).toBe("closed");
    expect(FakeSocket.all.length).toBe(1);
  });
});

describe("client sockets: a long close reason", () => {
  it("close() with a reason over 123 bytes closes the socket with the reason cut on a character boundary", async () => {
    const { s, ws } = await openReady();
    s.close("👋".repeat(100));
    expect(s.state).toBe("closed");
    expect(ws.closedWith?.code).toBe(1000);
    const reason = ws.closedWith?.reason ?? "";
    expect(new TextEncoder().encode(reason).length).toBeLessThanOrEqual(123);
    expect(reason).toBe("👋".repeat(30));
  });
});

describe("client conversation socket: marks past the server's newest seq", () => {
  it("a read mark past the server's newest seq starts over after ready, so a later real mark is sent", async () => {
    const s = open();
    await until(() => FakeSocket.all.length === 1);
    const ws1 = latest();
    ws1.frame("ready", ready(4));
    s.markRead(50);
    s.markDelivered(60);
    expect(ws1.sentOf("mark_as_read").map((f) => f.data.seq)).toEqual([50]);
    // The server's data was reset: it is at seq 2 and has no marks of ours.
    ws1.cut();
    await until(() => FakeSocket.all.length === 2);
    const ws2 = latest();
    ws2.frame("ready", ready(2));
    ws2.frame("resumed", { fromSeq: 3, toSeq: 2, complete: true });
    expect(ws2.sentOf("mark_as_read")).toEqual([]);
    expect(ws2.sentOf("mark_delivered")).toEqual([]);
    ws2.frame("new_message", { message: msg(3) });
    s.markRead(3);
    s.markDelivered(3);
    expect(ws2.sentOf("mark_as_read").map((f) => f.data.seq)).toEqual([3]);
    ws2.frame("new_message", { message: msg(4) });
    s.markDelivered(4);
    expect(ws2.sentOf("mark_delivered").map((f) => f.data.seq)).toEqual([4]);
  });

  it("a read mark past the newest seq a replay reached starts over, so a later real mark is sent", async () => {
    const s = open();
    await until(() => FakeSocket.all.length === 1);
    const ws = latest();
    ws.frame("ready", ready(4));
    s.markRead(50);
    ws.frame("new_message", { message: msg(6) }); // a gap: resume from 4
    expect(ws.sentOf("resume").map((f) => f.data)).toEqual([{ afterSeq: 4 }]);
    ws.frame("new_message", { message: msg(5) });
    ws.frame("resumed", { fromSeq: 5, toSeq: 6, complete: true });
    s.markRead(6);
    expect(ws.sentOf("mark_as_read").map((f) => f.data.seq)).toEqual([50, 6]);
  });
});

describe("client conversation socket: close() from a new_message listener", () => {
  it("no further message is told and no delivered mark is armed after close() in a new_message listener", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "setInterval", "clearInterval"] });
    try {
      const s = open({ autoDeliver: true });
      const seen: number[] = [];
      s.on("new_message", ({ message }) => {
        seen.push(message.seq);
        s.close();
      });
      await vi.waitFor(() => expect(FakeSocket.all.length).toBe(1));
      latest().frame("ready", ready(0));
      latest().frame("new_message", { message: msg(2) }); // held behind the gap
      latest().frame("new_message", { message: msg(1) }); // releases 1 and 2
      expect(seen).toEqual([1]);
      expect(s.state).toBe("closed");
      expect(vi.getTimerCount()).toBe(0);
    } finally {
      vi.useRealTimers();
    }
  });
});

describe("client conversation socket: a message the server cannot take closes the socket", () => {
  // Plays the room: the frame it cannot take closes the socket (1009, after the current task, as a real close comes);
  // it never reads the frames after that one; every other message is stored and acked.
  function server(closesOn: (raw: string, frame: { data: any }) => boolean) {
    let seq = 0;
    const dead = new Set<FakeSocket>();
    FakeSocket.answer = (frame, ws) => {
      if (frame.type !== "send_message" || dead.has(ws)) return;
      if (closesOn(JSON.stringify(frame), frame)) {
        dead.add(ws);
        setTimeout(() => {
          ws.readyState = 3;
          ws.onclose?.({ code: 1009, reason: "Frame too large" });
        });
        return;
      }
      const stored = msg(++seq, { senderId: ME, clientMessageId: frame.data.clientMessageId, content: frame.data.content });
      setTimeout(() => ws.readyState === 1 && ws.frame("message_ack", { clientMessageId: frame.data.clientMessageId, message: stored }, frame.id));
    };
  }
  /** Answers each new socket's connect (ready; then the replay's end on a reconnect) as the room does. */
  async function live(n: number) {
    await until(() => FakeSocket.all.length === n);
    latest().frame("ready", ready(0));
    if (n > 1) latest().frame("resumed", { fromSeq: 1, toSeq: 0 });
  }
  const sentOn = (ws: FakeSocket) => ws.sentOf("send_message").map((f) => f.data.content as string);

  // 11,000 control characters count as no characters (the server strips them) but are 66,000 bytes as JSON: the SDK
  // sent the frame, the room closed the socket (1009), and the SDK sent it again on every reconnect, for ever.
  it("refuses before sending a message whose frame is over the server's frame limit, and sends the rest", async () => {
    server((raw) => new TextEncoder().encode(raw).length > 64 * 1024);
    const s = open();
    await live(1);
    const refused = s.send("\u0001".repeat(11_000) + "hi");
    const after = s.send("after it");
    await expect(refused).rejects.toMatchObject({ name: "ChatApiError", statusCode: 413, code: "too_large", message: expect.stringMatching(/65536-byte limit/) });
    await expect(after).resolves.toMatchObject({ content: "after it" });
    expect(sentOn(latest())).toEqual(["after it"]);
    expect(FakeSocket.all).toHaveLength(1);
    // Just under the limit still goes.
    const fits = "\u0001".repeat(10_000) + "ok";
    await expect(s.send(fits)).resolves.toMatchObject({ content: fits });
    expect(s.state).toBe("open");
  });

  it("fails the one message that closes the socket again and again, never the others sent with it", async () => {
    // Under the SDK's checks, still refused by this server (a lower limit, a frame it fails on).
    server((_raw, frame) => frame.data.content === "boom");
    const s = open();
    const failed: { id: string; code?: string }[] = [];
    s.on("send_failed", (e) => failed.push({ id: e.clientMessageId, code: e.error.code }));
    await live(1);
    const boom = s.send("boom", { clientMessageId: "cmid-boom" });
    void boom.catch(() => {});
    const next = s.send("next", { clientMessageId: "cmid-next" });
    // One at a time: "next" waits for "boom" (stored first, or failed).
    expect(sentOn(FakeSocket.all[0])).toEqual(["boom"]);
    await live(2);
    // The same close with "boom" out again names it.
    expect(sentOn(FakeSocket.all[1])).toEqual(["boom"]);
    await live(3);
    await expect(boom).rejects.toMatchObject({ statusCode: 413, code: "too_large" });
    expect(failed).toEqual([{ id: "cmid-boom", code: "too_large" }]);
    await expect(next).resolves.toMatchObject({ content: "next" });
    await expect(s.send("later")).resolves.toMatchObject({ content: "later" });
    expect(sentOn(FakeSocket.all[2])).toEqual(["next", "later"]);
    expect(FakeSocket.all).toHaveLength(3);
    expect(s.state).toBe("open");
  });

  it("keeps sending a message across drops the network causes (1006), however many", async () => {
    const s = open();
    await live(1);
    const sending = s.send("patient", { clientMessageId: "cmid-p" });
    for (let n = 2; n <= 4; n++) {
      latest().cut();
      await live(n);
    }
    expect(s.outbox().map((e) => e.clientMessageId)).toEqual(["cmid-p"]);
    const last = latest().sentOf("send_message")[0];
    latest().frame("message_ack", { clientMessageId: "cmid-p", message: msg(1, { senderId: ME, clientMessageId: "cmid-p" }) }, last.id);
    await expect(sending).resolves.toMatchObject({ seq: 1 });
  });
});

describe("client user socket: a presence reply overtaken by a pushed change", () => {
  const THIRD = "00000000-0000-4000-8000-000000000003";
  const at = (s: number) => new Date(s * 1000).toISOString();

  // The session pushes a contact's change as it happens; one pushed while it worked out get_presence's answer
  // arrives first, and the answer then carried the older state: a contact who had just gone offline was shown online.
  it("keeps the state of a presence_update that arrived while get_presence was out; the reply wins over older ones", async () => {
    const rest = new ChatRest({ baseUrl: "http://chat.test", token: "t", fetch: async () => new Response("{}", { status: 200 }) });
    const u = new UserSocket(rest, "ws://chat.test", { WebSocket: FakeSocket as never, backoff: { initialMs: 5, maxMs: 20, jitter: 0 }, watchNetwork: false });
    sockets.push(u);
    u.connect();
    await until(() => FakeSocket.all.length === 1);
    const ws = latest();
    ws.frame("connected", { userId: ME, timestamp: at(0) });
    // Before the request: older than anything the reply says.
    ws.frame("presence_update", { userId: THIRD, status: "away", lastSeen: at(5) });
    FakeSocket.answer = (frame, socket) => {
      if (frame.type !== "get_presence") return;
      setTimeout(() => {
        socket.frame("presence_update", { userId: OTHER, status: "offline", lastSeen: at(20) });
        socket.frame(
          "presence_state",
          {
            presences: [
              { userId: OTHER, status: "online", lastSeen: at(10) },
              { userId: THIRD, status: "online", lastSeen: at(30) },
            ],
          },
          frame.id,
        );
      });
    };
    expect(await u.getPresence([OTHER, THIRD])).toEqual([
      { userId: OTHER, status: "offline", lastSeen: at(20) },
      { userId: THIRD, status: "online", lastSeen: at(30) },
    ]);
    // Nothing kept once no request is out: the next reply is taken as it is.
    FakeSocket.answer = (frame, socket) => {
      if (frame.type === "get_presence") setTimeout(() => socket.frame("presence_state", { presences: [{ userId: OTHER, status: "online", lastSeen: at(40) }] }, frame.id));
    };
    expect(await u.getPresence([OTHER])).toEqual([{ userId: OTHER, status: "online", lastSeen: at(40) }]);
  });

  // The server takes 200 ids a get_presence: the SDK cut the list there, and contacts past the 200th never showed.
  it("asks for the presence of more than 200 users in parts and answers for all of them", async () => {
    const rest = new ChatRest({ baseUrl: "http://chat.test", token: "t", fetch: async () => new Response("{}", { status: 200 }) });
    const u = new UserSocket(rest, "ws://chat.test", { WebSocket: FakeSocket as never, backoff: { initialMs: 5, maxMs: 20, jitter: 0 }, watchNetwork: false });
    sockets.push(u);
    u.connect();
    await until(() => FakeSocket.all.length === 1);
    const ws = latest();
    ws.frame("connected", { userId: ME, timestamp: at(0) });
    FakeSocket.answer = (frame, socket) => {
      if (frame.type !== "get_presence") return;
      if (frame.data.userIds.length > 200) return socket.frame("error", { code: "invalid_frame", message: "userIds: at most 200" }, frame.id);
      const presences = (frame.data.userIds as string[]).map((userId) => ({ userId, status: "online", lastSeen: at(1) }));
      setTimeout(() => socket.frame("presence_state", { presences }, frame.id));
    };
    const ids = Array.from({ length: 250 }, (_, i) => `00000000-0000-4000-8000-${String(i + 100).padStart(12, "0")}`);
    const states = await u.getPresence([...ids, ids[0]]);
    expect(states.map((p) => p.userId)).toEqual(ids);
  });

  // get_presence gives up after 10 s; the reply that came later went to the app as it was, without the order check.
  it("a reply that arrives after get_presence timed out does not put back in time a user updated since the request", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "setInterval", "clearInterval"] });
    try {
      const rest = new ChatRest({ baseUrl: "http://chat.test", token: "t", fetch: async () => new Response("{}", { status: 200 }) });
      const u = new UserSocket(rest, "ws://chat.test", { WebSocket: FakeSocket as never, watchNetwork: false });
      sockets.push(u);
      u.connect();
      await vi.waitFor(() => expect(FakeSocket.all.length).toBe(1));
      const ws = latest();
      ws.frame("connected", { userId: ME, timestamp: at(0) });
      const told: unknown[] = [];
      u.on("presence", (p) => told.push(p));
      ws.frame("presence_update", { userId: THIRD, status: "away", lastSeen: at(5) });
      const asking = u.getPresence([OTHER, THIRD]).catch((e: unknown) => e);
      await vi.advanceTimersByTimeAsync(10_000);
      expect(await asking).toMatchObject({ code: "timeout" });
      ws.frame("presence_update", { userId: OTHER, status: "offline", lastSeen: at(20) });
      const late = [
        { userId: OTHER, status: "online", lastSeen: at(10) },
        { userId: THIRD, status: "online", lastSeen: at(30) },
      ];
      ws.frame("presence_state", { presences: late }, ws.sentOf("get_presence")[0].id);
      expect(told).toEqual([
        { userId: THIRD, status: "away", lastSeen: at(5) },
        { userId: OTHER, status: "offline", lastSeen: at(20) },
        { userId: THIRD, status: "online", lastSeen: at(30) },
      ]);
    } finally {
      vi.useRealTimers();
    }
  });
});

describe("client conversation socket: the retry time of a message refused for the moment", () => {
  it("sends it again at its retry time, even when another send came in meanwhile", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "setInterval", "clearInterval", "Date"] });
    // The shortest backoff: the retry is due 500 ms after the refusal.
    vi.spyOn(Math, "random").mockReturnValue(0);
    try {
      const s = open();
      await vi.waitFor(() => expect(FakeSocket.all.length).toBe(1));
      const ws = latest();
      ws.frame("ready", ready(0));
      const first = s.send("first");
      void first.catch(() => {});
      const sent = ws.sentOf("send_message");
      expect(sent).toHaveLength(1);
      ws.frame("error", { code: "unavailable", message: "Database unavailable" }, sent[0].id);
      await vi.advanceTimersByTimeAsync(100);
      void s.send("second").catch(() => {});
      await vi.advanceTimersByTimeAsync(450);
      expect(ws.sentOf("send_message").map((f) => f.data.content)).toEqual(["first", "first"]);
    } finally {
      vi.restoreAllMocks();
      vi.useRealTimers();
    }
  });
});

describe("client conversation socket: a message the server fails on", () => {
  // Messages go one at a time: one the room fails on every time (internal) was retried for ever, and every message
  // written after it waited behind it.
  it("gives up on a message the server keeps failing on (internal) after a few tries, and sends the next", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "setInterval", "clearInterval", "Date"] });
    try {
      const s = open();
      await vi.waitFor(() => expect(FakeSocket.all.length).toBe(1));
      const ws = latest();
      ws.frame("ready", ready(0));
      let seq = 0;
      FakeSocket.answer = (f, socket) => {
        if (f.type !== "send_message") return;
        setTimeout(() => {
          if (f.data.content === "poison") return socket.frame("error", { code: "internal", message: "Internal error" }, f.id);
          const stored = msg(++seq, { senderId: ME, clientMessageId: f.data.clientMessageId, content: f.data.content });
          socket.frame("message_ack", { clientMessageId: f.data.clientMessageId, message: stored }, f.id);
        }, 1);
      };
      const failed: string[] = [];
      s.on("send_failed", (e) => failed.push(e.error.code ?? ""));
      const outcome: Record<string, unknown> = {};
      for (const text of ["poison", "after"]) s.send(text).then((m) => (outcome[text] = m), (e: unknown) => (outcome[text] = e));
      await vi.advanceTimersByTimeAsync(10_000);
      expect(outcome.poison).toMatchObject({ statusCode: 500, code: "internal" });
      expect(outcome.after).toMatchObject({ content: "after", seq: 1 });
      expect(failed).toEqual(["internal"]);
      expect(ws.sentOf("send_message").map((f) => f.data.content)).toEqual(["poison", "poison", "poison", "after"]);
    } finally {
      vi.useRealTimers();
    }
  });
});

describe("client conversation socket: a clientMessageId reused with another message", () => {
  // The server answers 409 to a reused id with other content; the SDK attached the new text to the pending entry and
  // the caller got the old message back as if theirs had been stored.
  it("refuses at once a send that reuses a pending clientMessageId with other text, and leaves the pending one alone", async () => {
    const { s, ws } = await openReady();
    const first = s.send("see you at 6", { clientMessageId: "cmid-r" });
    await until(() => ws.sentOf("send_message").length === 1);
    const failed: string[] = [];
    s.on("send_failed", (e) => failed.push(e.clientMessageId));
    const reused = s.send("see you at 7", { clientMessageId: "cmid-r" });
    await expect(Promise.race([reused, tick(20).then(() => "still pending")])).rejects.toMatchObject({ statusCode: 409, code: "conflict" });
    // The same message again (as the server compares it: normalised) joins the pending one.
    const again = s.send("see you at 6\r", { clientMessageId: "cmid-r" });
    expect(s.outbox().map((e) => e.content)).toEqual(["see you at 6"]);
    const stored = msg(1, { senderId: ME, clientMessageId: "cmid-r", content: "see you at 6" });
    ws.frame("message_ack", { clientMessageId: "cmid-r", message: stored }, ws.sentOf("send_message")[0].id);
    expect((await first).content).toBe("see you at 6");
    expect((await again).content).toBe("see you at 6");
    expect(failed).toEqual([]);
  });
});

describe("client conversation socket: a clientMessageId reused with the same reply in another case", () => {
  // The server lowercases replyToId before it compares a retry with the original: the SDK compared the ids as written
  // and refused with a 409 a retry the server would have taken (an app that took the id from a URL, say).
  it("joins the pending message when the reply's id differs only in case, and refuses another reply", async () => {
    const { s, ws } = await openReady();
    const REPLY = "00000000-0000-4000-8000-0000000000AB";
    const first = s.send("yes", { clientMessageId: "cmid-c", replyToId: REPLY });
    await until(() => ws.sentOf("send_message").length === 1);
    const again = s.send("yes", { clientMessageId: "cmid-c", replyToId: REPLY.toLowerCase() });
    const other = s.send("yes", { clientMessageId: "cmid-c", replyToId: OTHER });
    await expect(other).rejects.toMatchObject({ statusCode: 409, code: "conflict" });
    const stored = msg(1, { senderId: ME, clientMessageId: "cmid-c", content: "yes", replyToId: REPLY.toLowerCase() });
    ws.frame("message_ack", { clientMessageId: "cmid-c", message: stored }, ws.sentOf("send_message")[0].id);
    expect((await first).id).toBe(stored.id);
    expect((await again).id).toBe(stored.id);
  });
});

describe("client sockets: waiting for an event on a socket that closes", () => {
  // Removed from the conversation (or closed by the app), the socket tells nothing more: an app awaiting next() with
  // no timeout waited for ever.
  it("next() ends with the socket's close (code `closed`), also when called on a closed socket; a wait for state goes on", async () => {
    const { s, ws } = await openReady();
    const message = s.next("new_message");
    const closedState = s.next("state", (c) => c.state === "closed");
    ws.onclose?.({ code: 4403, reason: "No longer a participant" });
    await expect(message).rejects.toMatchObject({ code: "closed", message: "The socket is closed: No longer a participant", isRetryable: false });
    await expect(closedState).resolves.toMatchObject({ state: "closed" });
    await expect(s.next("ready")).rejects.toMatchObject({ code: "closed" });
    const other = open();
    const ready = other.next("ready");
    other.close();
    await expect(ready).rejects.toMatchObject({ code: "closed", message: "The socket is closed: closed by client" });
  });
});

describe("client conversation socket: a message held back when the connection is replaced", () => {
  // After many transient refusals the retry was up to 30 s away, and a reconnect (a fresh connection: the rate window
  // or the room's trouble may be gone) kept it: the message sat in "Sending…" with the socket open.
  it("goes at once on the new connection, and a refusal there waits the first delay again, not the old one's", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "setInterval", "clearInterval", "Date"] });
    // The shortest backoffs: 0.5 s after the first refusal, doubling.
    vi.spyOn(Math, "random").mockReturnValue(0);
    try {
      const s = open();
      await vi.waitFor(() => expect(FakeSocket.all.length).toBe(1));
      const ws1 = latest();
      ws1.frame("ready", ready(0));
      FakeSocket.answer = (f, socket) => {
        if (f.type === "send_message") setTimeout(() => socket.frame("error", { code: "rate_limited", message: "Too many messages" }, f.id), 1);
      };
      void s.send("held").catch(() => {});
      // Six refusals, 0.5, 1, 2, 4 and 8 s apart: the next try is 16 s after the last.
      await vi.advanceTimersByTimeAsync(20_000);
      expect(ws1.sentOf("send_message")).toHaveLength(6);
      ws1.cut();
      await vi.advanceTimersByTimeAsync(50);
      const ws2 = latest();
      expect(ws2).not.toBe(ws1);
      ws2.frame("ready", ready(0));
      ws2.frame("resumed", { fromSeq: 1, toSeq: 0 });
      expect(ws2.sentOf("send_message").map((f) => f.data.content)).toEqual(["held"]);
      await vi.advanceTimersByTimeAsync(600);
      expect(ws2.sentOf("send_message")).toHaveLength(2);
    } finally {
      vi.restoreAllMocks();
      vi.useRealTimers();
    }
  });
});

describe("client conversation socket: a send on a closed socket", () => {
  // It rejected with status 0, which isRetryable called retryable: an app retrying retryable errors looped for ever.
  it("rejects saying the socket is closed, with an error that is neither retryable nor a network error", async () => {
    const { s } = await openReady();
    const pending = s.send("pending").catch((e: unknown) => e);
    s.close();
    const late = await s.send("late").catch((e: unknown) => e);
    expect(late).toMatchObject({ statusCode: 0, code: "closed", error: "Socket Closed", message: "The conversation socket is closed" });
    expect(late).toMatchObject({ isRetryable: false, isNetworkError: false, isSocketClosed: true, isClientError: false });
    // A message still pending when the app closed the socket is not retryable on it either.
    expect(await pending).toMatchObject({ code: "closed", isRetryable: false });
  });
});

describe("client user socket: get_presence", () => {
  const at = (s: number) => new Date(s * 1000).toISOString();
  const connectedUser = () => {
    const rest = new ChatRest({ baseUrl: "http://chat.test", token: "t", fetch: async () => new Response("{}", { status: 200 }) });
    const u = new UserSocket(rest, "ws://chat.test", { WebSocket: FakeSocket as never, backoff: { initialMs: 5, maxMs: 20, jitter: 0 }, watchNetwork: false });
    sockets.push(u);
    return u.connect();
  };
  // The server's answer, in its own spelling of the ids (lowercase).
  const answerOnline = (frame: { type: string; data: any; id?: string }, socket: FakeSocket) => {
    if (frame.type !== "get_presence") return;
    const presences = (frame.data.userIds as string[]).map((id) => ({ userId: id.toLowerCase(), status: "online", lastSeen: at(1) }));
    setTimeout(() => socket.frame("presence_state", { presences }, frame.id));
  };

  // An app asking right after creating the client got "Not connected" while the socket was still connecting.
  it("asked while the socket is connecting, waits for the connection and answers", async () => {
    const u = connectedUser();
    FakeSocket.answer = answerOnline;
    const asking = u.getPresence([OTHER]);
    await until(() => FakeSocket.all.length === 1);
    await tick(5);
    expect(latest().sentOf("get_presence")).toEqual([]);
    latest().frame("connected", { userId: ME, timestamp: at(0) });
    await expect(asking).resolves.toEqual([{ userId: OTHER, status: "online", lastSeen: at(1) }]);
    // Closed while it waits: told at once that the socket is closed, as something not worth retrying.
    latest().cut();
    const waiting = u.getPresence([OTHER]).catch((e: unknown) => e);
    u.close();
    expect(await waiting).toMatchObject({ code: "closed", message: "The socket is closed: closed by client", isRetryable: false });
    expect(await u.getPresence([OTHER]).catch((e: unknown) => e)).toMatchObject({ code: "closed", isRetryable: false });
  });

  it("gives up when the socket does not connect within the request's timeout", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "setInterval", "clearInterval"] });
    try {
      const u = connectedUser();
      const asking = u.getPresence([OTHER]).catch((e: unknown) => e);
      await vi.advanceTimersByTimeAsync(10_000);
      expect(await asking).toMatchObject({ code: "timeout", message: "Not connected within 10000 ms" });
      expect(latest().sentOf("get_presence")).toEqual([]);
    } finally {
      vi.useRealTimers();
    }
  });

  // A get_presence out when the connection dropped failed with `disconnected`: the app had to notice and ask again.
  it("asks again on the next connection when the connection drops before the reply, within the call's timeout", async () => {
    const u = connectedUser();
    await until(() => FakeSocket.all.length === 1);
    const first = latest();
    first.frame("connected", { userId: ME, timestamp: at(0) });
    const asking = u.getPresence([OTHER]);
    expect(first.sentOf("get_presence")).toHaveLength(1);
    first.cut();
    await until(() => FakeSocket.all.length === 2);
    FakeSocket.answer = answerOnline;
    latest().frame("connected", { userId: ME, timestamp: at(0) });
    await expect(asking).resolves.toEqual([{ userId: OTHER, status: "online", lastSeen: at(1) }]);
    expect(latest().sentOf("get_presence").map((f) => f.data.userIds)).toEqual([[OTHER]]);
    // A reply to the first asking, come late over the old connection, is not taken for the new one's.
    expect(latest().sentOf("get_presence")[0].id).not.toBe(first.sentOf("get_presence")[0].id);
  });

  it("a question asked again still gives up at its timeout, and fails as closed when the socket closes", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "setInterval", "clearInterval"] });
    try {
      const u = connectedUser();
      await vi.waitFor(() => expect(FakeSocket.all.length).toBe(1));
      latest().frame("connected", { userId: ME, timestamp: at(0) });
      const asking = u.getPresence([OTHER]).catch((e: unknown) => e);
      await vi.advanceTimersByTimeAsync(4_000);
      latest().cut();
      await vi.advanceTimersByTimeAsync(6_000);
      expect(await asking).toMatchObject({ code: "timeout" });
      latest().frame("connected", { userId: ME, timestamp: at(0) });
      const closing = u.getPresence([OTHER]).catch((e: unknown) => e);
      latest().cut();
      u.close();
      expect(await closing).toMatchObject({ code: "closed", isRetryable: false });
    } finally {
      vi.useRealTimers();
    }
  });

  // The server compares ids without case and answers in lowercase: an app that asked in uppercase found no answer
  // for its users (every contact shown offline).
  it("answers with the ids as the app wrote them, also for a change pushed while the question was out", async () => {
    const u = connectedUser();
    await until(() => FakeSocket.all.length === 1);
    const ws = latest();
    ws.frame("connected", { userId: ME, timestamp: at(0) });
    const UPPER = "00000000-0000-4000-8000-0000000000AB";
    const lower = UPPER.toLowerCase();
    FakeSocket.answer = (frame, socket) => {
      if (frame.type !== "get_presence") return;
      socket.frame("presence_update", { userId: lower, status: "away", lastSeen: at(5) });
      answerOnline(frame, socket);
    };
    expect(await u.getPresence([UPPER, OTHER, lower])).toEqual([
      { userId: UPPER, status: "away", lastSeen: at(5) },
      { userId: lower, status: "away", lastSeen: at(5) },
      { userId: OTHER, status: "online", lastSeen: at(1) },
    ]);
    // One question for the two spellings of one user.
    expect(ws.sentOf("get_presence").map((f) => f.data.userIds)).toEqual([[lower, OTHER]]);
  });

  // The server refuses a get_presence naming an id that is not a UUID: one such id (a bot's "system", a typo) among an
  // app's contacts failed the whole call, and none of the others asked with it was ever answered.
  it("leaves out an id that is no user id and answers for the others", async () => {
    const u = connectedUser();
    await until(() => FakeSocket.all.length === 1);
    latest().frame("connected", { userId: ME, timestamp: at(0) });
    FakeSocket.answer = (frame, socket) => {
      if (frame.type !== "get_presence") return;
      const bad = (frame.data.userIds as string[]).findIndex((id) => !/^[0-9a-f-]{36}$/i.test(id));
      if (bad >= 0) return socket.frame("error", { code: "invalid_frame", message: `data.userIds.${bad}: must be a UUID` }, frame.id);
      answerOnline(frame, socket);
    };
    expect(await u.getPresence([OTHER, "system", ""])).toEqual([{ userId: OTHER, status: "online", lastSeen: at(1) }]);
  });
});
