import { env, runInDurableObject } from "cloudflare:test";
import { sql, type SQL } from "drizzle-orm";
import { openDb } from "../../src/db/client";
import type { ConversationRoom } from "../../src/durable-objects/conversation-room";
import type { OutboxDeps } from "../../src/durable-objects/room/outbox";
import { newUser, type TestUser } from "./helpers";

const controlUrl = (env as unknown as { TEST_BRIDGE_CONTROL: string }).TEST_BRIDGE_CONTROL;

/** Switches the shared Postgres bridge's fault on or off: only for *.serial.test.ts files (the whole stack sees it). */
export async function postgres(fault: { down?: boolean; delayMs?: number }) {
  const res = await fetch(`${controlUrl}/__control`, {
    method: "POST",
    headers: { authorization: "Bearer local-control-token", "content-type": "application/json" },
    body: JSON.stringify({ fault }),
  });
  if (!res.ok) throw new Error(`bridge control failed: ${res.status}`);
}

/** The bridge's counters: `opened` counts every Postgres connection made through it (anyone's: serial files only). */
export interface BridgeStats {
  opened: number;
  current: number;
  exchanges: number;
  /** Statements sent over HTTP (`POST /sql`); their `recent` entries have connection 0. */
  httpQueries: number;
  recent: { connection: number; text: string }[];
}

export async function bridgeStats(): Promise<BridgeStats> {
  const res = await fetch(`${controlUrl}/__control/stats`, { headers: { authorization: "Bearer local-control-token" } });
  if (!res.ok) throw new Error(`bridge stats failed: ${res.status}`);
  return (await res.json()) as BridgeStats;
}

/** Direct database access from inside workerd, through the same driver and bridge the Worker uses. */
export async function withDb<T>(work: (db: ReturnType<typeof openDb>["db"]) => Promise<T>): Promise<T> {
  const handle = openDb({ databaseUrl: env.DATABASE_URL, bridge: env.PG_BRIDGE });
  try {
    return await work(handle.db);
  } finally {
    await handle.end();
  }
}

/**
 * A change to audit_log as the table's owner could make it: migration 0008's append-only trigger is switched off for
 * this one transaction (the ALTER's lock keeps every other session out meanwhile), so tests can prove that the hash
 * chain still detects what the trigger cannot prevent.
 */
export async function tamperAudit(statement: SQL): Promise<void> {
  await withDb((db) =>
    db.transaction(async (tx) => {
      await tx.execute(sql`ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only`);
      await tx.execute(statement);
      await tx.execute(sql`ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only`);
    }),
  );
}

/** A conversation inserted straight into Postgres (independent of the conversation routes under test elsewhere). */
export async function seedConversation(
  type: "direct" | "group" | "business",
  count: number,
): Promise<{ id: string; users: TestUser[] }> {
  const users: TestUser[] = [];
  for (let i = 0; i < count; i++) users.push(await newUser(`seed${i}`));
  const id = crypto.randomUUID();
  await withDb(async (db) => {
    for (const u of users) await db.execute(sql`INSERT INTO users (id, kaha_id) VALUES (${u.id}, ${u.kahaId}) ON CONFLICT DO NOTHING`);
    const directKey = type === "direct" ? [users[0].id, users[1].id].sort().join(":") : null;
    await db.execute(
      sql`INSERT INTO conversations (id, type, name, direct_key, created_by) VALUES (${id}, ${type}, ${type === "group" ? "Seeded" : null}, ${directKey}, ${users[0].id})`,
    );
    for (const [i, u] of users.entries()) {
      const role = type === "group" ? (i === 0 ? "admin" : "member") : type === "business" ? (i === 0 ? "customer" : "agent") : "member";
      await db.execute(sql`INSERT INTO participants (conversation_id, user_id, role) VALUES (${id}, ${u.id}, ${role})`);
    }
  });
  return { id, users };
}

/**
 * Holds a room's history backfill (src/durable-objects/room/backfill.ts), as if its reads of older messages had not
 * got there yet: pages and lookups the room does not hold then go to Postgres. Call before the room first loads; the
 * instance keeps it (a test does not outlive it).
 */
export async function holdBackfill(conversationId: string): Promise<void> {
  const stub = env.CONVERSATION_ROOM.get(env.CONVERSATION_ROOM.idFromName(conversationId));
  await runInDurableObject(stub, (room: ConversationRoom) => {
    room.backfill.due = () => false;
    room.backfill.dueAt = () => undefined;
  });
}

/**
 * Runs `between` once, after the room's next Postgres read has its answer and before the room uses it: a change that
 * lands while a page or a backfill chunk is on its way back.
 */
export function afterNextRead(instance: ConversationRoom, between: () => Promise<unknown>): void {
  const read = instance.pgOr503.bind(instance);
  let once = true;
  instance.pgOr503 = async <T>(work: () => Promise<T>): Promise<T> => {
    const result = await read(work);
    if (once) {
      once = false;
      await between();
    }
    return result;
  };
}

/**
 * Holds the room's next Postgres read once it has its answer, until `release()`: a notice's member-list read that is
 * still out while the test acts. `reading()` says when the hold has begun.
 */
export async function holdNextRead(conversationId: string): Promise<{ reading: () => boolean; release: () => void }> {
  let reading = false;
  let release = () => {};
  const released = new Promise<void>((r) => (release = r));
  const stub = env.CONVERSATION_ROOM.get(env.CONVERSATION_ROOM.idFromName(conversationId));
  await runInDurableObject(stub, (instance: ConversationRoom) => {
    const read = instance.pgOr503.bind(instance);
    instance.pgOr503 = async <T>(work: () => Promise<T>): Promise<T> => {
      const result = await read(work);
      instance.pgOr503 = read;
      reading = true;
      await released;
      return result;
    };
  });
  return { reading: () => reading, release };
}

/** Messages written straight into Postgres with a given age, as if they had been sent long ago. */
export async function seedMessages(conversationId: string, senderId: string, fromSeq: number, toSeq: number, createdAt: Date) {
  await withDb(async (db) => {
    await db.execute(sql`
      INSERT INTO messages (id, conversation_id, seq, sender_id, type, content, created_at, event_seq)
      SELECT gen_random_uuid(), ${conversationId}::uuid, g, ${senderId}::uuid, 'text', 'old message ' || g,
             ${createdAt.toISOString()}::timestamptz + g * interval '1 millisecond', g
      FROM generate_series(${fromSeq}::int, ${toSeq}::int) AS g`);
    await db.execute(sql`UPDATE conversations SET last_seq = GREATEST(last_seq, ${toSeq}) WHERE id = ${conversationId}::uuid`);
  });
}

/** The seqs a table holds for a conversation, ascending. */
export async function seqs(table: "messages" | "message_archive", conversationId: string): Promise<number[]> {
  const t = sql.identifier(table);
  const rows = await withDb((db) => db.execute<{ seq: string }>(sql`SELECT seq FROM ${t} WHERE conversation_id = ${conversationId}::uuid ORDER BY seq`));
  return rows.rows.map((r) => Number(r.seq));
}

/** A trigger that runs `body` (plpgsql) before each insert into `table` of this conversation's rows. Returns the undo. */
async function conversationInsertTrigger(table: "messages" | "audit_log", conversationId: string, prefix: string, body: string): Promise<() => Promise<void>> {
  const fn = `${prefix}_${table}_${conversationId.replace(/-/g, "")}`;
  await withDb(async (db) => {
    await db.execute(sql.raw(`CREATE FUNCTION ${fn}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
      IF NEW.conversation_id = '${conversationId}' THEN ${body}; END IF; RETURN NEW; END $$`));
    await db.execute(sql.raw(`CREATE TRIGGER ${fn} BEFORE INSERT ON ${table} FOR EACH ROW EXECUTE FUNCTION ${fn}()`));
  });
  return () =>
    withDb(async (db) => {
      await db.execute(sql.raw(`DROP TRIGGER IF EXISTS ${fn} ON ${table}`));
      await db.execute(sql.raw(`DROP FUNCTION IF EXISTS ${fn}()`));
    });
}

/**
 * Postgres takes a second for each of this conversation's message inserts (a trigger), so a room's flush, and what
 * waits for its commit (acks, notifications), is held while the test acts. Returns the undo.
 */
export function slowMessageInserts(conversationId: string): Promise<() => Promise<void>> {
  return conversationInsertTrigger("messages", conversationId, "slow", "PERFORM pg_sleep(1)");
}

/**
 * The room's flushes wait `ms` before they reach Postgres (a distant or busy database), so what the room holds
 * and what Postgres has differ while the test acts. Needs a room that is loaded; returns the undo. (A slow statement
 * in the test's Postgres would not do: it runs one statement at a time, so a read waits for the slow write.)
 */
export async function slowRoomFlushes(conversationId: string, ms = 500): Promise<() => Promise<void>> {
  const room = env.CONVERSATION_ROOM.get(env.CONVERSATION_ROOM.idFromName(conversationId));
  const original = await runInDurableObject(room, (instance: ConversationRoom) => {
    const deps = (instance.flusher as unknown as { deps: OutboxDeps }).deps;
    const write = deps.write;
    deps.write = async (...args) => {
      await new Promise((r) => setTimeout(r, ms));
      return write(...args);
    };
    return write;
  });
  return () =>
    runInDurableObject(room, (instance: ConversationRoom) => {
      (instance.flusher as unknown as { deps: OutboxDeps }).deps.write = original;
    });
}

/**
 * Postgres refuses this conversation's inserts into `table` (messages: its new messages; audit_log: its edits and
 * deletes, which commit with their audit entry), so they stay waiting in the room. Returns the undo.
 */
export function refuseInserts(table: "messages" | "audit_log", conversationId: string): Promise<() => Promise<void>> {
  return conversationInsertTrigger(table, conversationId, "refuse", "RAISE EXCEPTION 'held back by the test'");
}
