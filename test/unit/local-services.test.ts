// Tests for the local stand-ins in scripts/local/: driven through the same client libraries the app uses.
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { Client, Pool, neonConfig } from "@neondatabase/serverless";
import { Redis } from "@upstash/redis";
import WebSocket from "ws";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { startEmbeddedPostgres, type EmbeddedPostgresHandle } from "../../scripts/local/pg-server.js";
import { FrontendScanner, startPgBridge, type PgBridgeHandle } from "../../scripts/local/pg-bridge.js";
import { assertPortFree, freePort, isPortFree } from "../../scripts/local/ports.js";
import {
  UNKNOWN_ID_PREFIX,
  startProfileService,
  type ProfileServiceHandle,
} from "../../scripts/local/profile-service.js";
import { startRedisRest, type RedisRestHandle } from "../../scripts/local/redis-rest.js";
import { runScriptUntilStack } from "./script-run";

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function waitFor(check: () => boolean, timeoutMs = 2000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > until) throw new Error("condition not reached in time");
    await sleep(10);
  }
}

function occupyPort(): Promise<{ port: number; close(): Promise<void> }> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as net.AddressInfo).port;
      resolve({ port, close: () => new Promise((r) => server.close(() => r())) });
    });
  });
}

describe("ports", () => {
  it("finds free ports and names the env variable when a fixed port is taken", async () => {
    const port = await freePort();
    expect(port).toBeGreaterThan(0);
    expect(await isPortFree(port)).toBe(true);

    const busy = await occupyPort();
    try {
      expect(await isPortFree(busy.port)).toBe(false);
      await expect(assertPortFree(busy.port, "PG_PORT")).rejects.toThrow(
        `Port ${busy.port} is in use. Set PG_PORT to another port (or 0 for any free port).`,
      );
      await expect(startRedisRest({ port: busy.port, token: "t", portEnvName: "REDIS_REST_PORT" })).rejects.toThrow(
        /Set REDIS_REST_PORT/,
      );
      await expect(startProfileService({ port: busy.port, token: "t", portEnvName: "PROFILE_PORT" })).rejects.toThrow(
        /Set PROFILE_PORT/,
      );
      await expect(startPgBridge({ port: busy.port, portEnvName: "PG_BRIDGE_PORT" })).rejects.toThrow(
        new RegExp(`Port ${busy.port} is in use. Set PG_BRIDGE_PORT`),
      );
      await expect(startEmbeddedPostgres({ dataDir: "memory://", port: busy.port, portEnvName: "PG_PORT" })).rejects.toThrow(
        /Set PG_PORT/,
      );
    } finally {
      await busy.close();
    }
  });
  it("npm run dev refuses two variables naming one port before starting anything, naming both", { timeout: 30_000 }, async () => {
    const port = await freePort();
    const env = { ...process.env, PORT: String(port), PG_BRIDGE_PORT: String(port), PG_PORT: "0", REDIS_REST_PORT: "0", PROFILE_PORT: "0", DATABASE_URL: "", DEV_DATA_DIR: path.join(os.tmpdir(), `dev-ports-${port}`) };
    // Before: the stack started, and the clash surfaced much later.
    const { code, out } = await runScriptUntilStack("scripts/dev.ts", [], env);
    expect(out).toContain(`PORT and PG_BRIDGE_PORT are both ${port}: each service needs a port of its own`);
    expect(code).toBe(2);
  });

  it("says a privileged port is denied, not in use, and names a port above 1024 (PORT=80 as a normal user)", async () => {
    // Tests run as root, where port 80 binds: every listen here fails the way it does for a normal user.
    const listen = vi.spyOn(net.Server.prototype, "listen").mockImplementation(function (this: net.Server) {
      process.nextTick(() => this.emit("error", Object.assign(new Error("listen EACCES: permission denied 127.0.0.1:80"), { code: "EACCES" })));
      return this;
    });
    try {
      expect(await isPortFree(80)).toBe(false);
      await expect(assertPortFree(80, "PORT")).rejects.toThrow(
        "Port 80 cannot be bound: permission denied (EACCES; ports below 1024 need root). Set PORT to a port above 1024 (or 0 for any free port).",
      );
      await expect(startRedisRest({ port: 80, token: "t", portEnvName: "REDIS_REST_PORT" })).rejects.toThrow(
        /permission denied .*Set REDIS_REST_PORT to a port above 1024/,
      );
      await expect(startPgBridge({ port: 80, portEnvName: "PG_BRIDGE_PORT" })).rejects.toThrow(/Set PG_BRIDGE_PORT to a port above 1024/);
    } finally {
      listen.mockRestore();
    }
  });
});

describe("redis-rest in front of a redis-server (REDIS_URL)", () => {
  it("refuses to start when that server does not answer, naming the URL and REDIS_URL", async () => {
    // It started anyway: every command failed, rate limits failed open, and `npm run dev` said it was running.
    const nobody = await freePort();
    await expect(startRedisRest({ port: 0, token: "t", redisUrl: `redis://:secret@127.0.0.1:${nobody}`, urlEnvName: "REDIS_URL" })).rejects.toThrow(
      `Could not reach redis-server at REDIS_URL=redis://***@127.0.0.1:${nobody} (Redis at 127.0.0.1:${nobody}: connect ECONNREFUSED 127.0.0.1:${nobody}). Start it, or fix the URL, or leave REDIS_URL unset to use the in-memory store.`,
    );
    // A server that answers, but not as Redis does (one that wants a password): refused too.
    const sockets = new Set<net.Socket>();
    const notRedis = net.createServer((socket) => {
      sockets.add(socket);
      socket.end("-NOAUTH Authentication required.\r\n");
    });
    await new Promise<void>((r) => notRedis.listen(0, "127.0.0.1", () => r()));
    const port = (notRedis.address() as net.AddressInfo).port;
    try {
      await expect(startRedisRest({ port: 0, token: "t", redisUrl: `redis://127.0.0.1:${port}`, urlEnvName: "REDIS_URL" })).rejects.toThrow(/NOAUTH/);
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise((r) => notRedis.close(r));
    }
    await expect(startRedisRest({ port: 0, token: "t", redisUrl: "localhost:6379", urlEnvName: "REDIS_URL" })).rejects.toThrow(/^REDIS_URL: unsupported Redis URL/);
  });
});

const redisBackends: { name: string; redisUrl?: string }[] = [{ name: "memory" }];
// Database 15 of the real server: these tests flush theirs, and the stack's (database 0) is in use by files running
// beside them (a FLUSHALL there took away another file's keys mid-test).
const testRedisUrl = process.env.REDIS_URL ? `${process.env.REDIS_URL.replace(/\/\d*$/, "")}/15` : undefined;
if (testRedisUrl) redisBackends.push({ name: "redis-server", redisUrl: testRedisUrl });

describe.each(redisBackends)("redis-rest ($name)", ({ redisUrl }) => {
  const token = "test-token";
  let rest: RedisRestHandle;
  let redis: Redis;
  const isMemory = !redisUrl;

  const raw = (path: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> =>
    fetch(`${rest.url}${path}`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json", ...headers },
      body: JSON.stringify(body),
    });

  beforeAll(async () => {
    rest = await startRedisRest({ port: 0, token, ...(redisUrl ? { redisUrl } : {}) });
    redis = new Redis({ url: rest.url, token, retry: { retries: 0 }, enableTelemetry: false });
    await redis.flushdb();
  });
  afterAll(async () => {
    await rest?.close();
  });

  it("does set/get/mget with JSON values and UTF-8 through the base64 encoding", async () => {
    await redis.set("s", "héllo wörld ✓");
    await redis.set("obj", { a: 1, b: ["x"] });
    await redis.set("okstr", "OK");
    expect(await redis.get("s")).toBe("héllo wörld ✓");
    expect(await redis.get("obj")).toEqual({ a: 1, b: ["x"] });
    expect(await redis.get("okstr")).toBe("OK");
    expect(await redis.get("missing")).toBeNull();
    expect(await redis.mget("s", "missing", "obj")).toEqual(["héllo wörld ✓", null, { a: 1, b: ["x"] }]);
    expect(await redis.set("s", "new", { nx: true })).toBeNull();
    expect(await redis.set("s", "new", { xx: true, get: true })).toBe("héllo wörld ✓");
    expect(await redis.getdel("s")).toBe("new");
    expect(await redis.exists("s", "obj")).toBe(1);
  });

  it("runs pipelines and multi-exec transactions", async () => {
    const p = redis.pipeline();
    p.set("p1", "a");
    p.incr("p2");
    p.get("p1");
    p.mget("p1", "p2");
    expect(await p.exec()).toEqual(["OK", 1, "a", ["a", 1]]);

    const tx = redis.multi();
    tx.incrby("p2", 5);
    tx.decr("p2");
    tx.get("p2");
    expect(await tx.exec()).toEqual([6, 5, 5]);

    // A failing command in a pipeline fails only itself.
    const bad = redis.pipeline();
    bad.set("p1", "b");
    bad.incr("p1");
    const results = await bad.exec({ keepErrors: true });
    expect(results[0]).toMatchObject({ result: "OK" });
    expect(results[1]?.error).toMatch(/not an integer/);
  });

  it("honours expiry (EX/PX/EXPIRE/TTL) lazily", async () => {
    await redis.set("e1", "v", { ex: 100 });
    expect(await redis.ttl("e1")).toBeGreaterThan(98);
    expect(await redis.expire("e1", 50)).toBe(1);
    expect(await redis.ttl("e1")).toBeLessThanOrEqual(50);
    expect(await redis.ttl("nope")).toBe(-2);
    await redis.set("e2", "v");
    expect(await redis.ttl("e2")).toBe(-1);
    await redis.set("e3", "v", { px: 60 });
    expect(await redis.pttl("e3")).toBeGreaterThan(0);
    await sleep(90);
    expect(await redis.get("e3")).toBeNull();
    expect(await redis.exists("e3")).toBe(0);
    await redis.setex("e4", 10, "x");
    expect(await redis.ttl("e4")).toBeGreaterThan(8);
    expect(await redis.pexpire("e4", 30)).toBe(1);
    await sleep(60);
    expect(await redis.get("e4")).toBeNull();
  });

  it("supports counters, hashes, sets and sorted sets", async () => {
    expect(await redis.incr("c")).toBe(1);
    expect(await redis.incrby("c", 10)).toBe(11);
    expect(await redis.decr("c")).toBe(10);

    expect(await redis.hset("h", { name: "Ada", n: 3 })).toBe(2);
    expect(await redis.hget("h", "name")).toBe("Ada");
    expect(await redis.hgetall("h")).toEqual({ name: "Ada", n: 3 });
    expect(await redis.hdel("h", "n", "zz")).toBe(1);

    expect(await redis.sadd("set", "a", "b", "c")).toBe(3);
    expect(await redis.srem("set", "b")).toBe(1);
    expect((await redis.smembers("set")).sort()).toEqual(["a", "c"]);

    expect(await redis.zadd("z", { score: 1, member: "one" }, { score: 3, member: "three" }, { score: 2, member: "two" })).toBe(3);
    expect(await redis.zincrby("z", 2.5, "one")).toBe(3.5);
    expect(await redis.zrange("z", 0, -1)).toEqual(["two", "three", "one"]);
    expect(await redis.zrange("z", 0, 1, { withScores: true })).toEqual(["two", 2, "three", 3]);
    expect(await redis.zrange("z", 0, 0, { rev: true })).toEqual(["one"]);
    expect(await redis.zrange("z", "(2", "+inf", { byScore: true })).toEqual(["three", "one"]);
    expect(await redis.zrem("z", "two")).toBe(1);
    const rev = (await (await raw("/", ["ZREVRANGE", "z", "0", "-1", "WITHSCORES"])).json()) as { result: string[] };
    expect(rev.result).toEqual(["one", "3.5", "three", "3"]);
  });

  it("lists keys with KEYS/SCAN and reports DBSIZE/INFO", async () => {
    await redis.flushdb();
    await redis.mset({ "user:1": "a", "user:2": "b", "room:1": "c" });
    expect((await redis.keys("user:*")).sort()).toEqual(["user:1", "user:2"]);
    expect(await redis.keys("user:[1]")).toEqual(["user:1"]);
    const seen: string[] = [];
    let cursor: string | number = "0";
    do {
      const [next, keys]: [string | number, string[]] = await redis.scan(cursor, { match: "*:1", count: 1 });
      seen.push(...keys);
      cursor = next;
    } while (String(cursor) !== "0");
    expect(seen.sort()).toEqual(["room:1", "user:1"]);
    expect(await redis.dbsize()).toBe(3);
    const info = (await (await raw("/", ["INFO"], { "upstash-encoding": "base64" })).json()) as { result: string };
    expect(Buffer.from(info.result, "base64").toString()).toMatch(/redis_version/);
  });

  it("encodes like Upstash: base64 strings except a top-level OK, numbers and nulls as JSON", async () => {
    const b64 = { "upstash-encoding": "base64" };
    expect(await (await raw("/", ["SET", "enc", "v"], b64)).json()).toEqual({ result: "OK" });
    expect(await (await raw("/", ["GET", "enc"], b64)).json()).toEqual({ result: Buffer.from("v").toString("base64") });
    expect(await (await raw("/", ["GET", "enc"])).json()).toEqual({ result: "v" });
    expect(await (await raw("/pipeline", [["INCR", "enc:n"], ["GET", "nope"], ["MGET", "enc", "nope"]], b64)).json()).toEqual([
      { result: 1 },
      { result: null },
      { result: [Buffer.from("v").toString("base64"), null] },
    ]);
    expect(await (await raw("/multi-exec", [["SET", "enc", "w"], ["GET", "enc"]], b64)).json()).toEqual([
      { result: "OK" },
      { result: Buffer.from("w").toString("base64") },
    ]);
  });

  it("rejects unknown commands, bad tokens and (in memory) EVAL", async () => {
    const res = await raw("/", ["NOPE", "x"]);
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: string }).error).toMatch(/^ERR unknown command 'NOPE'/);

    const unauthorized = await fetch(`${rest.url}/`, { method: "POST", headers: { authorization: "Bearer wrong" }, body: '["PING"]' });
    expect(unauthorized.status).toBe(401);
    const wrong = new Redis({ url: rest.url, token: "wrong", retry: { retries: 0 }, enableTelemetry: false });
    await expect(wrong.get("x")).rejects.toThrow(/Unauthorized/);

    if (isMemory) await expect(redis.eval("return 1", [], [])).rejects.toThrow(/not supported/);
  });

  it("injects faults and counts requests, in process and over HTTP", async () => {
    rest.resetStats();
    await redis.set("f", "1");
    expect(rest.stats()).toEqual({ requests: 1, commands: 1 });

    rest.setFault({ down: true });
    await expect(redis.get("f")).rejects.toThrow(/Service Unavailable/);
    rest.setFault({ garbage: true });
    await expect(redis.get("f")).rejects.toThrow();
    rest.setFault({ delayMs: 80 });
    const t0 = Date.now();
    expect(await redis.get("f")).toBe(1);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(75);
    rest.setFault({});

    const control = (body: unknown, auth = token): Promise<Response> =>
      fetch(`${rest.url}/__control`, { method: "POST", headers: { authorization: `Bearer ${auth}` }, body: JSON.stringify(body) });
    expect((await control({ fault: { down: true } }, "wrong")).status).toBe(401);
    expect((await control({ fault: { down: true }, resetStats: true })).status).toBe(200);
    expect(rest.fault().down).toBe(true);
    await expect(redis.get("f")).rejects.toThrow();
    await control({ fault: {} });
    expect(await redis.get("f")).toBe(1);
    const stats = (await (await fetch(`${rest.url}/__control/stats`, { headers: { authorization: `Bearer ${token}` } })).json()) as {
      requests: number;
      commands: number;
    };
    // The refused request counts as a request but ran no command.
    expect(stats).toMatchObject({ requests: 2, commands: 1 });
  });
});

describe("profile-service", () => {
  const token = "profile-token";
  let svc: ProfileServiceHandle;
  const u1 = "3f2a9c1e-1111-4111-8111-111111111111";
  const u2 = "7b4d0e2f-2222-4222-8222-222222222222";
  const u3 = "c0ffee00-3333-4333-8333-333333333333";
  const unknownByRule = UNKNOWN_ID_PREFIX;
  const unknownByConfig = "deadbeef-4444-4444-8444-444444444444";
  const b1 = "b1b1b1b1-5555-4555-8555-555555555555";

  type Batch = { users: { uuid: string; name: string; avatar_url: string }[]; businesses: { uuid: string; name: string }[] };
  const batch = (body: unknown, auth = token): Promise<Response> =>
    fetch(`${svc.url}/api/batch/profiles`, {
      method: "POST",
      headers: { authorization: `Bearer ${auth}`, "content-type": "application/json" },
      body: JSON.stringify(body),
    });

  beforeAll(async () => {
    svc = await startProfileService({ port: 0, token, unknownIds: [unknownByConfig] });
  });
  afterAll(async () => {
    await svc?.close();
  });

  it("answers batches deterministically and omits unknown ids", async () => {
    expect((await fetch(`${svc.url}/health`)).status).toBe(200);
    const body = { user_uuids: [u1, u2, unknownByRule, unknownByConfig], business_uuids: [b1] };
    const res = await batch(body);
    expect(res.status).toBe(200);
    const data = (await res.json()) as Batch;
    expect(data.users.map((u) => u.uuid)).toEqual([u1, u2]);
    expect(data.users[0]).toEqual({ uuid: u1, name: expect.stringMatching(/^[A-Z][a-z]+ 3f2a$/), avatar_url: `https://avatars.example.test/${u1}.png` });
    expect(data.businesses).toEqual([{ uuid: b1, name: expect.stringMatching(/^[A-Z][\w ]+ [A-Z][a-z]+$/), avatar_url: `https://avatars.example.test/${b1}.png` }]);
    const again = (await (await batch(body)).json()) as Batch;
    expect(again).toEqual(data);

    svc.setProfile(u2, { name: "Custom Name", avatar_url: "https://x.test/a.png" });
    const overridden = (await (await batch({ user_uuids: [u2], business_uuids: [] })).json()) as Batch;
    expect(overridden.users).toEqual([{ uuid: u2, name: "Custom Name", avatar_url: "https://x.test/a.png" }]);

    expect((await batch(body, "wrong")).status).toBe(401);
    expect((await batch({ user_uuids: "nope" })).status).toBe(400);
  });

  it("injects faults and records calls", async () => {
    svc.resetStats();
    svc.setFault({ fail: true });
    expect((await batch({ user_uuids: [u1], business_uuids: [] })).status).toBe(500);
    svc.setFault({ garbage: true });
    await expect((await batch({ user_uuids: [u1], business_uuids: [] })).json()).rejects.toThrow();
    svc.setFault({ partial: true });
    const partial = (await (await batch({ user_uuids: [u1, u2, u3], business_uuids: [] })).json()) as Batch;
    expect(partial.users.map((u) => u.uuid)).toEqual([u1, u3]);
    svc.setFault({ delayMs: 80 });
    const t0 = Date.now();
    expect((await batch({ user_uuids: [], business_uuids: [b1] })).status).toBe(200);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(75);
    svc.setFault({});
    expect(svc.stats()).toEqual({ calls: 4, lastBody: { user_uuids: [], business_uuids: [b1] } });

    const control = await fetch(`${svc.url}/__control`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}` },
      body: JSON.stringify({ fault: { fail: true }, resetStats: true }),
    });
    expect(control.status).toBe(200);
    expect((await batch({ user_uuids: [u1], business_uuids: [] })).status).toBe(500);
    const stats = (await (await fetch(`${svc.url}/__control/stats`, { headers: { authorization: `Bearer ${token}` } })).json()) as {
      calls: number;
    };
    expect(stats.calls).toBe(1);
    expect((await fetch(`${svc.url}/__control/stats`)).status).toBe(401);
    svc.setFault({});
  });
});

describe("pg bridge frame scanner", () => {
  const int32 = (n: number): Buffer => {
    const b = Buffer.alloc(4);
    b.writeInt32BE(n);
    return b;
  };
  const sslRequest = Buffer.concat([int32(8), int32(80877103)]);
  const params = Buffer.from("user\0postgres\0database\0postgres\0\0");
  const startup = Buffer.concat([int32(8 + params.length), int32(196608), params]);
  // A query whose text contains the Terminate bytes, to prove only message boundaries count.
  const sql = Buffer.concat([Buffer.from("select 'X"), int32(4), Buffer.from("'\0")]);
  const query = Buffer.concat([Buffer.from("Q"), int32(4 + sql.length), sql]);
  const terminate = Buffer.concat([Buffer.from("X"), int32(4)]);
  const stream = Buffer.concat([sslRequest, startup, query, terminate]);

  it("finds Terminate at a message boundary in one frame", () => {
    expect(new FrontendScanner().feed(stream)).toBe(stream.length);
    expect(new FrontendScanner().feed(Buffer.concat([sslRequest, startup, query]))).toBe(-1);
  });

  it("finds Terminate when the stream is split at every byte", () => {
    const scanner = new FrontendScanner();
    for (let i = 0; i < stream.length; i++) {
      const found = scanner.feed(stream.subarray(i, i + 1));
      expect(found).toBe(i === stream.length - 1 ? 1 : -1);
    }
    expect(scanner.exchanges).toBe(1);
  });

  it("counts each Sync and simple Query as one exchange (a round trip) and reports each statement's text, whatever the frames", () => {
    const message = (type: string, body = Buffer.alloc(0)) => Buffer.concat([Buffer.from(type), int32(4 + body.length), body]);
    // Extended-protocol statements (Parse, Bind, Describe, Execute, Sync) whose bytes contain 'S', 'Q' and 'P'.
    const parse = (name: string, text: string) => message("P", Buffer.from(`${name}\0${text}\0\0\0`));
    const tail = [message("B", Buffer.alloc(10)), message("D", Buffer.from("PS\0")), message("E", Buffer.alloc(5)), message("S")];
    const long = `select '${"Q".repeat(300)}'`;
    const texts: string[] = [];
    const scanner = new FrontendScanner((text) => texts.push(text));
    const all = Buffer.concat([sslRequest, startup, parse("", "select 'SQ'"), ...tail, parse("s1", long), ...tail, query]);
    for (let i = 0; i < all.length; i += 7) scanner.feed(all.subarray(i, i + 7));
    expect(scanner.exchanges).toBe(3);
    expect(texts).toEqual(["select 'SQ'", long.slice(0, 117), "select 'X"]);
  });
});

describe("pg-server + pg-bridge with the Neon driver", () => {
  let pg: EmbeddedPostgresHandle;
  let bridge: PgBridgeHandle;
  const pools: Pool[] = [];

  const newPool = (max = 10): Pool => {
    const pool = new Pool({ connectionString: pg.url, max });
    // Idle clients cut by fault injection emit "error" on the pool; unhandled, that would crash the run.
    pool.on("error", () => {});
    pools.push(pool);
    return pool;
  };

  beforeAll(async () => {
    [pg, bridge] = await Promise.all([
      startEmbeddedPostgres({ dataDir: "memory://", port: 0 }),
      startPgBridge({ port: 0 }),
    ]);
    neonConfig.webSocketConstructor = WebSocket;
    neonConfig.wsProxy = bridge.wsProxy;
    neonConfig.useSecureWebSocket = false;
    neonConfig.pipelineTLS = false;
    neonConfig.pipelineConnect = false;
  }, 30_000);
  afterAll(async () => {
    await Promise.allSettled(pools.map((p) => p.end()));
    await bridge?.close();
    await pg?.close();
  });

  it("serves queries, pg_trgm and DDL", async () => {
    const pool = newPool();
    expect(pg.url).toBe(`postgres://postgres:postgres@127.0.0.1:${pg.port}/postgres`);
    expect((await pool.query("select 1 as one")).rows).toEqual([{ one: 1 }]);
    await pool.query("create extension if not exists pg_trgm");
    const sim = await pool.query<{ s: number }>("select similarity($1, $2) as s", ["hello", "hallo"]);
    expect(sim.rows[0]!.s).toBeGreaterThan(0.2);
    await pool.query("create table if not exists t_local (id serial primary key, body text not null)");
    await pool.query("insert into t_local (body) values ($1), ($2)", ["alpha", "beta"]);
    const rows = await pool.query<{ body: string }>("select body from t_local where body % $1 order by id", ["alpah"]);
    expect(rows.rows.map((r) => r.body)).toEqual(["alpha"]);
  });

  it("runs concurrent queries on 10 connections and closes them promptly on Terminate", async () => {
    const pool = newPool(10);
    const before = bridge.stats();
    const clients = await Promise.all(Array.from({ length: 10 }, () => pool.connect()));
    expect(bridge.stats().current).toBeGreaterThanOrEqual(before.current + 10);
    const results = await Promise.all(clients.map((c, i) => c.query<{ i: number }>("select $1::int as i, pg_sleep(0.01)", [i])));
    expect(results.map((r) => r.rows[0]!.i)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    clients.forEach((c) => c.release());

    const t0 = Date.now();
    await pool.end();
    await waitFor(() => bridge.stats().current === before.current, 1500);
    expect(Date.now() - t0).toBeLessThan(1500);
    expect(bridge.stats().terminated).toBeGreaterThanOrEqual(before.terminated + 10);

    // client.end() waits for the socket to close: it is what hangs without Terminate handling.
    const client = new Client(pg.url);
    await client.connect();
    const t1 = Date.now();
    await client.end();
    expect(Date.now() - t1).toBeLessThan(500);
  });

  it("delays traffic, cuts connections and refuses them while down", async () => {
    const pool = newPool(2);
    await pool.query("select 1");

    bridge.setDelay(40);
    const t0 = Date.now();
    await pool.query("select 1");
    expect(Date.now() - t0).toBeGreaterThanOrEqual(75); // one chunk each way
    bridge.setDelay(0);

    const held = await pool.connect();
    held.on("error", () => {});
    bridge.cutAll();
    await expect(held.query("select 1")).rejects.toThrow();
    held.release(true);

    bridge.setDown(true);
    await expect(newPool(1).query("select 1")).rejects.toThrow();
    expect(bridge.stats().rejected).toBeGreaterThan(0);
    bridge.setDown(false);
    expect((await newPool(1).query("select 2 as two")).rows).toEqual([{ two: 2 }]);
  });

  it("times Postgres's answers and keeps the slow ones", async () => {
    const pool = newPool(1);
    await pool.query("select 1");
    const before = bridge.stats().answers;
    const t0 = Date.now();
    await pool.query("select pg_sleep(0.06)");
    await pool.query("select 1");
    const after = bridge.stats().answers;
    expect(after.count - before.count).toBe(2);
    expect(after.over50ms - before.over50ms).toBe(1);
    const slow = after.slow.filter((a) => a.at >= t0);
    expect(slow).toHaveLength(1);
    expect(slow[0]!.ms).toBeGreaterThanOrEqual(55);
    // The total covers both answers: a mean between two snapshots includes the slow one.
    expect(after.totalMs - before.totalMs).toBeGreaterThanOrEqual(slow[0]!.ms);
  });

  it("only bridges to loopback (and allowed) targets, and honours a fixed target", async () => {
    const status = (url: string): Promise<number> =>
      new Promise((resolve) => {
        const ws = new WebSocket(url);
        ws.on("unexpected-response", (_req, res) => resolve(res.statusCode ?? 0));
        ws.on("open", () => {
          ws.close();
          resolve(101);
        });
        ws.on("error", () => {});
      });
    expect(await status(`${bridge.url}/v2?address=not-loopback.invalid:5432`)).toBe(403);
    expect(await status(`${bridge.url}/v2`)).toBe(400);

    const restricted = await startPgBridge({ port: 0, allowedTargets: ["127.0.0.1:1"] });
    const fixed = await startPgBridge({ port: 0, target: `127.0.0.1:${pg.port}` });
    try {
      expect(await status(`${restricted.url}/v2?address=127.0.0.1:${pg.port}`)).toBe(403);
      // The query names a dead port; the fixed target sends it to the embedded server anyway.
      const client = new Client({ connectionString: "postgres://postgres:postgres@127.0.0.1:1/postgres" });
      client.neonConfig.wsProxy = fixed.wsProxy;
      await client.connect();
      expect((await client.query("select 3 as three")).rows).toEqual([{ three: 3 }]);
      await client.end();
    } finally {
      await restricted.close();
      await fixed.close();
    }
    await expect(startPgBridge({ port: 0, target: "10.0.0.1:5432" })).rejects.toThrow(/not a loopback/);

    // A loopback target with nothing listening fails the connect instead of hanging.
    const dead = new Client("postgres://postgres:postgres@127.0.0.1:1/postgres");
    dead.on("error", () => {});
    await expect(dead.connect()).rejects.toThrow();
  });
});

// The in-memory store should answer like redis-server; with REDIS_URL set, compare the two on the same script.
describe.runIf(Boolean(process.env.REDIS_URL))("in-memory store vs redis-server", () => {
  it("gives the same replies to the same commands", async () => {
    const token = "diff";
    const mem = await startRedisRest({ port: 0, token });
    const real = await startRedisRest({ port: 0, token, redisUrl: testRedisUrl! });
    const script: string[][] = [
      ["FLUSHDB"],
      ["SET", "s", "1", "NX"], ["SET", "s", "2", "NX"], ["SET", "s", "3", "XX", "GET"], ["SET", "nx", "v", "XX"],
      ["INCRBY", "s", "-5"], ["DECRBY", "s", "2"], ["INCR", "nope:int"], ["SETNX", "s", "x"], ["TYPE", "s"], ["TYPE", "none"],
      ["EXPIRE", "s", "100", "NX"], ["EXPIRE", "s", "50", "NX"], ["EXPIRE", "s", "200", "GT"], ["TTL", "s"], ["PERSIST", "s"], ["TTL", "s"],
      ["HSET", "h", "a", "1", "b", "2"], ["HINCRBY", "h", "a", "5"], ["HMGET", "h", "a", "zz", "b"], ["HLEN", "h"], ["HEXISTS", "h", "b"],
      ["HKEYS", "h"], ["HVALS", "h"], ["HDEL", "h", "a", "b"], ["EXISTS", "h"],
      ["GET", "h"], ["HSET", "s", "f", "v"], ["SADD", "st", "x", "y", "x"], ["SISMEMBER", "st", "y"], ["SCARD", "st"], ["SREM", "st", "x", "y"], ["EXISTS", "st"],
      ["ZADD", "z", "1", "a", "2", "b", "3", "c"], ["ZADD", "z", "NX", "10", "a", "4", "d"], ["ZADD", "z", "XX", "CH", "5", "b", "9", "e"],
      ["ZADD", "z", "GT", "CH", "1", "c", "7", "c"], ["ZADD", "z", "INCR", "0.5", "a"], ["ZSCORE", "z", "a"], ["ZCARD", "z"], ["ZCOUNT", "z", "(1.5", "5"],
      ["ZRANGE", "z", "0", "-1", "WITHSCORES"], ["ZRANGE", "z", "-2", "-1"], ["ZRANGE", "z", "+inf", "(2", "BYSCORE", "REV", "LIMIT", "0", "2"],
      ["ZRANGEBYSCORE", "z", "-inf", "5", "WITHSCORES"], ["ZREVRANGE", "z", "0", "1", "WITHSCORES"], ["ZREMRANGEBYSCORE", "z", "0", "4"], ["ZRANGE", "z", "0", "-1"],
      ["ZINCRBY", "z", "-1.25", "b"], ["ZREM", "z", "b", "c", "nope"],
      ["RPUSH", "l", "a", "b", "c", "d"], ["LPUSH", "l", "z", "y"], ["LRANGE", "l", "0", "-1"], ["LRANGE", "l", "-3", "100"], ["LLEN", "l"],
      ["LPOP", "l"], ["RPOP", "l", "2"], ["LTRIM", "l", "1", "-1"], ["LRANGE", "l", "0", "-1"], ["LPOP", "l", "5"], ["EXISTS", "l"], ["LPOP", "l"],
      ["MSET", "k:1", "a", "k:2", "b"], ["MGET", "k:1", "h", "k:2", "z"], ["KEYS", "k:[^2]"], ["DEL", "k:1", "k:1", "k:3"], ["GETDEL", "k:2"], ["DBSIZE"],
      ["PING"], ["PING", "hi"], ["ECHO", "é"], ["SET", "x", "1", "EX", "0"], ["GET"],
    ];
    try {
      const run = async (h: RedisRestHandle): Promise<unknown> =>
        (await fetch(`${h.url}/pipeline`, {
          method: "POST",
          headers: { authorization: `Bearer ${token}`, "upstash-encoding": "base64" },
          body: JSON.stringify(script),
        })).json();
      const [a, b] = [(await run(mem)) as unknown[], (await run(real)) as unknown[]];
      script.forEach((cmd, i) => expect({ cmd, reply: a[i] }).toEqual({ cmd, reply: b[i] }));
    } finally {
      await mem.close();
      await real.close();
    }
  });
});
