// Issue [operations]: retention archive (controllable clock, legal hold, overrides, resumable batches), purge of
// deleted content, audit log (routes, verification, auth failures), jobs and the Cron Trigger, rate limits,
// metrics and log hygiene. Jobs are called directly with `now`, scoped to the test's conversations where they
// would otherwise touch data of other test files running at the same time.
import { createExecutionContext, createScheduledController, env, runInDurableObject, SELF, waitOnExecutionContext } from "cloudflare:test";
import { afterEach, describe, expect, it, vi } from "vitest";
import { sql } from "drizzle-orm";
import worker from "../../src/index";
import type { ConversationRoom } from "../../src/durable-objects/conversation-room";
import { getConfig } from "../../src/lib/config";
import { createLogger } from "../../src/lib/log";
import { createRedis } from "../../src/lib/redis";
import { appendAudit } from "../../src/db/queries/audit";
import { runJob, type JobDefinition } from "../../src/jobs/runner";
import { archiveJob } from "../../src/jobs/retention";
import { purgeJob } from "../../src/jobs/purge";
import { SWEEP_MIN_AGE_MS, outboxSweepJob, presenceReconcileJob, profileRefreshJob, ticketsJob } from "../../src/jobs/maintenance";
import { profileKey } from "../../src/profiles/keys";
import { OUTBOX_PENDING_KEY } from "../../src/jobs/outbox-registry";
import { metrics, type Labels } from "../../src/lib/metrics";
import { api, expectErrorShape, newUser, signWith, type TestUser } from "./helpers";
import { seedConversation, tamperAudit, withDb, seedMessages, seqs } from "./fixtures";

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const config = getConfig(env);
const unique = (prefix: string) => `${prefix}:${crypto.randomUUID().slice(0, 8)}`;

async function run(job: JobDefinition, options: { now?: Date; budgetMs?: number } = {}) {
  return withDb((db) => runJob(job, { env, config, db, log: createLogger({ test: "operations" }), force: true, ...options }));
}

async function archivedUpTo(conversationId: string): Promise<number> {
  const rows = await withDb((db) => db.execute<{ n: string }>(sql`SELECT archived_up_to_seq AS n FROM conversations WHERE id = ${conversationId}::uuid`));
  return Number(rows.rows[0].n);
}

/** A conversation socket that records every frame; `query` e.g. "?afterSeq=0" to resume on connect. */
async function openSocket(conversationId: string, user: TestUser, query = "") {
  const res = await SELF.fetch(`http://chat.test/conversations/${conversationId}/ws${query}`, {
    headers: { upgrade: "websocket", authorization: `Bearer ${user.token}` },
  });
  expect(res.status).toBe(101);
  const ws = res.webSocket!;
  const frames: { type: string; data: any }[] = [];
  ws.addEventListener("message", (e) => {
    frames.push(JSON.parse(e.data as string));
  });
  ws.accept();
  const waitFor = async (type: string, timeoutMs = 10_000) => {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const f = frames.find((x) => x.type === type);
      if (f) return f;
      if (Date.now() > until) throw new Error(`no ${type} frame; got ${frames.map((x) => x.type).join(",")}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  await waitFor("ready");
  return { ws, frames, waitFor };
}

async function waitUntilTrue(check: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > until) throw new Error("condition not reached in time");
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe("retention: archiving old messages", () => {
  it("answers a retry of an archived message with the original, not a 503 forever", async () => {
    const now = new Date();
    const { id, users } = await seedConversation("direct", 2);
    const t = users[0].token;
    const sent = await api("POST", `/conversations/${id}/messages`, { token: t, body: { content: "long ago", clientMessageId: "arch-1" } });
    expect(sent.status).toBe(201);
    await withDb((db) => db.execute(sql`UPDATE messages SET created_at = now() - interval '100 days' WHERE conversation_id = ${id}::uuid`));
    expect(await run(archiveJob({ conversationIds: [id], name: unique("retention.archive") }), { now })).toMatchObject({ rows: 1 });
    const retry = await api("POST", `/conversations/${id}/messages`, { token: t, body: { content: "long ago", clientMessageId: "arch-1" } });
    expect({ status: retry.status, id: retry.body.id, seq: retry.body.seq }).toEqual({ status: 200, id: sent.body.id, seq: 1 });
  });

  it("answers a retry of an archived message its room never knew with the original, never a second message", async () => {
    const now = new Date();
    const { id, users } = await seedConversation("direct", 2);
    const [sender] = users;
    // Sent long ago, before this room's storage (or more than 10,000 messages back): only Postgres knows its client id.
    await seedMessages(id, sender.id, 1, 2, new Date(now.getTime() - 91 * DAY));
    await withDb((db) => db.execute(sql`UPDATE messages SET client_message_id = 'outbox-1' WHERE conversation_id = ${id}::uuid AND seq = 1`));
    expect(await run(archiveJob({ conversationIds: [id], name: unique("retention.archive") }), { now })).toMatchObject({ rows: 2 });
    const original = await withDb((db) => db.execute<{ id: string }>(sql`SELECT id FROM message_archive WHERE conversation_id = ${id}::uuid AND seq = 1`));
    const retry = (content: string) => api("POST", `/conversations/${id}/messages`, { token: sender.token, body: { content, clientMessageId: "outbox-1" } });
    const again = await retry("old message 1");
    expect({ status: again.status, id: again.body.id, seq: again.body.seq }).toEqual({ status: 200, id: original.rows[0].id, seq: 1 });
    expectErrorShape(await retry("something else"), 409);
    expect(await seqs("messages", id)).toEqual([]);
  });

  it("lets members open, reply to and read up to an archived message, and its sender edit and delete it", { timeout: 90_000 }, async () => {
    const now = new Date();
    const { id, users } = await seedConversation("group", 3);
    const [owner, member] = users;
    await seedMessages(id, owner.id, 1, 3, new Date(now.getTime() - 91 * DAY));
    await seedMessages(id, member.id, 4, 5, new Date(now.getTime() - DAY));
    await run(archiveJob({ conversationIds: [id], name: unique("retention.archive") }), { now });
    const archived = (await api("GET", `/conversations/${id}/archive`, { token: member.token })).body.messages as { id: string; seq: number }[];
    const [first, second] = archived;
    const path = (m: { id: string }) => `/conversations/${id}/messages/${m.id}`;
    // All of these were a 404 (or a 400 for the reply), though /archive lists the message.
    expect((await api("GET", path(first), { token: member.token })).body).toMatchObject({ seq: 1, content: "old message 1" });
    const reply = await api("POST", `/conversations/${id}/messages`, { token: member.token, body: { content: "about that", replyToId: first.id } });
    expect(reply.status).toBe(201);
    expect(reply.body.replyToId).toBe(first.id);
    expect((await api("PUT", `/conversations/${id}/read`, { token: users[2].token, body: { messageId: second.id } })).body.lastReadSeq).toBe(2);
    const edited = await api("PATCH", path(second), { token: owner.token, body: { content: "old message 2, fixed" } });
    expect(edited.body).toMatchObject({ status: "sent", content: "old message 2, fixed" });
    expect((await api("DELETE", path(first), { token: owner.token })).status).toBe(204);
    // The changes are in the archive, not back in live history.
    const after = (await api("GET", `/conversations/${id}/archive`, { token: member.token })).body.messages as { seq: number; content: string; deletedAt: string | null }[];
    expect(after.map((m) => [m.seq, m.content, m.deletedAt !== null])).toEqual([
      [1, "", true],
      [2, "old message 2, fixed", false],
      [3, "old message 3", false],
    ]);
    expect(await seqs("messages", id)).toEqual([4, 5, 6]);
  });

  it("keeps a conversation's preview when every message has moved to the archive", { timeout: 90_000 }, async () => {
    const now = new Date();
    const { id, users } = await seedConversation("group", 3);
    await seedMessages(id, users[0].id, 1, 3, new Date(now.getTime() - 91 * DAY));
    expect(await run(archiveJob({ conversationIds: [id], name: unique("retention.archive") }), { now })).toMatchObject({ rows: 3 });
    expect(await seqs("messages", id)).toEqual([]);
    const one = await api("GET", `/conversations/${id}`, { token: users[1].token });
    expect(one.body).toMatchObject({ lastSeq: 3, lastMessage: { seq: 3, content: "old message 3", senderId: users[0].id } });
    const list = await api("GET", "/conversations?limit=100", { token: users[1].token });
    const listed = list.body.conversations.find((c: { id: string }) => c.id === id);
    expect(listed.lastMessage).toMatchObject({ seq: 3, content: "old message 3" });
  });

  it("moves messages past the 90-day default to the archive, tells the sockets, and serves them to members", { timeout: 90_000 }, async () => {
    const now = new Date();
    const { id, users } = await seedConversation("group", 3);
    await seedMessages(id, users[0].id, 1, 3, new Date(now.getTime() - 91 * DAY));
    await seedMessages(id, users[1].id, 4, 5, new Date(now.getTime() - 89 * DAY));
    const socket = await openSocket(id, users[1]);
    const name = unique("retention.archive");

    const first = await run(archiveJob({ conversationIds: [id], name }), { now });
    expect(first).toMatchObject({ status: "ok", rows: 3, more: false });
    expect(await seqs("messages", id)).toEqual([4, 5]);
    expect(await seqs("message_archive", id)).toEqual([1, 2, 3]);
    expect(await archivedUpTo(id)).toBe(3);
    expect((await socket.waitFor("messages_archived")).data).toEqual({ conversationId: id, upToSeq: 3 });

    const t = users[2].token;
    const history = await api("GET", `/conversations/${id}/messages`, { token: t });
    expect(history.body.messages.map((m: { seq: number }) => m.seq)).toEqual([4, 5]);
    // Numbered pages end at the archive mark too: they said hasMore (and counted 5) with only 4 and 5 left.
    const paged = await api("GET", `/conversations/${id}/messages?page=1&limit=2`, { token: t });
    expect(paged.body).toMatchObject({ hasMore: false, total: 2, page: 1, limit: 2 });
    expect(paged.body.messages.map((m: { seq: number }) => m.seq)).toEqual([4, 5]);
    const beyond = await api("GET", `/conversations/${id}/messages?page=2&limit=1`, { token: t });
    expect(beyond.body).toMatchObject({ hasMore: false, total: 2 });
    expect(beyond.body.messages.map((m: { seq: number }) => m.seq)).toEqual([4]);
    const archive = await api("GET", `/conversations/${id}/archive`, { token: t });
    expect(archive.status).toBe(200);
    expect(archive.body.messages.map((m: { seq: number }) => m.seq)).toEqual([1, 2, 3]);
    expect(archive.body.messages[0]).toMatchObject({ conversationId: id, senderId: users[0].id, content: "old message 1" });
    expect(archive.body.messages[0].sender).toMatchObject({ id: users[0].id });
    expect(archive.body.hasMore).toBe(false);
    const newest = await api("GET", `/conversations/${id}/archive?limit=2`, { token: t });
    expect(newest.body.messages.map((m: { seq: number }) => m.seq)).toEqual([2, 3]);
    expect(newest.body.hasMore).toBe(true);
    const older = await api("GET", `/conversations/${id}/archive?limit=2&before=2`, { token: t });
    expect(older.body.messages.map((m: { seq: number }) => m.seq)).toEqual([1]);
    expect(older.body.hasMore).toBe(false);

    const stranger = await newUser("stranger");
    expectErrorShape(await api("GET", `/conversations/${id}/archive`, { token: stranger.token }), 404);
    expectErrorShape(await api("GET", `/conversations/${crypto.randomUUID()}/archive`, { token: t }), 404);
    expectErrorShape(await api("GET", `/conversations/not-a-uuid/archive`, { token: t }), 404);
    expectErrorShape(await api("GET", `/conversations/${id}/archive?before=x`, { token: t }), 400);
    expectErrorShape(await api("GET", `/conversations/${id}/archive`), 401);

    // Two days later (a controllable clock), the 89-day-old messages are past 90 days too.
    const later = await run(archiveJob({ conversationIds: [id], name }), { now: new Date(now.getTime() + 2 * DAY) });
    expect(later).toMatchObject({ status: "ok", rows: 2 });
    expect(await seqs("messages", id)).toEqual([]);
    expect(await seqs("message_archive", id)).toEqual([1, 2, 3, 4, 5]);
    expect(await archivedUpTo(id)).toBe(5);
    // New messages keep their dense seq after the archived prefix.
    const sent = await api("POST", `/conversations/${id}/messages`, { token: t, body: { content: "still here" } });
    expect(sent.body.seq).toBe(6);
    socket.ws.close();
  });

  it("pages the room answers itself never show archived messages, also when the room missed the job's notice", { timeout: 90_000 }, async () => {
    const now = new Date();
    for (const notice of ["delivered", "lost"] as const) {
      const { id, users } = await seedConversation("direct", 2);
      const t = users[0].token;
      for (let i = 1; i <= 4; i++) await api("POST", `/conversations/${id}/messages`, { token: t, body: { content: `m${i}` } });
      // The first three were sent 91 days ago (the room holds its own copies of all four).
      await withDb((db) => db.execute(sql`UPDATE messages SET created_at = now() - interval '91 days' WHERE conversation_id = ${id}::uuid AND seq <= 3`));
      const rooms = notice === "lost" ? { idFromName: () => ({}), get: () => ({ archived: () => Promise.reject(new Error("notice lost")) }) } : env.CONVERSATION_ROOM;
      const report = await withDb((db) =>
        runJob(archiveJob({ conversationIds: [id], name: unique("retention.archive") }), {
          env: { ...env, CONVERSATION_ROOM: rooms as unknown as typeof env.CONVERSATION_ROOM },
          config,
          db,
          log: createLogger({ test: "operations" }),
          force: true,
          now,
        }),
      );
      expect(report).toMatchObject({ status: "ok", rows: 3 });
      // A room that missed the notice learns the mark when it next re-reads its state from Postgres.
      if (notice === "lost") {
        await runInDurableObject(env.CONVERSATION_ROOM.get(env.CONVERSATION_ROOM.idFromName(id)), async (room: ConversationRoom) => {
          room.membership.markChecked(0);
        });
      }
      const newest = await api("GET", `/conversations/${id}/messages`, { token: t });
      expect(newest.body.messages.map((m: { content: string }) => m.content), notice).toEqual(["m4"]);
      expect(newest.body.hasMore, notice).toBe(false);
      expect((await api("GET", `/conversations/${id}/messages?after=0`, { token: t })).body.messages.map((m: { seq: number }) => m.seq), notice).toEqual([4]);
      // A client resuming from the start hears of the archive, then gets only what is left.
      const socket = await openSocket(id, users[1], "?afterSeq=0");
      await socket.waitFor("resumed");
      expect(socket.frames.filter((f) => f.type === "new_message").map((f) => f.data.message.seq), notice).toEqual([4]);
      expect(socket.frames.find((f) => f.type === "messages_archived")?.data, notice).toEqual({ conversationId: id, upToSeq: 3 });
      socket.ws.close();
    }
  });

  it("skips conversations on legal hold and applies per-conversation retention overrides", { timeout: 90_000 }, async () => {
    const now = new Date();
    const service = await newUser("svc", "admin");
    const held = await seedConversation("direct", 2);
    const short = await seedConversation("direct", 2);
    const long = await seedConversation("direct", 2);
    await seedMessages(held.id, held.users[0].id, 1, 2, new Date(now.getTime() - 200 * DAY));
    await seedMessages(short.id, short.users[0].id, 1, 2, new Date(now.getTime() - 40 * DAY));
    await seedMessages(short.id, short.users[0].id, 3, 3, new Date(now.getTime() - 10 * DAY));
    await seedMessages(long.id, long.users[0].id, 1, 2, new Date(now.getTime() - 200 * DAY));

    const put = (cid: string, body: unknown, token = service.token) => api("PUT", `/operations/conversations/${cid}/retention`, { token, body });
    expect((await put(held.id, { legalHold: true })).body).toMatchObject({ conversationId: held.id, legalHold: true, retentionDays: null });
    expect((await put(short.id, { retentionDays: 30 })).body).toMatchObject({ retentionDays: 30, legalHold: false });
    expect((await put(long.id, { retentionDays: 365 })).status).toBe(200);
    expectErrorShape(await put(held.id, { legalHold: false }, held.users[0].token), 403);
    expectErrorShape(await put(held.id, {}), 400);
    expectErrorShape(await put(held.id, { retentionDays: 0 }), 400);
    expectErrorShape(await put(crypto.randomUUID(), { legalHold: true }), 404);

    const report = await run(archiveJob({ conversationIds: [held.id, short.id, long.id], name: unique("retention.archive") }), { now });
    expect(report).toMatchObject({ status: "ok", rows: 2 });
    expect(await seqs("messages", held.id)).toEqual([1, 2]);
    expect(await seqs("message_archive", short.id)).toEqual([1, 2]);
    expect(await seqs("messages", short.id)).toEqual([3]);
    expect(await seqs("messages", long.id)).toEqual([1, 2]);

    // The admin action is in the conversation's audit chain.
    const audit = await api("GET", `/conversations/${held.id}/audit`, { token: service.token });
    expect(audit.body.entries[0]).toMatchObject({ action: "admin.retention_changed", actorId: service.id, targetId: held.id });
    expect(audit.body.entries[0].details.after).toEqual({ retentionDays: null, legalHold: true });
  });

  it("archives only what is past 90 days of elapsed time, whatever time zone the database session is in", { timeout: 90_000 }, async () => {
    // Berlin moves to summer time on 2026-03-29: 90 calendar days before 2026-04-15 12:00Z there is 13:00Z on January
    // 15, an hour short of 90 days. The cutoff was computed in the session's time zone, and a message 89 days and 23.5
    // hours old moved to the archive.
    const now = new Date("2026-04-15T12:00:00Z");
    const { id, users } = await seedConversation("direct", 2);
    await seedMessages(id, users[0].id, 1, 1, new Date(now.getTime() - 90 * DAY - HOUR));
    await seedMessages(id, users[0].id, 2, 2, new Date(now.getTime() - 90 * DAY + HOUR / 2));
    const report = await withDb((db) =>
      db.transaction(async (tx) => {
        await tx.execute(sql`SET LOCAL TimeZone = 'Europe/Berlin'`);
        const job = archiveJob({ conversationIds: [id], name: unique("retention.archive") });
        return runJob(job, { env, config, db: tx as unknown as typeof db, log: createLogger({ test: "operations" }), force: true, now });
      }),
    );
    expect(report).toMatchObject({ status: "ok", rows: 1 });
    expect(await seqs("messages", id)).toEqual([2]);
    expect(await seqs("message_archive", id)).toEqual([1]);
  });

  it("moves in bounded batches and resumes after an interruption: every message exactly once", { timeout: 120_000 }, async () => {
    const now = new Date();
    const { id, users } = await seedConversation("direct", 2);
    await seedMessages(id, users[0].id, 1, 1200, new Date(now.getTime() - 100 * DAY));
    const name = unique("retention.archive");
    const job = archiveJob({ conversationIds: [id], name });

    // A budget of 0 ms: the run does one batch (500 rows) and stops, saving its place.
    const interrupted = await run(job, { now, budgetMs: 0 });
    expect(interrupted).toMatchObject({ status: "ok", rows: 500, more: true });
    expect((await seqs("message_archive", id)).length).toBe(500);
    expect((await seqs("messages", id))[0]).toBe(501);
    expect(await archivedUpTo(id)).toBe(500);
    const saved = await withDb((db) => db.execute<{ cursor: unknown; details: Record<string, unknown> }>(sql`SELECT cursor, details FROM job_runs WHERE job = ${name}`));
    expect(saved.rows[0].cursor).not.toBeNull();
    expect(saved.rows[0].details).toMatchObject({ ok: true, more: true, moved: 500 });

    const resumed = await run(job, { now });
    expect(resumed).toMatchObject({ status: "ok", rows: 700, more: false });
    const archived = await seqs("message_archive", id);
    expect(archived.length).toBe(1200);
    expect(archived).toEqual(Array.from({ length: 1200 }, (_, i) => i + 1));
    expect(await seqs("messages", id)).toEqual([]);
    expect(await archivedUpTo(id)).toBe(1200);
    const done = await withDb((db) => db.execute<{ cursor: unknown }>(sql`SELECT cursor FROM job_runs WHERE job = ${name}`));
    expect(done.rows[0].cursor).toBeNull();

    expect(await run(job, { now })).toMatchObject({ status: "ok", rows: 0 });
  });
});

describe("purge of soft-deleted content", () => {
  it("redacts the previous content of messages deleted before the grace period, keeps the chain verifiable", { timeout: 90_000 }, async () => {
    const now = new Date();
    const service = await newUser("svc", "admin");
    const { id, users } = await seedConversation("group", 3);
    const held = await seedConversation("direct", 2);
    await api("PUT", `/operations/conversations/${held.id}/retention`, { token: service.token, body: { legalHold: true } });
    const [oldMsg, recentMsg, heldMsg] = [crypto.randomUUID(), crypto.randomUUID(), crypto.randomUUID()];
    const at = (days: number) => new Date(now.getTime() - days * DAY).toISOString();
    await withDb(async (db) => {
      await appendAudit(db, [
        { conversationId: id, actorId: users[0].id, action: "message.edited", targetId: oldMsg, details: { seq: 1, previousContent: "first draft PURGE-ME-1" }, at: at(40) },
        { conversationId: id, actorId: users[0].id, action: "message.deleted", targetId: oldMsg, details: { seq: 1, previousContent: "second PURGE-ME-2" }, at: at(31) },
        { conversationId: id, actorId: users[1].id, action: "message.deleted", targetId: recentMsg, details: { seq: 2, previousContent: "recent KEEP-ME" }, at: at(10) },
        { conversationId: held.id, actorId: held.users[0].id, action: "message.deleted", targetId: heldMsg, details: { seq: 1, previousContent: "held KEEP-ME" }, at: at(60) },
      ]);
      // A tombstone that still has content (written by some other path than the room).
      await db.execute(sql`
        INSERT INTO messages (id, conversation_id, seq, sender_id, type, content, created_at, deleted_at, event_seq)
        VALUES (${oldMsg}::uuid, ${id}::uuid, 1, ${users[0].id}::uuid, 'text', 'leftover PURGE-ME-3', ${at(45)}::timestamptz, ${at(31)}::timestamptz, 1)`);
    });

    const report = await run(purgeJob({ name: unique("retention.purge") }), { now });
    expect(report.status).toBe("ok");
    const entries = await withDb((db) =>
      db.execute<{ id: string; action: string; target_id: string; details: Record<string, any>; conversation_id: string }>(
        sql`SELECT id, action, target_id, details, conversation_id FROM audit_log WHERE conversation_id IN (${id}::uuid, ${held.id}::uuid) ORDER BY id`,
      ),
    );
    const text = JSON.stringify(entries.rows);
    expect(text).not.toContain("PURGE-ME");
    expect(text).toContain("recent KEEP-ME");
    expect(text).toContain("held KEEP-ME");
    const redacted = entries.rows.filter((r) => r.target_id === oldMsg);
    expect(redacted.map((r) => r.action)).toEqual(["message.edited", "message.deleted", "audit.redacted"]);
    expect(redacted[0].details.redacted).toMatchObject({ fields: ["previousContent"], reason: "deleted_content_grace" });
    expect(redacted[1].details).toMatchObject({ seq: 1 });
    expect(redacted[2].details.rows).toHaveLength(2);
    const tombstone = await withDb((db) => db.execute<{ content: string }>(sql`SELECT content FROM messages WHERE id = ${oldMsg}::uuid`));
    expect(tombstone.rows[0].content).toBe("");

    const verify = () => api("POST", "/operations/audit/verify", { token: service.token, body: { conversationId: id } });
    expect((await verify()).body).toMatchObject({ ok: true, chains: 1, rows: 4, redactedRows: 2, firstBroken: null });

    // Tampering with a redacted row is still detected.
    const target = Number(redacted[1].id);
    await tamperAudit(sql`UPDATE audit_log SET actor_id = ${users[2].id}::uuid WHERE id = ${target}`);
    expect((await verify()).body).toMatchObject({ ok: false, firstBroken: { conversationId: id, id: target, reason: "hash_mismatch" } });

    // A second run finds nothing left to purge in these conversations.
    await run(purgeJob({ name: unique("retention.purge") }), { now });
    const again = await withDb((db) => db.execute<{ n: string }>(sql`SELECT count(*) AS n FROM audit_log WHERE conversation_id = ${id}::uuid AND action = 'audit.redacted'`));
    expect(Number(again.rows[0].n)).toBe(1);
  });
});

describe("purge past entries it must refuse", () => {
  it("still redacts later deletions when the oldest ones do not verify", { timeout: 90_000 }, async () => {
    const now = new Date();
    const { id, users } = await seedConversation("group", 3);
    const at = (days: number, plusMs = 0) => new Date(now.getTime() - days * DAY + plusMs).toISOString();
    const entry = (n: number, text: string, when: string) => ({
      conversationId: id,
      actorId: users[0].id,
      action: "message.deleted",
      targetId: crypto.randomUUID(),
      details: { seq: n, previousContent: text },
      at: when,
    });
    // The oldest deletions anywhere, so they lead every page; then one intact deletion after them.
    const damaged = Array.from({ length: 50 }, (_, n) => entry(n + 1, `DAMAGED-${n + 1}`, at(4000, n)));
    const later = entry(4, "REDACT-ME-LATER", at(3999));
    await withDb((db) => appendAudit(db, [...damaged, later]));
    const ids = await withDb((db) =>
      db.execute<{ id: string }>(sql`SELECT id FROM audit_log WHERE conversation_id = ${id}::uuid AND details->>'previousContent' LIKE 'DAMAGED-%'`),
    );
    expect(ids.rows).toHaveLength(50);
    const damagedIds = ids.rows.map((r) => Number(r.id));
    await tamperAudit(sql`UPDATE audit_log SET details = jsonb_set(details, '{seq}', '0') WHERE id IN ${damagedIds}`);

    // A page (50) of refused entries: the run read the same page again, found nothing new and stopped, every run.
    await run(purgeJob({ name: unique("retention.purge") }), { now });
    const text = JSON.stringify(
      (await withDb((db) => db.execute(sql`SELECT details FROM audit_log WHERE conversation_id = ${id}::uuid ORDER BY id`))).rows,
    );
    expect(text).not.toContain("REDACT-ME-LATER");
    // Refused ones are left for an operator, not laundered.
    expect(text).toContain("DAMAGED-1");
  });
});

describe("audit log", () => {
  it("is readable by group admins and service tokens only; members get 403, strangers 404", async () => {
    const { id, users } = await seedConversation("group", 3);
    const service = await newUser("svc", "admin");
    await withDb((db) =>
      appendAudit(db, [
        { conversationId: id, actorId: users[0].id, action: "participant.role_changed", targetId: users[1].id, details: { role: "admin" } },
        { conversationId: id, actorId: users[1].id, action: "message.deleted", targetId: crypto.randomUUID(), details: { seq: 1, previousContent: "x" } },
      ]),
    );
    const admin = await api("GET", `/conversations/${id}/audit`, { token: users[0].token });
    expect(admin.status).toBe(200);
    expect(admin.body.entries.map((e: { action: string }) => e.action)).toEqual(["message.deleted", "participant.role_changed"]);
    expect(admin.body.entries[0].prevHash).toBe(admin.body.entries[1].hash);
    const paged = await api("GET", `/conversations/${id}/audit?limit=1`, { token: users[0].token });
    expect(paged.body.entries).toHaveLength(1);
    const next = await api("GET", `/conversations/${id}/audit?limit=1&before=${paged.body.nextBefore}`, { token: users[0].token });
    expect(next.body.entries[0].action).toBe("participant.role_changed");
    expect((await api("GET", `/conversations/${id}/audit`, { token: service.token })).status).toBe(200);
    expectErrorShape(await api("GET", `/conversations/${id}/audit`, { token: users[1].token }), 403);
    expectErrorShape(await api("GET", `/conversations/${id}/audit`, { token: (await newUser("stranger")).token }), 404);
    expectErrorShape(await api("GET", `/conversations/${crypto.randomUUID()}/audit`, { token: service.token }), 404);
    const direct = await seedConversation("direct", 2);
    expectErrorShape(await api("GET", `/conversations/${direct.id}/audit`, { token: direct.users[0].token }), 403);
  });

  it("the database refuses edits and deletes; verification detects an edited row and a removed row", async () => {
    const service = await newUser("svc", "admin");
    const conversationId = crypto.randomUUID();
    await withDb((db) =>
      appendAudit(db, [
        { conversationId, actorId: null, action: "test.one", details: { n: 1 } },
        { conversationId, actorId: null, action: "test.two", details: { n: 2 } },
        { conversationId, actorId: null, action: "test.three", details: { n: 3 } },
      ]),
    );
    const ids = (await withDb((db) => db.execute<{ id: string }>(sql`SELECT id FROM audit_log WHERE conversation_id = ${conversationId}::uuid ORDER BY id`))).rows.map(
      (r) => Number(r.id),
    );
    const verify = () => api("POST", "/operations/audit/verify", { token: service.token, body: { conversationId } });
    expect((await verify()).body).toMatchObject({ ok: true, chains: 1, rows: 3, broken: [] });
    // The database refuses both outright (migration 0008), also as one statement outside any job.
    const refused = async (statement: ReturnType<typeof sql>) => {
      const error = await withDb((db) => db.execute(statement)).then(
        () => undefined,
        (err: Error) => `${err.message} ${(err.cause as Error | undefined)?.message}`,
      );
      expect(error ?? "no error").toMatch(/audit_log is append-only/);
    };
    await refused(sql`UPDATE audit_log SET details = '{"n": 20}'::jsonb WHERE id = ${ids[1]}`);
    await refused(sql`UPDATE audit_log SET details = details - 'n' || '{"redacted": {"fields": ["previousContent"]}}'::jsonb WHERE id = ${ids[1]}`);
    await refused(sql`DELETE FROM audit_log WHERE id = ${ids[1]}`);
    expect((await verify()).body).toMatchObject({ ok: true, chains: 1, rows: 3 });
    // Whoever can switch the trigger off (the table's owner) is still caught by the chain.
    await tamperAudit(sql`UPDATE audit_log SET details = '{"n": 20}'::jsonb WHERE id = ${ids[1]}`);
    const edited = await verify();
    expect(edited.body).toMatchObject({ ok: false, firstBroken: { conversationId, id: ids[1], reason: "hash_mismatch" } });
    await tamperAudit(sql`DELETE FROM audit_log WHERE id = ${ids[1]}`);
    expect((await verify()).body.firstBroken).toEqual({ conversationId, id: ids[2], reason: "prev_hash_mismatch" });
    expectErrorShape(await api("POST", "/operations/audit/verify", { token: (await newUser("member")).token, body: {} }), 403);
    expectErrorShape(await api("POST", "/operations/audit/verify", { token: service.token, body: { conversationId: "nope" } }), 400);
    // Two chains asked for at once: the global flag was silently ignored.
    const both = { conversationId: crypto.randomUUID(), globalOnly: true };
    expectErrorShape(await api("POST", "/operations/audit/verify", { token: service.token, body: both }), 400);
    // The global chain can be verified on its own (no body at all is fine too).
    const global = await api("POST", "/operations/audit/verify", { token: service.token });
    expect(global.status).toBe(200);
    expect(typeof global.body.ok).toBe("boolean");
  });

  it("verification of a conversation with no audit entries says so: 404 for an unknown id, empty for a known one", async () => {
    const service = await newUser("svc", "admin");
    const verify = (conversationId: string) => api("POST", "/operations/audit/verify", { token: service.token, body: { conversationId } });
    // A mistyped id verified nothing and answered ok: true, as for an intact chain.
    expectErrorShape(await verify(crypto.randomUUID()), 404);
    // A conversation without entries (seeded straight into Postgres): 200, but flagged as nothing verified.
    const { id } = await seedConversation("group", 2);
    const empty = await verify(id);
    expect(empty.status).toBe(200);
    expect(empty.body).toMatchObject({ ok: true, chains: 0, rows: 0, empty: true });
    // Entries without a conversation row (a conversation since removed) are still verified.
    const orphan = crypto.randomUUID();
    await withDb((db) => appendAudit(db, [{ conversationId: orphan, actorId: null, action: "test.one", details: {} }]));
    expect((await verify(orphan)).body).toMatchObject({ ok: true, chains: 1, rows: 1, empty: false });
    await withDb((db) => appendAudit(db, [{ conversationId: id, actorId: null, action: "test.one", details: {} }]));
    expect((await verify(id)).body).toMatchObject({ ok: true, chains: 1, rows: 1, empty: false });
  });

  it("records authentication failures with the reason and the claimed user, never the token", { timeout: 60_000 }, async () => {
    const claimed = crypto.randomUUID();
    const forged = await signWith({ id: claimed, kahaId: "mallory", exp: Math.floor(Date.now() / 1000) + 60 }, "w".repeat(40));
    const res = await api("GET", "/auth/me", { token: forged, headers: { "cf-connecting-ip": "192.0.2.77", "user-agent": "ops-test" } });
    expectErrorShape(res, 401);
    let row: { actor_id: string | null; details: Record<string, unknown>; conversation_id: string | null } | undefined;
    await waitUntilTrue(async () => {
      const rows = await withDb((db) =>
        db.execute<{ actor_id: string | null; details: Record<string, unknown>; conversation_id: string | null }>(
          sql`SELECT actor_id, details, conversation_id FROM audit_log WHERE action = 'auth.failed' AND target_id = ${claimed}`,
        ),
      );
      row = rows.rows[0];
      return row !== undefined;
    });
    expect(row!.conversation_id).toBeNull();
    expect(row!.actor_id).toBeNull();
    expect(row!.details).toMatchObject({ reasonClass: "signature", ip: "192.0.2.77", method: "GET", path: "/auth/me", userAgent: "ops-test" });
    expect(JSON.stringify(row)).not.toContain(forged.split(".")[2]);
    const service = await newUser("svc", "admin");
    const global = await api("GET", "/operations/audit?limit=100", { token: service.token });
    expect(global.body.entries.some((e: { targetId: string }) => e.targetId === claimed)).toBe(true);
    // The profile service's own endpoint (its shared token, or an admin's) leaves the same trace.
    const guesser = crypto.randomUUID();
    const guess = await signWith({ id: guesser, kahaId: "mallory", exp: Math.floor(Date.now() / 1000) + 60 }, "g".repeat(40));
    expectErrorShape(await api("POST", "/profiles/invalidate", { token: guess, body: { user_uuids: [] } }), 401);
    await waitUntilTrue(async () => {
      const rows = await withDb((db) => db.execute(sql`SELECT 1 FROM audit_log WHERE action = 'auth.failed' AND target_id = ${guesser}`));
      return rows.rows.length > 0;
    });
  });
});

const CRON_JOBS = ["outbox.sweep", "presence.reconcile", "profiles.refresh-hot", "retention.archive", "retention.purge-deleted", "tickets.expire"];

describe("jobs", () => {
  afterEach(() => vi.restoreAllMocks());

  it("POST /operations/jobs/:job/run refuses a body (it takes none) before running anything", async () => {
    const service = await newUser("svc", "admin");
    // It answered 200 with the run's report, as if `force: false` (an option it does not have) had been taken.
    expectErrorShape(await api("POST", "/operations/jobs/tickets.expire/run", { token: service.token, body: { force: false } }), 400);
    expectErrorShape(await api("POST", "/operations/jobs/no.such.job/run", { token: service.token, body: {} }), 404);
  });

  it("the Cron Trigger runs every job, records it in job_runs, and /health/detailed shows them", { timeout: 120_000 }, async () => {
    // Each job waits out its interval after a run, and a persistent DATABASE_URL keeps the runs of earlier test runs.
    await withDb((db) => db.execute(sql`DELETE FROM job_runs WHERE job IN (${sql.join(CRON_JOBS.map((j) => sql`${j}`), sql`, `)})`));
    const ticket = `expired-${crypto.randomUUID()}`;
    await withDb((db) =>
      db.execute(sql`INSERT INTO realtime_tickets (ticket, user_id, kaha_id, expires_at) VALUES (${ticket}, ${crypto.randomUUID()}::uuid, 'k', now() - interval '1 hour')`),
    );
    const lines: string[] = [];
    const capture = (...args: unknown[]) => void lines.push(args.map(String).join(" "));
    vi.spyOn(console, "log").mockImplementation(capture);
    vi.spyOn(console, "error").mockImplementation(capture);
    const controller = createScheduledController({ scheduledTime: Date.now(), cron: "*/5 * * * *" });
    const ctx = createExecutionContext();
    await worker.scheduled(controller, env, ctx);
    await waitOnExecutionContext(ctx);
    vi.restoreAllMocks();
    // One structured line per job says what it did.
    const finished = lines.filter((l) => l.includes('"msg":"job finished"')).map((l) => JSON.parse(l));
    const tickets = finished.find((f) => f.job === "tickets.expire");
    expect(tickets).toMatchObject({ level: "info", ok: true, more: false });
    expect(tickets.rows).toBeGreaterThanOrEqual(1);
    expect(tickets.expired).toBe(tickets.rows);
    expect(typeof tickets.durationMs).toBe("number");
    expect(finished.map((f) => f.job)).toEqual(expect.arrayContaining(["outbox.sweep", "retention.archive", "retention.purge-deleted"]));
    const left = await withDb((db) => db.execute(sql`SELECT 1 FROM realtime_tickets WHERE ticket = ${ticket}`));
    expect(left.rows).toHaveLength(0);
    const runs = await withDb((db) =>
      db.execute<{ job: string; finished_at: string | null; details: Record<string, unknown> }>(
        sql`SELECT job, finished_at, details FROM job_runs WHERE job IN (${sql.join(CRON_JOBS.map((j) => sql`${j}`), sql`, `)})`,
      ),
    );
    expect(runs.rows.map((r) => r.job).sort()).toEqual([...CRON_JOBS].sort());
    for (const r of runs.rows) {
      expect(r.finished_at, r.job).not.toBeNull();
      expect(r.details.ok, `${r.job}: ${JSON.stringify(r.details)}`).toBe(true);
    }
    const health = await api("GET", "/health/detailed");
    expect(health.body.jobs["tickets.expire"]).toMatchObject({ ok: true, running: false, rows: tickets.rows });
    expect(typeof health.body.jobs["outbox.sweep"].rows).toBe("number");
    expect(typeof health.body.jobs["presence.reconcile"].rows).toBe("number");
    expect(typeof health.body.jobs["retention.archive"].durationMs).toBe("number");
    const service = await newUser("svc", "admin");
    const list = await api("GET", "/operations/jobs", { token: service.token });
    expect(list.body.jobs.find((j: { job: string }) => j.job === "tickets.expire")).toMatchObject({ ok: true });
    expectErrorShape(await api("GET", "/operations/jobs", { token: (await newUser("member")).token }), 403);
  });

  it("/health/detailed asks the profile service where profiles are read, whatever PROFILE_SERVICE_URL ends with", async () => {
    // The profile client drops a trailing slash; the health check asked `//api/batch/profiles`, which the service
    // answers 404, so a working deployment reported its profile service down and itself degraded.
    const ctx = createExecutionContext();
    const res = await worker.fetch(new Request("http://chat.test/health/detailed"), { ...env, PROFILE_SERVICE_URL: `${env.PROFILE_SERVICE_URL}/` }, ctx);
    const body = (await res.json()) as { status: string; checks: Record<string, { status: string }> };
    await waitOnExecutionContext(ctx);
    expect(body.checks.profileService).toMatchObject({ status: "ok" });
    expect(body.status).toBe("ok");
  });

  it("the tickets job deletes what expired before its own clock (not the database's)", async () => {
    const userId = crypto.randomUUID();
    const base = Date.now();
    const [soon, later] = [`soon-${crypto.randomUUID()}`, `later-${crypto.randomUUID()}`];
    await withDb((db) =>
      db.execute(sql`INSERT INTO realtime_tickets (ticket, user_id, kaha_id, expires_at) VALUES
        (${soon}, ${userId}::uuid, 'k', ${new Date(base + HOUR).toISOString()}::timestamptz),
        (${later}, ${userId}::uuid, 'k', ${new Date(base + 3 * HOUR).toISOString()}::timestamptz)`),
    );
    const job = ticketsJob({ name: unique("tickets.expire"), userIds: [userId] });
    expect(await run(job, { now: new Date(base) })).toMatchObject({ status: "ok", rows: 0 });
    expect(await run(job, { now: new Date(base + 2 * HOUR) })).toMatchObject({ status: "ok", rows: 1, details: { expired: 1 } });
    const left = await withDb((db) => db.execute<{ ticket: string }>(sql`SELECT ticket FROM realtime_tickets WHERE user_id = ${userId}::uuid`));
    expect(left.rows.map((r) => r.ticket)).toEqual([later]);
    expect(await run(job, { now: new Date(base + 4 * HOUR) })).toMatchObject({ status: "ok", rows: 1 });
  });

  it("the profile refresh job refetches the hot ids (the last hour's senders) and rewrites their cache entries", { timeout: 60_000 }, async () => {
    // A clock past every message already stored (a persistent DATABASE_URL keeps earlier runs' messages, this
    // test's among them): only this test's messages fall in the job's last hour.
    const newest = await withDb((db) => db.execute<{ at: string | null }>(sql`SELECT max(created_at) AS at FROM messages`));
    const stored = newest.rows[0]?.at ? new Date(newest.rows[0].at).getTime() : 0;
    const now = new Date(Math.max(Date.now() + 400 * DAY, stored + 2 * HOUR));
    const { id, users } = await seedConversation("group", 3);
    await seedMessages(id, users[0].id, 1, 2, new Date(now.getTime() - 10 * 60_000));
    await seedMessages(id, users[1].id, 3, 3, new Date(now.getTime() - 20 * 60_000));
    await seedMessages(id, users[2].id, 4, 4, new Date(now.getTime() - 2 * HOUR));
    const redis = createRedis(config);
    const keys = users.map((u) => profileKey("user", u.id));
    await redis.del(...keys);
    // The service's own call counter is shared with files running in parallel; this sees exactly this job's calls.
    const realFetch = globalThis.fetch;
    const calls: { user_uuids: string[] }[] = [];
    globalThis.fetch = ((input: RequestInfo | URL, init?: RequestInit) => {
      const url = typeof input === "string" ? input : input instanceof URL ? input.href : input.url;
      if (url.endsWith("/api/batch/profiles")) calls.push(JSON.parse(String(init?.body)));
      return realFetch(input, init);
    }) as typeof fetch;
    let report;
    try {
      report = await run(profileRefreshJob({ cacheTtlSeconds: config.PROFILE_CACHE_TTL, name: unique("profiles.refresh-hot") }), { now });
    } finally {
      globalThis.fetch = realFetch;
    }
    expect(report).toMatchObject({ status: "ok", rows: 2, details: { requested: 2, refreshed: 2, refreshOk: true } });
    expect(calls).toHaveLength(1);
    expect([...calls[0].user_uuids].sort()).toEqual([users[0].id, users[1].id].sort());
    const entries = (await redis.mget<unknown[]>(...keys)).map((v) => (typeof v === "string" ? JSON.parse(v) : v) as { profile: { id: string } } | null);
    expect(entries[0]?.profile.id).toBe(users[0].id);
    expect(entries[1]?.profile.id).toBe(users[1].id);
    expect(entries[2]).toBeNull();
  });

  it("the presence job repairs users.online left true by a failed write, by the job's clock, and keeps online users", { timeout: 60_000 }, async () => {
    const base = new Date();
    const [lost, recent, connected] = (await seedConversation("group", 3)).users;
    const userSocket = await SELF.fetch("http://chat.test/ws", { headers: { upgrade: "websocket", authorization: `Bearer ${connected.token}` } });
    expect(userSocket.status).toBe(101);
    userSocket.webSocket!.accept();
    const ids = [lost.id, recent.id, connected.id];
    const state = async () => {
      const rows = await withDb((db) =>
        db.execute<{ id: string; online: boolean; last_seen_at: string | null }>(sql`SELECT id, online, last_seen_at FROM users WHERE id IN (${sql.join(ids.map((i) => sql`${i}::uuid`), sql`, `)})`),
      );
      return Object.fromEntries(rows.rows.map((r) => [r.id, { online: r.online, lastSeen: r.last_seen_at && new Date(r.last_seen_at).getTime() }]));
    };
    await waitUntilTrue(async () => (await state())[connected.id].online);
    // As if each session's last write of users.online had happened at these times; for `lost` and `recent` the
    // write that should have set them offline failed (they have no device).
    const stamp = (id: string, at: Date) => withDb((db) => db.execute(sql`UPDATE users SET online = true, last_seen_at = ${at.toISOString()}::timestamptz WHERE id = ${id}::uuid`));
    await stamp(lost.id, new Date(base.getTime() - 2 * HOUR));
    await stamp(recent.id, new Date(base.getTime() - 10 * 60_000));
    await stamp(connected.id, new Date(base.getTime() - 2 * HOUR));

    const job = presenceReconcileJob({ name: unique("presence.reconcile"), userIds: ids });
    const first = await run(job, { now: base });
    expect(first).toMatchObject({ status: "ok", rows: 2, details: { candidates: 2, confirmedOnline: 1, republishedOffline: 1, failed: 0 } });
    let now = await state();
    expect(now[lost.id].online).toBe(false);
    expect(now[recent.id].online).toBe(true);
    expect(now[connected.id]).toEqual({ online: true, lastSeen: base.getTime() });

    // An hour later by the job's clock, `recent` is stale too; `connected` was confirmed at `base` and is checked again.
    const later = new Date(base.getTime() + HOUR);
    const second = await run(job, { now: later });
    expect(second).toMatchObject({ status: "ok", rows: 2, details: { confirmedOnline: 1, republishedOffline: 1 } });
    now = await state();
    expect(now[recent.id].online).toBe(false);
    expect(now[connected.id]).toEqual({ online: true, lastSeen: later.getTime() });
    expect(await run(job, { now: later })).toMatchObject({ status: "ok", rows: 0 });
    userSocket.webSocket!.close();
  });

  it("runs a job by hand for service tokens (audited) and refuses unknown jobs", async () => {
    const service = await newUser("svc", "admin");
    const res = await api("POST", "/operations/jobs/tickets.expire/run", { token: service.token });
    expect(res.body).toMatchObject({ job: "tickets.expire", status: "ok" });
    expectErrorShape(await api("POST", "/operations/jobs/nope/run", { token: service.token }), 404);
    expectErrorShape(await api("POST", "/operations/jobs/tickets.expire/run", { token: (await newUser("member")).token }), 403);
    const audit = await withDb((db) =>
      db.execute(sql`SELECT 1 FROM audit_log WHERE action = 'admin.job_run' AND actor_id = ${service.id}::uuid AND target_id = 'tickets.expire'`),
    );
    expect(audit.rows).toHaveLength(1);
  });

  it("the outbox sweeper leaves registrations younger than its minimum age, then drops rooms with nothing pending", async () => {
    const { id, users } = await seedConversation("direct", 2);
    expect((await api("POST", `/conversations/${id}/messages`, { token: users[0].token, body: { content: "flushed" } })).status).toBe(201);
    const fresh = crypto.randomUUID();
    const redis = createRedis(config);
    // A controlled clock: both registered at `base`, a third one later. Far in the future, so no other test's
    // registration is old enough to be swept by these runs' clock... except those of rooms this job may drop anyway.
    const base = Date.now() + 3_600_000;
    await redis.zadd(OUTBOX_PENDING_KEY, { score: base, member: id });
    await redis.zadd(OUTBOX_PENDING_KEY, { score: base + 60_000, member: fresh });
    const gauge = vi.spyOn(metrics, "gauge");
    const early = await run(outboxSweepJob(), { now: new Date(base + SWEEP_MIN_AGE_MS - 1000) });
    expect(early.status).toBe("ok");
    expect(await redis.zscore(OUTBOX_PENDING_KEY, id)).not.toBeNull();
    const due = await run(outboxSweepJob(), { now: new Date(base + SWEEP_MIN_AGE_MS + 1000) });
    expect(due.status).toBe("ok");
    expect(await redis.zscore(OUTBOX_PENDING_KEY, id)).toBeNull();
    expect(await redis.zscore(OUTBOX_PENDING_KEY, fresh)).not.toBeNull();
    // Nothing was left unflushed: the backlog gauges say 0.
    expect(gauge).toHaveBeenCalledWith("outbox_backlog_messages", 0);
    expect(gauge).toHaveBeenCalledWith("outbox_backlog_rooms", 0);
    await redis.zrem(OUTBOX_PENDING_KEY, fresh);
  });
});

/** Waits for a fresh minute window if the current one ends soon, so a burst stays inside one window. */
async function freshWindow(neededMs = 5_000) {
  const left = 60_000 - (Date.now() % 60_000);
  if (left < neededMs) await new Promise((r) => setTimeout(r, left + 50));
}

/**
 * Spends all but `left` of a bucket's budget in the current window, as earlier traffic would have (the same INCR
 * counter the limiter keeps). Bursting the whole budget through the Worker took 13-25 s per test in CI.
 */
async function spendBudget(bucket: string, limit: number, left: number): Promise<void> {
  await createRedis(config).set(`${bucket}:${Math.floor(Date.now() / 60_000)}`, limit - left, { ex: 120 });
}

async function burst(n: number, request: () => Promise<{ status: number }>, parallel = 20): Promise<number[]> {
  const statuses: number[] = [];
  for (let i = 0; i < n; i += parallel) {
    const batch = await Promise.all(Array.from({ length: Math.min(parallel, n - i) }, request));
    statuses.push(...batch.map((r) => r.status));
  }
  return statuses;
}

describe("rate limits", () => {
  it("limits REST writes per user (429 + Retry-After), leaves reads and other users alone, and recovers", { timeout: 120_000 }, async () => {
    const { id, users } = await seedConversation("direct", 2);
    const [u, other] = users;
    await freshWindow();
    await spendBudget(`rl:u:write:${u.id}`, config.RATE_LIMIT_WRITES_PER_MINUTE, 3);
    // Cheap writes: every write-method request counts, whatever the route answers (here 405).
    const statuses = await burst(3, () => api("POST", "/health", { token: u.token }));
    expect(statuses).toEqual([405, 405, 405]);
    const refused = await api("POST", `/conversations/${id}/messages`, { token: u.token, body: { content: "one too many" } });
    expectErrorShape(refused, 429);
    const retryAfter = Number(refused.headers.get("retry-after"));
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(60);
    expect(await seqs("messages", id)).toEqual([]);
    expect((await api("GET", `/conversations/${id}/messages`, { token: u.token })).status).toBe(200);
    expect((await api("POST", `/conversations/${id}/messages`, { token: other.token, body: { content: "fine" } })).status).toBe(201);
    // The window's counter expires (EXPIRE does this at the window's end; here we remove it): writes pass again.
    const w = Math.floor(Date.now() / 60_000);
    await createRedis(config).del(`rl:u:write:${u.id}:${w}`, `rl:u:write:${u.id}:${w - 1}`);
    expect((await api("POST", `/conversations/${id}/messages`, { token: u.token, body: { content: "back" } })).status).toBe(201);
  });

  it("limits writes per client IP, also without a token", { timeout: 60_000 }, async () => {
    const ip = `198.51.100.${Math.floor(Math.random() * 250) + 1}`;
    const headers = { "cf-connecting-ip": ip };
    const limit = config.RATE_LIMIT_IP_WRITES_PER_MINUTE;
    await freshWindow();
    // Earlier traffic from this address in the current window (limit - 3 requests), then three more pass.
    await createRedis(config).set(`rl:ip:write:${ip}:${Math.floor(Date.now() / 60_000)}`, limit - 3, { ex: 120 });
    const statuses = await burst(3, () => api("POST", "/health", { headers }));
    expect(statuses).toEqual([405, 405, 405]);
    expectErrorShape(await api("POST", "/health", { headers }), 429);
    const anon = await api("POST", "/auth/dev-login", { headers, body: { kahaId: "ip-limited" } });
    expectErrorShape(anon, 429);
    expect(Number(anon.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    expect((await api("POST", "/health", { headers: { "cf-connecting-ip": "198.51.100.251" } })).status).toBe(405);
    expect((await api("GET", "/health", { headers })).status).toBe(200);
  });

  it("limits WebSocket upgrades per user, and ticket issuance spends the same budget; service tokens are exempt", { timeout: 120_000 }, async () => {
    const u = await newUser("upgrader");
    // Authenticated upgrades that the route then refuses (404) without waking any Durable Object.
    const upgrade = (token: string) =>
      SELF.fetch("http://chat.test/conversations/not-a-conversation/ws", { headers: { upgrade: "websocket", authorization: `Bearer ${token}` } });
    const service = await newUser("svc", "admin");
    await freshWindow();
    await spendBudget(`rl:u:upgrade:${u.id}`, config.RATE_LIMIT_UPGRADES_PER_MINUTE, 3);
    const statuses = await burst(3, () => upgrade(u.token));
    expect(statuses).toEqual([404, 404, 404]);
    const refused = await upgrade(u.token);
    expect(refused.status).toBe(429);
    expect(refused.headers.get("retry-after")).toMatch(/^\d+$/);
    expectErrorShape(await api("POST", "/realtime/tickets", { token: u.token }), 429);
    // A service token's upgrades are not counted at all: a budget already spent does not stop them.
    await spendBudget(`rl:u:upgrade:${service.id}`, config.RATE_LIMIT_UPGRADES_PER_MINUTE, 0);
    const exempt = await burst(5, () => upgrade(service.token));
    expect(exempt).toEqual([404, 404, 404, 404, 404]);
  });
});

describe("metrics and logs", () => {
  afterEach(() => vi.restoreAllMocks());

  it("GET /metrics serves Prometheus text to service tokens only", async () => {
    const { id, users } = await seedConversation("direct", 2);
    expect((await api("POST", `/conversations/${id}/messages`, { token: users[0].token, body: { content: "count me" } })).status).toBe(201);
    const service = await newUser("svc", "admin");
    const res = await SELF.fetch("http://chat.test/metrics", { headers: { authorization: `Bearer ${service.token}` } });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    expect(text).toMatch(/# TYPE edgechat_http_requests_total counter/);
    expect(text).toMatch(/edgechat_messages_sent_total\{via="rest"\} [1-9]\d*/);
    expect(text).toMatch(/edgechat_http_request_duration_ms_count\{class="write"\} \d+/);
    expectErrorShape(await api("GET", "/metrics", { token: users[0].token }), 403);
    expectErrorShape(await api("GET", "/metrics"), 401);
  });

  it("counts each message send once, labelled by transport (rest or ws)", { timeout: 60_000 }, async () => {
    const { id, users } = await seedConversation("direct", 2);
    const socket = await openSocket(id, users[1]);
    // The rooms run in this isolate: every count they make goes through this batch.
    const count = vi.spyOn(metrics, "count");
    const sends = () => count.mock.calls.filter(([name]) => name === "messages_sent_total").map(([, n, labels]) => ({ n, labels }));
    expect((await api("POST", `/conversations/${id}/messages`, { token: users[0].token, body: { content: "by rest", clientMessageId: "r1" } })).status).toBe(201);
    // A retry of the same clientMessageId is not a new message.
    expect((await api("POST", `/conversations/${id}/messages`, { token: users[0].token, body: { content: "by rest", clientMessageId: "r1" } })).status).toBe(200);
    expect(sends()).toEqual([{ n: 1, labels: { via: "rest" } }]);
    socket.ws.send(JSON.stringify({ type: "send_message", data: { content: "by socket", clientMessageId: "w1" }, id: "f1" }));
    await socket.waitFor("message_ack");
    expect(sends()).toEqual([
      { n: 1, labels: { via: "rest" } },
      { n: 1, labels: { via: "ws" } },
    ]);
    const service = await newUser("svc", "admin");
    const text = await (await SELF.fetch("http://chat.test/metrics", { headers: { authorization: `Bearer ${service.token}` } })).text();
    expect(text).toMatch(/edgechat_messages_sent_total\{via="ws"\} [1-9]\d*/);
    // Fan-out: each of the two messages reached the one open socket (and its sender's, for the socket send).
    const fanout = count.mock.calls.filter(([name]) => name === "fanout_frames_total").reduce((a, [, n]) => a + (n ?? 1), 0);
    expect(fanout).toBeGreaterThanOrEqual(2);
    expect(text).toMatch(/^edgechat_fanout_frames_total [1-9]\d*$/m);
    socket.ws.close();
  });

  it("counts profile cache hits and misses per id looked up and exposes the hit ratio", { timeout: 60_000 }, async () => {
    const { id, users } = await seedConversation("group", 3);
    expect((await api("POST", `/conversations/${id}/messages`, { token: users[0].token, body: { content: "hello" } })).status).toBe(201);
    const count = vi.spyOn(metrics, "count");
    const total = (name: string, labels?: Labels) =>
      count.mock.calls
        .filter(([n, , l]) => n === name && (labels === undefined || JSON.stringify(l) === JSON.stringify(labels)))
        .reduce((a, [, v]) => a + (v ?? 1), 0);
    // Cold: the sender's profile is evicted (Redis and this isolate's memory), so the first page read asks the service.
    const service = await newUser("svc", "admin");
    await api("POST", "/profiles/invalidate", { token: service.token, body: { user_uuids: [users[0].id] } });
    const page = () => api("GET", `/conversations/${id}/messages`, { token: users[1].token });
    expect((await page()).status).toBe(200);
    const coldMisses = total("profile_cache_misses_total");
    expect(coldMisses).toBeGreaterThan(0);
    const hitsBefore = total("profile_cache_hits_total");
    expect((await page()).status).toBe(200);
    expect(total("profile_cache_misses_total")).toBe(coldMisses);
    expect(total("profile_cache_hits_total")).toBeGreaterThan(hitsBefore);

    const text = await (await SELF.fetch("http://chat.test/metrics", { headers: { authorization: `Bearer ${service.token}` } })).text();
    expect(text).toMatch(/^edgechat_profile_cache_hits_total\{layer="(memory|redis)"\} [1-9]\d*$/m);
    expect(text).toMatch(/^edgechat_profile_cache_misses_total [1-9]\d*$/m);
    expect(text).toMatch(/^edgechat_profile_cache_hit_ratio (0|1|0\.\d+)$/m);
  });

  it("structured logs carry request id, user id, conversation id and latency but never a token or message content", { timeout: 60_000 }, async () => {
    const lines: string[] = [];
    const capture = (...args: unknown[]) => void lines.push(args.map(String).join(" "));
    vi.spyOn(console, "log").mockImplementation(capture);
    vi.spyOn(console, "warn").mockImplementation(capture);
    vi.spyOn(console, "error").mockImplementation(capture);
    const { id, users } = await seedConversation("group", 3);
    const secret = `CONTENT-${crypto.randomUUID()}`;
    const sent = await api("POST", `/conversations/${id}/messages`, { token: users[0].token, body: { content: secret } });
    expect(sent.status).toBe(201);
    await api("PATCH", `/conversations/${id}/messages/${sent.body.id}`, { token: users[0].token, body: { content: `${secret}-edited` } });
    await api("GET", `/conversations/${id}/messages/search?q=${encodeURIComponent(secret)}`, { token: users[1].token });
    const ticket = await api("POST", "/realtime/tickets", { token: users[1].token });
    const upgraded = await SELF.fetch(`http://chat.test/conversations/${id}/ws?ticket=${ticket.body.ticket}`, { headers: { upgrade: "websocket" } });
    expect(upgraded.status).toBe(101);
    upgraded.webSocket!.accept();
    upgraded.webSocket!.close();
    await api("GET", "/auth/me", { token: `${users[2].token}x` });
    await api("GET", "/auth/me", { headers: { authorization: "Bearer not.a.token" } });
    await new Promise((r) => setTimeout(r, 200));

    const requestLines = lines.filter((l) => l.includes('"msg":"request"'));
    expect(requestLines.length).toBeGreaterThan(3);
    const send = requestLines.find((l) => l.includes(`"requestId":"${sent.headers.get("x-request-id")}"`));
    expect(send).toBeDefined();
    expect(JSON.parse(send!)).toMatchObject({ level: "info", userId: users[0].id, conversationId: id, status: 201 });
    const upgradeLine = requestLines.find((l) => l.includes(`"path":"/conversations/${id}/ws"`));
    expect(JSON.parse(upgradeLine!)).toMatchObject({ conversationId: id });
    const me = requestLines.find((l) => l.includes('"path":"/auth/me"'));
    expect(JSON.parse(me!).conversationId).toBeUndefined();
    expect(typeof JSON.parse(send!).latencyMs).toBe("number");
    const all = lines.join("\n");
    for (const u of users) {
      expect(all).not.toContain(u.token);
      expect(all).not.toContain(u.token.split(".")[2]);
    }
    expect(all).not.toContain(ticket.body.ticket);
    expect(all).not.toContain(secret);
  });
});

describe("retention: clients that were away", () => {
  it("a socket resuming from below the archived mark hears messages_archived before the replay of what is left", { timeout: 90_000 }, async () => {
    const now = new Date();
    const { id, users } = await seedConversation("group", 2);
    await seedMessages(id, users[0].id, 1, 3, new Date(now.getTime() - 91 * DAY));
    await seedMessages(id, users[0].id, 4, 5, new Date(now.getTime() - DAY));
    // No socket open and the room never loaded: nobody hears the job's broadcast.
    expect(await run(archiveJob({ conversationIds: [id], name: unique("retention.away") }), { now })).toMatchObject({ rows: 3 });

    const socket = await openSocket(id, users[1], "?afterSeq=0");
    await socket.waitFor("resumed");
    const types = socket.frames.map((f) => f.type);
    expect(types.filter((t) => t !== "presence_update")).toEqual(["ready", "messages_archived", "new_message", "new_message", "resumed"]);
    expect(socket.frames.find((f) => f.type === "messages_archived")!.data).toEqual({ conversationId: id, upToSeq: 3 });
    expect(socket.frames.filter((f) => f.type === "new_message").map((f) => f.data.message.seq)).toEqual([4, 5]);

    // Resuming from at or above the mark: nothing to say about the archive.
    const count = () => socket.frames.filter((f) => f.type === "messages_archived").length;
    socket.ws.send(JSON.stringify({ type: "resume", data: { afterSeq: 3 }, id: "r2" }));
    await waitUntilTrue(async () => socket.frames.filter((f) => f.type === "resumed").length === 2);
    expect(count()).toBe(1);
    socket.ws.close();
  });

  it("a client resuming from below the mark is not replayed archived messages their sender edited or deleted", { timeout: 90_000 }, async () => {
    const now = new Date();
    const { id, users } = await seedConversation("group", 2);
    const [owner, member] = users;
    await seedMessages(id, owner.id, 1, 3, new Date(now.getTime() - 91 * DAY));
    await seedMessages(id, owner.id, 4, 5, new Date(now.getTime() - DAY));
    await run(archiveJob({ conversationIds: [id], name: unique("retention.changed") }), { now });
    const archived = (await api("GET", `/conversations/${id}/archive`, { token: member.token })).body.messages as { id: string }[];
    expect((await api("PATCH", `/conversations/${id}/messages/${archived[1].id}`, { token: owner.token, body: { content: "fixed" } })).status).toBe(200);
    expect((await api("DELETE", `/conversations/${id}/messages/${archived[0].id}`, { token: owner.token })).status).toBe(204);

    // Told that 1–3 are in the archive, the client gets 4 and 5 only: the room kept its copies of the changed 1 and
    // 2 and replayed them as new messages, in the live timeline, under a mark that says they are not there.
    const socket = await openSocket(id, member, "?afterSeq=0");
    await socket.waitFor("resumed");
    expect(socket.frames.find((f) => f.type === "messages_archived")!.data).toEqual({ conversationId: id, upToSeq: 3 });
    const replayed = socket.frames.filter((f) => ["new_message", "message_updated", "message_deleted"].includes(f.type));
    expect(replayed.map((f) => [f.type, f.data.message?.seq ?? f.data.seq])).toEqual([
      ["new_message", 4],
      ["new_message", 5],
    ]);
    socket.ws.close();
  });

  it("a room first loaded after its whole history was archived continues the seq after the archive", { timeout: 90_000 }, async () => {
    const now = new Date();
    const { id, users } = await seedConversation("direct", 2);
    await seedMessages(id, users[0].id, 1, 3, new Date(now.getTime() - 91 * DAY));
    await run(archiveJob({ conversationIds: [id], name: unique("retention.all") }), { now });
    expect(await seqs("messages", id)).toEqual([]);
    const sent = await api("POST", `/conversations/${id}/messages`, { token: users[1].token, body: { content: "after the archive" } });
    expect(sent.status).toBe(201);
    expect(sent.body.seq).toBe(4);
  });
});
