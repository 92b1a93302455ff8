import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { isEligible, type AgentState } from "../../src/domain/routing";
import { agentStates, pickAgent, planDrain, type RouteRequest } from "../../src/durable-objects/business/planner";
import type { AgentRecord } from "../../src/durable-objects/business/records";

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

const entry = (conversationId: string, over: Partial<RouteRequest> = {}) => ({
  conversationId,
  customerId: `customer-${conversationId}`,
  category: null,
  preferredAgentId: null,
  ...over,
});

describe("desk planning: agent states", () => {
  it("counts only 'online' as online, and adds slots held by transfers in flight to the load", () => {
    const records: AgentRecord[] = [
      { userId: "a", skills: ["x"], maxConcurrentChats: 2, isAvailable: true, presence: "online", lastAssignedAt: 7 },
      { userId: "b", skills: [], maxConcurrentChats: 2, isAvailable: true, presence: "away", lastAssignedAt: 0 },
      { userId: "c", skills: [], maxConcurrentChats: 2, isAvailable: true, presence: "offline", lastAssignedAt: 0 },
    ];
    const states = agentStates(records, new Map([["a", 1]]), new Map([["a", 1]]));
    expect(states.map((s) => [s.userId, s.online, s.active])).toEqual([
      ["a", true, 2],
      ["b", false, 0],
      ["c", false, 0],
    ]);
    expect(states.filter(isEligible)).toEqual([]);
  });
});

describe("desk planning: pickAgent", () => {
  it("never gives customers their own conversation, and can exclude the current agent", () => {
    expect(pickAgent([agent("a"), agent("b", { active: 3 })], { customerId: "a", category: null, preferredAgentId: null })?.userId).toBe("b");
    expect(pickAgent([agent("a"), agent("b", { active: 3 })], { customerId: "z", category: null, preferredAgentId: null, exclude: "a" })?.userId).toBe("b");
    expect(pickAgent([agent("a")], { customerId: "z", category: null, preferredAgentId: null, exclude: "a" })).toBeUndefined();
  });

  it("prefers the requested agent, then the skill, then the least busy", () => {
    const agents = [agent("a", { active: 1 }), agent("b", { skills: ["billing"], active: 3 }), agent("c", { active: 4 })];
    expect(pickAgent(agents, { customerId: "z", category: null, preferredAgentId: "c" })?.userId).toBe("c");
    expect(pickAgent(agents, { customerId: "z", category: "billing", preferredAgentId: null })?.userId).toBe("b");
    expect(pickAgent(agents, { customerId: "z", category: "returns", preferredAgentId: null })?.userId).toBe("a");
  });
});

describe("desk planning: planDrain", () => {
  it("serves the queue in order, round robin among equally busy agents, until the slots run out", () => {
    const plan = planDrain([agent("a", { maxConcurrentChats: 2 }), agent("b", { maxConcurrentChats: 2 })], ["1", "2", "3", "4", "5"].map((id) => entry(id)), 100);
    expect(plan.map((p) => [p.conversationId, p.agentId, p.stamp])).toEqual([
      ["1", "a", 100],
      ["2", "b", 101],
      ["3", "a", 102],
      ["4", "b", 103],
    ]);
  });

  it("applies skills and preferences per conversation", () => {
    const agents = [agent("a", { skills: ["billing"] }), agent("b"), agent("c")];
    const plan = planDrain(agents, [entry("1", { category: "billing" }), entry("2", { preferredAgentId: "c" }), entry("3", { category: "billing" })], 1);
    expect(plan.map((p) => p.agentId)).toEqual(["a", "c", "a"]);
  });

  it("skips only a conversation whose one eligible agent is its own customer", () => {
    const plan = planDrain([agent("a", { maxConcurrentChats: 1 })], [entry("1", { customerId: "a" }), entry("2")], 1);
    expect(plan.map((p) => [p.conversationId, p.agentId])).toEqual([["2", "a"]]);
  });

  it("never exceeds an agent's maximum, assigns a FIFO prefix and fills every free slot (property)", () => {
    const agentArb = fc.record({
      max: fc.integer({ min: 1, max: 6 }),
      active: fc.integer({ min: 0, max: 7 }),
      online: fc.boolean(),
      isAvailable: fc.boolean(),
      skills: fc.subarray(["billing", "returns", "sales"]),
    });
    fc.assert(
      fc.property(
        fc.array(agentArb, { maxLength: 6 }),
        fc.array(fc.record({ category: fc.constantFrom(null, "billing", "returns", "sales") }), { maxLength: 40 }),
        (specs, requests) => {
          const agents = specs.map((s, i) =>
            agent(`agent-${i}`, { maxConcurrentChats: s.max, active: s.active, online: s.online, isAvailable: s.isAvailable, skills: s.skills }),
          );
          const queue = requests.map((r, i) => entry(`c${String(i).padStart(3, "0")}`, { category: r.category }));
          const plan = planDrain(agents, queue, 1);
          const given = new Map<string, number>();
          for (const p of plan) given.set(p.agentId, (given.get(p.agentId) ?? 0) + 1);
          for (const a of agents) {
            const n = given.get(a.userId) ?? 0;
            if (!isEligible(a)) expect(n).toBe(0);
            else expect(a.active + n).toBeLessThanOrEqual(a.maxConcurrentChats);
          }
          const free = agents.filter(isEligible).reduce((sum, a) => sum + a.maxConcurrentChats - a.active, 0);
          expect(plan.length).toBe(Math.min(free, queue.length));
          expect(plan.map((p) => p.conversationId)).toEqual(queue.slice(0, plan.length).map((q) => q.conversationId));
        },
      ),
    );
  });
});
