import { errorReason } from "../../lib/errors";
import { openDb, type Db } from "../../db/client";
import {
  deleteAgent,
  deleteHours,
  loadDeskSeed,
  saveHours,
  setAgentAvailability,
  upsertAgent,
  writeAssignment,
  writeClose,
  writeUnassignment,
  type AgentRow,
  type AssignmentWrite,
  type CloseWrite,
  type DeskSeed,
  type MembershipWritten,
  type UnassignmentWrite,
  type WriteOutcome,
} from "../../db/queries/business";
import type { BusinessHours } from "../../domain/business-hours";
import { getConfig } from "../../lib/config";
import type { Logger } from "../../lib/log";
import { createProfileProvider, profileOptionsFromConfig } from "../../profiles/provider";
import type { ProfileProvider } from "../../profiles/types";
import type { PresenceStatus } from "../../protocol/frames";
import type { Conversation } from "../../protocol/resources";
import type { RoomEvent } from "../room-api";
import type { UserConversationEvent } from "../user-session";
import type { AgentPatch } from "./api";
import { sharedConversation } from "../shared-view";

/**
 * Everything the desk does outside itself: Postgres (write-through), the agents' UserSessions (presence, events)
 * and the conversation rooms (membership changes to broadcast). An interface, so the routing logic (desk.ts) runs
 * against fakes in unit tests.
 */
export interface DeskEffects {
  seed(businessId: string): Promise<DeskSeed>;
  /** The changes to agents and hours are audited with their actor (db/queries/business.ts). */
  upsertAgent(businessId: string, userId: string, patch: AgentPatch, actorId: string): Promise<{ row: AgentRow; created: boolean }>;
  deleteAgent(businessId: string, userId: string, actorId: string): Promise<boolean>;
  setAvailability(businessId: string, userId: string, isAvailable: boolean): Promise<AgentRow | undefined>;
  saveHours(businessId: string, hours: BusinessHours | null, actorId: string): Promise<void>;
  /** With the write's time, Postgres's: the notices carry it (the joined_at and left_at it wrote). */
  writeAssignment(w: AssignmentWrite): Promise<MembershipWritten>;
  writeUnassignment(w: UnassignmentWrite): Promise<MembershipWritten>;
  writeClose(w: CloseWrite): Promise<WriteOutcome>;
  presenceOf(userId: string): Promise<PresenceStatus>;
  /**
   * An agent joined (and, for a transfer, another left): the room broadcasts, the users' lists follow. `at`: the
   * write's time (the previous agent's left_at), with which the room drops a leaving agent before its re-read.
   */
  announceAssignment(input: { conversationId: string; agentId: string; previousAgentId: string | null; at: Date }): Promise<void>;
  announceUnassignment(input: { conversationId: string; agentId: string; at: Date }): Promise<void>;
  /** true when the room has the close (or there is no conversation left to close): the desk tells it again otherwise. */
  announceClose(input: { conversationId: string }): Promise<boolean>;
}


/** The real effects, from the object's env. A pool per operation (ended after it), as the UserSession does. */
export class WorkerDeskEffects implements DeskEffects {
  private profiles: ProfileProvider | undefined;

  constructor(
    private readonly env: Env,
    private readonly waitUntil: (work: Promise<unknown>) => void,
    private readonly log: Logger,
  ) {}

  private async withDb<T>(work: (db: Db) => Promise<T>): Promise<T> {
    const config = getConfig(this.env);
    const handle = openDb({ databaseUrl: config.DATABASE_URL, bridge: config.PG_BRIDGE }, 1);
    try {
      return await work(handle.db);
    } finally {
      // Awaited: a pool left open across blockConcurrencyWhile hangs the next one.
      await handle.end();
    }
  }

  seed(businessId: string) {
    return this.withDb((db) => loadDeskSeed(db, businessId));
  }

  upsertAgent(businessId: string, userId: string, patch: AgentPatch, actorId: string) {
    return this.withDb((db) => upsertAgent(db, businessId, userId, patch, actorId));
  }

  deleteAgent(businessId: string, userId: string, actorId: string) {
    return this.withDb((db) => deleteAgent(db, businessId, userId, actorId));
  }

  setAvailability(businessId: string, userId: string, isAvailable: boolean) {
    return this.withDb((db) => setAgentAvailability(db, businessId, userId, isAvailable));
  }

  async saveHours(businessId: string, hours: BusinessHours | null, actorId: string) {
    await this.withDb(async (db) => {
      if (hours) await saveHours(db, businessId, hours, actorId);
      else await deleteHours(db, businessId, actorId);
    });
  }

  writeAssignment(w: AssignmentWrite) {
    return this.withDb((db) => writeAssignment(db, w));
  }

  writeUnassignment(w: UnassignmentWrite) {
    return this.withDb((db) => writeUnassignment(db, w));
  }

  writeClose(w: CloseWrite) {
    return this.withDb((db) => writeClose(db, w));
  }

  async presenceOf(userId: string): Promise<PresenceStatus> {
    const ns = this.env.USER_SESSION;
    try {
      return (await ns.get(ns.idFromName(userId)).presenceOf(userId)).status;
    } catch (err) {
      this.log.warn("presence lookup failed", { userId, error: errorReason(err).slice(0, 200) });
      return "offline";
    }
  }

  async announceAssignment(input: { conversationId: string; agentId: string; previousAgentId: string | null; at: Date }): Promise<void> {
    await this.announce(input.conversationId, async (view) => {
      const joined = view.participants.filter((p) => p.userId === input.agentId);
      const left = input.previousAgentId ? [input.previousAgentId] : undefined;
      await this.tellRoom({ kind: "participants", conversationId: view.id, joined, left, leftAt: left && input.at.toISOString() });
      const others = view.participants.filter((p) => p.userId !== input.agentId).map((p) => p.userId);
      await Promise.all([
        // The shared view counts nobody's unread: the agent's session reads the agent's own count (customer messages
        // that waited in the queue are unread for them) and starts its badge from it.
        this.tellUsers([input.agentId], { type: "conversation_created", conversation: view, unread: "read" }),
        this.tellUsers(others, { type: "conversation_updated", conversation: view }),
        // With the move's time (the agent's left_at): arriving after the notice of a move back, it is older news.
        input.previousAgentId
          ? this.tellUsers([input.previousAgentId], { type: "conversation_removed", conversationId: view.id, at: input.at.toISOString() })
          : undefined,
      ]);
    });
  }

  async announceUnassignment(input: { conversationId: string; agentId: string; at: Date }): Promise<void> {
    await this.announce(input.conversationId, async (view) => {
      await this.tellRoom({ kind: "participants", conversationId: view.id, left: [input.agentId], leftAt: input.at.toISOString() });
      await Promise.all([
        this.tellUsers([input.agentId], { type: "conversation_removed", conversationId: view.id, at: input.at.toISOString() }),
        this.tellUsers(
          view.participants.map((p) => p.userId),
          { type: "conversation_updated", conversation: view },
        ),
      ]);
    });
  }

  async announceClose(input: { conversationId: string }): Promise<boolean> {
    let roomTold: boolean | undefined;
    const done = await this.announce(input.conversationId, async (view) => {
      roomTold = await this.tellRoom({ kind: "conversation_updated", conversationId: view.id, conversation: view });
      await this.tellUsers(
        view.participants.map((p) => p.userId),
        { type: "conversation_updated", conversation: view },
      );
    });
    // No view and no error: the conversation is gone, and its room with it.
    return roomTold ?? done;
  }

  /**
   * Announcements are best effort: the change is committed; a lost event is repaired by the next reload (a close
   * the room missed, by the desk: see Desk.close). false when it failed.
   */
  private async announce(conversationId: string, work: (view: Conversation) => Promise<void>): Promise<boolean> {
    try {
      this.profiles ??= createProfileProvider({ ...profileOptionsFromConfig(getConfig(this.env)), memory: true, waitUntil: this.waitUntil });
      const profiles = this.profiles;
      const view = await this.withDb((db) => sharedConversation(db, profiles, conversationId));
      if (view) await work(view);
      return true;
    } catch (err) {
      this.log.warn("business announcement failed", { conversationId, error: errorReason(err).slice(0, 200) });
      return false;
    }
  }

  private async tellRoom(event: RoomEvent): Promise<boolean> {
    const ns = this.env.CONVERSATION_ROOM;
    const result = await ns.get(ns.idFromName(event.conversationId)).notify(event);
    if (!result.ok) this.log.warn("room notify refused", { conversationId: event.conversationId, status: result.status });
    return result.ok;
  }

  private async tellUsers(userIds: string[], event: UserConversationEvent): Promise<void> {
    const ns = this.env.USER_SESSION;
    const results = await Promise.allSettled(userIds.map((id) => ns.get(ns.idFromName(id)).conversationEvent(event)));
    const failed = results.filter((r) => r.status === "rejected").length;
    if (failed) this.log.warn("user notify failed", { failed, type: event.type });
  }
}
