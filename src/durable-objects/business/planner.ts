import { chooseAgent, isEligible, type AgentState } from "../../domain/routing";
import type { AgentRecord } from "./records";

/**
 * Routing decisions of the desk, pure: the object feeds them its current state and applies the answer in the same
 * synchronous turn, so two decisions can never see the same free slot.
 */

/** Only "online" counts: an agent who is away or offline gets nothing new (their current chats stay). */
export function agentStates(agents: AgentRecord[], loads: ReadonlyMap<string, number>, held: ReadonlyMap<string, number> = new Map()): AgentState[] {
  return agents.map((a) => ({
    userId: a.userId,
    skills: a.skills,
    maxConcurrentChats: a.maxConcurrentChats,
    isAvailable: a.isAvailable,
    online: a.presence === "online",
    active: (loads.get(a.userId) ?? 0) + (held.get(a.userId) ?? 0),
    lastAssignedAt: a.lastAssignedAt,
  }));
}

export interface RouteRequest {
  customerId: string;
  category: string | null;
  preferredAgentId: string | null;
  /** Never this agent (a transfer away from them). */
  exclude?: string | null;
}

/** chooseAgent's rules, never handing customers their own conversation (an agent may also be a customer). */
export function pickAgent(agents: readonly AgentState[], request: RouteRequest): AgentState | undefined {
  const candidates = agents.filter((a) => a.userId !== request.customerId && a.userId !== request.exclude);
  return chooseAgent(candidates, { preferredAgentId: request.preferredAgentId ?? undefined, category: request.category ?? undefined });
}

export interface PlannedAssignment {
  conversationId: string;
  agentId: string;
  /** The round-robin stamp the agent gets. */
  stamp: number;
}

/**
 * Serves a FIFO queue with the agents' free slots: each conversation in order gets the agent the rules choose,
 * counting the slots taken by the ones before it. Stops when no agent is eligible any more.
 */
export function planDrain(
  agents: readonly AgentState[],
  queue: readonly (RouteRequest & { conversationId: string })[],
  firstStamp: number,
): PlannedAssignment[] {
  const pool = agents.map((a) => ({ ...a, skills: [...a.skills] }));
  const plan: PlannedAssignment[] = [];
  let stamp = firstStamp;
  for (const entry of queue) {
    if (!pool.some(isEligible)) break;
    const chosen = pickAgent(pool, entry);
    // Only when the one eligible agent is this conversation's own customer: the next one may still fit.
    if (!chosen) continue;
    chosen.active += 1;
    chosen.lastAssignedAt = stamp;
    plan.push({ conversationId: entry.conversationId, agentId: chosen.userId, stamp });
    stamp += 1;
  }
  return plan;
}

/** A skill or category as stored and compared: trimmed, lower case. */
export const normaliseSkill = (s: string) => s.trim().toLowerCase();
