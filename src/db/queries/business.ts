import { and, asc, eq, inArray, isNotNull, isNull, sql } from "drizzle-orm";
import type { BusinessHours } from "../../domain/business-hours";
import type { Role } from "../../protocol/resources";
import type { AnyDb, Db } from "../client";
import { businessAdmins, businessAgents, businessAssignments, businessHours, conversations, participants } from "../schema";
import { appendAudit, auditedChange } from "./audit";
import type { ConversationRow } from "./conversations";

/**
 * [business] Postgres side of customer ↔ business chats. Configuration (admins, agents, hours) lives here; the live
 * queue and load live in the business's Durable Object (BusinessDesk), which writes every assignment, transfer and
 * closure through with the functions at the end of this file (one transaction each, audited).
 *
 * Changes to who may act for a business (admins, agents) and to its hours are audited in the global chain: they
 * belong to no conversation. Each entry is written with its change, in its statement or transaction, and only when
 * something changed.
 */

type Tx = Parameters<Parameters<Db["transaction"]>[0]>[0];
export type AgentRow = typeof businessAgents.$inferSelect;

// ── Admins ───────────────────────────────────────────────────────────────────────────────────────────────────

export async function isRegisteredAdmin(db: AnyDb, businessId: string, userId: string): Promise<boolean> {
  const rows = await db
    .select({ userId: businessAdmins.userId })
    .from(businessAdmins)
    .where(and(eq(businessAdmins.businessId, businessId), eq(businessAdmins.userId, userId)))
    .limit(1);
  return rows.length > 0;
}

/** true when the admin is new (recorded as `business.admin_granted`, in the same statement). */
export async function registerAdmin(db: Db, businessId: string, userId: string, actorId: string): Promise<boolean> {
  const insert = db.insert(businessAdmins).values({ businessId, userId }).onConflictDoNothing().returning({ userId: businessAdmins.userId });
  const entry = { conversationId: null, actorId, action: "business.admin_granted", targetId: userId, details: { businessId } };
  return (await auditedChange(db, insert.getSQL(), entry)) > 0;
}

/** true when the user was an admin of the business (recorded as `business.admin_revoked`, in the same statement). */
export async function revokeAdmin(db: Db, businessId: string, userId: string, actorId: string): Promise<boolean> {
  const removal = db
    .delete(businessAdmins)
    .where(and(eq(businessAdmins.businessId, businessId), eq(businessAdmins.userId, userId)))
    .returning({ userId: businessAdmins.userId });
  const entry = { conversationId: null, actorId, action: "business.admin_revoked", targetId: userId, details: { businessId } };
  return (await auditedChange(db, removal.getSQL(), entry)) > 0;
}

// ── Agents ───────────────────────────────────────────────────────────────────────────────────────────────────

/**
 * Registers an agent or changes the fields given; absent fields keep their value (defaults on insert). Recorded as
 * `business.agent_set` with what the agent now is, unless nothing changed: those values are known only once the row
 * is written, and an entry's hash is computed before its statement, so this is a transaction (the desk makes these
 * changes, rarely) rather than one statement.
 */
export async function upsertAgent(
  db: Db,
  businessId: string,
  userId: string,
  patch: { skills?: string[]; maxConcurrentChats?: number },
  actorId: string,
): Promise<{ row: AgentRow; created: boolean }> {
  const set: { skills?: string[]; maxConcurrentChats?: number | ReturnType<typeof sql> } = {};
  if (patch.skills !== undefined) set.skills = patch.skills;
  if (patch.maxConcurrentChats !== undefined) set.maxConcurrentChats = patch.maxConcurrentChats;
  // Nothing to change still needs a row back: a no-op update returns it.
  if (Object.keys(set).length === 0) set.maxConcurrentChats = sql`${businessAgents.maxConcurrentChats}`;
  const agent = and(eq(businessAgents.businessId, businessId), eq(businessAgents.userId, userId));
  return db.transaction(async (tx) => {
    const [before] = await tx
      .select({ skills: businessAgents.skills, maxConcurrentChats: businessAgents.maxConcurrentChats })
      .from(businessAgents)
      .where(agent)
      .for("update");
    const [row] = await tx
      .insert(businessAgents)
      .values({ businessId, userId, ...patch })
      .onConflictDoUpdate({ target: [businessAgents.businessId, businessAgents.userId], set })
      .returning();
    const created = before === undefined;
    const changed = created || before.maxConcurrentChats !== row.maxConcurrentChats || JSON.stringify(before.skills) !== JSON.stringify(row.skills);
    if (changed) {
      const details = { businessId, created, skills: row.skills, maxConcurrentChats: row.maxConcurrentChats };
      await appendAudit(tx, [{ conversationId: null, actorId, action: "business.agent_set", targetId: userId, details }]);
    }
    return { row, created };
  });
}

/** Unregisters an agent; recorded as `business.agent_removed` in the same statement. */
export async function deleteAgent(db: Db, businessId: string, userId: string, actorId: string): Promise<boolean> {
  const removal = db
    .delete(businessAgents)
    .where(and(eq(businessAgents.businessId, businessId), eq(businessAgents.userId, userId)))
    .returning({ userId: businessAgents.userId });
  const entry = { conversationId: null, actorId, action: "business.agent_removed", targetId: userId, details: { businessId } };
  return (await auditedChange(db, removal.getSQL(), entry)) > 0;
}

/** A business's agents, by user id. */
export async function listAgents(db: AnyDb, businessId: string): Promise<AgentRow[]> {
  return db.select().from(businessAgents).where(eq(businessAgents.businessId, businessId)).orderBy(asc(businessAgents.userId));
}

export async function findAgent(db: Db, businessId: string, userId: string): Promise<AgentRow | undefined> {
  const rows = await db
    .select()
    .from(businessAgents)
    .where(and(eq(businessAgents.businessId, businessId), eq(businessAgents.userId, userId)))
    .limit(1);
  return rows[0];
}

export async function setAgentAvailability(db: Db, businessId: string, userId: string, isAvailable: boolean): Promise<AgentRow | undefined> {
  const rows = await db
    .update(businessAgents)
    .set({ isAvailable })
    .where(and(eq(businessAgents.businessId, businessId), eq(businessAgents.userId, userId)))
    .returning();
  return rows[0];
}

/** The businesses a user is an agent of (the UserSession tells their desks about presence transitions). */
export async function agentBusinesses(db: AnyDb, userId: string): Promise<string[]> {
  const rows = await db.select({ businessId: businessAgents.businessId }).from(businessAgents).where(eq(businessAgents.userId, userId));
  return rows.map((r) => r.businessId);
}

// ── Hours ────────────────────────────────────────────────────────────────────────────────────────────────────

export async function loadHours(db: AnyDb, businessId: string): Promise<BusinessHours | null> {
  const rows = await db.select().from(businessHours).where(eq(businessHours.businessId, businessId)).limit(1);
  const row = rows[0];
  if (!row) return null;
  return { timezone: row.timezone, schedule: row.schedule as BusinessHours["schedule"], holidays: row.holidays as BusinessHours["holidays"] };
}

/**
 * Sets the hours, recorded as `business.hours_set` in the same statement unless they were already these. The entry
 * keeps the zone and the weekly schedule (bounded: seven days) and counts the holidays (up to 366 of them).
 */
export async function saveHours(db: Db, businessId: string, hours: BusinessHours, actorId: string): Promise<void> {
  const values = { businessId, timezone: hours.timezone, schedule: hours.schedule, holidays: hours.holidays ?? [], updatedAt: new Date() };
  const upsert = db
    .insert(businessHours)
    .values(values)
    .onConflictDoUpdate({
      target: businessHours.businessId,
      set: { timezone: values.timezone, schedule: values.schedule, holidays: values.holidays, updatedAt: values.updatedAt },
      setWhere: sql`(${businessHours.timezone}, ${businessHours.schedule}, ${businessHours.holidays}) IS DISTINCT FROM (excluded.timezone, excluded.schedule, excluded.holidays)`,
    })
    .returning({ businessId: businessHours.businessId });
  const details = { businessId, timezone: hours.timezone, schedule: hours.schedule, holidays: values.holidays.length };
  const entry = { conversationId: null, actorId, action: "business.hours_set", targetId: businessId, details };
  await auditedChange(db, upsert.getSQL(), entry);
}

/** Removes the hours (always open again); recorded as `business.hours_removed` in the same statement. */
export async function deleteHours(db: Db, businessId: string, actorId: string): Promise<boolean> {
  const removal = db.delete(businessHours).where(eq(businessHours.businessId, businessId)).returning({ businessId: businessHours.businessId });
  const entry = { conversationId: null, actorId, action: "business.hours_removed", targetId: businessId, details: { businessId } };
  return (await auditedChange(db, removal.getSQL(), entry)) > 0;
}

// ── What the desk starts from ────────────────────────────────────────────────────────────────────────────────

export interface OpenBusinessConversation {
  id: string;
  customerId: string;
  category: string | null;
  assignedAgentId: string | null;
  createdAt: Date;
}

export interface DeskSeed {
  agents: AgentRow[];
  hours: BusinessHours | null;
  /** Oldest first: the unassigned ones become the queue in this order. */
  open: OpenBusinessConversation[];
  /** Latest assignment per agent (ms), for round robin. */
  lastAssigned: Map<string, number>;
}

/** Everything a desk needs the first time its storage is used (conversations opened before it existed included). */
export async function loadDeskSeed(db: Db, businessId: string): Promise<DeskSeed> {
  const [agents, hours, open, last] = await Promise.all([
    listAgents(db, businessId),
    loadHours(db, businessId),
    db
      .select({
        id: conversations.id,
        customerId: conversations.customerId,
        category: conversations.category,
        assignedAgentId: conversations.assignedAgentId,
        createdAt: conversations.createdAt,
      })
      .from(conversations)
      .where(and(eq(conversations.type, "business"), eq(conversations.businessId, businessId), eq(conversations.status, "open")))
      .orderBy(asc(conversations.createdAt), asc(conversations.id)),
    db
      .select({ agentId: businessAssignments.agentId, at: sql<string>`max(${businessAssignments.assignedAt})` })
      .from(businessAssignments)
      .where(eq(businessAssignments.businessId, businessId))
      .groupBy(businessAssignments.agentId),
  ]);
  return {
    agents,
    hours,
    open: open.map((o) => ({ ...o, customerId: o.customerId ?? "" })).filter((o) => o.customerId !== ""),
    lastAssigned: new Map(last.map((r) => [r.agentId, new Date(r.at).getTime()])),
  };
}

// ── Conversations ────────────────────────────────────────────────────────────────────────────────────────────

export async function findBusinessConversation(db: AnyDb, conversationId: string): Promise<ConversationRow | undefined> {
  const rows = await db
    .select()
    .from(conversations)
    .where(and(eq(conversations.id, conversationId), eq(conversations.type, "business")))
    .limit(1);
  return rows[0];
}

export async function activeRole(db: AnyDb, conversationId: string, userId: string): Promise<Role | undefined> {
  const rows = await db
    .select({ role: participants.role })
    .from(participants)
    .where(and(eq(participants.conversationId, conversationId), eq(participants.userId, userId), isNull(participants.leftAt)))
    .limit(1);
  return rows[0]?.role;
}

/** Whether the customer has an open, unassigned conversation with the business (anything to show in the queue). */
export async function hasWaitingConversation(db: AnyDb, businessId: string, customerId: string): Promise<boolean> {
  const rows = await db
    .select({ id: conversations.id })
    .from(conversations)
    .where(
      and(
        eq(conversations.type, "business"),
        eq(conversations.businessId, businessId),
        eq(conversations.customerId, customerId),
        eq(conversations.status, "open"),
        isNull(conversations.assignedAgentId),
      ),
    )
    .limit(1);
  return rows.length > 0;
}

// ── Write-through from the desk (each idempotent: a replay after a crash changes nothing twice) ──────────────

export type WriteOutcome = "done" | "closed" | "missing";

/** A membership write's outcome and its time (Postgres's clock), which the notices of the change carry. */
export interface MembershipWritten {
  outcome: WriteOutcome;
  at: Date;
}

/**
 * The conversation, locked, and Postgres's clock read in the same statement (no extra round trip). Membership times
 * (joined_at, left_at) all come from that clock: the Worker's routes write clock_timestamp() (participants.ts), and a
 * desk whose clock ran ahead stamped an agent's join after the leave that followed it, so their session dropped the
 * leave's notice as older news.
 */
async function lockOpen(tx: Tx, conversationId: string): Promise<{ status: string; assignedAgentId: string | null; now: Date } | undefined> {
  const rows = await tx
    .select({
      status: conversations.status,
      assignedAgentId: conversations.assignedAgentId,
      nowMs: sql<number | string>`(extract(epoch from clock_timestamp()) * 1000)::float8`,
    })
    .from(conversations)
    .where(eq(conversations.id, conversationId))
    .for("update");
  const row = rows[0];
  return row && { status: row.status, assignedAgentId: row.assignedAgentId, now: new Date(Math.floor(Number(row.nowMs))) };
}

export interface AssignmentWrite {
  businessId: string;
  conversationId: string;
  agentId: string;
  previousAgentId: string | null;
  /** null: chosen by the routing on its own. */
  actorId: string | null;
  reason: string | null;
  kind: "assigned" | "transferred";
  auto: boolean;
  category: string | null;
}

/**
 * The agent joins (participant role `agent`), the previous agent leaves, conversations.assigned_agent_id follows,
 * the assignment history gets its row and the audit log its entry — all or nothing.
 */
export async function writeAssignment(db: Db, w: AssignmentWrite): Promise<MembershipWritten> {
  return db.transaction(async (tx) => {
    const conv = await lockOpen(tx, w.conversationId);
    if (!conv) return { outcome: "missing", at: new Date() };
    const at = conv.now;
    if (conv.status !== "open") return { outcome: "closed", at };
    const [current] = await tx
      .select({ id: businessAssignments.id, agentId: businessAssignments.agentId })
      .from(businessAssignments)
      .where(and(eq(businessAssignments.conversationId, w.conversationId), isNull(businessAssignments.endedAt)));
    if (current?.agentId === w.agentId && conv.assignedAgentId === w.agentId) return { outcome: "done", at };
    if (current) {
      await tx.update(businessAssignments).set({ endedAt: at, endReason: "transferred" }).where(eq(businessAssignments.id, current.id));
    }
    const leaving = [...new Set([current?.agentId, conv.assignedAgentId, w.previousAgentId])].filter(
      (id): id is string => typeof id === "string" && id !== w.agentId,
    );
    if (leaving.length > 0) {
      await tx
        .update(participants)
        .set({ leftAt: at })
        .where(
          and(
            eq(participants.conversationId, w.conversationId),
            inArray(participants.userId, leaving),
            eq(participants.role, "agent"),
            isNull(participants.leftAt),
          ),
        );
    }
    await tx.execute(sql`INSERT INTO users (id, kaha_id) VALUES (${w.agentId}, ${`unknown:${w.agentId}`}) ON CONFLICT (id) DO NOTHING`);
    await tx
      .insert(participants)
      .values({ conversationId: w.conversationId, userId: w.agentId, role: "agent", joinedAt: at })
      .onConflictDoUpdate({
        target: [participants.conversationId, participants.userId],
        set: { role: "agent", leftAt: null, joinedAt: at },
        setWhere: isNotNull(participants.leftAt),
      });
    await tx.update(conversations).set({ assignedAgentId: w.agentId, version: sql`${conversations.version} + 1` }).where(eq(conversations.id, w.conversationId));
    await tx.insert(businessAssignments).values({
      businessId: w.businessId,
      conversationId: w.conversationId,
      agentId: w.agentId,
      assignedAt: at,
      assignedBy: w.actorId,
      reason: w.reason,
    });
    await appendAudit(tx, [
      {
        conversationId: w.conversationId,
        actorId: w.actorId,
        action: w.kind === "transferred" ? "business.transferred" : "business.assigned",
        targetId: w.agentId,
        details: {
          businessId: w.businessId,
          agentId: w.agentId,
          previousAgentId: leaving[0] ?? null,
          auto: w.auto,
          reason: w.reason,
          category: w.category,
        },
        at: at.toISOString(),
      },
    ]);
    return { outcome: "done", at };
  });
}

/** Why an agent's assignment ended without a successor: unregistered by an admin, or left the conversation. */
export type UnassignmentReason = "agent_removed" | "agent_left";

export interface UnassignmentWrite {
  businessId: string;
  conversationId: string;
  agentId: string;
  actorId: string | null;
  reason: UnassignmentReason;
}

/** The agent leaves and the conversation has no agent again (it goes back to the queue). */
export async function writeUnassignment(db: Db, w: UnassignmentWrite): Promise<MembershipWritten> {
  return db.transaction(async (tx) => {
    const conv = await lockOpen(tx, w.conversationId);
    if (!conv) return { outcome: "missing", at: new Date() };
    const at = conv.now;
    if (conv.status !== "open") return { outcome: "closed", at };
    if (conv.assignedAgentId !== w.agentId) return { outcome: "done", at };
    await tx
      .update(businessAssignments)
      .set({ endedAt: at, endReason: w.reason })
      .where(and(eq(businessAssignments.conversationId, w.conversationId), isNull(businessAssignments.endedAt)));
    await tx
      .update(participants)
      .set({ leftAt: at })
      .where(and(eq(participants.conversationId, w.conversationId), eq(participants.userId, w.agentId), isNull(participants.leftAt)));
    await tx.update(conversations).set({ assignedAgentId: null, version: sql`${conversations.version} + 1` }).where(eq(conversations.id, w.conversationId));
    await appendAudit(tx, [
      {
        conversationId: w.conversationId,
        actorId: w.actorId,
        action: "business.unassigned",
        targetId: w.agentId,
        details: { businessId: w.businessId, agentId: w.agentId, reason: w.reason },
        at: at.toISOString(),
      },
    ]);
    return { outcome: "done", at };
  });
}

export interface CloseWrite {
  businessId: string;
  conversationId: string;
  actorId: string;
  agentId: string | null;
  reason: string | null;
  at: Date;
}

/** status closed + closed_at, the current assignment ended, audited. "closed": it already was. */
export async function writeClose(db: Db, w: CloseWrite): Promise<WriteOutcome> {
  return db.transaction(async (tx) => {
    const conv = await lockOpen(tx, w.conversationId);
    if (!conv) return "missing";
    if (conv.status !== "open") return "closed";
    await tx.update(conversations).set({ status: "closed", closedAt: w.at, version: sql`${conversations.version} + 1` }).where(eq(conversations.id, w.conversationId));
    await tx
      .update(businessAssignments)
      .set({ endedAt: w.at, endReason: "closed" })
      .where(and(eq(businessAssignments.conversationId, w.conversationId), isNull(businessAssignments.endedAt)));
    await appendAudit(tx, [
      {
        conversationId: w.conversationId,
        actorId: w.actorId,
        action: "business.closed",
        targetId: w.conversationId,
        details: { businessId: w.businessId, agentId: w.agentId ?? conv.assignedAgentId, reason: w.reason },
        at: w.at.toISOString(),
      },
    ]);
    return "done";
  });
}

// ── Stats ────────────────────────────────────────────────────────────────────────────────────────────────────

export interface BusinessHistoryStats {
  /** Open conversations now (assigned or queued). */
  open: number;
  /** Conversations opened since `since`, of which closed, of which answered by an agent. */
  created: number;
  closed: number;
  responded: number;
  /** Median of (first agent message − conversation opened), over the conversations opened since `since`. */
  medianFirstResponseMs: number | null;
}

/**
 * First response time, computed here rather than stored by the room (which does not know business roles): a
 * conversation's first response is conversations.first_response_at when something set it, else the first message
 * sent by any agent ever assigned to it (an agent can only post while assigned, so the message is after the
 * assignment). Measured from the moment the customer opened the conversation, queue time included. The archive is
 * read too (LEAST skips the side with none): a window longer than the retention (365 days against 90) counted
 * conversations whose answer had been archived as never answered.
 */
export async function businessStats(db: AnyDb, businessId: string, since: Date): Promise<BusinessHistoryStats> {
  const result = await db.execute<{ open: string; created: string; closed: string; responded: string; median_ms: string | number | null }>(sql`
    WITH convs AS (
      SELECT c.status, c.created_at,
             COALESCE(c.first_response_at, LEAST((
               SELECT min(m.created_at) FROM messages m
               WHERE m.conversation_id = c.id AND m.type <> 'system'
                 AND m.sender_id IN (SELECT a.agent_id FROM business_assignments a WHERE a.conversation_id = c.id)
             ), (
               SELECT min(m.created_at) FROM message_archive m
               WHERE m.conversation_id = c.id AND m.type <> 'system'
                 AND m.sender_id IN (SELECT a.agent_id FROM business_assignments a WHERE a.conversation_id = c.id)
             ))) AS first_response_at
      FROM conversations c
      WHERE c.type = 'business' AND c.business_id = ${businessId} AND (c.status = 'open' OR c.created_at >= ${since.toISOString()}::timestamptz)
    )
    SELECT
      count(*) FILTER (WHERE status = 'open') AS open,
      count(*) FILTER (WHERE created_at >= ${since.toISOString()}::timestamptz) AS created,
      count(*) FILTER (WHERE created_at >= ${since.toISOString()}::timestamptz AND status = 'closed') AS closed,
      count(first_response_at) FILTER (WHERE created_at >= ${since.toISOString()}::timestamptz) AS responded,
      percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM (first_response_at - created_at)) * 1000)
        FILTER (WHERE created_at >= ${since.toISOString()}::timestamptz AND first_response_at IS NOT NULL) AS median_ms
    FROM convs`);
  const row = result.rows[0];
  return {
    open: Number(row?.open ?? 0),
    created: Number(row?.created ?? 0),
    closed: Number(row?.closed ?? 0),
    responded: Number(row?.responded ?? 0),
    medianFirstResponseMs: row?.median_ms === null || row?.median_ms === undefined ? null : Math.max(0, Math.round(Number(row.median_ms))),
  };
}
