import { hoursStatus, type BusinessHours } from "../../domain/business-hours";
import { isEligible } from "../../domain/routing";
import { badRequest, conflict, databaseUnavailable, errorReason, notFound, unavailable } from "../../lib/errors";
import type { Logger } from "../../lib/log";
import type { PresenceStatus } from "../../protocol/frames";
import type {
  AgentPatch,
  AgentView,
  AssignInput,
  AssignOutcome,
  CloseInput,
  CloseOutcome,
  ConversationFacts,
  DeskSnapshot,
  HoursOutcome,
  OpenInput,
  OpenPlacement,
  Placement,
  ReleaseInput,
} from "./api";
import type { DeskEffects } from "./effects";
import { agentStates, pickAgent, planDrain } from "./planner";
import type { AgentRecord, Assignment, DeskStore, PendingCloseNotice, PendingRemoval, QueueEntry } from "./store";

export interface DeskDeps {
  store: DeskStore;
  effects: DeskEffects;
  /** The object's blockConcurrencyWhile: nothing else runs in the object until the work is done. */
  exclusive<T>(work: () => Promise<T>): Promise<T>;
  waitUntil(work: Promise<unknown>): void;
  /** Sets (a time) or clears (null) the object's alarm. */
  setAlarm(at: number | null): Promise<void>;
  now(): number;
  log: Logger;
}

/** kept: Postgres has the assignment; gone: the conversation was closed or deleted meanwhile; failed: undone. */
type WriteResult = "kept" | "gone" | "failed";

/** After a failed write-through, the queue is tried again this much later. */
const RETRY_MS = 5_000;
/**
 * How long a close the room missed is told again. The room re-reads the conversation from Postgres at most a minute
 * after its last read whenever it is used, and learns of the close then; the desk's notice only comes sooner.
 */
const CLOSE_NOTICE_MS = 2 * 60_000;
/** Closed with no opening in the next 14 days: look again after this long (hours may have been edited). */
const RECHECK_CLOSED_MS = 12 * 3600_000;

/**
 * The business desk: the queue, the agents' load and the routing rules, for one business. Decisions and the
 * reservations they make are synchronous against the object's storage, so concurrent requests can never hand out
 * the same slot; Postgres is written afterwards (reservation first, release only after the write succeeded, undo on
 * failure), one operation at a time per conversation.
 */
export class Desk {
  /** Tail of the work queued per conversation (or per agent / hours): their writes happen in request order. */
  private readonly chains = new Map<string, Promise<void>>();
  /** Slots still counted for the previous agent of a transfer until Postgres has the new agent. */
  private readonly held = new Map<string, number>();
  /** New conversations whose creating request announces them itself. */
  private readonly quiet = new Set<string>();
  private recovered = false;

  constructor(private readonly deps: DeskDeps) {}

  private get store() {
    return this.deps.store;
  }

  private get effects() {
    return this.deps.effects;
  }

  // ── Lifecycle ──────────────────────────────────────────────────────────────────────────────────────────────

  /**
   * The first call for a business fills the storage from Postgres (agents with their presence, hours, open
   * conversations: the unassigned ones become the queue, oldest first). Nothing else runs in the object meanwhile.
   */
  async ready(businessId: string): Promise<void> {
    const meta = this.store.meta();
    if (meta?.hydrated) {
      if (meta.businessId !== businessId) throw notFound("Business");
      this.recover();
      return;
    }
    let failure: unknown;
    const outcome = await this.deps.exclusive(async (): Promise<"ok" | "down"> => {
      if (this.store.meta()?.hydrated) return "ok";
      try {
        const seed = await this.effects.seed(businessId);
        const presence = await Promise.all(seed.agents.map((a) => this.effects.presenceOf(a.userId)));
        for (const [i, a] of seed.agents.entries()) {
          this.store.putAgent({
            userId: a.userId,
            skills: a.skills,
            maxConcurrentChats: a.maxConcurrentChats,
            isAvailable: a.isAvailable,
            presence: presence[i],
            lastAssignedAt: seed.lastAssigned.get(a.userId) ?? 0,
          });
        }
        this.store.setHours(seed.hours);
        for (const c of seed.open) this.adopt(c.id, { customerId: c.customerId, category: c.category, assignedAgentId: c.assignedAgentId }, c.createdAt.getTime());
        this.store.setMeta({ businessId, hydrated: true });
        return "ok";
      } catch (err) {
        failure = err;
        this.deps.log.warn("desk hydration failed", { businessId, error: errorReason(err).slice(0, 200) });
        return "down";
      }
    });
    if (outcome === "down") throw databaseUnavailable(failure, this.deps.log);
    this.recovered = true;
    await this.reschedule();
  }

  /** After a restart: assignments whose write-through never finished are written again (idempotent writes). */
  private recover(): void {
    if (this.recovered) return;
    this.recovered = true;
    for (const a of this.store.assignments()) {
      if (a.synced) continue;
      const undo: QueueEntry = { conversationId: a.conversationId, customerId: a.customerId, category: a.category, preferredAgentId: null, enqueuedAt: a.assignedAt, seq: 0 };
      this.deps.waitUntil(this.writeAssignment(a, { requeue: undo, notify: true }).catch(() => {}));
    }
  }

  /** A conversation the desk has not seen, taken as Postgres has it (read before a close the desk made: not taken). */
  private adopt(conversationId: string, facts: ConversationFacts, since: number): void {
    if (this.store.assignment(conversationId) || this.store.queued(conversationId) || this.store.wasClosed(conversationId)) return;
    if (facts.assignedAgentId) {
      this.store.putAssignment({
        conversationId,
        agentId: facts.assignedAgentId,
        customerId: facts.customerId,
        category: facts.category,
        assignedAt: since,
        synced: true,
        kind: "assigned",
        previousAgentId: null,
        actorId: null,
        reason: null,
      });
    } else {
      this.store.enqueue({ conversationId, customerId: facts.customerId, category: facts.category, preferredAgentId: null, enqueuedAt: since });
    }
  }

  async alarm(): Promise<void> {
    const meta = this.store.meta();
    if (!meta?.hydrated) return;
    await this.ready(meta.businessId);
    // The alarm set for an opening acts on that window even if it fires a moment early (clock skew, or a test
    // running it ahead of time). One set for a retry due before the opening is that retry: it acts on the present,
    // and a closed business stays closed (it used to serve its queue hours early).
    const openAt = this.store.openAlarmAt();
    const retryAt = this.store.retryAt();
    const forOpening = openAt !== undefined && (retryAt === undefined || openAt <= retryAt);
    const at = forOpening ? Math.max(this.deps.now(), openAt) : this.deps.now();
    this.store.setOpenAlarmAt(undefined);
    await Promise.all([
      ...this.store.pendingRemovals().map((r) => this.writeRemoval(meta.businessId, r)),
      ...this.store.pendingCloseNotices().map((n) => this.tellClosed(n)),
    ]);
    await this.drainAndWait(at);
    await this.reschedule();
  }

  // ── Conversations ──────────────────────────────────────────────────────────────────────────────────────────

  /** A customer's conversation: assigned now when an agent is free and the business open, otherwise queued. */
  async open(input: OpenInput): Promise<OpenPlacement> {
    await this.ready(input.businessId);
    let fresh = false;
    await this.chain(input.conversationId, async () => {
      if (this.store.assignment(input.conversationId) || this.store.queued(input.conversationId)) return;
      if (this.store.wasClosed(input.conversationId)) return;
      if (input.assignedAgentId) {
        this.adopt(input.conversationId, input, this.deps.now());
        return;
      }
      fresh = true;
      if (!input.notify) this.quiet.add(input.conversationId);
      this.store.enqueue({
        conversationId: input.conversationId,
        customerId: input.customerId,
        category: input.category,
        preferredAgentId: input.preferredAgentId,
        enqueuedAt: this.deps.now(),
      });
    });
    if (fresh) {
      this.drain();
      await this.reschedule();
    }
    await this.settled(input.conversationId);
    this.quiet.delete(input.conversationId);
    const placement = this.placement(input.conversationId);
    // The creating request came second: a repeat request placed it, not quietly, and its agent has been told.
    return { ...placement, agentAnnounced: !input.notify && !fresh && placement.status === "assigned" };
  }

  /** Where an open conversation stands (one the desk has not seen is taken as Postgres has it). */
  async placementOf(businessId: string, conversationId: string, facts: ConversationFacts): Promise<Placement> {
    await this.ready(businessId);
    await this.chain(conversationId, async () => this.adopt(conversationId, facts, this.deps.now()));
    return this.placement(conversationId);
  }

  private placement(conversationId: string): Placement {
    const a = this.store.assignment(conversationId);
    if (a) return { conversationId, status: "assigned", agentId: a.agentId, queuePosition: null };
    const position = this.store.position(conversationId);
    if (position !== undefined) return { conversationId, status: "queued", agentId: null, queuePosition: position };
    return { conversationId, status: "closed", agentId: null, queuePosition: null };
  }

  /**
   * Assigns a queued conversation, or transfers an assigned one (the previous agent leaves). With an agentId the
   * choice is the caller's (a registered agent with a free slot, online or not); without, the routing rules choose
   * among eligible agents, never the current one. Opening hours do not apply: a person asked for it.
   */
  async assign(input: AssignInput): Promise<AssignOutcome> {
    await this.ready(input.businessId);
    const target = input.agentId;
    let written: Promise<WriteResult> | undefined;
    let outcome: AssignOutcome | undefined;
    await this.chain(input.conversationId, async () => {
      this.adopt(input.conversationId, input.facts, this.deps.now());
      const current = this.store.assignment(input.conversationId);
      const queued = this.store.queued(input.conversationId);
      const previousAgentId = current?.agentId ?? null;
      if (target && target === previousAgentId) throw conflict("The conversation is already assigned to this agent");
      const customerId = current?.customerId ?? queued?.customerId ?? input.facts.customerId;
      const category = current?.category ?? queued?.category ?? input.facts.category;
      const states = agentStates(this.store.agents(), this.store.loads(), this.held);
      let agentId: string;
      if (target) {
        const agent = this.store.agent(target);
        if (!agent) throw badRequest("agentId: not an agent of this business");
        if (target === customerId) throw badRequest("agentId: the customer cannot be their own agent");
        const state = states.find((s) => s.userId === target)!;
        if (state.active >= state.maxConcurrentChats) throw conflict(`The agent already has ${state.maxConcurrentChats} concurrent chats (their maximum)`);
        agentId = target;
      } else {
        const chosen = pickAgent(states, { customerId, category, preferredAgentId: queued?.preferredAgentId ?? null, exclude: previousAgentId });
        if (!chosen) {
          if (current) throw conflict("No other agent is available");
          outcome = { ...this.placement(input.conversationId), previousAgentId: null };
          return;
        }
        agentId = chosen.userId;
      }
      const assignment: Assignment = {
        conversationId: input.conversationId,
        agentId,
        customerId,
        category,
        assignedAt: this.store.nextAssignmentStamp(this.deps.now()),
        synced: false,
        kind: current ? "transferred" : "assigned",
        previousAgentId,
        actorId: input.actorId,
        reason: input.reason ?? null,
      };
      this.store.touchAssigned(agentId, assignment.assignedAt);
      if (queued) this.store.dequeue(input.conversationId);
      if (previousAgentId) this.hold(previousAgentId, +1);
      this.store.putAssignment(assignment);
      written = this.writeAssignment(assignment, { requeue: queued, restore: current, notify: true, auto: !target });
      outcome = { conversationId: input.conversationId, status: "assigned", agentId, queuePosition: null, previousAgentId };
    });
    const result = written ? await written : "kept";
    if (result === "failed") throw unavailable("Database unavailable");
    if (result === "gone") throw conflict("The conversation is already closed");
    // A transfer frees the previous agent's slot: the queue may move.
    if (outcome?.previousAgentId) await this.drainAndWait();
    await this.reschedule();
    return outcome!;
  }

  /**
   * Closes the conversation (status closed, closed_at) and frees its agent's slot for the queue. One Postgres already
   * has closed is a 409, and the slot is freed all the same: the desk held it when a close committed without the desk
   * hearing of it (a timeout after the commit, a reset), and the repeated close was the only call left to free it.
   */
  async close(input: CloseInput): Promise<CloseOutcome> {
    await this.ready(input.businessId);
    let result: CloseOutcome | undefined;
    let alreadyClosed = false;
    await this.chain(input.conversationId, async () => {
      const current = this.store.assignment(input.conversationId);
      const queued = this.store.queued(input.conversationId);
      // Out of the queue before the write: a drain meanwhile must not hand it to an agent.
      if (queued) this.store.dequeue(input.conversationId);
      const at = new Date(this.deps.now());
      const agentId = current?.agentId ?? input.facts.assignedAgentId;
      let written: Awaited<ReturnType<DeskEffects["writeClose"]>>;
      try {
        written = await this.effects.writeClose({
          businessId: input.businessId,
          conversationId: input.conversationId,
          actorId: input.actorId,
          agentId,
          reason: input.reason ?? null,
          at,
        });
      } catch (err) {
        if (queued) this.store.requeue(queued);
        this.deps.log.warn("close write failed", { conversationId: input.conversationId, error: errorReason(err).slice(0, 200) });
        throw databaseUnavailable(err, this.deps.log);
      }
      this.store.deleteAssignment(input.conversationId);
      if (written !== "missing") this.store.markClosed(input.conversationId, at.getTime());
      if (written === "missing") throw notFound("Conversation");
      if (written === "closed") {
        alreadyClosed = true;
        return;
      }
      if (!(await this.effects.announceClose({ conversationId: input.conversationId }))) {
        // Lost, the room took messages into the closed chat until its own re-read, up to a minute later.
        this.store.setPendingCloseNotice({ conversationId: input.conversationId, until: at.getTime() + CLOSE_NOTICE_MS }, true);
        this.store.setRetryAt(this.deps.now() + RETRY_MS);
      }
      result = { conversationId: input.conversationId, status: "closed", closedAt: at.toISOString(), agentId };
    });
    await this.drainAndWait();
    await this.reschedule();
    if (alreadyClosed) throw conflict("The conversation is already closed");
    return result!;
  }

  /**
   * The assigned agent leaves the conversation themselves (DELETE /conversations/{id}/participants/<own id>): the
   * unassignment is written first (assignment ended "agent_left", the agent's participation ended, audited with the
   * agent as actor), then the conversation goes back to the front of the queue (its customer has waited longest) and
   * the queue is served at once, by anyone but the agent who left. That exclusion holds for this drain only: if
   * nobody else is free the conversation waits at the front, and a later drain may hand it back to them (better
   * than a customer stuck while the only agent has room). null when the agent does not hold the conversation.
   */
  async release(input: ReleaseInput): Promise<Placement | null> {
    await this.ready(input.businessId);
    const { conversationId, agentId } = input;
    let released = false;
    await this.chain(conversationId, async () => {
      this.adopt(conversationId, input.facts, this.deps.now());
      const current = this.store.assignment(conversationId);
      if (!current || current.agentId !== agentId) return;
      // Written before the desk lets go: a failure leaves everything as it was, and the leave can be retried.
      let written: Awaited<ReturnType<DeskEffects["writeUnassignment"]>>;
      try {
        written = await this.effects.writeUnassignment({
          businessId: input.businessId,
          conversationId,
          agentId,
          actorId: agentId,
          reason: "agent_left",
        });
      } catch (err) {
        this.deps.log.warn("unassignment write failed", { conversationId, error: errorReason(err).slice(0, 200) });
        throw databaseUnavailable(err, this.deps.log);
      }
      this.store.deleteAssignment(conversationId);
      if (written.outcome === "missing") throw notFound("Conversation");
      if (written.outcome === "closed") throw conflict("The conversation is already closed");
      this.store.enqueue({ conversationId, customerId: current.customerId, category: current.category, preferredAgentId: null, enqueuedAt: current.assignedAt }, true);
      await this.effects.announceUnassignment({ conversationId, agentId, at: written.at });
      released = true;
    });
    if (!released) return null;
    await this.drainAndWait(undefined, { conversationId, agentId });
    await this.reschedule();
    return this.placement(conversationId);
  }

  // ── Agents ─────────────────────────────────────────────────────────────────────────────────────────────────

  async upsertAgent(businessId: string, agentId: string, patch: AgentPatch, actorId: string): Promise<{ agent: AgentView; created: boolean }> {
    await this.ready(businessId);
    let created = false;
    await this.chain(`agent:${agentId}`, async () => {
      const saved = await this.pg(() => this.effects.upsertAgent(businessId, agentId, patch, actorId));
      created = saved.created;
      const presence = await this.effects.presenceOf(agentId);
      this.mirrorAgent(saved.row, presence);
    });
    await this.drainAndWait();
    // While closed the drain serves nobody: the opening's alarm must be set, or a queue that formed while open
    // (no alarm then) waits past the opening for another event although this agent now has room.
    await this.reschedule();
    return { agent: this.agentView(agentId)!, created };
  }

  async setAvailability(businessId: string, agentId: string, isAvailable: boolean): Promise<AgentView> {
    await this.ready(businessId);
    await this.chain(`agent:${agentId}`, async () => {
      const row = await this.pg(() => this.effects.setAvailability(businessId, agentId, isAvailable));
      if (!row) throw notFound("Agent");
      this.mirrorAgent(row, await this.effects.presenceOf(agentId));
    });
    if (isAvailable) {
      await this.drainAndWait();
      // As for upsertAgent: while closed, the opening's alarm serves the queue this agent can now take.
      await this.reschedule();
    }
    return this.agentView(agentId)!;
  }

  /**
   * Unregisters an agent. Their open conversations go back to the front of the queue (they have waited longest)
   * and are served again at once when someone is free.
   */
  async removeAgent(businessId: string, agentId: string, actorId: string): Promise<void> {
    await this.ready(businessId);
    await this.chain(`agent:${agentId}`, async () => {
      const deleted = await this.pg(() => this.effects.deleteAgent(businessId, agentId, actorId));
      const known = this.store.agent(agentId);
      if (!deleted && !known) throw notFound("Agent");
      this.store.deleteAgent(agentId);
      for (const a of this.store.assignmentsOf(agentId).reverse()) {
        this.store.deleteAssignment(a.conversationId);
        this.store.enqueue({ conversationId: a.conversationId, customerId: a.customerId, category: a.category, preferredAgentId: null, enqueuedAt: a.assignedAt }, true);
        this.deps.waitUntil(this.writeRemoval(businessId, { conversationId: a.conversationId, agentId, actorId }));
      }
    });
    await this.drainAndWait();
    await this.reschedule();
  }

  /**
   * An unregistered agent leaves one of their conversations in Postgres (in the conversation's order). A failed write
   * is kept and retried from the alarm: until it lands they are still a participant, reading and writing the
   * customer's chat, and only the next assignment's write took them out (never, while nobody else was free).
   */
  private writeRemoval(businessId: string, removal: PendingRemoval): Promise<void> {
    const { conversationId, agentId, actorId } = removal;
    return this.chain(conversationId, async () => {
      // Theirs again since (registered anew and given it back): that assignment stands.
      if (this.store.assignment(conversationId)?.agentId === agentId) return this.store.setPendingRemoval(removal, false);
      try {
        const done = await this.effects.writeUnassignment({ businessId, conversationId, agentId, actorId, reason: "agent_removed" });
        this.store.setPendingRemoval(removal, false);
        if (done.outcome === "done") await this.effects.announceUnassignment({ conversationId, agentId, at: done.at });
      } catch (err) {
        this.deps.log.warn("unassignment write failed", { conversationId, error: errorReason(err).slice(0, 200) });
        this.store.setPendingRemoval(removal, true);
        this.store.setRetryAt(this.deps.now() + RETRY_MS);
        await this.reschedule();
      }
    });
  }

  /** A close the room did not hear of, told again (in the conversation's order), from the alarm. */
  private tellClosed(notice: PendingCloseNotice): Promise<void> {
    return this.chain(notice.conversationId, async () => {
      const told = await this.effects.announceClose({ conversationId: notice.conversationId });
      const again = !told && this.deps.now() < notice.until;
      this.store.setPendingCloseNotice(notice, again);
      if (again) this.store.setRetryAt(this.deps.now() + RETRY_MS);
    });
  }

  /** A presence transition from the agent's UserSession. Coming online serves the queue (without holding the caller). */
  async agentPresence(businessId: string, userId: string, status: PresenceStatus): Promise<void> {
    await this.ready(businessId);
    if (!this.store.setPresence(userId, status)) return;
    if (status === "online") this.deps.waitUntil(this.drainAndWait().then(() => this.reschedule()));
  }

  private mirrorAgent(row: { userId: string; skills: string[]; maxConcurrentChats: number; isAvailable: boolean }, presence: PresenceStatus): void {
    const existing = this.store.agent(row.userId);
    this.store.putAgent({
      userId: row.userId,
      skills: row.skills,
      maxConcurrentChats: row.maxConcurrentChats,
      isAvailable: row.isAvailable,
      presence,
      lastAssignedAt: existing?.lastAssignedAt ?? 0,
    });
  }

  // ── Hours ──────────────────────────────────────────────────────────────────────────────────────────────────

  async setHours(businessId: string, hours: BusinessHours | null, actorId: string): Promise<HoursOutcome> {
    await this.ready(businessId);
    await this.chain("hours", async () => {
      await this.pg(() => this.effects.saveHours(businessId, hours, actorId));
      this.store.setHours(hours);
    });
    await this.drainAndWait();
    await this.reschedule();
    return { hours, status: hours ? hoursStatus(hours, this.deps.now()) : null };
  }

  // ── Views ──────────────────────────────────────────────────────────────────────────────────────────────────

  async snapshot(businessId: string): Promise<DeskSnapshot> {
    await this.ready(businessId);
    const loads = this.store.loads();
    return {
      businessId,
      isOpen: this.isOpenAt(this.deps.now()),
      agents: this.store.agents().map((a) => this.viewOf(a, loads)),
      queue: this.store.queue().map((q, i) => ({
        conversationId: q.conversationId,
        customerId: q.customerId,
        category: q.category,
        preferredAgentId: q.preferredAgentId,
        position: i + 1,
        enqueuedAt: new Date(q.enqueuedAt).toISOString(),
      })),
      assigned: this.store.assignments().length,
    };
  }

  private agentView(userId: string): AgentView | undefined {
    const a = this.store.agent(userId);
    return a ? this.viewOf(a, this.store.loads()) : undefined;
  }

  private viewOf(a: AgentRecord, loads: Map<string, number>): AgentView {
    const [state] = agentStates([a], loads, this.held);
    return {
      businessId: this.store.meta()?.businessId ?? "",
      userId: a.userId,
      skills: a.skills,
      maxConcurrentChats: a.maxConcurrentChats,
      isAvailable: a.isAvailable,
      presence: a.presence,
      online: state.online,
      activeChats: loads.get(a.userId) ?? 0,
      eligible: isEligible(state),
      lastAssignedAt: a.lastAssignedAt > 0 ? new Date(a.lastAssignedAt).toISOString() : null,
    };
  }

  // ── Routing ────────────────────────────────────────────────────────────────────────────────────────────────

  private isOpenAt(at: number): boolean {
    const hours = this.store.hours();
    return !hours || hoursStatus(hours, at).isOpen;
  }

  /**
   * Serves the queue in order while agents have free slots (and the business is open at `at`): every reservation
   * is made here, synchronously; the writes follow per conversation. Returns the writes' results. `exclude` keeps
   * one conversation away from one agent (the one who just left it).
   */
  private drain(at = this.deps.now(), exclude?: { conversationId: string; agentId: string }): Promise<WriteResult>[] {
    if (this.store.queueLength() === 0 || !this.isOpenAt(at)) return [];
    const queue = this.store.queue();
    const requests = exclude ? queue.map((q) => (q.conversationId === exclude.conversationId ? { ...q, exclude: exclude.agentId } : q)) : queue;
    const plan = planDrain(agentStates(this.store.agents(), this.store.loads(), this.held), requests, this.store.nextAssignmentStamp(this.deps.now()));
    const byId = new Map(queue.map((q) => [q.conversationId, q]));
    return plan.map((p) => {
      const entry = byId.get(p.conversationId)!;
      const assignment: Assignment = {
        conversationId: p.conversationId,
        agentId: p.agentId,
        customerId: entry.customerId,
        category: entry.category,
        assignedAt: p.stamp,
        synced: false,
        kind: "assigned",
        previousAgentId: null,
        actorId: null,
        reason: null,
      };
      this.store.dequeue(p.conversationId);
      this.store.putAssignment(assignment);
      this.store.touchAssigned(p.agentId, p.stamp);
      const notify = !this.quiet.has(p.conversationId);
      return this.writeAssignment(assignment, { requeue: entry, notify, auto: true });
    });
  }

  private async drainAndWait(at?: number, exclude?: { conversationId: string; agentId: string }): Promise<void> {
    await Promise.all(this.drain(at, exclude));
  }

  /**
   * Writes a reservation through (in the conversation's order) and settles it: kept and announced when Postgres
   * has it; dropped when the conversation was closed meanwhile; undone (back in the queue at its old place, or
   * back to the previous agent) when the write failed. Never rejects.
   */
  private writeAssignment(
    a: Assignment,
    options: { requeue?: QueueEntry; restore?: Assignment; notify: boolean; auto?: boolean },
  ): Promise<WriteResult> {
    let result: WriteResult = "failed";
    let writtenAt = new Date(a.assignedAt);
    return this.chain(a.conversationId, async () => {
      const mine = () => {
        const now = this.store.assignment(a.conversationId);
        return now !== undefined && now.agentId === a.agentId && now.assignedAt === a.assignedAt;
      };
      try {
        const outcome = await this.effects.writeAssignment({
          businessId: this.store.meta()!.businessId,
          conversationId: a.conversationId,
          agentId: a.agentId,
          previousAgentId: a.previousAgentId,
          actorId: a.actorId,
          reason: a.reason,
          kind: a.kind,
          auto: options.auto ?? a.actorId === null,
          category: a.category,
        });
        writtenAt = outcome.at;
        if (outcome.outcome === "done") {
          if (mine()) this.store.markSynced(a.conversationId, a.agentId);
          result = "kept";
        } else {
          if (mine()) this.store.deleteAssignment(a.conversationId);
          result = "gone";
        }
      } catch (err) {
        this.deps.log.warn("assignment write failed", { conversationId: a.conversationId, error: errorReason(err).slice(0, 200) });
        if (mine()) {
          if (options.restore) this.store.putAssignment(options.restore);
          else {
            this.store.deleteAssignment(a.conversationId);
            if (options.requeue) this.store.requeue(options.requeue);
          }
        }
        this.store.setRetryAt(this.deps.now() + RETRY_MS);
        await this.reschedule();
      } finally {
        if (a.previousAgentId) this.hold(a.previousAgentId, -1);
      }
      if (result === "kept" && options.notify) {
        await this.effects.announceAssignment({ conversationId: a.conversationId, agentId: a.agentId, previousAgentId: a.previousAgentId, at: writtenAt });
      }
    }).then(
      () => result,
      () => result,
    );
  }

  private hold(agentId: string, delta: number): void {
    const n = (this.held.get(agentId) ?? 0) + delta;
    if (n > 0) this.held.set(agentId, n);
    else this.held.delete(agentId);
  }

  /** The next alarm: the opening that serves a waiting queue, or a retry after a failed write. */
  private async reschedule(): Promise<void> {
    const now = this.deps.now();
    const wakes: number[] = [];
    const retryAt = this.store.retryAt();
    if (retryAt !== undefined) wakes.push(retryAt);
    else if (this.store.pendingRemovals().length > 0 || this.store.pendingCloseNotices().length > 0) {
      // A retry time already past is cleared below: leaves still unwritten, closes still untold keep the alarm coming.
      this.store.setRetryAt(now + RETRY_MS);
      wakes.push(now + RETRY_MS);
    }
    this.store.setOpenAlarmAt(undefined);
    const hours = this.store.hours();
    if (this.store.queueLength() > 0 && hours) {
      const status = hoursStatus(hours, now);
      if (!status.isOpen) {
        if (status.nextOpenAt) {
          const openAt = Date.parse(status.nextOpenAt);
          this.store.setOpenAlarmAt(openAt);
          wakes.push(openAt);
        } else {
          wakes.push(now + RECHECK_CLOSED_MS);
        }
      }
    }
    if (retryAt !== undefined && retryAt <= now) this.store.setRetryAt(undefined);
    await this.deps.setAlarm(wakes.length > 0 ? Math.max(Math.min(...wakes), now + 10) : null);
  }

  // ── Ordering ───────────────────────────────────────────────────────────────────────────────────────────────

  /** Runs `work` after everything queued before it under the same key. */
  private chain<T>(key: string, work: () => Promise<T>): Promise<T> {
    const previous = this.chains.get(key) ?? Promise.resolve();
    const result = previous.then(work);
    const tail = result.then(
      () => undefined,
      () => undefined,
    );
    this.chains.set(key, tail);
    void tail.then(() => {
      if (this.chains.get(key) === tail) this.chains.delete(key);
    });
    return result;
  }

  private settled(key: string): Promise<void> {
    return this.chains.get(key) ?? Promise.resolve();
  }

  /** A Postgres step of a request: a failure of the database is a 503, not a 500. */
  private async pg<T>(work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (err) {
      this.deps.log.warn("desk database step failed", { error: errorReason(err).slice(0, 200) });
      throw databaseUnavailable(err, this.deps.log);
    }
  }
}
