// Retention and audit edge cases: what the audit log must record whatever a client sends, and what the retention
// jobs must leave alone when the conversation changes under them (legal hold, an edit racing the archive move).
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { sql, type SQL } from "drizzle-orm";
import { PgDialect } from "drizzle-orm/pg-core";
import type { Db } from "../../src/db/client";
import { appendAudit } from "../../src/db/queries/audit";
import { flushBatch, messageRange } from "../../src/db/queries/messages";
import { archiveCandidates, moveArchiveBatch, retentionCutoff, SCAN_START, unredactedDeleteEvents, type Tx } from "../../src/db/queries/retention";
import { purgeJob, redactMessageHistory } from "../../src/jobs/purge";
import { archiveJob } from "../../src/jobs/retention";
import { runJob } from "../../src/jobs/runner";
import { getConfig } from "../../src/lib/config";
import { createLogger } from "../../src/lib/log";
import { api, expectErrorShape, newUser, signWith } from "./helpers";
import { seedConversation, withDb, seedMessages, seqs } from "./fixtures";

const DAY = 86_400_000;
const config = getConfig(env);

const asDb = (tx: Tx) => tx as unknown as Db;

async function waitUntilTrue(check: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > until) throw new Error("condition not reached in time");
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe("audit of authentication failures", () => {
  it("records a failure whose request path carries an encoded NUL (jsonb refuses \\u0000: the entry was lost)", { timeout: 30_000 }, async () => {
    const claimed = crypto.randomUUID();
    const forged = await signWith({ id: claimed, kahaId: "mallory", exp: Math.floor(Date.now() / 1000) + 60 }, "n".repeat(40));
    const res = await api("GET", `/conversations/${crypto.randomUUID()}%00/messages`, { token: forged, headers: { "cf-connecting-ip": "192.0.2.78" } });
    expectErrorShape(res, 401);
    let details: Record<string, unknown> | undefined;
    await waitUntilTrue(async () => {
      const rows = await withDb((db) =>
        db.execute<{ details: Record<string, unknown> }>(sql`SELECT details FROM audit_log WHERE action = 'auth.failed' AND target_id = ${claimed}`),
      );
      details = rows.rows[0]?.details;
      return details !== undefined;
    });
    expect(details).toMatchObject({ reasonClass: "signature", ip: "192.0.2.78", method: "GET" });
    expect(String(details!.path)).toMatch(/^\/conversations\/[0-9a-f-]{36}.+\/messages$/);
  });

  it("records a failure whose path is cut through a surrogate pair (half an emoji is refused the same way)", { timeout: 30_000 }, async () => {
    // The path is kept to 200 UTF-16 units.
    const other = crypto.randomUUID();
    const token = await signWith({ id: other, kahaId: "mallory", exp: Math.floor(Date.now() / 1000) + 60 }, "n".repeat(40));
    const id = `${"a".repeat(200 - "/conversations/".length - 1)}${encodeURIComponent("\u{1F600}")}`;
    expectErrorShape(await api("GET", `/conversations/${id}/messages`, { token }), 401);
    await waitUntilTrue(async () => {
      const rows = await withDb((db) => db.execute(sql`SELECT 1 FROM audit_log WHERE action = 'auth.failed' AND target_id = ${other}`));
      return rows.rows.length > 0;
    });
  });
});

describe("audit of retention changes", () => {
  it("a change that changes nothing (the same settings again) writes no audit entry and answers the same", async () => {
    const service = await newUser("svc", "admin");
    const { id } = await seedConversation("group", 2);
    const put = (body: unknown) => api("PUT", `/operations/conversations/${id}/retention`, { token: service.token, body });
    const entries = async () =>
      (
        await withDb((db) =>
          db.execute<{ details: Record<string, unknown> }>(
            sql`SELECT details FROM audit_log WHERE conversation_id = ${id}::uuid AND action = 'admin.retention_changed' ORDER BY id`,
          ),
        )
      ).rows.map((r) => r.details);
    // The defaults already: nothing changes.
    expect((await put({ retentionDays: null, legalHold: false })).body).toMatchObject({ retentionDays: null, legalHold: false });
    expect(await entries()).toEqual([]);
    const first = await put({ retentionDays: 30 });
    expect(first.status).toBe(200);
    expect(await entries()).toHaveLength(1);
    const again = await put({ retentionDays: 30 });
    expect(again.status).toBe(200);
    expect(again.body).toEqual(first.body);
    expect(await put({ retentionDays: 30, legalHold: false })).toMatchObject({ status: 200, body: first.body });
    expect(await entries()).toHaveLength(1);
    // A request that changes one of the two is still recorded, with both as they were and are.
    expect((await put({ retentionDays: 30, legalHold: true })).body).toMatchObject({ retentionDays: 30, legalHold: true });
    const recorded = await entries();
    expect(recorded).toHaveLength(2);
    expect(recorded[1]).toEqual({ before: { retentionDays: 30, legalHold: false }, after: { retentionDays: 30, legalHold: true } });
  });
});

describe("retention under concurrent changes", () => {
  it("a delete flushed while the archive job moves its message reaches the archive, and the message is not back in history", { timeout: 60_000 }, async () => {
    const now = new Date();
    const { id, users } = await seedConversation("group", 3);
    await seedMessages(id, users[0].id, 1, 3, new Date(now.getTime() - 91 * DAY));
    const [second] = (await withDb((db) => messageRange(db, id, 2, 2))).messages;
    const tombstone = { ...second, content: "", deletedAt: new Date().toISOString(), eventSeq: 3 };
    let flushed: Promise<void> | undefined;
    await withDb((db) =>
      db.transaction(async (tx) => {
        // The job's statement has moved the prefix and not committed yet when the room flushes the delete.
        expect((await moveArchiveBatch(asDb(tx), id, retentionCutoff(now, 90), 500, now)).moved).toBe(3);
        flushed = withDb((other) => flushBatch(other, id, [tombstone], []));
        await new Promise((r) => setTimeout(r, 1500));
      }),
    );
    await flushed;
    // The flush read the archive mark from before the move, so it upserted the tombstone into `messages` again: one
    // message in both tables, and the archive served the deleted text to every member until the next pass.
    expect(await seqs("messages", id)).toEqual([]);
    const archive = await api("GET", `/conversations/${id}/archive`, { token: users[1].token });
    expect(archive.body.messages.map((m: { seq: number; content: string; deletedAt: string | null }) => [m.seq, m.content, m.deletedAt !== null])).toEqual([
      [1, "old message 1", false],
      [2, "", true],
      [3, "old message 3", false],
    ]);
  });

  it("the archive job moves nothing of a conversation put on legal hold after its page was read", { timeout: 60_000 }, async () => {
    const now = new Date();
    const service = await newUser("svc", "admin");
    const { id, users } = await seedConversation("direct", 2);
    await seedMessages(id, users[0].id, 1, 3, new Date(now.getTime() - 200 * DAY));
    const [candidate] = await withDb((db) => archiveCandidates(db, { after: SCAN_START, upTo: id }, now, 90, [id]));
    expect(candidate?.id).toBe(id);
    const hold = await api("PUT", `/operations/conversations/${id}/retention`, { token: service.token, body: { legalHold: true } });
    expect(hold.body).toMatchObject({ legalHold: true });
    expect(await withDb((db) => moveArchiveBatch(db, id, candidate.cutoff, 500, now))).toMatchObject({ moved: 0 });
    expect(await seqs("messages", id)).toEqual([1, 2, 3]);
    // And a whole run still says so.
    const report = await withDb((db) =>
      runJob(archiveJob({ conversationIds: [id], name: `retention.archive:${crypto.randomUUID().slice(0, 8)}` }), {
        env,
        config,
        db,
        log: createLogger({ test: "retention-audit" }),
        force: true,
        now,
      }),
    );
    expect(report).toMatchObject({ status: "ok", rows: 0 });
  });

  it("the purge keeps the deleted content of a conversation put on legal hold after its page of deletions was read", { timeout: 60_000 }, async () => {
    const now = new Date();
    const service = await newUser("svc", "admin");
    const { id, users } = await seedConversation("group", 3);
    const target = crypto.randomUUID();
    const at = new Date(now.getTime() - 40 * DAY).toISOString();
    await withDb((db) =>
      appendAudit(db, [
        { conversationId: id, actorId: users[0].id, action: "message.deleted", targetId: target, details: { seq: 1, previousContent: "EVIDENCE" }, at },
      ]),
    );
    const events = (await withDb((db) => unredactedDeleteEvents(db, retentionCutoff(now, 30), 100_000))).filter((e) => e.conversationId === id);
    expect(events).toHaveLength(1);
    // An operator places the hold while the purge works through the page it read.
    await api("PUT", `/operations/conversations/${id}/retention`, { token: service.token, body: { legalHold: true } });
    const result = await withDb((db) => redactMessageHistory(db, events[0], now));
    expect(result.redacted).toBe(0);
    const stored = await withDb((db) =>
      db.execute<{ details: Record<string, unknown> }>(sql`SELECT details FROM audit_log WHERE conversation_id = ${id}::uuid AND action = 'message.deleted'`),
    );
    expect(stored.rows[0].details.previousContent).toBe("EVIDENCE");
  });
});

describe("retention job failures", () => {
  it("a run that fails midway reports the messages it moved and resumes after the conversations it finished", { timeout: 60_000 }, async () => {
    const now = new Date();
    const [a, b] = (await Promise.all([seedConversation("direct", 2), seedConversation("direct", 2)])).sort((x, y) => (x.id < y.id ? -1 : 1));
    await seedMessages(a.id, a.users[0].id, 1, 3, new Date(now.getTime() - 100 * DAY));
    await seedMessages(b.id, b.users[0].id, 1, 2, new Date(now.getTime() - 100 * DAY));
    const name = `retention.archive:${crypto.randomUUID().slice(0, 8)}`;
    const job = archiveJob({ conversationIds: [a.id, b.id], name });
    const dialect = new PgDialect();
    // Postgres goes away as the run reaches the second conversation (its first move fails).
    const report = await withDb((db) => {
      const flaky = new Proxy(db, {
        get(target, prop, receiver) {
          if (prop !== "execute") return Reflect.get(target, prop, receiver);
          return (query: SQL) => {
            const { sql: text, params } = dialect.sqlToQuery(query);
            if (text.includes("DELETE FROM messages") && params.includes(b.id)) return Promise.reject(new Error("Connection terminated unexpectedly"));
            return target.execute(query);
          };
        },
      });
      return runJob(job, { env, config, db: flaky, log: createLogger({ test: "retention-audit" }), force: true, now });
    });
    expect(await seqs("message_archive", a.id)).toEqual([1, 2, 3]);
    // It said "0 rows" and nothing else of the three messages it had moved, and kept the cursor of the run before.
    expect(report).toMatchObject({ status: "failed", rows: 3, details: { ok: false, moved: 3, error: "Connection terminated unexpectedly" } });
    const saved = await withDb((db) => db.execute<{ rows: number; cursor: unknown }>(sql`SELECT rows, cursor FROM job_runs WHERE job = ${name}`));
    expect(saved.rows[0]).toMatchObject({ rows: 3, cursor: { after: a.id } });
    const again = await withDb((db) => runJob(job, { env, config, db, log: createLogger({ test: "retention-audit" }), force: true, now }));
    expect(again).toMatchObject({ status: "ok", rows: 2, details: { conversations: 1 } });
    expect(await seqs("message_archive", b.id)).toEqual([1, 2]);
  });

  it("a purge that fails midway reports the deletions it redacted", { timeout: 60_000 }, async () => {
    const now = new Date();
    const { id, users } = await seedConversation("group", 3);
    // Deleted a day ago, purged by a clock 100 days on: no other file's purge (their own clocks) reaches them.
    const at = (n: number) => new Date(now.getTime() - DAY + n).toISOString();
    const deleted = (n: number) => ({
      conversationId: id,
      actorId: users[0].id,
      action: "message.deleted",
      targetId: crypto.randomUUID(),
      details: { seq: n, previousContent: `GONE-${n}` },
      at: at(n),
    });
    await withDb((db) => appendAudit(db, [deleted(1), deleted(2)]));
    // Postgres goes away after the first redaction committed.
    let transactions = 0;
    const report = await withDb((db) => {
      const flaky = new Proxy(db, {
        get(target, prop, receiver) {
          if (prop !== "transaction") return Reflect.get(target, prop, receiver);
          return (...args: Parameters<typeof db.transaction>) =>
            ++transactions > 1 ? Promise.reject(new Error("Connection terminated unexpectedly")) : target.transaction(...args);
        },
      });
      return runJob(purgeJob({ name: `retention.purge:${crypto.randomUUID().slice(0, 8)}`, conversationIds: [id] }), {
        env,
        config,
        db: flaky,
        log: createLogger({ test: "retention-audit" }),
        force: true,
        now: new Date(now.getTime() + 100 * DAY),
      });
    });
    const text = JSON.stringify((await withDb((db) => db.execute(sql`SELECT details FROM audit_log WHERE conversation_id = ${id}::uuid`))).rows);
    expect(text).not.toContain("GONE-1");
    expect(text).toContain("GONE-2");
    // It said 0 rows, with nothing but the error.
    expect(report).toMatchObject({ status: "failed", rows: 1, details: { ok: false, messagesPurged: 1, entriesRedacted: 1, error: "Connection terminated unexpectedly" } });
  });
});
