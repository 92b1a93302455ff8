import { describe, expect, it } from "vitest";
import { chooseAgent, median, type AgentState } from "../../src/domain/routing";

const agent = (userId: string, over: Partial<AgentState> = {}): AgentState => ({
  userId,
  skills: [],
  maxConcurrentChats: 5,
  isAvailable: true,
  online: true,
  active: 0,
  lastAssignedAt: 0,
  ...over,
});

describe("agent routing", () => {
  it("prefers the requested agent when eligible", () => {
    expect(chooseAgent([agent("a"), agent("b", { active: 3 })], { preferredAgentId: "b" })?.userId).toBe("b");
    expect(chooseAgent([agent("a"), agent("b", { online: false })], { preferredAgentId: "b" })?.userId).toBe("a");
  });

  it("matches skills, then least busy, then round robin", () => {
    const agents = [agent("a", { skills: ["billing"], active: 2 }), agent("b", { active: 0 }), agent("c", { skills: ["billing"], active: 1 })];
    expect(chooseAgent(agents, { category: "billing" })?.userId).toBe("c");
    expect(chooseAgent(agents, { category: "returns" })?.userId).toBe("b");
    expect(chooseAgent([agent("x", { lastAssignedAt: 20 }), agent("y", { lastAssignedAt: 10 })], {})?.userId).toBe("y");
  });

  it("never picks an agent who is offline, unavailable or full", () => {
    expect(chooseAgent([agent("a", { online: false }), agent("b", { isAvailable: false }), agent("c", { active: 5 })], {})).toBeUndefined();
  });

  it("computes medians", () => {
    expect(median([])).toBeNull();
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 2, 3])).toBe(2.5);
  });
});
