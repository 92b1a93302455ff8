import { appendAudit, type AuditEntry } from "./audit";
import { and, asc, eq, inArray, isNull, or, sql } from "drizzle-orm";
import { checkActorNow, checkCapacity, checkDemotion, promotionAfterLeave, type Denial } from "../../domain/membership";
import type { ConversationType, Role } from "../../protocol/resources";
import type { AnyDb, Db } from "../client";
import { conversations, participants, users } from "../schema";
import type { ParticipantRow } from "./conversations";

type Tx = Parameters<Parameters<Db["transaction"]>[0]>[0];

export interface ParticipantWithKaha {
  participant: ParticipantRow;
  /** For the profile placeholder when the profile service does not know the user. */
  kahaId: string;
}

const activeIn = (conversationId: string) => and(eq(participants.conversationId, conversationId), isNull(participants.leftAt));
const row = (conversationId: string, userId: string) =>
  and(eq(participants.conversationId, conversationId), eq(participants.userId, userId));

/** Active participants of many conversations in one query, in joining order. */
export async function activeParticipants(db: Db, conversationIds: string[]): Promise<ParticipantWithKaha[]> {
  if (conversationIds.length === 0) return [];
  return db
    .select({ participant: participants, kahaId: users.kahaId })
    .from(participants)
    .innerJoin(users, eq(users.id, participants.userId))
    .where(and(inArray(participants.conversationId, conversationIds), isNull(participants.leftAt)))
    .orderBy(asc(participants.joinedAt), asc(participants.userId));
}

export async function findActiveParticipant(db: Db, conversationId: string, userId: string): Promise<ParticipantRow | undefined> {
  const rows = await db
    .select()
    .from(participants)
    .where(and(row(conversationId, userId), isNull(participants.leftAt)))
    .limit(1);
  return rows[0];
}

/** The conversation's view changed (members, roles): see conversations.version, which orders conversation_updated. */
const nextVersion = sql<number>`${conversations.version} + 1`;

async function bumpVersion(tx: Tx, conversationId: string): Promise<void> {
  await tx.update(conversations).set({ version: nextVersion }).where(eq(conversations.id, conversationId));
}

/** Serialises membership changes of one conversation, so counts and admin checks hold until commit. */
async function lockConversation(tx: Tx, conversationId: string): Promise<void> {
  await tx.select({ id: conversations.id }).from(conversations).where(eq(conversations.id, conversationId)).for("update");
}

/** An add's row; `rejoined` when the member had been in the conversation before (their marks are their own). */
export interface Added {
  participant: ParticipantRow;
  rejoined: boolean;
}

/** Adds a member, or brings back one who left (their read marks kept); the size cap is checked under the lock. */
export async function addParticipant(
  db: Db,
  conversationId: string,
  userId: string,
  role: Role,
  actorId: string | null = null,
  roomSeq = 0,
): Promise<Added | Denial> {
  return db.transaction(async (tx) => {
    await lockConversation(tx, conversationId);
    const current = await tx
      .select({ userId: participants.userId, role: participants.role, leftAt: participants.leftAt })
      .from(participants)
      .where(and(eq(participants.conversationId, conversationId), or(isNull(participants.leftAt), eq(participants.userId, userId))));
    const existing = current.find((p) => p.userId === userId);
    const active = current.filter((p) => p.leftAt === null);
    const actor = actorId === null ? null : checkActorNow(active.find((p) => p.userId === actorId), true);
    if (actor) return actor;
    const denied = checkCapacity(active.length, existing !== undefined && existing.leftAt === null);
    if (denied) return denied;
    // Postgres's clock, not this Worker's: a removal's left_at is compared with this (the room, the user's session),
    // and a removal written by a Worker whose clock ran ahead made the re-add look older than the removal it followed.
    const now = sql<Date>`clock_timestamp()`;
    // A newcomer's marks start at the newest message: the history is there to read, but it is not news (a member
    // added to a busy group saw every earlier message as unread). A member coming back keeps their own marks.
    // `roomSeq`: the room's newest, ahead of last_seq while messages wait to be flushed (an outage, a retry's backoff).
    const newest = sql<number>`GREATEST((SELECT last_seq FROM conversations WHERE id = ${conversationId}::uuid), ${roomSeq}::bigint)`;
    const saved = existing
      ? await tx.update(participants).set({ role, leftAt: null, joinedAt: now }).where(row(conversationId, userId)).returning()
      : await tx
          .insert(participants)
          .values({ conversationId, userId, role, joinedAt: now, lastReadSeq: newest, lastDeliveredSeq: newest })
          .returning();
    // A join is activity: the conversation comes first in the newcomer's list (it kept its old place, behind every
    // conversation active since, and an app merging its list by time could drop it), and in the others', as a message would.
    await tx
      .update(conversations)
      .set({ lastActivity: sql`GREATEST(${conversations.lastActivity}, ${saved[0].joinedAt.toISOString()}::timestamptz)`, version: nextVersion })
      .where(eq(conversations.id, conversationId));
    await appendAudit(tx, [{ conversationId, actorId, action: "participant.added", targetId: userId, details: { role, rejoined: existing !== undefined } }]);
    return { participant: saved[0], rejoined: existing !== undefined };
  });
}

export interface LeaveResult {
  left: ParticipantRow;
  promoted?: ParticipantRow;
  /** Who is still in the conversation. */
  remaining: string[];
}

/** Marks the participant as gone (history stays) and, when the group lost its last admin, promotes the oldest member. */
export async function removeParticipant(
  db: Db,
  type: ConversationType,
  conversationId: string,
  userId: string,
  actorId: string | null = null,
): Promise<LeaveResult | Denial | undefined> {
  return db.transaction(async (tx) => {
    await lockConversation(tx, conversationId);
    const members = await tx
      .select({ userId: participants.userId, role: participants.role, joinedAt: participants.joinedAt })
      .from(participants)
      .where(activeIn(conversationId));
    if (!members.some((m) => m.userId === userId)) return undefined;
    if (actorId !== null && actorId !== userId) {
      const denied = checkActorNow(members.find((m) => m.userId === actorId), true);
      if (denied) return denied;
    }
    const left = await tx
      .update(participants)
      .set({ leftAt: sql`clock_timestamp()` }) // compared with a re-add's joined_at, also Postgres's (addParticipant)
      .where(and(row(conversationId, userId), isNull(participants.leftAt)))
      .returning();
    if (!left[0]) return undefined;
    await bumpVersion(tx, conversationId);
    const remaining = members.filter((m) => m.userId !== userId);
    const stayed = remaining.map((m) => m.userId);
    const next = promotionAfterLeave(type, left[0].role, remaining);
    const action = actorId === userId ? "participant.left" : "participant.removed";
    const entries: AuditEntry[] = [{ conversationId, actorId, action, targetId: userId, details: { role: left[0].role } }];
    if (!next) {
      await appendAudit(tx, entries);
      return { left: left[0], remaining: stayed };
    }
    const promoted = await tx.update(participants).set({ role: "admin" }).where(row(conversationId, next)).returning();
    entries.push({ conversationId, actorId: null, action: "participant.promoted", targetId: next, details: { reason: "last admin left" } });
    await appendAudit(tx, entries);
    return { left: left[0], promoted: promoted[0], remaining: stayed };
  });
}

/** A role change's result: `changed` false when the member already had the role (nothing written, nothing audited). */
export interface RoleChange {
  participant: ParticipantRow;
  changed: boolean;
}

/** Changes a role; a group never loses its last admin this way. */
export async function changeRole(
  db: Db,
  conversationId: string,
  userId: string,
  role: Role,
  actorId: string | null = null,
): Promise<RoleChange | Denial | undefined> {
  return db.transaction(async (tx) => {
    await lockConversation(tx, conversationId);
    const members = await tx.select({ userId: participants.userId, role: participants.role }).from(participants).where(activeIn(conversationId));
    const actor = actorId === null ? null : checkActorNow(members.find((m) => m.userId === actorId), true);
    if (actor) return actor;
    const target = members.find((m) => m.userId === userId);
    if (!target) return undefined;
    // The role it already has: an audit entry "admin → admin" and a participant_updated to every member said
    // something happened when nothing had.
    if (target.role === role) {
      const [current] = await tx.select().from(participants).where(row(conversationId, userId));
      return { participant: current, changed: false };
    }
    const denied = checkDemotion(target.role, role, members.filter((m) => m.role === "admin").length);
    if (denied) return denied;
    const saved = await tx.update(participants).set({ role }).where(row(conversationId, userId)).returning();
    await bumpVersion(tx, conversationId);
    await appendAudit(tx, [{ conversationId, actorId, action: "participant.role_changed", targetId: userId, details: { from: target.role, to: role } }]);
    return { participant: saved[0], changed: true };
  });
}

export async function setMuted(db: AnyDb, conversationId: string, userId: string, isMuted: boolean): Promise<ParticipantRow | undefined> {
  const rows = await db
    .update(participants)
    .set({ isMuted })
    .where(and(row(conversationId, userId), isNull(participants.leftAt)))
    .returning();
  return rows[0];
}

export async function kahaIdsOf(db: AnyDb, userIds: string[]): Promise<Map<string, string>> {
  if (userIds.length === 0) return new Map();
  const rows = await db.select({ id: users.id, kahaId: users.kahaId }).from(users).where(inArray(users.id, userIds));
  return new Map(rows.map((r) => [r.id, r.kahaId]));
}
