/** Plain records the desk keeps (no runtime types here, so the pure planner and Node tests can use them). */
import type { PresenceStatus } from "../../protocol/frames";
export interface AgentRecord {
  userId: string;
  skills: string[];
  maxConcurrentChats: number;
  isAvailable: boolean;
  presence: PresenceStatus;
  /** Strictly increasing over the desk (ms-like): round robin among equally busy agents. 0 = never. */
  lastAssignedAt: number;
}

export type AssignmentKind = "assigned" | "transferred";

export interface Assignment {
  conversationId: string;
  agentId: string;
  customerId: string;
  category: string | null;
  assignedAt: number;
  /** false until Postgres has it; an object restarted mid-write replays unsynced rows (the write is idempotent). */
  synced: boolean;
  kind: AssignmentKind;
  previousAgentId: string | null;
  actorId: string | null;
  reason: string | null;
}

export interface QueueEntry {
  conversationId: string;
  customerId: string;
  category: string | null;
  preferredAgentId: string | null;
  enqueuedAt: number;
  /** FIFO order; a conversation put back after a failed write keeps its place. */
  seq: number;
}

/** An unregistered agent's leave of one of their conversations, kept until Postgres has it. */
export interface PendingRemoval {
  conversationId: string;
  agentId: string;
  actorId: string;
}

/** A close the conversation's room did not hear of, told again from the alarm until `until` (ms). */
export interface PendingCloseNotice {
  conversationId: string;
  until: number;
}
