import type { BusinessHours } from "../../domain/business-hours";
import type { PresenceStatus } from "../../protocol/frames";

/**
 * The desk's durable state, in the object's SQLite storage: the agents (a mirror of business_agents plus their
 * presence), the current assignments (the load) and the FIFO queue. Every method is synchronous, so a routing
 * decision and the reservation it makes happen in one turn of the object: no other request can interleave.
 */
export type { AgentRecord, Assignment, AssignmentKind, PendingCloseNotice, PendingRemoval, QueueEntry } from "./records";
import type { AgentRecord, Assignment, AssignmentKind, PendingCloseNotice, PendingRemoval, QueueEntry } from "./records";

interface Meta {
  businessId: string;
  hydrated: boolean;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS agents (
  user_id TEXT PRIMARY KEY, skills TEXT NOT NULL, max_chats INTEGER NOT NULL, is_available INTEGER NOT NULL,
  presence TEXT NOT NULL DEFAULT 'offline', last_assigned_at INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS assignments (
  conversation_id TEXT PRIMARY KEY, agent_id TEXT NOT NULL, customer_id TEXT NOT NULL, category TEXT,
  assigned_at INTEGER NOT NULL, synced INTEGER NOT NULL, kind TEXT NOT NULL, previous_agent_id TEXT, actor_id TEXT, reason TEXT);
CREATE INDEX IF NOT EXISTS assignments_agent ON assignments (agent_id);
CREATE TABLE IF NOT EXISTS queue (
  conversation_id TEXT PRIMARY KEY, customer_id TEXT NOT NULL, category TEXT, preferred_agent_id TEXT,
  enqueued_at INTEGER NOT NULL, seq INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS queue_seq ON queue (seq);
CREATE TABLE IF NOT EXISTS closed (conversation_id TEXT PRIMARY KEY, closed_at INTEGER NOT NULL);
`;

/**
 * How long the desk remembers a conversation it closed. A request that read the conversation open from Postgres
 * before the close can reach the desk after it (a queue-position read, a repeat open); within this window it is
 * recognised instead of being taken back as a conversation the desk has not seen (which held an agent's slot, or a
 * queue place, for good). Requests are seconds old at most; a day is a wide margin.
 */
const CLOSED_KEEP_MS = 86_400_000;

type Row = Record<string, SqlStorageValue>;

const toAgent = (r: Row): AgentRecord => ({
  userId: String(r.user_id),
  skills: JSON.parse(String(r.skills)) as string[],
  maxConcurrentChats: Number(r.max_chats),
  isAvailable: Number(r.is_available) === 1,
  presence: String(r.presence) as PresenceStatus,
  lastAssignedAt: Number(r.last_assigned_at),
});

const toAssignment = (r: Row): Assignment => ({
  conversationId: String(r.conversation_id),
  agentId: String(r.agent_id),
  customerId: String(r.customer_id),
  category: r.category === null ? null : String(r.category),
  assignedAt: Number(r.assigned_at),
  synced: Number(r.synced) === 1,
  kind: String(r.kind) as AssignmentKind,
  previousAgentId: r.previous_agent_id === null ? null : String(r.previous_agent_id),
  actorId: r.actor_id === null ? null : String(r.actor_id),
  reason: r.reason === null ? null : String(r.reason),
});

const toEntry = (r: Row): QueueEntry => ({
  conversationId: String(r.conversation_id),
  customerId: String(r.customer_id),
  category: r.category === null ? null : String(r.category),
  preferredAgentId: r.preferred_agent_id === null ? null : String(r.preferred_agent_id),
  enqueuedAt: Number(r.enqueued_at),
  seq: Number(r.seq),
});

export class DeskStore {
  constructor(
    private readonly sql: SqlStorage,
    private readonly kv: SyncKvStorage,
  ) {
    sql.exec(SCHEMA);
  }

  // ── Identity and configuration ───────────────────────────────────────────────────────────────────────────

  meta(): Meta | undefined {
    return this.kv.get<Meta>("meta");
  }

  setMeta(meta: Meta): void {
    this.kv.put("meta", meta);
  }

  hours(): BusinessHours | null {
    return this.kv.get<BusinessHours>("hours") ?? null;
  }

  setHours(hours: BusinessHours | null): void {
    if (hours) this.kv.put("hours", hours);
    else this.kv.delete("hours");
  }

  /** The instant the pending alarm opens the business (kept so the alarm can act on the window it was set for). */
  openAlarmAt(): number | undefined {
    return this.kv.get<number>("openAlarmAt");
  }

  setOpenAlarmAt(at: number | undefined): void {
    if (at === undefined) this.kv.delete("openAlarmAt");
    else this.kv.put("openAlarmAt", at);
  }

  /** Leaves of unregistered agents whose write failed: the alarm writes them again. */
  pendingRemovals(): PendingRemoval[] {
    return this.kv.get<PendingRemoval[]>("pendingRemovals") ?? [];
  }

  setPendingRemoval(removal: PendingRemoval, pending: boolean): void {
    const same = (p: PendingRemoval) => p.conversationId === removal.conversationId && p.agentId === removal.agentId;
    const list = this.pendingRemovals().filter((p) => !same(p));
    if (pending) list.push(removal);
    if (list.length > 0) this.kv.put("pendingRemovals", list);
    else this.kv.delete("pendingRemovals");
  }

  /** Closes whose notice to the conversation's room was lost: the alarm tells the room again. */
  pendingCloseNotices(): PendingCloseNotice[] {
    return this.kv.get<PendingCloseNotice[]>("pendingCloseNotices") ?? [];
  }

  setPendingCloseNotice(notice: PendingCloseNotice, pending: boolean): void {
    const list = this.pendingCloseNotices().filter((p) => p.conversationId !== notice.conversationId);
    if (pending) list.push(notice);
    if (list.length > 0) this.kv.put("pendingCloseNotices", list);
    else this.kv.delete("pendingCloseNotices");
  }

  /** When the queue is tried again after a failed write-through. */
  retryAt(): number | undefined {
    return this.kv.get<number>("retryAt");
  }

  setRetryAt(at: number | undefined): void {
    if (at === undefined) this.kv.delete("retryAt");
    else this.kv.put("retryAt", Math.min(at, this.retryAt() ?? Infinity));
  }

  // ── Agents ───────────────────────────────────────────────────────────────────────────────────────────────

  agents(): AgentRecord[] {
    return this.sql.exec("SELECT * FROM agents ORDER BY user_id").toArray().map(toAgent);
  }

  agent(userId: string): AgentRecord | undefined {
    const rows = this.sql.exec("SELECT * FROM agents WHERE user_id = ?", userId).toArray();
    return rows[0] ? toAgent(rows[0]) : undefined;
  }

  putAgent(a: AgentRecord): void {
    this.sql.exec(
      `INSERT INTO agents (user_id, skills, max_chats, is_available, presence, last_assigned_at) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (user_id) DO UPDATE SET skills = excluded.skills, max_chats = excluded.max_chats,
         is_available = excluded.is_available, presence = excluded.presence, last_assigned_at = excluded.last_assigned_at`,
      a.userId,
      JSON.stringify(a.skills),
      a.maxConcurrentChats,
      a.isAvailable ? 1 : 0,
      a.presence,
      a.lastAssignedAt,
    );
  }

  deleteAgent(userId: string): void {
    this.sql.exec("DELETE FROM agents WHERE user_id = ?", userId);
  }

  setPresence(userId: string, presence: PresenceStatus): boolean {
    return this.sql.exec("UPDATE agents SET presence = ? WHERE user_id = ?", presence, userId).rowsWritten > 0;
  }

  touchAssigned(userId: string, at: number): void {
    this.sql.exec("UPDATE agents SET last_assigned_at = ? WHERE user_id = ?", at, userId);
  }

  /** The desk's clock for round robin: strictly after every earlier assignment, even within one millisecond. */
  nextAssignmentStamp(now: number): number {
    const row = this.sql.exec("SELECT coalesce(max(last_assigned_at), 0) AS m FROM agents").one();
    return Math.max(now, Number(row.m) + 1);
  }

  // ── Assignments (the load) ───────────────────────────────────────────────────────────────────────────────

  assignments(): Assignment[] {
    return this.sql.exec("SELECT * FROM assignments ORDER BY assigned_at").toArray().map(toAssignment);
  }

  assignment(conversationId: string): Assignment | undefined {
    const rows = this.sql.exec("SELECT * FROM assignments WHERE conversation_id = ?", conversationId).toArray();
    return rows[0] ? toAssignment(rows[0]) : undefined;
  }

  assignmentsOf(agentId: string): Assignment[] {
    return this.sql.exec("SELECT * FROM assignments WHERE agent_id = ? ORDER BY assigned_at", agentId).toArray().map(toAssignment);
  }

  putAssignment(a: Assignment): void {
    this.sql.exec(
      `INSERT OR REPLACE INTO assignments
         (conversation_id, agent_id, customer_id, category, assigned_at, synced, kind, previous_agent_id, actor_id, reason)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      a.conversationId,
      a.agentId,
      a.customerId,
      a.category,
      a.assignedAt,
      a.synced ? 1 : 0,
      a.kind,
      a.previousAgentId,
      a.actorId,
      a.reason,
    );
  }

  markSynced(conversationId: string, agentId: string): void {
    this.sql.exec("UPDATE assignments SET synced = 1 WHERE conversation_id = ? AND agent_id = ?", conversationId, agentId);
  }

  deleteAssignment(conversationId: string): void {
    this.sql.exec("DELETE FROM assignments WHERE conversation_id = ?", conversationId);
  }

  /** Active conversations per agent. */
  loads(): Map<string, number> {
    const rows = this.sql.exec("SELECT agent_id, count(*) AS n FROM assignments GROUP BY agent_id").toArray();
    return new Map(rows.map((r) => [String(r.agent_id), Number(r.n)]));
  }

  // ── Queue ────────────────────────────────────────────────────────────────────────────────────────────────

  queue(): QueueEntry[] {
    // conversation_id orders ties, as position() does: only a queue stored before seqs were unique has any.
    return this.sql.exec("SELECT * FROM queue ORDER BY seq, conversation_id").toArray().map(toEntry);
  }

  queued(conversationId: string): QueueEntry | undefined {
    const rows = this.sql.exec("SELECT * FROM queue WHERE conversation_id = ?", conversationId).toArray();
    return rows[0] ? toEntry(rows[0]) : undefined;
  }

  queueLength(): number {
    return Number(this.sql.exec("SELECT count(*) AS n FROM queue").one().n);
  }

  /** 1-based position, or undefined when not queued. */
  position(conversationId: string): number | undefined {
    const entry = this.queued(conversationId);
    if (!entry) return undefined;
    const ahead = "SELECT count(*) AS n FROM queue WHERE seq < ? OR (seq = ? AND conversation_id <= ?)";
    return Number(this.sql.exec(ahead, entry.seq, entry.seq, conversationId).one().n);
  }

  /** At the back of the queue (a new arrival), or at the front (`front`: it was being served and lost its agent). */
  enqueue(entry: Omit<QueueEntry, "seq">, front = false): QueueEntry {
    let seq: number;
    if (front) seq = this.frontSeq();
    else {
      const hi = Number(this.sql.exec("SELECT coalesce(max(seq), 0) AS hi FROM queue").one().hi);
      seq = Math.max(hi, this.kv.get<number>("queueSeq") ?? 0) + 1;
      this.kv.put("queueSeq", seq);
      if (this.kv.get<number>("queueLow") === undefined) this.kv.put("queueLow", seq);
    }
    const full = { ...entry, seq };
    this.put(full);
    return full;
  }

  /**
   * Back in the queue at its old place (a reservation whose write failed), or at the front when another
   * conversation holds that place: an assignment undone after a restart has none of its own (seq 0).
   */
  requeue(entry: QueueEntry): QueueEntry {
    const taken = this.sql.exec("SELECT 1 FROM queue WHERE seq = ? AND conversation_id <> ?", entry.seq, entry.conversationId).toArray().length > 0;
    const full = taken ? { ...entry, seq: this.frontSeq() } : entry;
    this.put(full);
    return full;
  }

  /**
   * Below every seq the desk has given out, not only those still queued: a conversation reserved for an agent is
   * out of the queue while its write runs, and comes back with its seq when the write fails. Taken from the queued
   * ones alone, the front was that seq again: two conversations told the same place, none the one before it.
   */
  private frontSeq(): number {
    const lo = Number(this.sql.exec("SELECT coalesce(min(seq), 1) AS lo FROM queue").one().lo);
    const seq = Math.min(lo, this.kv.get<number>("queueLow") ?? lo) - 1;
    this.kv.put("queueLow", seq);
    return seq;
  }

  private put(entry: QueueEntry): void {
    this.sql.exec(
      `INSERT OR REPLACE INTO queue (conversation_id, customer_id, category, preferred_agent_id, enqueued_at, seq) VALUES (?, ?, ?, ?, ?, ?)`,
      entry.conversationId,
      entry.customerId,
      entry.category,
      entry.preferredAgentId,
      entry.enqueuedAt,
      entry.seq,
    );
  }

  dequeue(conversationId: string): void {
    this.sql.exec("DELETE FROM queue WHERE conversation_id = ?", conversationId);
  }

  // ── Closed conversations (recently) ───────────────────────────────────────────────────────────────────────

  markClosed(conversationId: string, at: number): void {
    this.sql.exec("DELETE FROM closed WHERE closed_at < ?", at - CLOSED_KEEP_MS);
    this.sql.exec("INSERT OR REPLACE INTO closed (conversation_id, closed_at) VALUES (?, ?)", conversationId, at);
  }

  wasClosed(conversationId: string): boolean {
    return this.sql.exec("SELECT 1 FROM closed WHERE conversation_id = ?", conversationId).toArray().length > 0;
  }
}
