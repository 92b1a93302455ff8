import WebSocket from "ws";
import { io, type Socket } from "socket.io-client";

/** Every timestamp of the harness: one monotonic clock, in this process, in milliseconds. */
export const now = (): number => performance.now();
export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export interface Frame {
  type: string;
  data: any;
  id?: string;
}

type Listener = (f: Frame, t: number) => void;

/**
 * A JSON-frame WebSocket client (the service's protocol, which the ws-floor baseline speaks too). The receive time is
 * taken before the frame is parsed, so client-side parsing is not charged to the server.
 */
export class JsonWs {
  private listeners = new Set<Listener>();
  closed = false;
  closeCode: number | undefined;
  /** Size of the first frame (e.g. "ready"), bytes. */
  firstFrameBytes = 0;
  private lastBytes = 0;

  private constructor(readonly ws: WebSocket) {
    ws.on("message", (raw) => {
      const t = now();
      const text = raw.toString();
      this.lastBytes = text.length;
      const frame = JSON.parse(text) as Frame;
      for (const l of this.listeners) l(frame, t);
    });
    ws.on("close", (code) => {
      this.closed = true;
      this.closeCode = code;
    });
    ws.on("error", () => {});
  }

  /** Opens the socket and waits for its first frame of type `first` (e.g. "ready"); rejects on refusal or timeout. */
  static connect(url: string, headers: Record<string, string> = {}, first = "ready", timeoutMs = 15_000): Promise<JsonWs> {
    const ws = new WebSocket(url, { headers, perMessageDeflate: false });
    const client = new JsonWs(ws);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        ws.terminate();
        reject(new Error(`no "${first}" frame within ${timeoutMs} ms`));
      }, timeoutMs);
      const off = client.on((f) => {
        if (f.type !== first) return;
        client.firstFrameBytes = client.lastBytes;
        off();
        clearTimeout(timer);
        resolve(client);
      });
      ws.once("unexpected-response", (_req, res) => {
        clearTimeout(timer);
        reject(new Error(`upgrade refused: ${res.statusCode}`));
      });
      ws.once("error", (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
  }

  on(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  send(type: string, data: unknown = {}, id?: string): void {
    this.ws.send(JSON.stringify(id === undefined ? { type, data } : { type, data, id }));
  }

  /** The next frame matching, with its receive time. */
  next(match: (f: Frame) => boolean, timeoutMs = 10_000): Promise<{ frame: Frame; t: number }> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        off();
        reject(new Error("timed out waiting for a frame"));
      }, timeoutMs);
      const off = this.on((frame, t) => {
        if (!match(frame)) return;
        off();
        clearTimeout(timer);
        resolve({ frame, t });
      });
    });
  }

  close(): void {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.terminate();
  }
}

/** The common face of a chat connection for the scenarios that run against the service and the baselines. */
export interface ChatSocket {
  sendMessage(clientMessageId: string, content: string): void;
  /** The sender's acknowledgement (status "sent" once persisted; "pending" past the write-through deadline). */
  onAck?: (clientMessageId: string, t: number, status: string) => void;
  /** A new_message broadcast received by this socket. */
  onMessage?: (clientMessageId: string, t: number) => void;
  onError?: (message: string) => void;
  /** True once the connection is gone (closed by either side). */
  readonly closed: boolean;
  close(): void;
}

/** The service's protocol (and the ws-floor baseline's, which mimics it). */
export class WsChatSocket implements ChatSocket {
  /** Size of the first frame the server sent ("ready"), bytes. */
  get readyBytes(): number {
    return this.ws.firstFrameBytes;
  }

  onAck?: ChatSocket["onAck"];
  onMessage?: ChatSocket["onMessage"];
  onError?: ChatSocket["onError"];

  constructor(readonly ws: JsonWs) {
    ws.on((f, t) => {
      if (f.type === "new_message") this.onMessage?.(f.data.message.clientMessageId, t);
      else if (f.type === "message_ack") this.onAck?.(f.data.clientMessageId, t, f.data.message?.status ?? "sent");
      else if (f.type === "error") this.onError?.(`${f.data?.code}: ${f.data?.message}`);
    });
  }

  sendMessage(clientMessageId: string, content: string): void {
    this.ws.send("send_message", { content, clientMessageId }, clientMessageId);
  }

  get closed(): boolean {
    return this.ws.closed;
  }

  close(): void {
    this.ws.close();
  }
}

/** Socket.IO client for the socketio-pg baseline: WebSocket transport only, Socket.IO acknowledgements. */
export class SioChatSocket implements ChatSocket {
  onAck?: ChatSocket["onAck"];
  onMessage?: ChatSocket["onMessage"];
  onError?: ChatSocket["onError"];

  private constructor(readonly socket: Socket) {
    socket.on("new_message", (data: { message: { clientMessageId: string } }) => {
      const t = now();
      this.onMessage?.(data.message.clientMessageId, t);
    });
  }

  static connect(url: string, room: string, user: string, timeoutMs = 15_000): Promise<SioChatSocket> {
    const socket = io(url, { transports: ["websocket"], forceNew: true, reconnection: false, query: { room, user }, timeout: timeoutMs });
    const client = new SioChatSocket(socket);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        socket.close();
        reject(new Error("socket.io: no ready event"));
      }, timeoutMs);
      socket.once("ready", () => {
        clearTimeout(timer);
        resolve(client);
      });
      socket.once("connect_error", (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
  }

  sendMessage(clientMessageId: string, content: string): void {
    this.socket.emit("send_message", { content, clientMessageId }, (reply: { clientMessageId: string; status: string }) => {
      const t = now();
      this.onAck?.(reply.clientMessageId, t, reply.status);
    });
  }

  get closed(): boolean {
    return this.socket.disconnected;
  }

  close(): void {
    this.socket.close();
  }
}

/** Runs tasks with at most `limit` in flight; resolves with results in order. */
export async function pool<T>(count: number, limit: number, task: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = new Array(count);
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const i = next++;
      out[i] = await task(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, count) }, worker));
  return out;
}
