import { afterEach, describe, expect, it, vi } from "vitest";
import { env, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { sql } from "drizzle-orm";
import type { ConversationRoom } from "../../src/durable-objects/conversation-room";
import { getConfig } from "../../src/lib/config";
import { createLogger } from "../../src/lib/log";
import { createRedis } from "../../src/lib/redis";
import { outboxSweepJob } from "../../src/jobs/maintenance";
import { archiveJob } from "../../src/jobs/retention";
import { OUTBOX_PENDING_KEY } from "../../src/jobs/outbox-registry";
import { runJob } from "../../src/jobs/runner";
import { flushBatch } from "../../src/db/queries/messages";
import { NEWEST_MIGRATION } from "../../src/db/queries/schema-version";
import { api, newUser, type ApiResponse } from "./helpers";
import { afterNextRead, holdBackfill, postgres, seedConversation, withDb } from "./fixtures";
import { openSocket, waitFor } from "./sockets";


/** The local Redis-REST endpoint's fault switch (scripts/local/redis-rest.ts), guarded by the REST token itself. */
async function redis(fault: { down?: boolean }) {
  const res = await fetch(`${env.UPSTASH_REDIS_REST_URL}/__control`, {
    method: "POST",
    headers: { authorization: `Bearer ${env.UPSTASH_REDIS_REST_TOKEN}`, "content-type": "application/json" },
    body: JSON.stringify({ fault }),
  });
  if (!res.ok) throw new Error(`redis control failed: ${res.status}`);
}

/** `count` messages from `senderId` written straight into Postgres ("<prefix> <seq>"), as if sent before the room existed. */
const seedHistory = (id: string, senderId: string, count: number, prefix: string) =>
  withDb(async (db) => {
    await db.execute(sql`
      INSERT INTO messages (id, conversation_id, seq, sender_id, type, content, created_at, event_seq)
      SELECT gen_random_uuid(), ${id}::uuid, g, ${senderId}::uuid, 'text', ${prefix}::text || ' ' || g, now() - interval '1 hour' + g * interval '1 second', g
      FROM generate_series(1, ${count}::int) AS g`);
    await db.execute(sql`UPDATE conversations SET last_seq = ${count} WHERE id = ${id}::uuid`);
  });
const room = (id: string) => env.CONVERSATION_ROOM.get(env.CONVERSATION_ROOM.idFromName(id));
const pgCount = (id: string) =>
  withDb(async (db) => Number((await db.execute<{ n: string }>(sql`SELECT count(*) AS n FROM messages WHERE conversation_id = ${id}`)).rows[0].n));

afterEach(async () => {
  await postgres({});
  await redis({});
});

describe("ConversationRoom", () => {
  it("writes an audit entry once when a flush it gave up on (timed out) had committed after all", async () => {
    const { id, users } = await seedConversation("group", 3);
    const [alice] = users;
    const sent = await api("POST", `/conversations/${id}/messages`, { token: alice.token, body: { content: "original" } });
    expect(sent.status).toBe(201);
    await postgres({ down: true });
    const edited = await api("PATCH", `/conversations/${id}/messages/${sent.body.id}`, { token: alice.token, body: { content: "edited" } });
    expect(edited.body).toMatchObject({ content: "edited", status: "pending" });
    await postgres({});
    // The flight the room gave up on reached Postgres after all (a timeout does not cancel a statement): what it
    // carried is there, and the room still holds it and will write it again.
    await runInDurableObject(room(id), async (instance: ConversationRoom) => {
      const audits = instance.store.audits().map((a) => a.entry);
      expect(audits.map((a) => a.action)).toEqual(["message.edited"]);
      await withDb((db) => flushBatch(db, id, instance.store.pending(500).map((r) => r.message), [], audits));
    });
    expect(await room(id).flushNow()).toEqual({ pending: 0 });
    const entries = await withDb((db) =>
      db.execute<{ action: string }>(sql`SELECT action FROM audit_log WHERE conversation_id = ${id}::uuid ORDER BY id`),
    );
    expect(entries.rows.map((r) => r.action)).toEqual(["message.edited"]);
    const service = await newUser("svc", "admin");
    const verified = await api("POST", "/operations/audit/verify", { token: service.token, body: { conversationId: id } });
    expect(verified.body).toMatchObject({ ok: true, rows: 1 });
  });

  it("writes an edit or delete made during an outage to the archive when the retention job moved the message first", async () => {
    const { id, users } = await seedConversation("group", 3);
    const [alice, , carol] = users;
    const sent: { id: string; seq: number }[] = [];
    for (const content of ["old one", "old two", "new"]) sent.push((await api("POST", `/conversations/${id}/messages`, { token: alice.token, body: { content } })).body);
    await withDb((db) => db.execute(sql`UPDATE messages SET created_at = now() - interval '100 days' WHERE conversation_id = ${id}::uuid AND seq <= 2`));
    // The room's retry is at its longest backoff, so the job runs between Postgres coming back and the retry.
    await runInDurableObject(room(id), async (instance: ConversationRoom) => {
      (instance as unknown as { retryAttempt: number }).retryAttempt = 20;
    });
    await postgres({ down: true });
    expect((await api("DELETE", `/conversations/${id}/messages/${sent[0].id}`, { token: alice.token })).status).toBe(204);
    const edit = await api("PATCH", `/conversations/${id}/messages/${sent[1].id}`, { token: alice.token, body: { content: "old two, edited" } });
    expect(edit.body.status).toBe("pending");
    await postgres({});
    const log = createLogger({ test: "archive-race" });
    const job = archiveJob({ conversationIds: [id], name: `archive-race-${id.slice(0, 8)}` });
    await withDb((db) => runJob(job, { env, config: getConfig(env), db, log, force: true }));
    expect(await room(id).flushNow()).toEqual({ pending: 0 });
    const rows = await withDb(async (db) => ({
      live: (await db.execute<{ seq: string }>(sql`SELECT seq FROM messages WHERE conversation_id = ${id}::uuid ORDER BY seq`)).rows.map((r) => Number(r.seq)),
      archived: (
        await db.execute<{ seq: string; content: string; deleted: boolean }>(
          sql`SELECT seq, content, deleted_at IS NOT NULL AS deleted FROM message_archive WHERE conversation_id = ${id}::uuid ORDER BY seq`,
        )
      ).rows.map((r) => [Number(r.seq), r.content, r.deleted]),
    }));
    // One copy of each message, the archived ones as they are now: the tombstone without its text, the edit.
    expect(rows).toEqual({ live: [3], archived: [[1, "", true], [2, "old two, edited", false]] });
    const unread = await api("GET", `/conversations/${id}/unread-count`, { token: carol.token });
    expect(unread.body.unreadCount).toBe(1);
  });

  it("keeps its seq, outbox and client ids across a restart of the object (wake from eviction)", async () => {
    const { id, users } = await seedConversation("direct", 2);
    const t = users[0].token;
    const first = await api("POST", `/conversations/${id}/messages`, { token: t, body: { content: "one", clientMessageId: "w1" } });
    expect(first.body.seq).toBe(1);
    // A fresh instance reads everything back from its storage: nothing lives only in memory.
    await runInDurableObject(room(id), async (instance: ConversationRoom, state) => {
      const meta = instance.store.meta();
      expect(meta).toMatchObject({ conversationId: id, lastSeq: 1 });
      expect(state.storage.sql.exec("SELECT count(*) AS n FROM client_ids").one().n).toBe(1);
    });
    const retry = await api("POST", `/conversations/${id}/messages`, { token: t, body: { content: "one", clientMessageId: "w1" } });
    expect(retry.status).toBe(200);
    expect(retry.body.id).toBe(first.body.id);
    const second = await api("POST", `/conversations/${id}/messages`, { token: t, body: { content: "two" } });
    expect(second.body.seq).toBe(2);
  });

  it("answers a retry of a message whose client id was pruned from the room from Postgres, without a duplicate", async () => {
    const { id, users } = await seedConversation("direct", 2);
    const t = users[0].token;
    const send = (content: string, clientMessageId: string) =>
      api("POST", `/conversations/${id}/messages`, { token: t, body: { content, clientMessageId } });
    const first = await send("old", "old-1");
    expect((await send("new", "new-1")).body.seq).toBe(2);
    await runInDurableObject(room(id), async (instance: ConversationRoom, state) => {
      instance.store.pruneClientIds(2);
      expect(state.storage.sql.exec("SELECT count(*) AS n FROM client_ids").one().n).toBe(1);
    });
    const retry = await send("old", "old-1");
    expect(retry.status).toBe(200);
    expect(retry.body).toMatchObject({ id: first.body.id, seq: 1 });
    expect((await send("something else", "old-1")).status).toBe(409);
    expect((await send("third", "new-2")).body.seq).toBe(3);
    expect(await pgCount(id)).toBe(3);
  });

  it("acks as pending while Postgres is down and drains the outbox on the alarm retry", async () => {
    const { id, users } = await seedConversation("direct", 2);
    const t = users[0].token;
    await api("POST", `/conversations/${id}/messages`, { token: t, body: { content: "warm up" } });
    await postgres({ down: true });
    const pending = await api("POST", `/conversations/${id}/messages`, { token: t, body: { content: "while down", clientMessageId: "p1" } });
    expect(pending.status).toBe(201);
    expect(pending.body).toMatchObject({ seq: 2, status: "pending" });
    const status = await room(id).outboxStatus();
    expect(status.pending).toBe(1);
    // The newest page comes from the room's own rows, the pending message included; an older page the room no
    // longer holds needs Postgres: 503.
    const recent = await api("GET", `/conversations/${id}/messages`, { token: t });
    expect(recent.status).toBe(200);
    expect(recent.body.messages.map((m: { seq: number; status: string }) => [m.seq, m.status])).toEqual([
      [1, "sent"],
      [2, "pending"],
    ]);
    await runInDurableObject(room(id), async (_instance: ConversationRoom, state) => {
      state.storage.sql.exec("DELETE FROM messages WHERE pending = 0");
    });
    expect((await api("GET", `/conversations/${id}/messages?before=2`, { token: t })).status).toBe(503);
    expect((await api("GET", `/conversations/${id}/messages`, { token: t })).status).toBe(503);
    // A retry alarm while Postgres is still down keeps the message and backs off.
    await runDurableObjectAlarm(room(id));
    expect((await room(id).outboxStatus()).pending).toBe(1);
    await postgres({});
    await runDurableObjectAlarm(room(id));
    expect((await room(id).outboxStatus()).pending).toBe(0);
    expect(await pgCount(id)).toBe(2);
    const history = await api("GET", `/conversations/${id}/messages`, { token: t });
    expect(history.body.messages.map((m: { seq: number; status: string }) => [m.seq, m.status])).toEqual([
      [1, "sent"],
      [2, "sent"],
    ]);
  });

  it("history keeps a message whose commit lands while the page is being read from Postgres", async () => {
    const { id, users } = await seedConversation("direct", 2);
    const t = users[0].token;
    await api("POST", `/conversations/${id}/messages`, { token: t, body: { content: "first" } });
    await postgres({ down: true });
    expect((await api("POST", `/conversations/${id}/messages`, { token: t, body: { content: "second" } })).body.status).toBe("pending");
    await postgres({});
    // The page's read finishes first, then the outbox commits before the room merges: the read saw neither "second"
    // in Postgres nor can it be found among the rows still pending. (A browser test caught this as a missing message.)
    await runInDurableObject(room(id), async (instance: ConversationRoom, state) => {
      // Without its copy of "first" the room cannot answer the page alone: it reads Postgres and merges.
      state.storage.sql.exec("DELETE FROM messages WHERE pending = 0");
      afterNextRead(instance, () => instance.flusher.flush());
    });
    const history = await api("GET", `/conversations/${id}/messages`, { token: t });
    expect(history.status).toBe(200);
    expect(history.body.messages.map((m: { content: string }) => m.content)).toEqual(["first", "second"]);
    expect(await pgCount(id)).toBe(2);
  });

  it("an edit of an old message that Postgres does not have yet shows on a page read from Postgres", async () => {
    const { id, users } = await seedConversation("direct", 2);
    const t = users[0].token;
    await seedHistory(id, users[0].id, 120, "old");
    await holdBackfill(id);
    // Seq 5 is older than the rows the room adopts, and its backfill is held: opening it makes the room read it
    // (and keep a copy).
    const page = await api("GET", `/conversations/${id}/messages?before=10&limit=5`, { token: t });
    const target = page.body.messages.find((m: { seq: number }) => m.seq === 5);
    expect((await api("GET", `/conversations/${id}/messages/${target.id}`, { token: t })).status).toBe(200);
    await postgres({ down: true });
    const edit = await api("PATCH", `/conversations/${id}/messages/${target.id}`, { token: t, body: { content: "old 5, edited" } });
    expect(edit.status).toBe(200);
    await postgres({});
    // The outbox retries on its alarm's backoff, so the edit is still pending while this page is read from Postgres.
    const again = await api("GET", `/conversations/${id}/messages?before=10&limit=5`, { token: t });
    expect(again.status).toBe(200);
    expect(again.body.messages.map((m: { content: string }) => m.content)).toEqual(["old 5, edited", "old 6", "old 7", "old 8", "old 9"]);
  });

  it("a room starting on a conversation Postgres already holds adopts its newest messages: they load while Postgres is down", async () => {
    const { id, users } = await seedConversation("direct", 2);
    const t = users[0].token;
    await seedHistory(id, users[1].id, 120, "from before");
    await holdBackfill(id);
    const seqs = (res: { body: { messages: { seq: number }[] } }) => res.body.messages.map((m) => m.seq);
    const fresh = await api("GET", `/conversations/${id}/messages?limit=3`, { token: t });
    expect(seqs(fresh)).toEqual([118, 119, 120]);
    await postgres({ down: true });
    const newest = await api("GET", `/conversations/${id}/messages?limit=100`, { token: t });
    expect(newest.status).toBe(200);
    expect(seqs(newest)).toEqual(Array.from({ length: 100 }, (_, i) => 21 + i));
    expect(newest.body.messages[0]).toMatchObject({ content: "from before 21", senderId: users[1].id, status: "sent" });
    expect(newest.body.hasMore).toBe(true);
    // Older than what the room adopted, and not read in yet by its backfill: Postgres only.
    expect((await api("GET", `/conversations/${id}/messages?before=21`, { token: t })).status).toBe(503);
    const sent = await api("POST", `/conversations/${id}/messages`, { token: t, body: { content: "while down" } });
    expect(sent.body).toMatchObject({ seq: 121, status: "pending" });
    expect(seqs(await api("GET", `/conversations/${id}/messages?limit=2`, { token: t }))).toEqual([120, 121]);
  });

  it("the outbox sweeper makes a registered room with pending writes flush once Postgres is back", async () => {
    const { id, users } = await seedConversation("direct", 2);
    const t = users[0].token;
    await api("POST", `/conversations/${id}/messages`, { token: t, body: { content: "warm up" } });
    await postgres({ down: true });
    const pending = await api("POST", `/conversations/${id}/messages`, { token: t, body: { content: "while down" } });
    expect(pending.body).toMatchObject({ seq: 2, status: "pending" });
    // The room registers itself (best effort, in the background) on its failed flush.
    const redis = createRedis(getConfig(env));
    const until = Date.now() + 10_000;
    while ((await redis.zscore(OUTBOX_PENDING_KEY, id)) === null) {
      if (Date.now() > until) throw new Error("room never registered its pending outbox");
      await new Promise((r) => setTimeout(r, 50));
    }
    // Registered long enough ago for the sweeper, which leaves a room's own first retries alone.
    await redis.zadd(OUTBOX_PENDING_KEY, { score: Date.now() - 5 * 60_000, member: id });
    await postgres({});
    expect((await room(id).outboxStatus()).pending).toBe(1);
    const report = await withDb((db) =>
      runJob(outboxSweepJob(), { env, config: getConfig(env), db, log: createLogger({ test: "sweeper" }), force: true }),
    );
    expect(report).toMatchObject({ status: "ok" });
    expect((await room(id).outboxStatus()).pending).toBe(0);
    expect(await pgCount(id)).toBe(2);
    expect(await redis.zscore(OUTBOX_PENDING_KEY, id)).toBeNull();
  });

  it("loads once when a whole group connects at the same moment: one Postgres connection, not one per socket", async () => {
    const { id, users } = await seedConversation("group", 6);
    // Counted on the room's own pool (the bridge's counter also sees other tests' background work).
    let connections = 0;
    await runInDurableObject(room(id), (instance: ConversationRoom) => {
      instance.db().$client.on("connect", () => connections++);
    });
    const sockets = await Promise.all(users.map((u) => openSocket(`/conversations/${id}/ws`, u)));
    for (const s of sockets) await waitFor(() => s.frames.find((f) => f.type === "ready"), "ready");
    // Before, each socket's upgrade loaded on its own, three queries in parallel on a pool of five: 5 connections
    // here.
    expect(connections).toBe(1);
    for (const s of sockets) s.ws.close(1000, "done");
  });

  it("keeps a presence update that arrives while the room loads (the load may have read the flag before it changed)", async () => {
    const { id, users } = await seedConversation("group", 3);
    const [alice, bob, carol] = users; // all offline in Postgres
    for (const u of users) expect((await api("GET", "/conversations", { token: u.token })).status).toBe(200);
    await postgres({ delayMs: 100 });
    try {
      const opening = openSocket(`/conversations/${id}/ws`, alice);
      const loading = () => runInDurableObject(room(id), (instance: ConversationRoom) => Boolean((instance as unknown as { loading?: unknown }).loading));
      for (let i = 0; !(await loading()); i++) {
        if (i > 250) throw new Error("the room's load never started");
        await new Promise((r) => setTimeout(r, 10));
      }
      // Bob's session wrote "online" after the load read the flags (here: Postgres still says offline).
      await room(id).presence({ userId: bob.id, status: "online", lastSeen: null });
      const socket = await opening;
      await waitFor(() => socket.frames.find((f) => f.type === "ready"), "ready");
      const offline = await runInDurableObject(room(id), (instance: ConversationRoom) => [...instance.store.offlineUsers()]);
      expect(offline).not.toContain(bob.id);
      expect(offline).toContain(carol.id);
      socket.ws.close(1000, "done");
    } finally {
      await postgres({});
    }
  });

  it("counts in a socket's ready, or delivers to it, a message sent while the socket waited for the member list", async () => {
    const { id, users } = await seedConversation("group", 3);
    const [alice, bob] = users;
    expect((await api("POST", `/conversations/${id}/messages`, { token: alice.token, body: { content: "before" } })).status).toBe(201);
    await runInDurableObject(room(id), async (instance: ConversationRoom) => {
      instance.membership.markChecked(0);
    });
    await postgres({ delayMs: 150 });
    // Bob's socket waits for the stale member list to be re-read; Alice's send goes ahead of it meanwhile.
    const opening = openSocket(`/conversations/${id}/ws`, bob);
    await new Promise((r) => setTimeout(r, 50));
    const sent = await api("POST", `/conversations/${id}/messages`, { token: alice.token, body: { content: "during" } });
    expect(sent.body.seq).toBe(2);
    const socket = await opening;
    const ready = await waitFor(() => socket.frames.find((f) => f.type === "ready"), "ready");
    await postgres({});
    if ((ready.data as { lastSeq: number }).lastSeq < 2) {
      await waitFor(() => socket.frames.find((f) => f.type === "new_message"), "the message sent during the open", 2000);
    }
    socket.ws.close(1000, "done");
  });

  it("re-reads its member list from Postgres when a membership notification was lost", async () => {
    const { id, users } = await seedConversation("group", 3);
    const [, member] = users;
    expect((await api("POST", `/conversations/${id}/messages`, { token: member.token, body: { content: "hi" } })).status).toBe(201);
    // The member leaves behind the room's back (no notify), and the room's copy is past its freshness.
    await withDb((db) => db.execute(sql`UPDATE participants SET left_at = now() WHERE conversation_id = ${id} AND user_id = ${member.id}`));
    await runInDurableObject(room(id), async (instance: ConversationRoom) => {
      instance.membership.markChecked(0);
    });
    expect((await api("POST", `/conversations/${id}/messages`, { token: member.token, body: { content: "ghost" } })).status).toBe(404);
  });
});

describe("health with a dependency down", () => {
  it("/health/detailed answers 503 and names the database while Postgres is unreachable; /health stays 200", async () => {
    await postgres({ down: true });
    const res = await api("GET", "/health/detailed");
    expect(res.status).toBe(503);
    expect(res.headers.get("retry-after")).toBeTruthy();
    expect(res.body).toMatchObject({ status: "down", checks: { database: { status: "down", error: "unreachable" } } });
    // Public: the kind of failure only, not the driver's text (it named the statement).
    expect(JSON.stringify(res.body)).not.toMatch(/query|select/i);
    expect((await api("GET", "/health")).status).toBe(200);
  });

  it("/health/detailed answers 503 migrations_pending when the database has not applied this code's newest migration", async () => {
    // A deploy without `npm run migrate`: requests that touch the new schema fail with a 500, and readiness said ok.
    const hidden = `${NEWEST_MIGRATION}.hidden-by-test`;
    await withDb((db) => db.execute(sql`UPDATE migrations SET name = ${hidden} WHERE name = ${NEWEST_MIGRATION}`));
    const errors = vi.spyOn(console, "error");
    try {
      // A load balancer probes every few seconds: each probe says so, but the log says it once (it flooded the log).
      for (let probe = 0; probe < 3; probe++) {
        const res = await api("GET", "/health/detailed");
        expect(res.status).toBe(503);
        expect(res.body).toMatchObject({ status: "down", checks: { database: { status: "down", error: "migrations_pending" } } });
      }
      const lines = errors.mock.calls.map((call) => String(call[0])).filter((line) => line.includes("migrations pending"));
      expect(lines).toHaveLength(1);
    } finally {
      errors.mockRestore();
      await withDb((db) => db.execute(sql`UPDATE migrations SET name = ${NEWEST_MIGRATION} WHERE name = ${hidden}`));
    }
    const back = await api("GET", "/health/detailed");
    expect(back.body).toMatchObject({ status: "ok", checks: { database: { status: "ok" } } });
  });

  it("answers 503 naming `npm run migrate` (not a 500) while a migration is missing, and logs the cause once", async () => {
    // A skipped migration: every route touching its table or column answered 500 "Internal server error".
    const { id, users } = await seedConversation("group", 2);
    const fresh = await seedConversation("direct", 2);
    const errors = vi.spyOn(console, "error");
    const expectPending = (res: ApiResponse) => {
      expect(res.status).toBe(503);
      expect(res.headers.get("retry-after")).toBeTruthy();
      expect(res.body.message).toMatch(/migrations.*run `npm run migrate`/);
    };
    try {
      await withDb((db) => db.execute(sql`ALTER TABLE conversations RENAME COLUMN version TO version_hidden_by_test`));
      try {
        for (let i = 0; i < 3; i++) expectPending(await api("GET", `/conversations/${id}`, { token: users[0].token }));
      } finally {
        await withDb((db) => db.execute(sql`ALTER TABLE conversations RENAME COLUMN version_hidden_by_test TO version`));
      }
      // A room loading its history from a table that is not there: the Durable Object's error crosses RPC.
      await withDb((db) => db.execute(sql`ALTER TABLE messages RENAME TO messages_hidden_by_test`));
      try {
        for (let i = 0; i < 2; i++) expectPending(await api("GET", `/conversations/${fresh.id}/messages`, { token: fresh.users[0].token }));
      } finally {
        await withDb((db) => db.execute(sql`ALTER TABLE messages_hidden_by_test RENAME TO messages`));
      }
      const lines = errors.mock.calls.map((call) => String(call[0])).filter((line) => line.includes("npm run migrate"));
      expect(lines).toHaveLength(2);
    } finally {
      errors.mockRestore();
    }
    expect((await api("GET", `/conversations/${id}`, { token: users[0].token })).status).toBe(200);
    expect((await api("GET", `/conversations/${fresh.id}/messages`, { token: fresh.users[0].token })).status).toBe(200);
  });

  it("a user socket's get_presence while a migration is missing is told to run `npm run migrate`; the session logs it once", async () => {
    const { users } = await seedConversation("direct", 2);
    const errors = vi.spyOn(console, "error");
    const warnings = vi.spyOn(console, "warn");
    const logged = (spy: typeof errors, pattern: RegExp) => spy.mock.calls.map((call) => String(call[0])).filter((line) => pattern.test(line));
    const askPresence = async (phone: Awaited<ReturnType<typeof openSocket>>, id: string) => {
      phone.ws.send(JSON.stringify({ type: "get_presence", id, data: { userIds: [users[1].id] } }));
      const refused = await waitFor(() => phone.frames.find((f) => f.type === "error" && f.id === id), `the error for ${id}`);
      // It said "Presence unavailable; try again" for ever, and logged a warning per frame and per presence retry.
      expect(refused.data).toMatchObject({ code: "unavailable", message: expect.stringMatching(/run `npm run migrate`/) });
    };
    // Provisioned first: the upgrade's own insert names every column of users.
    expect((await api("GET", "/auth/me", { token: users[0].token })).status).toBe(200);
    await withDb((db) => db.execute(sql`ALTER TABLE users RENAME COLUMN online TO online_hidden_by_test`));
    try {
      // The connect publishes "online" (a write that fails, retried from the alarm); the app asks for presence.
      const phone = await openSocket("/ws", users[0]);
      await askPresence(phone, "p1");
      const once = logged(errors, /npm run migrate/).length;
      expect(once).toBeGreaterThan(0);
      await askPresence(phone, "p2");
      await askPresence(phone, "p3");
      phone.ws.close(1000, "done");
      expect(logged(errors, /npm run migrate/)).toHaveLength(once);
      expect(logged(warnings, /presence publish failed|get_presence failed/)).toEqual([]);
    } finally {
      errors.mockRestore();
      warnings.mockRestore();
      await withDb((db) => db.execute(sql`ALTER TABLE users RENAME COLUMN online_hidden_by_test TO online`));
    }
  });

  it("a 500 from a failed query logs Postgres's reason, not the start of drizzle's 'Failed query: …' text", async () => {
    const { id, users } = await seedConversation("group", 2);
    const errors = vi.spyOn(console, "error");
    await withDb((db) => db.execute(sql`ALTER TABLE conversations ADD CONSTRAINT refused_by_test CHECK (name IS DISTINCT FROM 'refused by test') NOT VALID`));
    try {
      const res = await api("PATCH", `/conversations/${id}`, { token: users[0].token, body: { name: "refused by test" } });
      expect(res.status).toBe(500);
      const logged = errors.mock.calls.map((call) => String(call[0])).filter((line) => line.includes('"msg":"request failed"'));
      expect(logged.at(-1)).toContain('violates check constraint \\"refused_by_test\\"');
    } finally {
      errors.mockRestore();
      await withDb((db) => db.execute(sql`ALTER TABLE conversations DROP CONSTRAINT refused_by_test`));
    }
  });

  it("/health/detailed answers 200 degraded with the cache down while the Redis REST endpoint is unreachable", async () => {
    await redis({ down: true });
    const res = await api("GET", "/health/detailed");
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      status: "degraded",
      checks: { database: { status: "ok" }, cache: { status: "down" }, profileService: { status: "ok" } },
    });
    expect(res.body.checks.cache.error).toBeTruthy();
    expect((await api("GET", "/health")).status).toBe(200);
    await redis({});
    const back = await api("GET", "/health/detailed");
    expect(back.body).toMatchObject({ status: "ok", checks: { cache: { status: "ok" } } });
  });
});
