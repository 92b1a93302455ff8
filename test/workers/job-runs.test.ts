// Jobs as an operator sees them across runs: paging through more work than one run takes (presence reconcile,
// outbox sweep), a run whose end could not be recorded, and manual runs that were skipped. Jobs run under their own
// names and scopes, so files running at the same time do not see each other's work.
import { env, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { sql } from "drizzle-orm";
import type { ConversationRoom } from "../../src/durable-objects/conversation-room";
import { getConfig } from "../../src/lib/config";
import { createLogger, type LogFields, type Logger } from "../../src/lib/log";
import { claimJob } from "../../src/db/queries/maintenance";
import { createRedis } from "../../src/lib/redis";
import { runJob, type JobDefinition } from "../../src/jobs/runner";
import { SWEEP_MIN_AGE_MS, outboxSweepJob, presenceReconcileJob } from "../../src/jobs/maintenance";
import { OUTBOX_PENDING_KEY } from "../../src/jobs/outbox-registry";
import { seedConversation, withDb } from "./fixtures";

const HOUR = 3_600_000;
const config = getConfig(env);
const unique = (prefix: string) => `${prefix}:${crypto.randomUUID().slice(0, 8)}`;

async function run(job: JobDefinition, options: { now?: Date; force?: boolean } = {}) {
  return withDb((db) => runJob(job, { env, config, db, log: createLogger({ test: "job-runs" }), force: true, ...options }));
}

async function jobRow(name: string) {
  const rows = await withDb((db) =>
    db.execute<{ finished_at: string | null; rows: number; cursor: unknown; details: Record<string, unknown> }>(
      sql`SELECT finished_at, rows, cursor, details FROM job_runs WHERE job = ${name}`,
    ),
  );
  return rows.rows[0];
}

/** A room whose outbox can never be flushed: its message belongs to a conversation Postgres does not have. */
async function stuckRoom(): Promise<string> {
  const id = crypto.randomUUID();
  const stub = env.CONVERSATION_ROOM.get(env.CONVERSATION_ROOM.idFromName(id));
  await runInDurableObject(stub, (room: ConversationRoom) => {
    room.store.initialise({ conversationId: id, type: "group", lastSeq: 0, pgSeqAtInit: 0, clientIdsPrunedBelow: 0, closed: false, heldFrom: 1 }, [], []);
    room.store.appendMessage(
      (seq) => ({
        id: crypto.randomUUID(),
        conversationId: id,
        seq,
        senderId: crypto.randomUUID(),
        clientMessageId: null,
        type: "text",
        content: "never flushed",
        replyToId: null,
        createdAt: new Date().toISOString(),
        editedAt: null,
        deletedAt: null,
        status: "pending",
        eventSeq: seq,
      }),
      "hash",
    );
  });
  return id;
}

/** Ends a stuck room's retries (its alarm would keep failing for the rest of the file). */
async function unstick(id: string): Promise<void> {
  const stub = env.CONVERSATION_ROOM.get(env.CONVERSATION_ROOM.idFromName(id));
  await runInDurableObject(stub, (room: ConversationRoom) => room.store.markFlushed(room.store.pending()));
  await createRedis(config).zrem(OUTBOX_PENDING_KEY, id);
}

describe("jobs that take a page per run", () => {
  it("presence reconcile says there is more when its page was full, and the next run checks the rest", { timeout: 60_000 }, async () => {
    const base = new Date();
    const { users } = await seedConversation("group", 3);
    const ids = users.map((u) => u.id);
    // Flags left online by failed writes, long ago; none of these users has a device.
    for (const [i, id] of ids.entries()) {
      const at = new Date(base.getTime() - 2 * HOUR + i * 1000).toISOString();
      await withDb((db) => db.execute(sql`UPDATE users SET online = true, last_seen_at = ${at}::timestamptz WHERE id = ${id}::uuid`));
    }
    const job = presenceReconcileJob({ name: unique("presence.reconcile"), userIds: ids, limit: 2 });
    const first = await run(job, { now: base, force: false });
    expect(first).toMatchObject({ status: "ok", rows: 2, more: true });
    const second = await run(job, { now: base, force: false });
    expect(second).toMatchObject({ status: "ok", rows: 1, more: false });
    const online = await withDb((db) =>
      db.execute<{ n: number }>(sql`SELECT count(*)::int AS n FROM users WHERE online AND id IN (${sql.join(ids.map((i) => sql`${i}::uuid`), sql`, `)})`),
    );
    expect(online.rows[0].n).toBe(0);
  });

  it("the outbox sweeper reaches newer registrations while the oldest ones keep failing", { timeout: 60_000 }, async () => {
    const key = unique("test:outbox:pending");
    const redis = createRedis(config);
    const stuck = [await stuckRoom(), await stuckRoom()];
    const healthy = crypto.randomUUID(); // a room with nothing pending: the sweeper drops its registration
    const base = Date.now();
    await redis.zadd(key, { score: base, member: stuck[0] }, { score: base + 1, member: stuck[1] }, { score: base + 2, member: healthy });
    const job = outboxSweepJob({ name: unique("outbox.sweep"), limit: 2, registryKey: key });
    const now = new Date(base + SWEEP_MIN_AGE_MS + 1000);
    try {
      const first = await run(job, { now });
      expect(first).toMatchObject({ status: "ok", details: { checked: 2, stillPending: 2 } });
      const second = await run(job, { now });
      expect(second.status).toBe("ok");
      expect(await redis.zscore(key, healthy)).toBeNull();
      // The stuck rooms stay registered for later runs.
      expect(await redis.zscore(key, stuck[0])).not.toBeNull();
      expect(await redis.zscore(key, stuck[1])).not.toBeNull();
    } finally {
      await redis.del(key);
      for (const id of stuck) await unstick(id);
    }
  });
  it("the outbox sweeper pages past registrations that share a score", { timeout: 60_000 }, async () => {
    const key = unique("test:outbox:pending");
    const redis = createRedis(config);
    const stuck = [await stuckRoom(), await stuckRoom()];
    const healthy = crypto.randomUUID();
    const base = Date.now();
    // Redis orders equal scores by member: wherever `healthy` falls, a page of one reaches it within three runs.
    await redis.zadd(key, { score: base, member: stuck[0] }, { score: base, member: stuck[1] }, { score: base, member: healthy });
    const job = outboxSweepJob({ name: unique("outbox.sweep"), limit: 1, registryKey: key });
    const now = new Date(base + SWEEP_MIN_AGE_MS + 1000);
    try {
      const reports = [await run(job, { now }), await run(job, { now }), await run(job, { now })];
      expect(reports.map((r) => r.status)).toEqual(["ok", "ok", "ok"]);
      expect(await redis.zscore(key, healthy)).toBeNull();
      expect(await redis.zcard(key)).toBe(2);
    } finally {
      await redis.del(key);
      for (const id of stuck) await unstick(id);
    }
  });
});

describe("job bookkeeping", () => {
  it("a run that failed on a query records and logs Postgres's reason, not the start of the statement", async () => {
    // job_runs and the "job finished" line said "Failed query: SELECT …", cut off before why it failed.
    const name = unique("failing-query");
    const lines: LogFields[] = [];
    const log: Logger = { ...createLogger(), error: (_msg, fields) => void lines.push(fields ?? {}), child: () => log };
    const job: JobDefinition = {
      name,
      intervalMs: HOUR,
      run: async (ctx) => {
        await ctx.db.execute(sql`SELECT ${"x".repeat(400)}::text AS padding FROM job_table_never_migrated`);
        return { rows: 0 };
      },
    };
    const report = await withDb((db) => runJob(job, { env, config, db, log, force: true }));
    expect(report).toMatchObject({ status: "failed", details: { ok: false, error: expect.stringContaining('relation "job_table_never_migrated" does not exist') } });
    expect((await jobRow(name)).details.error).toContain('relation "job_table_never_migrated" does not exist');
    expect(String(lines.at(-1)?.error)).toContain("does not exist");
  });

  it("a run whose end could not be recorded does not block the next run for the lease", async () => {
    let calls = 0;
    const job: JobDefinition = {
      name: unique("test.end-write"),
      intervalMs: 0,
      async run() {
        calls++;
        // Postgres refuses this in jsonb (a NUL character, e.g. from an upstream error text): the end write fails.
        return calls === 1 ? { rows: 1, details: { note: "bad\u0000byte" } } : { rows: 2, details: {} };
      },
    };
    const first = await run(job);
    expect(first.status).not.toBe("skipped");
    // The operator sees the run ended, and failed (its progress was not recorded).
    const row = await jobRow(job.name);
    expect(row.finished_at).not.toBeNull();
    expect(row.details).toMatchObject({ ok: false, error: expect.stringContaining("could not be recorded") });
    const second = await run(job);
    expect(second).toMatchObject({ status: "ok", rows: 2 });
    expect(calls).toBe(2);
  });

  it("a run whose lease another runner took over records nothing over that runner's, and logs that it lost it", async () => {
    const lines: { level: string; msg: string; fields?: LogFields }[] = [];
    const capture = (): Logger => ({
      info: (msg, fields) => lines.push({ level: "info", msg, fields }),
      warn: (msg, fields) => lines.push({ level: "warn", msg, fields }),
      error: (msg, fields) => lines.push({ level: "error", msg, fields }),
      child: () => capture(),
    });
    const t0 = Date.now();
    const overtaken = (end: "ok" | "unwritable"): JobDefinition => {
      const name = unique(`test.overtaken-${end}`);
      return {
        name,
        intervalMs: 0,
        async run(ctx) {
          // Presumed dead past its lease, this run is overtaken by another runner's claim, still working.
          const other = await claimJob(ctx.db, name, new Date(t0 + HOUR), { leaseMs: 60_000, minIntervalMs: 0, force: true });
          expect(other).toBeDefined();
          // "unwritable": jsonb refuses the NUL, so the runner falls back to releasing the lease.
          return { rows: 7, details: { note: end === "ok" ? "stale" : "bad\u0000byte" }, cursor: { from: "the stale run" } };
        },
      };
    };
    for (const end of ["ok", "unwritable"] as const) {
      lines.length = 0;
      const job = overtaken(end);
      await withDb((db) => runJob(job, { env, config, db, log: capture(), now: new Date(t0), force: true }));
      // The other runner's claim stands as it wrote it: running, no rows, no cursor of the stale run.
      const row = await jobRow(job.name);
      expect(row, end).toMatchObject({ finished_at: null, rows: 0, cursor: null, details: {} });
      expect(lines.filter((l) => l.level === "warn").map((l) => l.msg), end).toEqual([expect.stringContaining("lease lost")]);
    }
  });

  it("a run inside a long time budget keeps its lease: the next Cron run does not start the job beside it", async () => {
    let release!: () => void;
    const blocked = new Promise<void>((resolve) => (release = resolve));
    let runs = 0;
    const job: JobDefinition = {
      name: unique("test.long-budget"),
      intervalMs: 0,
      async run() {
        runs++;
        if (runs === 1) await blocked; // still working through its budget
        return { rows: 0 };
      },
    };
    // The longest budget the configuration accepts (JOB_TIME_BUDGET_MS, 10 minutes): a run may use all of it, and
    // its last batch starts before the deadline and ends after it.
    const long = { ...config, JOB_TIME_BUDGET_MS: 600_000 };
    const t0 = Date.now();
    const first = withDb((db) => runJob(job, { env, config: long, db, log: createLogger({ test: "job-runs" }), now: new Date(t0) }));
    for (let i = 0; runs === 0 && i < 200; i++) await new Promise((r) => setTimeout(r, 25));
    expect(runs).toBe(1);
    try {
      // The Cron run ten and a half minutes later, while the first run is in its last batch.
      const second = await withDb((db) =>
        runJob(job, { env, config: long, db, log: createLogger({ test: "job-runs" }), now: new Date(t0 + 10.5 * 60_000) }),
      );
      expect(second).toMatchObject({ status: "skipped" });
      expect(runs).toBe(1);
    } finally {
      release();
      await first;
    }
  });
});
