import WebSocket from "ws";
import { nodePool } from "../../scripts/lib/migrate";
import { LOCAL_CONTROL_TOKEN, LOCAL_PROFILE_TOKEN, LOCAL_REDIS_TOKEN } from "../../scripts/lib/stack";

/** End-to-end helpers: real HTTP and WebSocket clients against `wrangler dev` started by `npm test`. */
export const BASE = process.env.STACK_BASE_URL ?? "";
if (!BASE) throw new Error("Run end-to-end tests with `npm test` (it starts the stack).");
export const WS_BASE = BASE.replace(/^http/, "ws");

export interface User {
  id: string;
  kahaId: string;
  token: string;
}

let n = 0;
export async function login(prefix = "e2e"): Promise<User> {
  const kahaId = `${prefix}-${process.pid}-${Date.now().toString(36)}-${n++}`;
  const res = await fetch(`${BASE}/auth/dev-login`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ kahaId }),
  });
  if (!res.ok) throw new Error(`dev-login failed: ${res.status}`);
  const body = (await res.json()) as { access_token: string; user: { id: string } };
  return { id: body.user.id, kahaId, token: body.access_token };
}

export async function http<T = any>(method: string, path: string, token?: string, body?: unknown): Promise<{ status: number; body: T }> {
  const res = await fetch(`${BASE}${path}`, {
    method,
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body !== undefined ? { "content-type": "application/json" } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: (text ? JSON.parse(text) : undefined) as T };
}

export const pool = () => nodePool(process.env.STACK_DATABASE_URL!, process.env.STACK_PG_BRIDGE!, 4);

/** A conversation written straight to Postgres, so realtime tests do not depend on the conversation routes. */
export async function seedConversation(type: "direct" | "group", users: User[]): Promise<string> {
  const db = pool();
  const id = crypto.randomUUID();
  try {
    for (const u of users) await db.query("INSERT INTO users (id, kaha_id) VALUES ($1, $2) ON CONFLICT DO NOTHING", [u.id, u.kahaId]);
    const key = type === "direct" ? [users[0].id, users[1].id].sort().join(":") : null;
    await db.query("INSERT INTO conversations (id, type, name, direct_key, created_by) VALUES ($1, $2, $3, $4, $5)", [
      id,
      type,
      type === "group" ? "e2e group" : null,
      key,
      users[0].id,
    ]);
    for (const [i, u] of users.entries()) {
      await db.query("INSERT INTO participants (conversation_id, user_id, role) VALUES ($1, $2, $3)", [
        id,
        u.id,
        type === "group" && i === 0 ? "admin" : "member",
      ]);
    }
  } finally {
    await db.end();
  }
  return id;
}

export interface Frame {
  type: string;
  data: any;
  id?: string;
}

/** A WebSocket client that records every frame and lets a test wait for the next one matching a predicate. */
export class Client {
  readonly frames: Frame[] = [];
  private waiters: { match: (f: Frame) => boolean; resolve: (f: Frame) => void; from: number }[] = [];
  closed: { code: number; reason: string } | undefined;
  private closedWaiters: ((c: { code: number; reason: string }) => void)[] = [];
  private cursor = 0;

  private constructor(readonly ws: WebSocket) {
    ws.on("message", (raw) => {
      const frame = JSON.parse(raw.toString()) as Frame;
      this.frames.push(frame);
      this.waiters = this.waiters.filter((w) => {
        if (this.frames.length - 1 >= w.from && w.match(frame)) {
          w.resolve(frame);
          return false;
        }
        return true;
      });
    });
    ws.on("close", (code, reason) => {
      this.closed = { code, reason: reason.toString() };
      for (const w of this.closedWaiters) w(this.closed);
    });
  }

  static async connect(path: string, token?: string, headers: Record<string, string> = {}): Promise<Client> {
    // Under wrangler dev the TCP teardown after a server-initiated close lags the close frame by seconds; like a
    // browser, give up on the handshake 1 s after the close frame and report the code the server sent.
    const options: WebSocket.ClientOptions & { closeTimeout: number } = {
      headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...headers },
      closeTimeout: 1000,
    };
    const ws = new WebSocket(`${WS_BASE}${path}`, options);
    const client = new Client(ws);
    await new Promise<void>((resolve, reject) => {
      ws.once("open", () => resolve());
      ws.once("unexpected-response", (_req, res) => reject(new Error(`upgrade refused: ${res.statusCode}`)));
      ws.once("error", reject);
    });
    return client;
  }

  static async refused(path: string, token?: string, headers: Record<string, string> = {}): Promise<number> {
    const ws = new WebSocket(`${WS_BASE}${path}`, { headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...headers } });
    return new Promise((resolve) => {
      ws.once("unexpected-response", (_req, res) => resolve(res.statusCode ?? 0));
      ws.once("open", () => {
        ws.close();
        resolve(101);
      });
      ws.once("error", () => resolve(0));
    });
  }

  send(type: string, data: unknown = {}, id?: string): void {
    this.ws.send(JSON.stringify(id ? { type, data, id } : { type, data }));
  }

  raw(text: string | Buffer): void {
    this.ws.send(text);
  }

  /** Waits for the next frame (after the ones already consumed) that matches. */
  next(type: string, match: (f: Frame) => boolean = () => true, timeoutMs = 10_000): Promise<Frame> {
    for (let i = this.cursor; i < this.frames.length; i++) {
      const f = this.frames[i];
      if (f.type === type && match(f)) {
        this.cursor = i + 1;
        return Promise.resolve(f);
      }
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out waiting for ${type}; got ${this.frames.slice(-5).map((f) => f.type).join(",")}`)), timeoutMs);
      this.waiters.push({
        from: this.frames.length,
        match: (f) => f.type === type && match(f),
        resolve: (f) => {
          clearTimeout(timer);
          this.cursor = this.frames.indexOf(f) + 1;
          resolve(f);
        },
      });
    });
  }

  async request(type: string, data: unknown, replyType: string, timeoutMs = 10_000): Promise<Frame> {
    const id = `r${Math.random().toString(36).slice(2)}`;
    const reply = this.next(replyType === "*" ? "error" : replyType, (f) => f.id === id, timeoutMs);
    const error = this.next("error", (f) => f.id === id, timeoutMs).then((f) => {
      throw new Error(`error frame: ${JSON.stringify(f.data)}`);
    });
    this.send(type, data, id);
    return Promise.race([reply, error]);
  }

  all(type: string): Frame[] {
    return this.frames.filter((f) => f.type === type);
  }

  waitClosed(timeoutMs = 10_000): Promise<{ code: number; reason: string }> {
    if (this.closed) return Promise.resolve(this.closed);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("socket did not close")), timeoutMs);
      this.closedWaiters.push((c) => {
        clearTimeout(timer);
        resolve(c);
      });
    });
  }

  close(): void {
    this.ws.close();
  }

  terminate(): void {
    this.ws.terminate();
  }
}

async function control(url: string, token: string, body: unknown): Promise<void> {
  const res = await fetch(`${url}/__control`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  if (!res.ok) throw new Error(`control ${url} failed: ${res.status}`);
}

/** Fault switches on the local stand-ins (Postgres bridge, Redis-REST endpoint, profile service). */
export const faults = {
  postgres: (fault: { down?: boolean; delayMs?: number; cut?: boolean }) => control(process.env.STACK_BRIDGE_URL!, LOCAL_CONTROL_TOKEN, { fault }),
  redis: (fault: { down?: boolean; delayMs?: number; garbage?: boolean }) => control(process.env.STACK_REDIS_URL!, LOCAL_REDIS_TOKEN, { fault }),
  profiles: (fault: { delayMs?: number; fail?: boolean; garbage?: boolean; partial?: boolean }) =>
    control(process.env.STACK_PROFILE_URL!, LOCAL_PROFILE_TOKEN, { fault }),
};

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function until<T>(probe: () => Promise<T | undefined>, timeoutMs = 15_000, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await sleep(everyMs);
  }
}

/** The seqs Postgres holds for a conversation, in order. */
export async function pgSeqs(conversationId: string): Promise<number[]> {
  const db = pool();
  try {
    const r = await db.query<{ seq: string }>("SELECT seq FROM messages WHERE conversation_id = $1 ORDER BY seq", [conversationId]);
    return r.rows.map((x) => Number(x.seq));
  } finally {
    await db.end();
  }
}

/** Conversation sockets a test opens (after `ready`), all terminated by `closeAll` in afterEach. */
export function socketPool() {
  const open: Client[] = [];
  return {
    open,
    async connect(conversationId: string, user: User): Promise<Client> {
      const c = await Client.connect(`/conversations/${conversationId}/ws`, user.token);
      open.push(c);
      await c.next("ready");
      return c;
    },
    closeAll(): void {
      for (const c of open.splice(0)) c.terminate();
    },
  };
}
