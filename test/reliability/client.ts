// A conversation-socket client that behaves like a careful app: it records every new_message in the ledger, resumes
// after a drop with ?afterSeq=<highest seq seen>, and retries a send with the same clientMessageId until acked.
import WebSocket from "ws";
import type { ChatUser } from "./db";
import type { Ledger, LedgerMessage } from "./ledger";

export interface Frame {
  type: string;
  data: any;
  id?: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class UpgradeRefused extends Error {
  constructor(readonly status: number) {
    super(`upgrade refused: ${status}`);
  }
}

export interface ChatSocketOptions {
  /** http://127.0.0.1:PORT of the Worker. */
  base: string;
  conversationId: string;
  user: ChatUser;
  ledger: Ledger;
  /** Ledger receiver label (unique per logical client). */
  label: string;
  /** First seq this receiver must see (1 when it exists before the first send). */
  fromSeq?: number;
}

interface Pending {
  id: string;
  resolve: (f: Frame) => void;
  reject: (e: Error) => void;
}

let frameIds = 0;

export class ChatSocket {
  ws: WebSocket | undefined;
  private incarnationIndex = -1;
  private pending = new Map<string, Pending>();
  readonly errors: Frame[] = [];
  readonly closes: { code: number; reason: string }[] = [];
  private readyWaiters: ((f: Frame) => void)[] = [];
  private resumedWaiters: ((f: Frame) => void)[] = [];
  /** Counts frames by type over all incarnations (for stats). */
  readonly counts = new Map<string, number>();

  constructor(readonly opts: ChatSocketOptions) {
    opts.ledger.receiver(opts.label, opts.conversationId, opts.fromSeq ?? 1);
  }

  get open(): boolean {
    return this.ws?.readyState === WebSocket.OPEN;
  }

  get highestSeen(): number {
    return this.opts.ledger.highestSeen(this.opts.label);
  }

  private connecting: Promise<void> | undefined;

  /**
   * Opens a socket; after the first one, resumes after the highest seq seen. Resolves once live (and replayed).
   * Single-flight: a second caller while a connect is under way waits for that one (an app has one socket per
   * conversation, not two racing ones).
   */
  connect(timeoutMs = 15_000): Promise<void> {
    this.connecting ??= this.connectOnce(timeoutMs).finally(() => {
      this.connecting = undefined;
    });
    return this.connecting;
  }

  private async connectOnce(timeoutMs: number): Promise<void> {
    if (this.open) return;
    const afterSeq = this.incarnationIndex < 0 ? undefined : this.highestSeen;
    const { ledger, label } = this.opts;
    const url = `${this.opts.base.replace(/^http/, "ws")}/conversations/${this.opts.conversationId}/ws${afterSeq !== undefined ? `?afterSeq=${afterSeq}` : ""}`;
    const ws = new WebSocket(url, { headers: { authorization: `Bearer ${this.opts.user.token}` }, perMessageDeflate: false });
    const ready = new Promise<Frame>((resolve) => this.readyWaiters.push(resolve));
    const resumed = afterSeq !== undefined ? new Promise<Frame>((resolve) => this.resumedWaiters.push(resolve)) : undefined;
    // An incarnation is a socket that actually opened (refused attempts during an outage do not count).
    let incarnation = -1;
    ws.once("open", () => {
      incarnation = ledger.incarnation(label, afterSeq ?? 0);
      this.incarnationIndex = incarnation;
    });
    this.ws = ws;
    ws.on("message", (raw) => this.onFrame(ws, incarnation, raw.toString()));
    ws.on("close", (code, reason) => {
      this.closes.push({ code, reason: reason.toString() });
      if (this.ws === ws) {
        for (const p of this.pending.values()) p.reject(new Error(`socket closed (${code})`));
        this.pending.clear();
      }
    });
    ws.on("error", () => {});
    const opened = new Promise<void>((resolve, reject) => {
      ws.once("open", () => resolve());
      ws.once("unexpected-response", (_req, res) => {
        res.resume();
        reject(new UpgradeRefused(res.statusCode ?? 0));
      });
      ws.once("error", reject);
      ws.once("close", (code) => reject(new Error(`closed before open (${code})`)));
    });
    const timeout = sleep(timeoutMs).then(() => {
      throw new Error(`connect ${this.opts.label} timed out`);
    });
    try {
      await Promise.race([opened, timeout]);
      await Promise.race([ready, timeout]);
      if (resumed) await Promise.race([resumed, timeout]);
    } catch (err) {
      ws.terminate();
      throw err;
    }
  }

  /** Connects, retrying refusals (503 while the database is down, 429) until the deadline. */
  async connectRetrying(deadlineMs = 60_000): Promise<void> {
    const deadline = Date.now() + deadlineMs;
    let delay = 200;
    for (;;) {
      try {
        await this.connect();
        return;
      } catch (err) {
        if (Date.now() > deadline) throw err;
        await sleep(delay);
        delay = Math.min(2000, delay * 2);
      }
    }
  }

  private onFrame(ws: WebSocket, incarnation: number, text: string): void {
    let frame: Frame;
    try {
      frame = JSON.parse(text) as Frame;
    } catch {
      return;
    }
    this.counts.set(frame.type, (this.counts.get(frame.type) ?? 0) + 1);
    switch (frame.type) {
      case "ready":
        for (const w of this.readyWaiters.splice(0)) w(frame);
        break;
      case "resumed":
        for (const w of this.resumedWaiters.splice(0)) w(frame);
        break;
      case "new_message": {
        const m = frame.data.message as LedgerMessage;
        this.opts.ledger.delivered(this.opts.label, incarnation, m);
        break;
      }
      case "error":
        this.errors.push(frame);
        break;
    }
    if (frame.id && this.ws === ws) {
      const p = this.pending.get(frame.id);
      if (p && (frame.type === "message_ack" || frame.type === "error" || frame.type === "heartbeat_ack" || frame.type === "resumed")) {
        this.pending.delete(frame.id);
        p.resolve(frame);
      }
    }
  }

  /** Sends a frame with an id and waits for the reply carrying it (ack or error). */
  request(type: string, data: unknown, timeoutMs = 20_000): Promise<Frame> {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return Promise.reject(new Error("socket not open"));
    const id = `f${++frameIds}`;
    return new Promise<Frame>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`${type} timed out`));
      }, timeoutMs);
      this.pending.set(id, {
        id,
        resolve: (f) => {
          clearTimeout(timer);
          resolve(f);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      ws.send(JSON.stringify({ type, data, id }));
    });
  }

  /** One attempt: records sent/acked in the ledger; throws on error frames, timeouts and drops. */
  async sendOnce(content: string, clientMessageId: string, timeoutMs = 20_000): Promise<LedgerMessage> {
    const { ledger, conversationId, user } = this.opts;
    ledger.sent(conversationId, user.id, clientMessageId, content);
    let reply: Frame;
    try {
      reply = await this.request("send_message", { content, clientMessageId }, timeoutMs);
    } catch (err) {
      ledger.failed(conversationId, user.id, clientMessageId, (err as Error).message);
      throw err;
    }
    if (reply.type !== "message_ack") {
      ledger.failed(conversationId, user.id, clientMessageId, `${reply.data?.code}: ${reply.data?.message}`);
      throw new Error(`send refused: ${reply.data?.code} ${reply.data?.message}`);
    }
    const message = reply.data.message as LedgerMessage;
    ledger.acked(conversationId, user.id, clientMessageId, message, "ws");
    return message;
  }

  /** Sends until acked: on a drop it reconnects (and resumes) and retries with the same clientMessageId. */
  async sendReliably(content: string, clientMessageId: string, deadlineMs = 90_000): Promise<LedgerMessage> {
    const deadline = Date.now() + deadlineMs;
    let lastError: unknown;
    while (Date.now() < deadline) {
      try {
        if (!this.open) await this.connectRetrying(Math.max(1000, deadline - Date.now()));
        return await this.sendOnce(content, clientMessageId);
      } catch (err) {
        lastError = err;
        await sleep(250);
      }
    }
    throw new Error(`send ${clientMessageId} not acked before the deadline: ${(lastError as Error)?.message}`);
  }

  heartbeat(timeoutMs = 10_000): Promise<Frame> {
    return this.request("heartbeat", {}, timeoutMs);
  }

  /** Reconnects (resuming) if the socket is not open. */
  async ensureOpen(deadlineMs = 60_000): Promise<void> {
    if (!this.open) await this.connectRetrying(deadlineMs);
  }

  terminate(): void {
    this.ws?.terminate();
  }

  close(): void {
    this.ws?.close();
  }
}

/** POST /conversations/:id/messages with a clientMessageId, recorded in the ledger (the REST path of a send). */
export async function restSend(
  base: string,
  ledger: Ledger,
  conversationId: string,
  user: ChatUser,
  content: string,
  clientMessageId: string,
  signal?: AbortSignal,
): Promise<{ status: number; message?: LedgerMessage }> {
  ledger.sent(conversationId, user.id, clientMessageId, content);
  let res: Response;
  try {
    res = await fetch(`${base}/conversations/${conversationId}/messages`, {
      method: "POST",
      headers: { authorization: `Bearer ${user.token}`, "content-type": "application/json" },
      body: JSON.stringify({ content, clientMessageId }),
      signal,
    });
  } catch (err) {
    ledger.failed(conversationId, user.id, clientMessageId, (err as Error).message);
    throw err;
  }
  const body = (await res.json().catch(() => undefined)) as LedgerMessage | undefined;
  if ((res.status === 200 || res.status === 201) && body) {
    ledger.acked(conversationId, user.id, clientMessageId, body, "rest");
    return { status: res.status, message: body };
  }
  ledger.failed(conversationId, user.id, clientMessageId, `HTTP ${res.status}`);
  return { status: res.status };
}
