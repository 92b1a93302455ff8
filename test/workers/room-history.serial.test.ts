import { afterEach, describe, expect, it } from "vitest";
import { env, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { sql } from "drizzle-orm";
import type { ConversationRoom } from "../../src/durable-objects/conversation-room";
import { getConfig } from "../../src/lib/config";
import { createLogger } from "../../src/lib/log";
import { archiveJob } from "../../src/jobs/retention";
import { runJob } from "../../src/jobs/runner";
import { api } from "./helpers";
import { afterNextRead, postgres, seedConversation, withDb } from "./fixtures";

/**
 * The room holds its conversation's whole unarchived history: old pages are answered without Postgres (this file
 * switches the shared Postgres bridge down, hence serial).
 */
const room = (id: string) => env.CONVERSATION_ROOM.get(env.CONVERSATION_ROOM.idFromName(id));

type Page = { status: number; body: { messages: { seq: number; content: string; id: string }[]; hasMore: boolean } };
const seqs = (page: Page) => page.body.messages.map((m) => m.seq);
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

/** `count` messages written straight into Postgres ("old <seq>"), as if sent before the room existed. */
const seedHistory = (id: string, senderId: string, count: number) =>
  withDb(async (db) => {
    await db.execute(sql`
      INSERT INTO messages (id, conversation_id, seq, sender_id, type, content, created_at, event_seq)
      SELECT gen_random_uuid(), ${id}::uuid, g, ${senderId}::uuid, 'text', 'old ' || g, now() - interval '1 hour' + g * interval '1 millisecond', g
      FROM generate_series(1, ${count}::int) AS g`);
    await db.execute(sql`UPDATE conversations SET last_seq = ${count} WHERE id = ${id}::uuid`);
  });

const pgHistory = (id: string) =>
  withDb(async (db) =>
    (
      await db.execute<{ seq: string; id: string; content: string }>(
        sql`SELECT seq, id, content FROM messages WHERE conversation_id = ${id}::uuid ORDER BY seq`,
      )
    ).rows.map((r) => ({ seq: Number(r.seq), id: r.id, content: r.content })),
  );

/** Every page of the conversation, newest first, as a client scrolling back reads them. */
async function scrollBack(id: string, token: string): Promise<{ seq: number; id: string; content: string }[]> {
  const all: { seq: number; id: string; content: string }[] = [];
  let before: number | undefined;
  for (;;) {
    const page: Page = await api("GET", `/conversations/${id}/messages?limit=100${before ? `&before=${before}` : ""}`, { token });
    expect(page.status).toBe(200);
    all.unshift(...page.body.messages.map(({ seq, id: mid, content }) => ({ seq, id: mid, content })));
    if (!page.body.hasMore) return all;
    before = page.body.messages[0].seq;
  }
}

/** Runs the room's alarm until it holds `count` messages (alarms may also fire on their own meanwhile). */
async function untilHolding(id: string, count: number): Promise<void> {
  const held = () =>
    runInDurableObject(room(id), async (_instance: ConversationRoom, state) => state.storage.sql.exec<{ n: number }>("SELECT count(*) AS n FROM messages").one().n);
  for (let i = 0; i < 100; i++) {
    if ((await held()) === count) return;
    await runDurableObjectAlarm(room(id));
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error("the room's history was not hydrated in time");
}

afterEach(async () => {
  await postgres({});
});

describe("a room holding its whole history", () => {
  it("serves old pages of a long conversation while Postgres is down, and drops only what the retention job archived", { timeout: 120_000 }, async () => {
    const { id, users } = await seedConversation("direct", 2);
    const [alice, bob] = users;
    // More than the thousand newest messages the room used to keep.
    const total = 1150;
    // Straight to the room (the REST route's per-user rate limit would stretch this to minutes).
    for (let next = 1; next <= total; next += 50) {
      await Promise.all(
        range(next, Math.min(total, next + 49)).map((n) => {
          const sender = n % 2 ? alice : bob;
          return room(id).send({ conversationId: id, actor: { id: sender.id, kahaId: sender.kahaId }, content: `message ${n}` });
        }),
      );
    }
    expect((await room(id).flushNow()).pending).toBe(0);
    await postgres({ down: true });
    const old = await api("GET", `/conversations/${id}/messages?before=101&limit=100`, { token: bob.token });
    expect(old.status).toBe(200);
    expect(seqs(old)).toEqual(range(1, 100));
    expect(old.body.hasMore).toBe(false);
    const first = old.body.messages[0];
    // One message by id, and a resume from the very start, need no Postgres either.
    expect((await api("GET", `/conversations/${id}/messages/${first.id}`, { token: bob.token })).body).toMatchObject({ seq: 1, content: first.content });
    const replay = await room(id).replay(0);
    expect(replay.complete).toBe(true);
    expect(replay.messages.map((m) => m.seq)).toEqual(range(1, total));
    await postgres({});

    // The retention job moves seq 1–60: the room forgets exactly those, and its pages end at the mark.
    await withDb((db) => db.execute(sql`UPDATE messages SET created_at = now() - interval '100 days' WHERE conversation_id = ${id}::uuid AND seq <= 60`));
    const job = archiveJob({ conversationIds: [id], name: `hydrate-archive-${id.slice(0, 8)}` });
    await withDb((db) => runJob(job, { env, config: getConfig(env), db, log: createLogger({ test: "hydrate" }), force: true }));
    const held = await runInDurableObject(room(id), async (_instance: ConversationRoom, state) =>
      state.storage.sql.exec<{ low: number; n: number }>("SELECT min(seq) AS low, count(*) AS n FROM messages").one(),
    );
    expect(held).toEqual({ low: 61, n: total - 60 });
    await postgres({ down: true });
    const after = await api("GET", `/conversations/${id}/messages?before=101&limit=100`, { token: bob.token });
    expect(after.status).toBe(200);
    expect(seqs(after)).toEqual(range(61, 100));
    expect(after.body.hasMore).toBe(false);
    expect(seqs(await api("GET", `/conversations/${id}/messages?before=61`, { token: bob.token }))).toEqual([]);
    // A client resuming from before the mark gets what is left, from the room.
    const rest = await room(id).replay(0);
    expect({ complete: rest.complete, seqs: rest.messages.map((m) => m.seq) }).toEqual({ complete: true, seqs: range(61, total) });
  });

  it("a room started over history only Postgres has reads it in, keeping an edit made while the chunk was read", { timeout: 120_000 }, async () => {
    const { id, users } = await seedConversation("direct", 2);
    const [alice, bob] = users;
    await seedHistory(id, alice.id, 1000);
    const target = (await pgHistory(id))[4];
    // The edit lands between the backfill's read of seq 1–900 and its adoption: the read is stale for seq 5.
    await runInDurableObject(room(id), async (instance: ConversationRoom) => {
      afterNextRead(instance, () =>
        instance.editMessage({ conversationId: id, actor: { id: alice.id, kahaId: alice.kahaId }, messageId: target.id, content: "old 5, edited" }),
      );
    });
    // Opening the conversation starts the room: it adopts the newest page and holds seq 901–1000 only.
    const newest = await api("GET", `/conversations/${id}/messages?limit=20`, { token: bob.token });
    expect(seqs(newest)).toEqual(range(981, 1000));
    await untilHolding(id, 1000);
    expect((await room(id).outboxStatus()).pending).toBe(0);
    const expected = await pgHistory(id);
    expect(expected[4]).toMatchObject({ seq: 5, content: "old 5, edited" });
    await postgres({ down: true });
    // Every page, from the room alone, as Postgres has them.
    expect(await scrollBack(id, bob.token)).toEqual(expected);
  });

  it("a room whose storage predates whole histories reads back the rows it had pruned", async () => {
    const { id, users } = await seedConversation("direct", 2);
    const [alice, bob] = users;
    for (const n of range(1, 30)) await room(id).send({ conversationId: id, actor: { id: alice.id, kahaId: alice.kahaId }, content: `message ${n}` });
    // What such storage looks like: no heldFrom, and only the newest rows (seq 21–30 here). A new instance reads it.
    await runInDurableObject(room(id), async (_instance: ConversationRoom, state) => {
      state.storage.sql.exec("DELETE FROM meta WHERE key = 'heldFrom'");
      state.storage.sql.exec("DELETE FROM messages WHERE seq <= 20");
      state.abort("restart over older storage");
    }).catch(() => {});
    const page = () => api("GET", `/conversations/${id}/messages?before=11`, { token: bob.token });
    expect((await page()).status).toBe(200);
    await untilHolding(id, 30);
    await postgres({ down: true });
    const old = await page();
    expect(old.status).toBe(200);
    expect(old.body.messages.map((m: { content: string }) => m.content)).toEqual(range(1, 10).map((n) => `message ${n}`));
  });
});
