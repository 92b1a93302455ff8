import { and, count, desc, eq, gt, isNull, sql, type SQL } from "drizzle-orm";
import type { PgColumn } from "drizzle-orm/pg-core";
import { unavailable } from "../../lib/errors";
import type { AnyDb, Db } from "../client";
import { businessAgents, conversations, messages, participants, users } from "../schema";
import { auditInsertEach, auditedChange, chained, type AuditEntry } from "./audit";
import { placeheldNow, placeholderRows, unprovisioned } from "./users";
import { partsColumns, type PartsColumns } from "./conversation-parts";

export type ConversationRow = typeof conversations.$inferSelect;
export type ParticipantRow = typeof participants.$inferSelect;

/** A conversation seen by one of its active participants (`me`). */
export interface Membership {
  conversation: ConversationRow;
  me: ParticipantRow;
}

export interface CreateResult {
  id: string;
  created: boolean;
  /** Users whose earlier `left_at` was cleared because the conversation was asked for again. */
  rejoined: string[];
}

const active = (conversationId: string, userId: string) =>
  and(eq(participants.conversationId, conversationId), eq(participants.userId, userId), isNull(participants.leftAt));

export async function findMembership(db: AnyDb, conversationId: string, userId: string): Promise<Membership | undefined> {
  const rows = await db
    .select({ conversation: conversations, me: participants })
    .from(participants)
    .innerJoin(conversations, eq(conversations.id, participants.conversationId))
    .where(active(conversationId, userId))
    .limit(1);
  return rows[0];
}

/**
 * One statement creates the conversation or, when the unique index already holds one, does nothing; a second then
 * finds the winner. A concurrent creator waits on the index entry until the winner commits, so both sides of a
 * race agree on one id without a lookup-then-insert window.
 */
interface NewConversation {
  row: typeof conversations.$inferInsert & { id: string };
  /** The unique index that decides the race: its columns and its predicate. None for a group (always new). */
  conflict?: { target: PgColumn[]; where: SQL };
  members: { userId: string; role: ParticipantRow["role"] }[];
}

/**
 * The first entry of a conversation's audit chain: who created it, with whom. Written in the creating statement,
 * so a conversation never exists without it and a found (not created) conversation never gets a second one.
 */
function createdEntry(row: NewConversation["row"], memberIds: string[]): AuditEntry {
  return {
    conversationId: row.id,
    actorId: row.createdBy ?? null,
    action: "conversation.created",
    targetId: row.id,
    details: {
      type: row.type,
      memberIds,
      ...(row.name ? { name: row.name } : {}),
      ...(row.businessId ? { businessId: row.businessId } : {}),
    },
  };
}

/**
 * The conversation, its members (with placeholder users rows for members this isolate has not seen) and the
 * first entry of its audit chain, in ONE statement: from the edge every round trip to Postgres counts, and a
 * statement is atomic on its own. The members and the entry are written only when the conversation row was
 * (`FROM c`); the foreign keys are checked at the end of the statement, after every part of it. true: created.
 */
async function insertNew(db: Db, { row, conflict, members }: NewConversation): Promise<boolean> {
  const entry = await chained(null, createdEntry(row, members.map((m) => m.userId)));
  const insert = db.insert(conversations).values(row);
  const conversation = (conflict ? insert.onConflictDoNothing({ target: conflict.target, where: conflict.where }) : insert).returning({
    id: conversations.id,
  });
  const newUsers = unprovisioned(members.map((m) => m.userId));
  const placeholders = newUsers.length ? sql`, u AS (${db.insert(users).values(placeholderRows(newUsers)).onConflictDoNothing({ target: users.id }).getSQL()})` : sql``;
  const result = await db.execute<{ id: string }>(sql`
    WITH c AS (${conversation.getSQL()})${placeholders},
    p AS (
      INSERT INTO participants (conversation_id, user_id, role)
      SELECT c.id, m.user_id, m.role FROM c
      CROSS JOIN (VALUES ${sql.join(members.map((m) => sql`(${m.userId}::uuid, ${m.role})`), sql`, `)}) AS m (user_id, role)
    ),
    a AS (
      INSERT INTO audit_log (conversation_id, actor_id, action, target_id, details, created_at, prev_hash, hash)
      SELECT c.id, ${entry.actorId}::uuid, ${entry.action}, ${entry.targetId}, ${JSON.stringify(entry.details)}::jsonb,
             ${entry.createdAt.toISOString()}::timestamptz, NULL, ${entry.hash}
      FROM c
    )
    SELECT id FROM c`);
  placeheldNow(newUsers);
  return result.rows.length > 0;
}

/**
 * Found, not created: the conversation's id, and who of `rejoin` was brought back (their `left_at` cleared), each
 * recorded as `participant.added` {role, rejoined} with the asker as actor, as the group route records a return.
 * ONE statement: the lookup, the return and its audit entries (data-modifying CTEs, `auditInsertEach`; the chain is
 * the conversation the lookup finds), so a repeat request that finds everyone in costs what the lookup alone did.
 */
async function rejoinExisting(db: Db, existing: SQL | undefined, rejoin: { userId: string; role: ParticipantRow["role"] }[], actorId: string): Promise<CreateResult> {
  const at = new Date().toISOString();
  const found = db.select({ id: conversations.id }).from(conversations).where(existing).limit(1);
  const entries = rejoin.map(({ userId, role }) => ({
    key: userId,
    entry: { actorId, action: "participant.added", targetId: userId, details: { role, rejoined: true }, at },
  }));
  const result = await db.execute<{ id: string; rejoined: string[] | null }>(sql`
    WITH f AS (${found.getSQL()}),
    r AS (
      UPDATE participants SET left_at = NULL, joined_at = clock_timestamp()
      WHERE conversation_id = (SELECT id FROM f) AND left_at IS NOT NULL
        AND user_id IN (${sql.join(rejoin.map((m) => sql`${m.userId}::uuid`), sql`, `)})
      RETURNING user_id
    ),
    v AS (UPDATE conversations SET version = version + 1 WHERE id = (SELECT id FROM f) AND EXISTS (SELECT 1 FROM r)),
    a AS (${auditInsertEach(sql`(SELECT id FROM f)`, sql`(SELECT user_id::text AS key FROM r)`, entries)})
    SELECT f.id, (SELECT array_agg(user_id::text) FROM r) AS rejoined FROM f`);
  const row = result.rows[0];
  // The row we conflicted with vanished between the two statements (closed or deleted): let the client retry.
  if (!row) throw unavailable("Conversation changed concurrently, please retry", 1);
  return { id: row.id, created: false, rejoined: row.rejoined ?? [] };
}

/**
 * One direct conversation per pair, ever. Asking for it again brings back either side that had left: a direct
 * conversation with one member would swallow every message sent to the other.
 */
export async function createDirect(db: Db, actorId: string, targetId: string, key: string): Promise<CreateResult> {
  const id = crypto.randomUUID();
  const created = await insertNew(db, {
    row: { id, type: "direct", directKey: key, createdBy: actorId },
    conflict: { target: [conversations.directKey], where: sql`direct_key IS NOT NULL` },
    members: [
      { userId: actorId, role: "member" },
      { userId: targetId, role: "member" },
    ],
  });
  return created ? { id, created, rejoined: [] } : rejoinExisting(
        db,
        eq(conversations.directKey, key),
        [
          { userId: actorId, role: "member" },
          { userId: targetId, role: "member" },
        ],
        actorId,
      );
}

/** At most one open conversation per customer and business (partial unique index). */
export async function createBusiness(db: Db, customerId: string, businessId: string, category: string | null = null): Promise<CreateResult> {
  const id = crypto.randomUUID();
  const created = await insertNew(db, {
    // The category goes in with the row: a repeat request that finds it before the desk has it routes by it too.
    row: { id, type: "business", businessId, customerId, createdBy: customerId, category },
    conflict: { target: [conversations.businessId, conversations.customerId], where: sql`type = 'business' AND status = 'open'` },
    members: [{ userId: customerId, role: "customer" }],
  });
  if (created) return { id, created, rejoined: [] };
  const open = and(
    eq(conversations.type, "business"),
    eq(conversations.status, "open"),
    eq(conversations.businessId, businessId),
    eq(conversations.customerId, customerId),
  );
  // Only the customer comes back on a repeat request; an agent is placed once, when the conversation opens.
  return rejoinExisting(db, open, [{ userId: customerId, role: "customer" }], customerId);
}

export async function createGroup(db: Db, creatorId: string, name: string | null, memberIds: string[]): Promise<string> {
  const id = crypto.randomUUID();
  await insertNew(db, {
    row: { id, type: "group", name, createdBy: creatorId },
    members: [{ userId: creatorId, role: "admin" }, ...memberIds.map((userId) => ({ userId, role: "member" as const }))],
  });
  return id;
}

export async function isBusinessAgent(db: Db, businessId: string, userId: string): Promise<boolean> {
  const rows = await db
    .select({ userId: businessAgents.userId })
    .from(businessAgents)
    .where(and(eq(businessAgents.businessId, businessId), eq(businessAgents.userId, userId)))
    .limit(1);
  return rows.length > 0;
}

export interface Rename {
  conversationId: string;
  actorId: string;
  /** The name the caller read: the rename applies only while it is still the name, so `from` is what it replaced. */
  from: string | null;
  to: string;
  /**
   * The version the caller read: the rename applies only while nothing else changed the view (a member change
   * meanwhile), so the view the route answers and pushes, read before it with that version plus one, is true.
   */
  version: number;
}

/**
 * Renames and records it (`conversation.renamed`, {from, to}) in ONE statement: the UPDATE and the audit entry in
 * data-modifying CTEs, atomic without BEGIN/COMMIT, so a rename stays the membership check plus this, two round
 * trips. A transaction (BEGIN, UPDATE, lock, read the chain's head, INSERT, COMMIT) would have been six. The entry
 * is hashed in SQL after the lock (`auditedChange`); the old name is the one the caller read, kept honest by the
 * UPDATE's condition (re-checked on the current row if a concurrent rename got there first). false: the name had
 * changed meanwhile, or the actor is no longer an admin; nothing was written.
 */
export async function renameConversation(db: AnyDb, r: Rename): Promise<boolean> {
  const entry = { conversationId: r.conversationId, actorId: r.actorId, action: "conversation.renamed", targetId: r.conversationId, details: { from: r.from, to: r.to } };
  // The actor must still be an admin when the row changes: a demotion or removal committed after the route's check
  // wins, as it does for membership changes (checkActorNow); the route then reads again and answers 403 or 404.
  const update = sql`UPDATE conversations SET name = ${r.to}, version = version + 1
    WHERE id = ${r.conversationId}::uuid AND name IS NOT DISTINCT FROM ${r.from}::text AND version = ${r.version}
      AND EXISTS (SELECT 1 FROM participants p WHERE p.conversation_id = conversations.id AND p.user_id = ${r.actorId}::uuid
                  AND p.left_at IS NULL AND p.role = 'admin')
    RETURNING id`;
  return (await auditedChange(db, update, entry)) > 0;
}

/** Full precision (microseconds) of last_activity: a millisecond Date would make keyset pages skip or repeat rows. */
const activityKey = sql<string>`to_char(${conversations.lastActivity} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;

/** A conversation of a list page, with what the page shows around it (participants, last message, unread). */
export interface ListedConversation extends Membership {
  activityKey: string;
  parts: PartsColumns;
}

export interface ListAfter {
  activity: string;
  id: string;
}

/** The list's rows, newest activity first; `extra` adds columns (the numbered page's total). */
function listQuery<E extends Record<string, SQL>>(db: AnyDb, extra: E = {} as E) {
  return db
    .select({ conversation: conversations, me: participants, activityKey, parts: partsColumns, ...extra })
    .from(participants)
    .innerJoin(conversations, eq(conversations.id, participants.conversationId))
    .$dynamic()
    .orderBy(desc(conversations.lastActivity), desc(conversations.id));
}

const activeFor = (userId: string) => and(eq(participants.userId, userId), isNull(participants.leftAt));

/** Keyset page, newest activity first; fetches one extra row to know whether another page exists. */
export async function listByCursor(db: AnyDb, userId: string, limit: number, after?: ListAfter): Promise<ListedConversation[]> {
  const where = after
    ? and(
        activeFor(userId),
        sql`(${conversations.lastActivity}, ${conversations.id}) < (${after.activity}::timestamptz, ${after.id}::uuid)`,
      )
    : activeFor(userId);
  return listQuery(db).where(where).limit(limit + 1);
}

/** A numbered page and the number of conversations in all: one statement, unless the page is past the end. */
export async function listByPage(db: AnyDb, userId: string, limit: number, page: number): Promise<{ rows: ListedConversation[]; total: number }> {
  const rows = await listQuery(db, { total: sql<number>`count(*) OVER ()`.mapWith(Number) })
    .where(activeFor(userId))
    .limit(limit)
    .offset((page - 1) * limit);
  if (rows.length > 0) return { rows, total: rows[0].total };
  const totals = await db.select({ n: count() }).from(participants).where(activeFor(userId));
  return { rows: [], total: Number(totals[0]?.n ?? 0) };
}

/** The direct conversation of a pair as the list shows it, if `userId` is still in it (the common repeat ask). */
export async function findListedDirect(db: AnyDb, key: string, userId: string): Promise<ListedConversation | undefined> {
  const rows = await listQuery(db)
    .where(and(eq(conversations.directKey, key), activeFor(userId)))
    .limit(1);
  return rows[0];
}

/** One conversation as the list shows it, if the user is an active participant. */
export async function findListed(db: AnyDb, conversationId: string, userId: string): Promise<ListedConversation | undefined> {
  const rows = await listQuery(db).where(active(conversationId, userId)).limit(1);
  return rows[0];
}

/** The messages that count as unread for the participant row they are joined to (design notes). */
const unreadJoin = and(
  eq(messages.conversationId, participants.conversationId),
  gt(messages.seq, participants.lastReadSeq),
  sql`${messages.senderId} <> ${participants.userId}`,
  isNull(messages.deletedAt),
);

export interface UnreadSummaryRow {
  conversationId: string;
  isMuted: boolean;
  unread: number;
  lastActivity: Date;
}

/** Every active membership of the user with its unread count (zero included), mute flag and the conversation's activity, in one query. */
export async function unreadSummary(db: AnyDb, userId: string): Promise<UnreadSummaryRow[]> {
  const rows = await db
    .select({
      conversationId: participants.conversationId,
      isMuted: participants.isMuted,
      unread: count(messages.id),
      lastActivity: conversations.lastActivity,
    })
    .from(participants)
    .innerJoin(conversations, eq(conversations.id, participants.conversationId))
    .leftJoin(messages, unreadJoin)
    .where(activeFor(userId))
    .groupBy(participants.conversationId, participants.isMuted, conversations.lastActivity);
  return rows.map((r) => ({ ...r, unread: Number(r.unread) }));
}
