// Minimal RESP2 (Redis serialization protocol) types, parser and a pipelining client, so the REST stand-in can
// front a real redis-server without pulling in a Redis client library.
import net from "node:net";

/** A "+..." status reply; kept apart from bulk strings because Upstash sends a top-level "OK" status unencoded. */
export class SimpleString {
  constructor(readonly value: string) {}
}

/** A "-..." error reply. It is a value, not an exception: in a pipeline it belongs to one command only. */
export class ReplyError {
  constructor(readonly message: string) {}
}

export type Reply = string | number | null | SimpleString | ReplyError | Reply[];

export const OK = new SimpleString("OK");

export function encodeCommand(args: readonly string[]): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`)];
  for (const arg of args) {
    const bytes = Buffer.from(arg, "utf8");
    parts.push(Buffer.from(`$${bytes.length}\r\n`), bytes, Buffer.from("\r\n"));
  }
  return Buffer.concat(parts);
}

/** Parses one reply at pos; undefined means the buffer does not hold a complete reply yet. */
export function parseReply(buf: Buffer, pos: number): { value: Reply; next: number } | undefined {
  const lineEnd = buf.indexOf("\r\n", pos);
  if (lineEnd < 0) return undefined;
  const kind = String.fromCharCode(buf[pos]!);
  const line = buf.toString("utf8", pos + 1, lineEnd);
  const after = lineEnd + 2;
  switch (kind) {
    case "+":
      return { value: new SimpleString(line), next: after };
    case "-":
      return { value: new ReplyError(line), next: after };
    case ":":
      return { value: Number(line), next: after };
    case "$": {
      const len = Number(line);
      if (len < 0) return { value: null, next: after };
      if (buf.length < after + len + 2) return undefined;
      return { value: buf.toString("utf8", after, after + len), next: after + len + 2 };
    }
    case "*": {
      const count = Number(line);
      if (count < 0) return { value: null, next: after };
      const items: Reply[] = [];
      let next = after;
      for (let i = 0; i < count; i++) {
        const item = parseReply(buf, next);
        if (!item) return undefined;
        items.push(item.value);
        next = item.next;
      }
      return { value: items, next };
    }
    default:
      throw new Error(`RESP protocol error: unexpected type byte ${JSON.stringify(kind)}`);
  }
}

interface PendingBatch {
  replies: Reply[];
  expected: number;
  resolve(replies: Reply[]): void;
  reject(err: Error): void;
}

/**
 * One persistent connection, replies matched to requests in FIFO order (Redis answers in order), so many
 * HTTP requests can be in flight at once. A batch is written with a single write, which keeps MULTI..EXEC
 * contiguous. After a failure the next send() reconnects.
 */
export class RespClient {
  private socket: net.Socket | null = null;
  private pending: PendingBatch[] = [];
  private buffer: Buffer = Buffer.alloc(0);

  constructor(
    readonly host: string,
    readonly port: number,
    /** The logical database (`redis://host:port/N`): tests that flush theirs leave the stack's (0) alone. */
    readonly db = 0,
  ) {}

  static fromUrl(url: string): RespClient {
    const u = new URL(url);
    if (u.protocol !== "redis:") throw new Error(`unsupported Redis URL ${url} (only redis://host:port[/db])`);
    const db = u.pathname.replace(/^\//, "");
    if (db !== "" && !/^\d{1,2}$/.test(db)) throw new Error(`unsupported Redis URL ${url} (the path is a database number)`);
    return new RespClient(u.hostname.replace(/^\[|\]$/g, ""), Number(u.port || 6379), Number(db || 0));
  }

  send(commands: readonly (readonly string[])[]): Promise<Reply[]> {
    if (commands.length === 0) return Promise.resolve([]);
    const fresh = this.socket === null;
    const socket = this.socket ?? this.connect();
    // A new connection starts in database 0: the SELECT goes first, in the same write, and its reply is not the caller's.
    const select = fresh && this.db !== 0;
    const batch = select ? [["SELECT", String(this.db)], ...commands] : commands;
    return new Promise<Reply[]>((resolve, reject) => {
      const done = (replies: Reply[]) => {
        if (!select) return resolve(replies);
        if (replies[0] instanceof ReplyError) return reject(new Error(`Redis SELECT ${this.db}: ${replies[0].message}`));
        resolve(replies.slice(1));
      };
      this.pending.push({ replies: [], expected: batch.length, resolve: done, reject });
      socket.write(Buffer.concat(batch.map(encodeCommand)));
    });
  }

  async close(): Promise<void> {
    const socket = this.socket;
    this.socket = null;
    this.failAll(new Error("Redis client closed"));
    if (socket && !socket.destroyed) {
      await new Promise<void>((resolve) => {
        socket.once("close", () => resolve());
        socket.end();
        setTimeout(() => socket.destroy(), 500).unref();
      });
    }
  }

  private connect(): net.Socket {
    const socket = net.connect({ host: this.host, port: this.port });
    socket.setNoDelay(true);
    this.socket = socket;
    this.buffer = Buffer.alloc(0);
    socket.on("data", (chunk: Buffer) => this.onData(chunk));
    const fail = (err: Error): void => {
      if (this.socket === socket) this.socket = null;
      this.failAll(new Error(`Redis at ${this.host}:${this.port}: ${err.message}`));
    };
    socket.on("error", fail);
    socket.on("close", () => fail(new Error("connection closed")));
    return socket;
  }

  private onData(chunk: Buffer): void {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
    let pos = 0;
    for (;;) {
      let parsed: ReturnType<typeof parseReply>;
      try {
        parsed = parseReply(this.buffer, pos);
      } catch (err) {
        this.socket?.destroy(err as Error);
        return;
      }
      if (!parsed) break;
      pos = parsed.next;
      const head = this.pending[0];
      if (!head) continue; // unsolicited reply; nothing is waiting for it
      head.replies.push(parsed.value);
      if (head.replies.length === head.expected) {
        this.pending.shift();
        head.resolve(head.replies);
      }
    }
    this.buffer = pos === this.buffer.length ? Buffer.alloc(0) : this.buffer.subarray(pos);
  }

  private failAll(err: Error): void {
    const pending = this.pending;
    this.pending = [];
    this.buffer = Buffer.alloc(0);
    for (const p of pending) p.reject(err);
  }
}
