// Pure logic of the operations issue: rate-limit decisions (injectable limits, store and clock), the rate-limit
// middleware (429 + Retry-After, fail open), metrics batching and exposition, audit chain verification, retention
// arithmetic; and, against the stack's Postgres, `npm run audit:verify` end to end.
import { spawn } from "node:child_process";
import path from "node:path";
import { Hono } from "hono";
import { drizzle } from "drizzle-orm/neon-serverless";
import { sql } from "drizzle-orm";
import { Redis } from "@upstash/redis";
import { ANCHORS_KEY } from "../../src/jobs/audit-anchor-store";
import { describe, expect, it } from "vitest";
import { parseConfig, type Config } from "../../src/lib/config";
import { HttpError } from "../../src/lib/errors";
import { sha256Hex } from "../../src/lib/ids";
import { signDevToken } from "../../src/lib/jwt";
import { createLogger, type Logger } from "../../src/lib/log";
import { MetricsBatch, flushMetrics, renderPrometheus, requestClass, seriesKey } from "../../src/lib/metrics";
import { appendAudit, auditHashInput } from "../../src/db/queries/audit";
import { retentionCutoff, retentionDays } from "../../src/db/queries/retention";
import { ChainVerifier, REDACTION_ACTION, type AuditRow } from "../../src/jobs/audit-verify";
import {
  bucketsFor,
  checkLimits,
  clientIp,
  rateLimit,
  setCounterStoreFactory,
  type CounterStore,
} from "../../src/worker/middleware/rate-limit";
import { nodePool } from "../../scripts/lib/migrate";
import { ROOT } from "../../scripts/lib/stack";
import { verifyAuditCli } from "../../scripts/lib/verify-audit";
import { runScriptUntilStack } from "./script-run";

const SECRET = "x".repeat(32);
const baseEnv = {
  DATABASE_URL: "postgres://u:p@127.0.0.1:5432/db",
  UPSTASH_REDIS_REST_URL: "http://127.0.0.1:1",
  UPSTASH_REDIS_REST_TOKEN: "t",
  JWT_SECRET: SECRET,
  PROFILE_SERVICE_URL: "http://127.0.0.1:8078",
  PROFILE_SERVICE_TOKEN: "p",
};

/** An in-memory counter store with the same INCR-per-window semantics as Redis. */
function memoryStore(): CounterStore & { counts: Map<string, number> } {
  const counts = new Map<string, number>();
  return {
    counts,
    async incr(keys) {
      return keys.map((k) => {
        const n = (counts.get(k) ?? 0) + 1;
        counts.set(k, n);
        return n;
      });
    },
  };
}

describe("rate-limit decisions", () => {
  const minute = 60_000;
  const t0 = 1_700_000_000_000 - (1_700_000_000_000 % minute); // start of a window

  it("allows up to the limit in a window, refuses the next with Retry-After to the window's end, recovers in the next window", async () => {
    const store = memoryStore();
    const bucket = [{ key: "rl:u:write:alice", limit: 3, scope: "user" as const }];
    for (let i = 0; i < 3; i++) expect((await checkLimits(store, bucket, t0 + 1000 * i)).allowed).toBe(true);
    const refused = await checkLimits(store, bucket, t0 + 45_500);
    expect(refused).toMatchObject({ allowed: false, retryAfterSeconds: 15, count: 4 });
    expect((await checkLimits(store, bucket, t0 + minute)).allowed).toBe(true);
  });

  it("charges every bucket and refuses when any is over (per user and per IP)", async () => {
    const store = memoryStore();
    const user = { key: "u", limit: 100, scope: "user" as const };
    const ip = { key: "ip", limit: 2, scope: "ip" as const };
    expect((await checkLimits(store, [user, ip], t0)).allowed).toBe(true);
    expect((await checkLimits(store, [user, ip], t0)).allowed).toBe(true);
    const third = await checkLimits(store, [user, ip], t0);
    expect(third.allowed).toBe(false);
    if (!third.allowed) expect(third.bucket.scope).toBe("ip");
    expect(store.counts.get(`u:${Math.floor(t0 / minute)}`)).toBe(3);
  });

  it("derives buckets from the configuration: 0 turns a limit off; a ticket also spends the upgrade budget", () => {
    const config = parseConfig({ ...baseEnv, RATE_LIMIT_WRITES_PER_MINUTE: "5", RATE_LIMIT_IP_WRITES_PER_MINUTE: "0" });
    expect(bucketsFor(config, { kind: "write", userId: "u1", ip: "203.0.113.9", path: "/conversations" })).toEqual([
      { key: "rl:u:write:u1", limit: 5, scope: "user" },
    ]);
    const ticket = bucketsFor(config, { kind: "write", userId: "u1", path: "/realtime/tickets" });
    expect(ticket.map((b) => b.key)).toEqual(["rl:u:write:u1", "rl:u:upgrade:u1"]);
    expect(bucketsFor(config, { kind: "upgrade", ip: "203.0.113.9", path: "/ws" })).toEqual([
      { key: "rl:ip:upgrade:203.0.113.9", limit: 300, scope: "ip" },
    ]);
    // IPv6 counts per /64: one subscriber's prefix, so rotating addresses inside it does not reset the budget.
    const v6 = (ip: string) => bucketsFor(config, { kind: "upgrade", ip, path: "/ws" })[0].key;
    expect(v6("2001:db8:a:b::1")).toBe("rl:ip:upgrade:2001:db8:a:b::/64");
    expect(v6("2001:0db8:000a:000b:ffff:1:2:3")).toBe(v6("2001:db8:a:b::1"));
    expect(v6("2001:db8::7")).toBe("rl:ip:upgrade:2001:db8:0:0::/64");
    expect(v6("::ffff:203.0.113.9")).toBe("rl:ip:upgrade:203.0.113.9");
    expect(parseConfig(baseEnv).RATE_LIMIT_WRITES_PER_MINUTE).toBe(300);
    expect(parseConfig(baseEnv).RATE_LIMIT_UPGRADES_PER_MINUTE).toBe(60);
  });

  it("takes the client IP from CF-Connecting-IP, never loopback", () => {
    expect(clientIp("203.0.113.7")).toBe("203.0.113.7");
    expect(clientIp(" 2001:db8::1 ")).toBe("2001:db8::1");
    expect(clientIp("127.0.0.1")).toBeUndefined();
    expect(clientIp("::1")).toBeUndefined();
    expect(clientIp(undefined)).toBeUndefined();
  });

  it("classifies requests", () => {
    expect(requestClass("POST", undefined)).toBe("write");
    expect(requestClass("delete", undefined)).toBe("write");
    expect(requestClass("GET", "websocket")).toBe("upgrade");
    expect(requestClass("GET", undefined)).toBe("read");
    expect(requestClass("HEAD", undefined)).toBe("read");
  });
});

describe("rate-limit middleware", () => {
  const lines: string[] = [];
  const log: Logger = createLogger({ test: "rate-limit" });
  function app(config: Config) {
    const a = new Hono<{ Variables: { config: Config; log: Logger } }>();
    a.use("*", async (c, next) => {
      c.set("config", config);
      c.set("log", { ...log, warn: (m: string) => void lines.push(m) });
      await next();
    });
    a.use("*", rateLimit);
    a.all("/x", (c) => c.text("ok"));
    a.onError((err, c) => {
      if (err instanceof HttpError) {
        for (const [k, v] of Object.entries(err.headers)) c.header(k, v);
        return c.json({ statusCode: err.status }, err.status as 429);
      }
      return c.json({ statusCode: 500 }, 500);
    });
    return a;
  }

  it("answers 429 with Retry-After over the limit, leaves reads alone, exempts service tokens", async () => {
    const store = memoryStore();
    const previous = setCounterStoreFactory(() => store);
    try {
      const config = parseConfig({ ...baseEnv, RATE_LIMIT_WRITES_PER_MINUTE: "2" });
      const a = app(config);
      const token = await signDevToken({ id: "6f1c1a52-4d0e-4b8e-9b7e-0d3c2a1b0c01", kahaId: "k" }, SECRET, 60);
      const auth = { authorization: `Bearer ${token}` };
      expect((await a.request("/x", { method: "POST", headers: auth })).status).toBe(200);
      expect((await a.request("/x", { method: "POST", headers: auth })).status).toBe(200);
      const refused = await a.request("/x", { method: "POST", headers: auth });
      expect(refused.status).toBe(429);
      const retry = Number(refused.headers.get("retry-after"));
      expect(retry).toBeGreaterThanOrEqual(1);
      expect(retry).toBeLessThanOrEqual(60);
      expect((await a.request("/x", { method: "GET", headers: auth })).status).toBe(200);
      const service = await signDevToken({ id: "6f1c1a52-4d0e-4b8e-9b7e-0d3c2a1b0c02", kahaId: "svc", role: "admin" }, SECRET, 60);
      for (let i = 0; i < 5; i++) {
        expect((await a.request("/x", { method: "POST", headers: { authorization: `Bearer ${service}` } })).status).toBe(200);
      }
      // An invalid token is not a user: only the IP bucket (none here, no CF-Connecting-IP) would apply.
      expect((await a.request("/x", { method: "POST", headers: { authorization: "Bearer nope" } })).status).toBe(200);
    } finally {
      setCounterStoreFactory(previous);
    }
  });

  it("fails open when the counter store is down, then skips it for a cool-down instead of waiting on every write", async () => {
    let calls = 0;
    const previous = setCounterStoreFactory(() => ({
      incr: () => {
        calls++;
        return Promise.reject(new Error("redis down"));
      },
    }));
    try {
      lines.length = 0;
      const a = app(parseConfig({ ...baseEnv, RATE_LIMIT_IP_WRITES_PER_MINUTE: "1" }));
      const headers = { "cf-connecting-ip": "198.51.100.4" };
      for (let i = 0; i < 3; i++) expect((await a.request("/x", { method: "POST", headers })).status).toBe(200);
      expect(calls).toBe(1);
      expect(lines).toEqual(["rate limiter unavailable, failing open"]);
    } finally {
      setCounterStoreFactory(previous);
    }
  });
});

describe("metrics", () => {
  it("builds series keys with sorted, escaped labels and rejects bad names", () => {
    expect(seriesKey("a_total")).toBe("a_total");
    expect(seriesKey("a_total", { z: 1, a: 'x"y' })).toBe('a_total{a="x\\"y",z="1"}');
    expect(() => seriesKey("bad name")).toThrow();
  });

  it("batches counts per isolate and writes them with one pipeline; a failed write keeps them", async () => {
    const batch = new MetricsBatch();
    batch.count("sends_total", 2, { via: "rest" });
    batch.count("sends_total", 3, { via: "rest" });
    batch.gauge("backlog", 7);
    const commands: unknown[][] = [];
    let fail = true;
    const redis = {
      pipeline() {
        const p = {
          hincrby: (...a: unknown[]) => (commands.push(["hincrby", ...a]), p),
          hset: (...a: unknown[]) => (commands.push(["hset", ...a]), p),
          exec: async () => {
            if (fail) throw new Error("down");
            return [];
          },
        };
        return p;
      },
    };
    await expect(flushMetrics(redis as never, batch)).rejects.toThrow("down");
    expect(batch.empty).toBe(false);
    fail = false;
    commands.length = 0;
    expect(await flushMetrics(redis as never, batch)).toBe(2);
    expect(commands).toEqual([
      ["hincrby", "metrics:counters", 'sends_total{via="rest"}', 5],
      ["hset", "metrics:gauges", { backlog: 7 }],
    ]);
    expect(batch.empty).toBe(true);
  });

  it("renders the Prometheus text format with TYPE lines and a derived cache hit ratio", () => {
    const text = renderPrometheus(
      {
        counters: { 'http_requests_total{class="write",status="2xx"}': 4, "profile_cache_hits_total": 3, "profile_cache_misses_total": 1 },
        gauges: { outbox_backlog_messages: 0 },
      },
      [{ name: "job_last_rows", labels: { job: "tickets.expire" }, value: 2, type: "gauge" }],
    );
    expect(text).toContain("# TYPE edgechat_http_requests_total counter\n");
    expect(text).toContain('edgechat_http_requests_total{class="write",status="2xx"} 4\n');
    expect(text).toContain("edgechat_profile_cache_hit_ratio 0.750000\n");
    expect(text).toContain('edgechat_job_last_rows{job="tickets.expire"} 2\n');
    expect(text).toContain("# TYPE edgechat_outbox_backlog_messages gauge\n");
    expect(text.endsWith("\n")).toBe(true);
  });
});

/** A chain built exactly as appendAudit builds it. */
async function chain(conversationId: string, details: Record<string, unknown>[]): Promise<AuditRow[]> {
  const rows: AuditRow[] = [];
  let prev: string | null = null;
  for (const [i, d] of details.entries()) {
    const at = new Date(Date.UTC(2025, 0, 1, 0, 0, i)).toISOString();
    const entry = { conversationId, actorId: null, action: "message.deleted", targetId: `m${i}`, details: d, at };
    const hash = await sha256Hex(auditHashInput(prev, entry));
    rows.push({ id: i + 1, conversationId, actorId: null, action: entry.action, targetId: entry.targetId, details: d, createdAt: new Date(at), prevHash: prev, hash, entryId: null });
    prev = hash;
  }
  return rows;
}

async function verify(rows: AuditRow[]) {
  const v = new ChainVerifier(rows[0]?.conversationId ?? null);
  for (const r of rows) await v.add(r);
  return { broken: v.finish(), redacted: v.redactedRows };
}

describe("audit chain verification", () => {
  const conv = "0b5f4c8e-8d1c-4c53-9f63-2f7a3d2b9a10";

  it("accepts an intact chain and names the first edited row", async () => {
    const rows = await chain(conv, [{ n: 1 }, { n: 2 }, { n: 3 }]);
    expect((await verify(rows)).broken).toBeUndefined();
    rows[1] = { ...rows[1], details: { n: 20 } };
    expect((await verify(rows)).broken).toMatchObject({ id: 2, reason: "hash_mismatch" });
  });

  it("names a row whose link to the previous row is broken (a deleted row)", async () => {
    const rows = await chain(conv, [{ n: 1 }, { n: 2 }, { n: 3 }]);
    expect((await verify([rows[0], rows[2]])).broken).toMatchObject({ id: 3, reason: "prev_hash_mismatch" });
  });

  it("accepts a redaction registered later in the chain, and still detects edits of the redacted row", async () => {
    const rows = await chain(conv, [{ previousContent: "secret" }, { n: 2 }]);
    const redactedDetails = { redacted: { fields: ["previousContent"] } };
    const redactedHash = await sha256Hex(
      auditHashInput(null, { conversationId: conv, actorId: null, action: "message.deleted", targetId: "m0", details: redactedDetails, at: rows[0].createdAt.toISOString() }),
    );
    rows[0] = { ...rows[0], details: redactedDetails };
    const regEntry = {
      conversationId: conv,
      actorId: null,
      action: REDACTION_ACTION,
      targetId: "m0",
      details: { rows: [{ id: 1, redactedHash }] },
      at: new Date(Date.UTC(2025, 0, 2)).toISOString(),
    };
    const regHash = await sha256Hex(auditHashInput(rows[1].hash, regEntry));
    const registration: AuditRow = { id: 3, ...regEntry, createdAt: new Date(regEntry.at), prevHash: rows[1].hash, hash: regHash, entryId: null };
    expect(await verify([...rows, registration])).toEqual({ broken: undefined, redacted: 1 });
    // Without its registration the redaction is just an edit.
    expect((await verify(rows)).broken).toMatchObject({ id: 1, reason: "unregistered_redaction" });
    // An edit of the redacted row after redaction no longer matches the registered hash.
    const edited = [{ ...rows[0], actorId: "6f1c1a52-4d0e-4b8e-9b7e-0d3c2a1b0c03" }, rows[1], registration];
    expect((await verify(edited)).broken).toMatchObject({ id: 1, reason: "hash_mismatch" });
  });
});

describe("retention arithmetic", () => {
  it("uses a positive per-conversation override, else the default", () => {
    expect(retentionDays(null, 90)).toBe(90);
    expect(retentionDays(30, 90)).toBe(30);
    expect(retentionDays(0, 90)).toBe(90);
    expect(retentionDays(-5, 90)).toBe(90);
    const now = new Date("2025-06-01T00:00:00.000Z");
    expect(retentionCutoff(now, 90).toISOString()).toBe("2025-03-03T00:00:00.000Z");
  });
});

describe("npm run audit:verify usage", () => {
  it("refuses --conversation with --global (exit 2) instead of verifying the conversation alone and saying OK", { timeout: 30_000 }, async () => {
    const child = spawn(process.execPath, [path.join(ROOT, "node_modules/tsx/dist/cli.mjs"), "scripts/verify-audit.ts", "--conversation", crypto.randomUUID(), "--global"], {
      cwd: ROOT,
      // Nowhere to connect: a usage error is found before any connection.
      env: { ...process.env, DATABASE_URL: "postgres://nobody@127.0.0.1:1/none", PG_BRIDGE: "127.0.0.1:1" },
    });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (out += d));
    const code = await new Promise<number | null>((resolve) => child.on("exit", resolve));
    expect(out).toContain("use either --conversation <id> or --global, not both");
    expect(code).toBe(2);
  });

  it("--help prints the usage (exit 0), and a mistyped option shows it too (exit 2)", async () => {
    // --help said only "Unknown option '--help'" (exit 2), and so did a typo, with no list of the options.
    const run = async (args: string[]) => {
      let out = "";
      const line = (text: string) => (out += `${text}\n`);
      const code = await verifyAuditCli(args, { DATABASE_URL: "postgres://nobody@127.0.0.1:1/none", PG_BRIDGE: "127.0.0.1:1" }, { out: line, err: line });
      return { code, out };
    };
    const [help, typo] = await Promise.all([run(["--help"]), run(["--conversaton", crypto.randomUUID()])]);
    expect(help.code).toBe(0);
    expect(help.out).toContain("usage: npm run audit:verify -- [--conversation <id> | --global]");
    expect(help.out).toContain("--url https://chat.example.com --token <service token>");
    expect(typo.code).toBe(2);
    expect(typo.out).toContain("Unknown option '--conversaton'");
    expect(typo.out).toContain("usage: npm run audit:verify");
  });
});

describe("npm run soak / bench usage", () => {
  it("--help prints the usage and a mistyped option is refused, instead of starting a default run of minutes", { timeout: 30_000 }, async () => {
    // Before: the stack started (and would have run for minutes).
    const run = (args: string[], script = "scripts/soak.ts") => runScriptUntilStack(script, args);
    const [help, typo, benchTypo] = await Promise.all([run(["--help"]), run(["--minute", "30"]), run(["--qiuck"], "scripts/bench.ts")]);
    expect(help.code).toBe(0);
    expect(help.out).toContain("usage: npm run soak -- [--minutes N]");
    expect(typo.code).toBe(2);
    expect(typo.out).toContain("Unknown option --minute");
    expect(benchTypo.code).toBe(2);
    expect(benchTypo.out).toContain("Unknown option --qiuck");
    expect(benchTypo.out).toContain("usage: npm run bench -- [--quick]");
  });
});

describe.skipIf(!process.env.STACK_DATABASE_URL)("npm run audit:verify (against the stack's Postgres)", () => {
  // In-process (the spawned command is the usage test's above): each `tsx` start cost about 3 s of CPU in CI.
  async function runScript(args: string[], extraEnv: Record<string, string> = {}): Promise<{ code: number; out: string }> {
    let out = "";
    const line = (text: string) => (out += `${text}\n`);
    const env = { ...process.env, DATABASE_URL: process.env.STACK_DATABASE_URL, PG_BRIDGE: process.env.STACK_PG_BRIDGE, ...extraEnv };
    const code = await verifyAuditCli(args, env, { out: line, err: line });
    return { code, out };
  }

  it("reports an intact chain with exit 0 and the first edited row with exit 1", { timeout: 90_000 }, async () => {
    const pool = nodePool(process.env.STACK_DATABASE_URL!, process.env.STACK_PG_BRIDGE!, 2);
    const db = drizzle({ client: pool });
    const conversationId = crypto.randomUUID();
    try {
      await appendAudit(db, [
        { conversationId, actorId: null, action: "test.one", details: { n: 1 } },
        { conversationId, actorId: null, action: "test.two", details: { n: 2 } },
        { conversationId, actorId: null, action: "test.three", details: { n: 3 } },
      ]);
      const ok = await runScript(["--conversation", conversationId]);
      expect(ok.out).toContain("OK: every chain verifies");
      expect(ok.code).toBe(0);
      const ids = await db.execute<{ id: string }>(sql`SELECT id FROM audit_log WHERE conversation_id = ${conversationId} ORDER BY id`);
      const second = Number(ids.rows[1].id);
      // As the table's owner could, past the append-only trigger (migration 0008).
      await db.transaction(async (tx) => {
        await tx.execute(sql`ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only`);
        await tx.execute(sql`UPDATE audit_log SET details = '{"n": 22}'::jsonb WHERE id = ${second}`);
        await tx.execute(sql`ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only`);
      });
      const bad = await runScript(["--conversation", conversationId]);
      expect(bad.out).toContain(`first broken row id=${second} (hash_mismatch)`);
      expect(bad.code).toBe(1);
    } finally {
      await pool.end();
    }
  });

  it("checks each chain against its anchor in Redis: removed newest entries fail it with exit 1", { timeout: 90_000 }, async () => {
    const vars = JSON.parse(process.env.STACK_WORKER_VARS ?? "{}") as Record<string, string>;
    const redis = new Redis({ url: vars.UPSTASH_REDIS_REST_URL, token: vars.UPSTASH_REDIS_REST_TOKEN, enableTelemetry: false });
    const withRedis = { UPSTASH_REDIS_REST_URL: vars.UPSTASH_REDIS_REST_URL, UPSTASH_REDIS_REST_TOKEN: vars.UPSTASH_REDIS_REST_TOKEN };
    const pool = nodePool(process.env.STACK_DATABASE_URL!, process.env.STACK_PG_BRIDGE!, 2);
    const db = drizzle({ client: pool });
    const conversationId = crypto.randomUUID();
    try {
      await appendAudit(db, [1, 2, 3].map((n) => ({ conversationId, actorId: null, action: "test.anchored", details: { n } })));
      const rows = await db.execute<{ id: string; hash: string }>(sql`SELECT id, hash FROM audit_log WHERE conversation_id = ${conversationId} ORDER BY id`);
      const newest = rows.rows[2];
      // What the audit.anchor job would have written for this chain.
      await redis.hset(ANCHORS_KEY, { [conversationId]: `${newest.id}:${newest.hash}` });
      const ok = await runScript(["--conversation", conversationId], withRedis);
      expect(ok.out, ok.out).toContain("anchors: 1 chain(s) checked");
      expect(ok.code, ok.out).toBe(0);
      await db.transaction(async (tx) => {
        await tx.execute(sql`ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only`);
        await tx.execute(sql`DELETE FROM audit_log WHERE id = ${Number(newest.id)}`);
        await tx.execute(sql`ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only`);
      });
      const cut = await runScript(["--conversation", conversationId], withRedis);
      expect(cut.out, cut.out).toContain(`first broken row id=${newest.id} (anchored_entry_missing)`);
      expect(cut.code).toBe(1);
    } finally {
      await pool.end();
    }
  });

  it("never says OK for a conversation with no audit entries: exit 4 for a known one, 2 for an unknown id", { timeout: 90_000 }, async () => {
    const pool = nodePool(process.env.STACK_DATABASE_URL!, process.env.STACK_PG_BRIDGE!, 2);
    const db = drizzle({ client: pool });
    const conversationId = crypto.randomUUID();
    const userId = crypto.randomUUID();
    try {
      // A conversation written straight into Postgres, without the first entry the API writes with it.
      await db.execute(sql`INSERT INTO users (id, kaha_id) VALUES (${userId}::uuid, ${`empty-${userId.slice(0, 8)}`})`);
      await db.execute(sql`INSERT INTO conversations (id, type, name, created_by) VALUES (${conversationId}::uuid, 'group', 'no audit', ${userId}::uuid)`);
      const modes = [[], ...(process.env.STACK_BASE_URL ? [["--url", process.env.STACK_BASE_URL]] : [])];
      for (const mode of modes) {
        const empty = await runScript(["--conversation", conversationId, ...mode]);
        expect(empty.out, empty.out).toContain("NOTHING TO VERIFY");
        expect(empty.out).not.toContain("OK:");
        expect(empty.code, empty.out).toBe(4);
        const unknown = crypto.randomUUID();
        const missing = await runScript(["--conversation", unknown, ...mode]);
        expect(missing.out, missing.out).toContain(`conversation ${unknown} not found`);
        expect(missing.code, missing.out).toBe(2);
      }
    } finally {
      await pool.end();
    }
  });

  it("never says OK when it stopped at the row cap: it names what it checked and exits 3", { timeout: 90_000 }, async () => {
    const pool = nodePool(process.env.STACK_DATABASE_URL!, process.env.STACK_PG_BRIDGE!, 2);
    const db = drizzle({ client: pool });
    const conversationId = crypto.randomUUID();
    try {
      await appendAudit(db, [1, 2, 3].map((n) => ({ conversationId, actorId: null, action: "test.capped", details: { n } })));
      // Straight from Postgres, and through the Worker (whose route caps every call).
      const modes = [[], ...(process.env.STACK_BASE_URL ? [["--url", process.env.STACK_BASE_URL]] : [])];
      for (const mode of modes) {
        const capped = await runScript(["--conversation", conversationId, "--max-rows", "2", ...mode]);
        expect(capped.out, capped.out).toContain("INCOMPLETE: verified 2 row(s)");
        expect(capped.out).not.toContain("OK:");
        expect(capped.code, capped.out).toBe(3);
        const whole = await runScript(["--conversation", conversationId, "--max-rows", "3", ...mode]);
        expect(whole.out, whole.out).toContain("OK: every chain verifies");
        expect(whole.code).toBe(0);
      }
    } finally {
      await pool.end();
    }
  });
});
