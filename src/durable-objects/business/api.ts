import type { BusinessHours, HoursStatus } from "../../domain/business-hours";
import type { PresenceStatus } from "../../protocol/frames";

/**
 * The BusinessDesk's RPC surface (one object per business), called by the Worker's business routes, the customer's
 * POST /conversations/business and the agents' UserSession objects. Methods answer with RpcResult values
 * (lib/errors.ts) like the rooms do; the Worker unwraps them with callDesk (worker/routes/business-support.ts).
 */

/** What Postgres says about a conversation, so the desk can adopt one it has not seen (created before it existed). */
export interface ConversationFacts {
  customerId: string;
  category: string | null;
  assignedAgentId: string | null;
}

export interface OpenInput extends ConversationFacts {
  businessId: string;
  conversationId: string;
  preferredAgentId: string | null;
  /**
   * false when the caller announces the conversation itself (a new conversation: the creating request sends
   * conversation_created to everyone in it, the agent included); true for an assignment nobody else will announce.
   */
  notify: boolean;
}

export type PlacementStatus = "assigned" | "queued" | "closed";

export interface Placement {
  conversationId: string;
  status: PlacementStatus;
  agentId: string | null;
  /** 1-based position in the business's queue while queued, otherwise null. */
  queuePosition: number | null;
}

/** What open answers: the placement, and whether the desk itself has announced the conversation to its agent. */
export interface OpenPlacement extends Placement {
  /**
   * true when a repeat request reached the desk before the creating one and its placement was announced (the
   * agent got conversation_created from the desk): the creating request then leaves the agent out of its own.
   */
  agentAnnounced: boolean;
}

export interface AssignInput {
  businessId: string;
  conversationId: string;
  actorId: string;
  /** Omitted: the routing chooses (never the current agent). */
  agentId?: string;
  reason?: string;
  facts: ConversationFacts;
}

export interface AssignOutcome extends Placement {
  previousAgentId: string | null;
}

export interface CloseInput {
  businessId: string;
  conversationId: string;
  actorId: string;
  reason?: string;
  facts: ConversationFacts;
}

export interface ReleaseInput {
  businessId: string;
  conversationId: string;
  /** The agent leaving; also the actor (an agent can only release their own conversation). */
  agentId: string;
  facts: ConversationFacts;
}

export interface CloseOutcome {
  conversationId: string;
  status: "closed";
  closedAt: string;
  agentId: string | null;
}

export interface AgentPatch {
  skills?: string[];
  maxConcurrentChats?: number;
}

export interface AgentView {
  businessId: string;
  userId: string;
  skills: string[];
  maxConcurrentChats: number;
  isAvailable: boolean;
  /** From the agent's UserSession (contract §6); only "online" counts for routing. */
  presence: PresenceStatus;
  online: boolean;
  activeChats: number;
  /** Online, available and below the maximum: would get the next conversation it fits. */
  eligible: boolean;
  lastAssignedAt: string | null;
}

export interface QueueView {
  conversationId: string;
  customerId: string;
  category: string | null;
  preferredAgentId: string | null;
  position: number;
  enqueuedAt: string;
}

export interface DeskSnapshot {
  businessId: string;
  isOpen: boolean;
  agents: AgentView[];
  queue: QueueView[];
  assigned: number;
}

export interface HoursOutcome {
  hours: BusinessHours | null;
  status: HoursStatus | null;
}
