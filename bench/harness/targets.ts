import { fork, type ChildProcess } from "node:child_process";
import net from "node:net";
import { randomUUID } from "node:crypto";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { JsonWs, SioChatSocket, WsChatSocket, type ChatSocket } from "./clients.js";
import type { BenchDb, BenchUser } from "./db.js";
import { findWorkerd } from "./proc.js";

export type TargetName = "edge" | "ws-floor" | "socketio-pg" | "workerd-floor" | "workerd-sqlite";

/** Something to run the messaging scenarios (S1, S3, S4) against: the service or a baseline. */
export interface ChatTarget {
  name: TargetName;
  /** A conversation with `members` users; member i connects with connect(i). */
  createRoom(members: number): Promise<TargetRoom>;
  /** The serving process (for memory and CPU figures); the service's workerd is found by the runner. */
  pid?: number;
  /** The target's HTTP base URL, for a target that also serves S8's page (the runtime floor). */
  httpBase?(): Promise<string>;
  stop(): Promise<void>;
}

export interface TargetRoom {
  id: string;
  connect(member: number): Promise<ChatSocket>;
  /** Rows in Postgres for this room whose client id starts with the prefix; undefined when the target stores nothing. */
  persisted(prefix: string): Promise<number | undefined>;
}

/** The service: users and the conversation seeded in Postgres, sockets through the Worker with a bearer token. */
export function edgeTarget(baseUrl: string, db: BenchDb, jwtSecret: string): ChatTarget & { users: (room: TargetRoom) => BenchUser[] } {
  const wsBase = baseUrl.replace(/^http/, "ws");
  const members = new Map<string, BenchUser[]>();
  return {
    name: "edge",
    async createRoom(n) {
      const users = await db.createUsers(n, "bench", jwtSecret);
      const id = await db.seedConversation(users.map((u) => u.id));
      members.set(id, users);
      return {
        id,
        async connect(i) {
          const ws = await JsonWs.connect(`${wsBase}/conversations/${id}/ws`, { authorization: `Bearer ${users[i].token}` });
          return new WsChatSocket(ws);
        },
        persisted: (prefix) => db.countMessages(id, prefix),
      };
    },
    users: (room) => members.get(room.id) ?? [],
    stop: async () => {},
  };
}

const HERE = path.dirname(fileURLToPath(import.meta.url));

/** Forks a baseline server (TypeScript, through this process's tsx loader) and waits for the port it reports. */
async function startBaseline(file: string, env: Record<string, string> = {}): Promise<{ port: number; child: ChildProcess }> {
  const child = fork(path.join(HERE, "../baselines", file), [], { env: { ...process.env, ...env }, stdio: ["ignore", "inherit", "inherit", "ipc"] });
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${file} did not start`)), 30_000);
    child.once("message", (m: unknown) => {
      clearTimeout(timer);
      resolve((m as { port: number }).port);
    });
    child.once("exit", (code) => reject(new Error(`${file} exited (${code})`)));
  });
  return { port, child };
}

function stopChild(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once("exit", () => resolve());
    child.kill("SIGTERM");
    setTimeout(() => child.kill("SIGKILL"), 3000).unref();
  });
}

export async function wsFloorTarget(): Promise<ChatTarget> {
  const { port, child } = await startBaseline("ws-floor.ts");
  return {
    name: "ws-floor",
    pid: child.pid,
    async createRoom() {
      const id = randomUUID();
      return {
        id,
        async connect(i) {
          return new WsChatSocket(await JsonWs.connect(`ws://127.0.0.1:${port}/?room=${id}&user=u${i}`));
        },
        persisted: async () => undefined,
      };
    },
    stop: () => stopChild(child),
  };
}

/**
 * The runtime's floor (bench/baselines/workerd-floor.ts): one workerd serving two kinds of room, frames only
 * ("workerd-floor") and each message inserted into the object's SQLite first ("workerd-sqlite"). It starts when a
 * room is first asked for and the runner stops it after each scenario, so the service and the baselines are
 * measured with the same processes running as before it existed. (Running for the whole run, it seemed to slow the
 * service's S1 in four A/B pairs, 1.75–2.35 ms p50 against 1.62–1.78, though it used no CPU while idle; a later run
 * without it gave 1.86, so that was probably the machine.)
 */
export function workerdFloorTargets(): ChatTarget[] {
  let running: Promise<{ port: number; child: ChildProcess; pid?: number }> | undefined;
  const ensure = () =>
    (running ??= startBaseline("workerd-floor.ts").then(({ port, child }) => ({ port, child, pid: child.pid ? findWorkerd(child.pid) : undefined })));
  let current: { pid?: number } | undefined;
  const stop = async () => {
    const was = running;
    running = undefined;
    current = undefined;
    if (was) await stopChild((await was).child);
  };
  const target = (name: TargetName, store: boolean): ChatTarget => ({
    name,
    get pid() {
      return current?.pid;
    },
    async createRoom() {
      const server = await ensure();
      current = server;
      const id = randomUUID();
      return {
        id,
        async connect(i) {
          return new WsChatSocket(await JsonWs.connect(`ws://127.0.0.1:${server.port}/?room=${id}&user=u${i}&store=${store ? 1 : 0}`));
        },
        persisted: async () => undefined,
      };
    },
    async httpBase() {
      const server = await ensure();
      current = server;
      return `http://127.0.0.1:${server.port}`;
    },
    stop,
  });
  return [target("workerd-floor", false), target("workerd-sqlite", true)];
}

/**
 * A TCP proxy that holds every chunk for delayMs in each direction, order kept: with --pg-delay-ms the baseline's
 * Postgres connection pays the same injected latency as the service's (whose delay the WebSocket bridge adds).
 */
async function delayProxy(target: URL, delayMs: number): Promise<{ url: string; close(): void }> {
  const pipe = (from: net.Socket, to: net.Socket) => {
    let last = 0;
    from.on("data", (chunk) => {
      const due = Math.max(Date.now() + delayMs, last);
      last = due;
      setTimeout(() => to.write(chunk), due - Date.now());
    });
    from.on("end", () => setTimeout(() => to.end(), Math.max(0, last - Date.now())));
    from.on("error", () => to.destroy());
  };
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(target.port || 5432), target.hostname);
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    pipe(client, upstream);
    pipe(upstream, client);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = new URL(target.toString());
  url.hostname = "127.0.0.1";
  url.port = String((server.address() as net.AddressInfo).port);
  return { url: url.toString(), close: () => server.close() };
}

export async function socketIoTarget(databaseUrl: string, db: BenchDb, jwtSecret: string, pgDelayMs = 0): Promise<ChatTarget> {
  const proxy = pgDelayMs > 0 ? await delayProxy(new URL(databaseUrl), pgDelayMs) : undefined;
  const { port, child } = await startBaseline("socketio-pg.ts", { DATABASE_URL: proxy?.url ?? databaseUrl });
  return {
    name: "socketio-pg",
    pid: child.pid,
    async createRoom(n) {
      // Same rows as the service's rooms, so inserts hit the same table, indexes and foreign keys.
      const users = await db.createUsers(n, "sio", jwtSecret);
      const id = await db.seedConversation(users.map((u) => u.id));
      return {
        id,
        connect: (i) => SioChatSocket.connect(`http://127.0.0.1:${port}`, id, users[i].id),
        persisted: (prefix) => db.countMessages(id, prefix),
      };
    },
    stop: async () => {
      await stopChild(child);
      proxy?.close();
    },
  };
}
