import { afterEach, describe, expect, it } from "vitest";
import { env, runInDurableObject } from "cloudflare:test";
import type { UserSession } from "../../src/durable-objects/user-session";
import { newUser } from "./helpers";
import { agentsOf, closeSockets, connect, newBusiness, registerAgent, setAvailable, waitFor } from "./business-helpers";

afterEach(() => closeSockets());

/** While set, the agent's session cannot reach the desk (a deploy resets every object; calls in flight fail). */
let deskUnreachable = false;

async function injectDeskFailures(userId: string): Promise<void> {
  await runInDurableObject(env.USER_SESSION.get(env.USER_SESSION.idFromName(userId)), (instance: UserSession) => {
    const holder = instance as unknown as { env: Env };
    const desks = holder.env.BUSINESS_DESK;
    const faulty = Object.create(desks) as typeof desks;
    faulty.idFromName = (name: string) => desks.idFromName(name);
    faulty.get = (id: DurableObjectId) => {
      const stub = desks.get(id);
      const failing = { agentPresence: () => Promise.reject(new Error("Durable Object reset because its code was updated.")) };
      return deskUnreachable ? (failing as unknown as typeof stub) : stub;
    };
    holder.env = { ...holder.env, BUSINESS_DESK: faulty };
  });
}

describe("an agent's presence at the desk", () => {
  // The desk keeps its own copy of each agent's presence and hears of changes only from the agent's session: one
  // call that failed left the agent offline there, given no chats, until their next change of presence.
  it("reaches the desk after a failed call, from the session's retry", async () => {
    const biz = await newBusiness();
    const agent = await newUser("agent-retry");
    await registerAgent(biz, agent);
    await setAvailable(agent);
    expect((await agentsOf(biz))[agent.id]).toMatchObject({ presence: "offline", online: false });
    deskUnreachable = true;
    try {
      await injectDeskFailures(agent.id);
      const socket = await connect(agent);
      await waitFor(async () => socket.frames.find((f) => f.type === "connected"), "connected");
      // The session published (Postgres has it), and the desk missed it.
      await new Promise((r) => setTimeout(r, 300));
      expect((await agentsOf(biz))[agent.id]).toMatchObject({ online: false });
    } finally {
      deskUnreachable = false;
    }
    await waitFor(async () => (await agentsOf(biz))[agent.id].online, "the desk told the agent is online", 8000);
    expect((await agentsOf(biz))[agent.id]).toMatchObject({ presence: "online", eligible: true });
  });
});
