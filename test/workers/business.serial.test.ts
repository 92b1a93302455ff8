import { afterEach, describe, expect, it } from "vitest";
import { env, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import type { BusinessDesk } from "../../src/durable-objects/business-desk";
import { sql } from "drizzle-orm";
import { api, newUser } from "./helpers";
import { postgres, withDb } from "./fixtures";
import { activeAgents, auditActions, desk, newBusiness, openChat, placement, registerAgent, setAvailable } from "./business-helpers";

/**
 * Business desk cases that switch the shared Postgres bridge off: in the workers-serial project, which runs after
 * the parallel pass, one file at a time, so no other test sees the outage.
 */


describe("business desk when Postgres fails", () => {
  afterEach(async () => {
    await postgres({});
  });

  it("a desk whose table a skipped migration left out answers 503 naming `npm run migrate`, not 'Database unavailable'", async () => {
    const biz = await newBusiness();
    await withDb((db) => db.execute(sql`ALTER TABLE business_assignments RENAME TO business_assignments_hidden_by_test`));
    try {
      const res = await api("GET", `/business/${biz.id}/agents`, { token: biz.admin.token });
      expect(res.status).toBe(503);
      expect(res.body.message).toMatch(/run `npm run migrate`/);
    } finally {
      await withDb((db) => db.execute(sql`ALTER TABLE business_assignments_hidden_by_test RENAME TO business_assignments`));
    }
    expect((await api("GET", `/business/${biz.id}/agents`, { token: biz.admin.token })).status).toBe(200);
  });

  it("undoes a reservation whose write failed (back in the queue, same place) and retries on its alarm", async () => {
    const biz = await newBusiness();
    const agent = await newUser("agent");
    await registerAgent(biz, agent);
    await setAvailable(agent); // available, not online yet
    const customer = await newUser("customer");
    const chat = await openChat(customer, biz.id);
    const behind = await openChat(await newUser("customer"), biz.id);
    expect([chat.body.queuePosition, behind.body.queuePosition]).toEqual([1, 2]);
    const facts = { customerId: customer.id, category: null, assignedAgentId: null };
    await postgres({ down: true });
    // The agent comes online (as their UserSession would report it): the desk reserves, the write fails.
    await desk(biz.id).agentPresence(biz.id, agent.id, "online");
    const during = await desk(biz.id).placement(biz.id, chat.body.id, facts);
    expect(during).toMatchObject({ ok: true, value: { status: "queued", queuePosition: 1 } });
    const snapshot = await desk(biz.id).snapshot(biz.id);
    expect(snapshot.ok && snapshot.value.agents[0]).toMatchObject({ activeChats: 0, online: true });
    const alarm = await runInDurableObject(desk(biz.id), async (_instance: BusinessDesk, state) => state.storage.getAlarm());
    expect(alarm).not.toBeNull();
    await postgres({});
    expect(await runDurableObjectAlarm(desk(biz.id))).toBe(true);
    expect(await placement(chat.body.id, customer)).toMatchObject({ status: "assigned", agentId: agent.id });
    expect(await activeAgents(chat.body.id)).toEqual([agent.id]);
    expect((await auditActions(chat.body.id)).map((a) => a.action)).toEqual(["business.assigned"]);
  });
});
