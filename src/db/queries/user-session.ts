import { and, asc, eq, inArray, isNull, lt, or, sql } from "drizzle-orm";
import type { Db } from "../client";
import { users } from "../schema";
import { epochMs } from "./messages";

export interface MembershipSummary {
  conversationId: string;
  isMuted: boolean;
  unread: number;
  /** The newest committed seq the count covers (the flush writes it with the messages) and the read mark. */
  lastSeq: number;
  lastReadSeq: number;
}

/**
 * Every active membership of a user with its unread count, in one query (the user session's badge source), or only
 * the one in `conversationId`: a user in hundreds of conversations is counted once per connect, not per new one.
 * Most recently active first (a connecting device is sent the zero counts of the first ones only).
 */
export async function membershipSummary(db: Db, userId: string, conversationId?: string): Promise<MembershipSummary[]> {
  const result = await db.execute<{ conversation_id: string; is_muted: boolean; unread: string; last_seq: string; last_read_seq: string }>(sql`
    SELECT p.conversation_id, p.is_muted, c.last_seq, p.last_read_seq,
           (SELECT count(*) FROM messages m
             WHERE m.conversation_id = p.conversation_id AND m.seq > p.last_read_seq
               AND m.sender_id <> p.user_id AND m.deleted_at IS NULL) AS unread
    FROM participants p JOIN conversations c ON c.id = p.conversation_id
    WHERE p.user_id = ${userId} AND p.left_at IS NULL${conversationId ? sql` AND p.conversation_id = ${conversationId}` : sql``}
    ORDER BY c.last_activity DESC`);
  return result.rows.map((r) => ({
    conversationId: r.conversation_id,
    isMuted: r.is_muted,
    unread: Number(r.unread),
    lastSeq: Number(r.last_seq),
    lastReadSeq: Number(r.last_read_seq),
  }));
}

export interface ContactFlag {
  userId: string;
  online: boolean;
  lastSeen: Date | null;
}

/**
 * Of `ids`, the users who share an active conversation with `userId` (nobody else's presence is theirs to see),
 * with the flag their sessions keep in Postgres: only those marked online need their session asked.
 */
export async function contactFlags(db: Db, userId: string, ids: string[]): Promise<ContactFlag[]> {
  if (ids.length === 0) return [];
  const result = await db.$client.query<{ id: string; online: boolean; last_seen: number | null }>({
    text: `SELECT u.id, u.online, ${epochMs("u.last_seen_at")} AS last_seen
           FROM users u
           WHERE u.id = ANY($2::uuid[]) AND u.id <> $1 AND EXISTS (
             SELECT 1 FROM participants me JOIN participants other ON other.conversation_id = me.conversation_id
             WHERE me.user_id = $1 AND me.left_at IS NULL AND other.user_id = u.id AND other.left_at IS NULL)`,
    values: [userId, ids],
  });
  return result.rows.map((r) => ({ userId: r.id, online: r.online, lastSeen: r.last_seen === null ? null : new Date(r.last_seen) }));
}

export interface PresenceAudience {
  /** Contacts who are online: only they have a device to tell (a session without devices would wake for nothing). */
  contacts: string[];
  /**
   * The rooms a change between online and offline goes to: every open conversation (its room decides from it whom
   * to notify), and closed ones only where another member is online. A closed conversation takes no messages, and
   * a business agent keeps every conversation they ever handled.
   */
  conversations: string[];
  /** The conversations where another member is online: all that an online ⇄ away change needs to reach. */
  watched: string[];
  businesses: string[];
}

/**
 * A presence change in one statement: the user's flag is written (the UPDATE commits before the rooms hear of it,
 * so a room that loads meanwhile reads the new state) and everyone to tell comes back with it. A session opens a
 * connection per change, and against a distant database each statement is a round trip. Offline contacts are left
 * out: a business agent shares conversations with thousands of customers, and every change woke each one's session.
 */
export async function publishPresence(db: Db, userId: string, online: boolean, lastSeen: Date | null): Promise<PresenceAudience> {
  // A data-modifying WITH runs to completion whether or not the SELECT reads it.
  const result = await db.execute<{ contacts: string[]; conversations: string[]; watched: string[]; businesses: string[] }>(sql`
    WITH flag AS (
      UPDATE users SET online = ${online}, last_seen_at = COALESCE(${lastSeen?.toISOString() ?? null}::timestamptz, last_seen_at)
      WHERE id = ${userId} RETURNING id
    ), mine AS (
      SELECT p.conversation_id, c.status = 'open' AS open FROM participants p JOIN conversations c ON c.id = p.conversation_id
      WHERE p.user_id = ${userId} AND p.left_at IS NULL
    ), online_others AS (
      SELECT other.conversation_id, other.user_id FROM participants other JOIN mine USING (conversation_id)
      JOIN users u ON u.id = other.user_id
      WHERE other.user_id <> ${userId} AND other.left_at IS NULL AND u.online
    )
    SELECT ARRAY(SELECT DISTINCT user_id::text FROM online_others) AS contacts,
           ARRAY(SELECT conversation_id::text FROM mine
                 WHERE open OR conversation_id IN (SELECT conversation_id FROM online_others)) AS conversations,
           ARRAY(SELECT DISTINCT conversation_id::text FROM online_others) AS watched,
           ARRAY(SELECT business_id::text FROM business_agents WHERE user_id = ${userId}) AS businesses`);
  const row = result.rows[0];
  return { contacts: row?.contacts ?? [], conversations: row?.conversations ?? [], watched: row?.watched ?? [], businesses: row?.businesses ?? [] };
}

/** Where a presence pass stopped: the last user it took, in its order (last_seen_at as Postgres prints it, exact). */
export interface StaleOnlineCursor {
  lastSeenAt: string | null;
  id: string;
}

/**
 * Users Postgres holds as online whose flag was last written before `before`, oldest first (never written first),
 * after `after` in that order: the presence reconcile job asks each one's session whether that is still true.
 * `userIds` scopes a test's run.
 */
export async function staleOnlineUsers(
  db: Db,
  before: Date,
  limit: number,
  options: { after?: StaleOnlineCursor | null; userIds?: string[] } = {},
): Promise<StaleOnlineCursor[]> {
  const stale = and(eq(users.online, true), or(isNull(users.lastSeenAt), lt(users.lastSeenAt, before)));
  const after = options.after;
  const past = !after
    ? undefined
    : after.lastSeenAt === null
      ? sql`(${users.lastSeenAt} IS NOT NULL OR ${users.id} > ${after.id}::uuid)`
      : sql`(${users.lastSeenAt} > ${after.lastSeenAt}::timestamptz OR (${users.lastSeenAt} = ${after.lastSeenAt}::timestamptz AND ${users.id} > ${after.id}::uuid))`;
  const rows = await db
    .select({ id: users.id, lastSeenAt: sql<string | null>`${users.lastSeenAt}::text` })
    .from(users)
    .where(and(stale, past, options.userIds ? inArray(users.id, options.userIds) : undefined))
    .orderBy(sql`${users.lastSeenAt} ASC NULLS FIRST`, asc(users.id))
    .limit(limit);
  return rows;
}

/** A session confirmed online: its flag counts as checked at `at`, so the job moves on to other users. */
export async function confirmOnline(db: Db, userId: string, at: Date): Promise<void> {
  await db.update(users).set({ lastSeenAt: at }).where(and(eq(users.id, userId), eq(users.online, true)));
}
