/** Agent routing for business conversations: pure, so the business object can apply it atomically. */
export interface AgentState {
  userId: string;
  skills: string[];
  maxConcurrentChats: number;
  isAvailable: boolean;
  online: boolean;
  /** Conversations currently assigned. */
  active: number;
  /** When the agent last got a conversation (ms), for round robin among equals. */
  lastAssignedAt: number;
}

export function isEligible(a: AgentState): boolean {
  return a.online && a.isAvailable && a.active < a.maxConcurrentChats;
}

/**
 * Preferred agent if eligible; else agents with the conversation's category among their skills (all eligible
 * agents when none has it); among those the least busy, and among equally busy ones the longest waiting (round robin).
 */
export function chooseAgent(agents: AgentState[], request: { preferredAgentId?: string; category?: string }): AgentState | undefined {
  const eligible = agents.filter(isEligible);
  if (eligible.length === 0) return undefined;
  const preferred = request.preferredAgentId ? eligible.find((a) => a.userId === request.preferredAgentId) : undefined;
  if (preferred) return preferred;
  const skilled = request.category ? eligible.filter((a) => a.skills.includes(request.category!)) : [];
  const pool = skilled.length > 0 ? skilled : eligible;
  return [...pool].sort((a, b) => a.active - b.active || a.lastAssignedAt - b.lastAssignedAt || a.userId.localeCompare(b.userId))[0];
}

export function median(values: number[]): number | null {
  if (values.length === 0) return null;
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}
