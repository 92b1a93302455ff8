import { afterEach, describe, expect, it, vi } from "vitest";
import { env, runDurableObjectAlarm, runInDurableObject, SELF } from "cloudflare:test";
import { sql } from "drizzle-orm";
import type { BusinessDesk } from "../../src/durable-objects/business-desk";
import { WorkerDeskEffects } from "../../src/durable-objects/business/effects";
import type { UserConversationEvent } from "../../src/durable-objects/user-session";
import { api, expectErrorShape, newUser, type TestUser } from "./helpers";
import { holdNextRead, seedMessages, withDb } from "./fixtures";
import { openSocket } from "./sockets";
import { archiveJob } from "../../src/jobs/retention";
import { runJob } from "../../src/jobs/runner";
import { getConfig } from "../../src/lib/config";
import { createLogger } from "../../src/lib/log";
import {
  activeAgents,
  agentsOf,
  auditActions,
  closedUntil,
  closeSockets,
  connect,
  desk,
  newBusiness,
  openChat,
  pgConversation,
  placement,
  readyAgent,
  registerAgent,
  roleMap,
  serviceUser,
  setAvailable,
  trackSocket,
  waitFor,
} from "./business-helpers";

// The Postgres-down cases are in business.serial.test.ts: switching the shared bridge off would hit parallel files.

afterEach(closeSockets);

// ── Agents ─────────────────────────────────────────────────────────────────────────────────────────────────────

describe("business agents", () => {
  it("registers (201), updates (200), lists with load and presence, and removes agents (204, then 404)", async () => {
    const biz = await newBusiness();
    const agent = await newUser("agent");
    const created = await api("PUT", `/business/${biz.id}/agents/${agent.id}`, {
      token: biz.admin.token,
      body: { skills: [" Billing ", "billing", "Returns"], maxConcurrentChats: 3 },
    });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ businessId: biz.id, userId: agent.id, skills: ["billing", "returns"], maxConcurrentChats: 3, isAvailable: false, online: false, activeChats: 0, eligible: false });
    const updated = await api("PUT", `/business/${biz.id}/agents/${agent.id}`, { token: biz.admin.token, body: { maxConcurrentChats: 4 } });
    expect(updated.status).toBe(200);
    expect(updated.body).toMatchObject({ skills: ["billing", "returns"], maxConcurrentChats: 4 });
    expect((await agentsOf(biz))[agent.id]).toMatchObject({ maxConcurrentChats: 4, presence: "offline", activeChats: 0 });
    const row = await withDb((db) => db.execute<{ skills: string[]; max_concurrent_chats: number }>(
      sql`SELECT skills, max_concurrent_chats FROM business_agents WHERE business_id = ${biz.id} AND user_id = ${agent.id}`,
    ));
    expect(row.rows[0]).toMatchObject({ skills: ["billing", "returns"], max_concurrent_chats: 4 });
    expect((await api("DELETE", `/business/${biz.id}/agents/${agent.id}`, { token: biz.admin.token })).status).toBe(204);
    expectErrorShape(await api("DELETE", `/business/${biz.id}/agents/${agent.id}`, { token: biz.admin.token }), 404);
    expect(await agentsOf(biz)).toEqual({});
  });

  it("sees an agent online through their user socket (UserSession → desk), and offline after it closes", async () => {
    const biz = await newBusiness();
    const agent = await newUser("agent");
    await registerAgent(biz, agent);
    expect((await agentsOf(biz))[agent.id]).toMatchObject({ presence: "offline", online: false });
    const { ws } = await connect(agent);
    await waitFor(async () => (await agentsOf(biz))[agent.id].online, "agent online");
    await setAvailable(agent);
    expect((await agentsOf(biz))[agent.id]).toMatchObject({ presence: "online", isAvailable: true, eligible: true });
    ws.close(1000, "bye");
    // Offline is published after the UserSession's reconnect grace (3 s).
    await waitFor(async () => (await agentsOf(biz))[agent.id].presence === "offline", "agent offline", 15_000);
    expect((await agentsOf(biz))[agent.id].eligible).toBe(false);
  });

  it("sets availability for every business the caller is an agent of; 403 for someone who is no agent", async () => {
    const [a, b] = [await newBusiness(), await newBusiness()];
    const agent = await newUser("agent");
    await registerAgent(a, agent);
    await registerAgent(b, agent);
    const res = await setAvailable(agent, true);
    expect(res.agents.map((x: { businessId: string }) => x.businessId).sort()).toEqual([a.id, b.id].sort());
    expect((await agentsOf(a))[agent.id].isAvailable).toBe(true);
    expect((await agentsOf(b))[agent.id].isAvailable).toBe(true);
    await setAvailable(agent, false);
    expect((await agentsOf(b))[agent.id].isAvailable).toBe(false);
    const stranger = await newUser("stranger");
    expectErrorShape(await api("PUT", "/business/agents/me/availability", { token: stranger.token, body: { isAvailable: true } }), 403);
  });
});

// ── Routing ────────────────────────────────────────────────────────────────────────────────────────────────────

describe("business routing", () => {
  it("assigns a new conversation to an available agent: participant `agent`, assigned_agent_id, audit, both sides told", async () => {
    const biz = await newBusiness();
    const agent = await readyAgent(biz);
    const customer = await newUser("customer");
    const res = await openChat(customer, biz.id, { category: "Billing" });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    expect(res.body.queuePosition).toBeNull();
    expect(roleMap(res.body)).toEqual({ [customer.id]: "customer", [agent.id]: "agent" });
    expect(await pgConversation(res.body.id)).toMatchObject({ status: "open", assigned_agent_id: agent.id, category: "billing" });
    const audit = await auditActions(res.body.id);
    expect(audit).toHaveLength(1);
    expect(audit[0]).toMatchObject({ action: "business.assigned", actor_id: null, target_id: agent.id, details: { auto: true, category: "billing" } });
    // The agent's user socket hears about the conversation; the agent sees it like any other.
    await waitFor(async () => agent.socket.frames.find((f) => f.type === "conversation_created" && f.data.conversation.id === res.body.id), "conversation_created");
    expect((await api("GET", `/conversations/${res.body.id}`, { token: agent.token })).status).toBe(200);
    expect((await agentsOf(biz))[agent.id].activeChats).toBe(1);
    // A repeat request finds the same conversation (200) and does not route it again.
    const again = await openChat(customer, biz.id);
    expect(again.status).toBe(200);
    expect(again.body).toMatchObject({ id: res.body.id, queuePosition: null });
    expect((await agentsOf(biz))[agent.id].activeChats).toBe(1);
  });

  it("tells the agent of a new chat once when the customer's repeat request reaches the desk before the creating one", async () => {
    const biz = await newBusiness();
    const agent = await readyAgent(biz);
    const customer = await newUser("customer");
    const customerSocket = await connect(customer);
    // The creating request's call to the desk is held until the repeat request has been answered.
    let release = () => {};
    const held = new Promise<void>((resolve) => (release = resolve));
    await runInDurableObject(desk(biz.id), async (instance: BusinessDesk) => {
      const open = instance.desk.open.bind(instance.desk);
      instance.desk.open = async (input) => {
        if (input.notify) return open(input);
        instance.desk.open = open;
        await held;
        return open(input);
      };
    });
    const creating = openChat(customer, biz.id, { category: "billing" });
    const found = sql`SELECT id, category FROM conversations WHERE business_id = ${biz.id}::uuid AND customer_id = ${customer.id}::uuid`;
    const row = await waitFor(async () => (await withDb((db) => db.execute<{ id: string; category: string | null }>(found))).rows[0], "the conversation written");
    const repeat = await openChat(customer, biz.id);
    expect(repeat.status).toBe(200);
    release();
    expect((await creating).status).toBe(201);
    const created = (frames: typeof agent.socket.frames) => frames.filter((f) => f.type === "conversation_created" && f.data.conversation.id === row.id);
    // The creating request's announcement reaches the customer and the agent together: after the customer's, the
    // agent's would be there too.
    await waitFor(async () => created(customerSocket.frames).length > 0, "the customer's conversation_created");
    await new Promise((r) => setTimeout(r, 200));
    expect(created(agent.socket.frames)).toHaveLength(1);
    expect(row.category).toBe("billing");
  });

  it("prefers the requested agent when available, else falls back to the rules", async () => {
    const biz = await newBusiness();
    const idle = await readyAgent(biz);
    const busy = await readyAgent(biz);
    const warmup = await openChat(await newUser("customer"), biz.id, { agentId: busy.id });
    expect(warmup.body.participants.find((p: { role: string }) => p.role === "agent").userId).toBe(busy.id);
    // busy now has one more chat than idle, and is still preferred when asked for.
    const preferred = await openChat(await newUser("customer"), biz.id, { agentId: busy.id });
    expect(roleMap(preferred.body)[busy.id]).toBe("agent");
    // Not available: the rules choose (least busy: idle).
    await api("PUT", "/business/agents/me/availability", { token: busy.token, body: { isAvailable: false } });
    const fallback = await openChat(await newUser("customer"), biz.id, { agentId: busy.id });
    expect(roleMap(fallback.body)).toMatchObject({ [idle.id]: "agent" });
    expect(roleMap(fallback.body)[busy.id]).toBeUndefined();
  });

  it("matches the category to an agent's skill before load", async () => {
    const biz = await newBusiness();
    const billing = await readyAgent(biz, { skills: ["billing"] });
    const general = await readyAgent(biz);
    const first = await openChat(await newUser("customer"), biz.id, { category: "billing" });
    const second = await openChat(await newUser("customer"), biz.id, { category: "BILLING" });
    // The skilled agent gets both, although the other one has nothing.
    expect(roleMap(first.body)[billing.id]).toBe("agent");
    expect(roleMap(second.body)[billing.id]).toBe("agent");
    const other = await openChat(await newUser("customer"), biz.id, { category: "returns" });
    expect(roleMap(other.body)[general.id]).toBe("agent");
  });

  it("gives the least busy agent, and round robin among equally busy ones", async () => {
    const biz = await newBusiness();
    const a = await readyAgent(biz);
    const b = await readyAgent(biz);
    const agentOf = (res: { body: { participants: { userId: string; role: string }[] } }) => res.body.participants.find((p) => p.role === "agent")!.userId;
    const customers = await Promise.all([1, 2, 3, 4].map(() => newUser("customer")));
    const c1 = await openChat(customers[0], biz.id);
    const c2 = await openChat(customers[1], biz.id);
    expect(new Set([agentOf(c1), agentOf(c2)])).toEqual(new Set([a.id, b.id]));
    const first = agentOf(c1);
    const second = agentOf(c2);
    // first is free again → least busy.
    expect((await api("POST", `/business/conversations/${c1.body.id}/close`, { token: customers[0].token })).status).toBe(200);
    const c3 = await openChat(customers[2], biz.id);
    expect(agentOf(c3)).toBe(first);
    // Both free: the one who waited longest (second) is next.
    await api("POST", `/business/conversations/${c2.body.id}/close`, { token: customers[1].token });
    await api("POST", `/business/conversations/${c3.body.id}/close`, { token: customers[2].token });
    const c4 = await openChat(customers[3], biz.id);
    expect(agentOf(c4)).toBe(second);
  });
});

// ── Queue ──────────────────────────────────────────────────────────────────────────────────────────────────────

describe("business queue", () => {
  it("queues when nobody is available, shows positions, and serves the queue in order when an agent becomes available", async () => {
    const biz = await newBusiness();
    const agent = await newUser("agent");
    await registerAgent(biz, agent, { maxConcurrentChats: 2 });
    await connect(agent);
    const customers = await Promise.all([1, 2, 3].map(() => newUser("customer")));
    const chats = [];
    for (const customer of customers) chats.push(await openChat(customer, biz.id));
    expect(chats.map((c) => [c.status, c.body.queuePosition])).toEqual([
      [201, 1],
      [201, 2],
      [201, 3],
    ]);
    expect(roleMap(chats[0].body)).toEqual({ [customers[0].id]: "customer" });
    const adminView = await api("GET", `/business/${biz.id}/queue`, { token: biz.admin.token });
    expect(adminView.body.total).toBe(3);
    expect(adminView.body.entries.map((e: { conversationId: string; position: number }) => [e.conversationId, e.position])).toEqual(
      chats.map((c, i) => [c.body.id, i + 1]),
    );
    const customerView = await api("GET", `/business/${biz.id}/queue`, { token: customers[1].token });
    expect(customerView.body).toMatchObject({ total: 1, entries: [{ conversationId: chats[1].body.id, position: 2, customerId: customers[1].id }] });
    expect(await placement(chats[2].body.id, customers[2])).toMatchObject({ status: "queued", queuePosition: 3 });

    await setAvailable(agent);
    expect(await placement(chats[0].body.id, customers[0])).toMatchObject({ status: "assigned", agentId: agent.id });
    expect(await placement(chats[1].body.id, customers[1])).toMatchObject({ status: "assigned", agentId: agent.id });
    expect(await placement(chats[2].body.id, customers[2])).toMatchObject({ status: "queued", queuePosition: 1 });
    expect(await activeAgents(chats[0].body.id)).toEqual([agent.id]);
    expect((await agentsOf(biz))[agent.id]).toMatchObject({ activeChats: 2, eligible: false });

    // Finishing a chat frees the slot: the next one in the queue gets it.
    const closed = await api("POST", `/business/conversations/${chats[0].body.id}/close`, { token: agent.token, body: { reason: "solved" } });
    expect(closed.status).toBe(200);
    expect(await placement(chats[2].body.id, customers[2])).toMatchObject({ status: "assigned", agentId: agent.id });
    expect((await api("GET", `/business/${biz.id}/queue`, { token: biz.admin.token })).body.total).toBe(0);
  });

  it("serves the queue when an agent comes online (user socket → UserSession → desk)", async () => {
    const biz = await newBusiness();
    const agent = await newUser("agent");
    await registerAgent(biz, agent);
    await setAvailable(agent); // available, but offline: no socket yet
    const customer = await newUser("customer");
    const chat = await openChat(customer, biz.id);
    expect(chat.body.queuePosition).toBe(1);
    const socket = await connect(agent);
    await waitFor(async () => (await placement(chat.body.id, customer)).status === "assigned", "assignment after coming online");
    await waitFor(async () => socket.frames.find((f) => f.type === "conversation_created" && f.data.conversation.id === chat.body.id), "conversation_created");
    expect(await activeAgents(chat.body.id)).toEqual([agent.id]);
    expect((await pgConversation(chat.body.id)).assigned_agent_id).toBe(agent.id);
  });

  it("gives an agent assigned a waiting chat its unread count: in conversation_created and the live badge", async () => {
    const biz = await newBusiness();
    const agent = await newUser("agent");
    await registerAgent(biz, agent);
    await setAvailable(agent);
    const customer = await newUser("customer");
    const chat = await openChat(customer, biz.id);
    for (const content of ["hello?", "anyone there?"]) {
      expect((await api("POST", `/conversations/${chat.body.id}/messages`, { token: customer.token, body: { content } })).status).toBe(201);
    }
    const socket = await connect(agent);
    const created = await waitFor(
      async () => socket.frames.find((f) => f.type === "conversation_created" && f.data.conversation.id === chat.body.id),
      "conversation_created",
    );
    const rest = await api("GET", "/notifications/unread-counts", { token: agent.token });
    expect(rest.body.unreadCounts[chat.body.id]).toBe(2);
    expect(created.data.conversation.unreadCount).toBe(2);
    const badge = await waitFor(
      async () => socket.frames.find((f) => f.type === "unread_count" && f.data.conversationId === chat.body.id),
      "unread_count",
    );
    expect(badge.data).toMatchObject({ unreadCount: 2, totalUnread: 2 });
  });

  it("tells the customer's conversation socket when an agent joins later (participant_joined)", async () => {
    const biz = await newBusiness();
    const agent = await newUser("agent");
    await registerAgent(biz, agent);
    await connect(agent);
    const customer = await newUser("customer");
    const chat = await openChat(customer, biz.id);
    const res = await SELF.fetch(
      new Request(`http://chat.test/conversations/${chat.body.id}/ws`, { headers: { Upgrade: "websocket", authorization: `Bearer ${customer.token}` } }),
    );
    expect(res.status).toBe(101);
    const ws = res.webSocket!;
    const frames: { type: string; data: any }[] = [];
    ws.addEventListener("message", (e) => {
      frames.push(JSON.parse(String(e.data)));
    });
    ws.accept();
    trackSocket(ws);
    await waitFor(async () => frames.find((f) => f.type === "ready"), "ready frame");
    await setAvailable(agent);
    const joined = await waitFor(async () => frames.find((f) => f.type === "participant_joined"), "participant_joined");
    expect(joined.data.participant).toMatchObject({ userId: agent.id, role: "agent" });
  });

  it("while closed: queues even with agents free, sets the alarm at the next opening, and serves the queue when it fires", async () => {
    const biz = await newBusiness();
    const agent = await readyAgent(biz);
    const { hours, opensAt } = closedUntil(3);
    const put = await api("PUT", `/business/${biz.id}/hours`, { token: biz.admin.token, body: hours });
    expect(put.status, JSON.stringify(put.body)).toBe(200);
    expect(put.body.status).toMatchObject({ isOpen: false, nextOpenAt: opensAt });
    const customer = await newUser("customer");
    const chat = await openChat(customer, biz.id);
    expect(chat.body.queuePosition).toBe(1);
    expect((await agentsOf(biz))[agent.id]).toMatchObject({ eligible: true, activeChats: 0 });
    const alarm = await runInDurableObject(desk(biz.id), async (_instance: BusinessDesk, state) => state.storage.getAlarm());
    expect(alarm).toBe(Date.parse(opensAt));
    expect(await runDurableObjectAlarm(desk(biz.id))).toBe(true);
    expect(await placement(chat.body.id, customer)).toMatchObject({ status: "assigned", agentId: agent.id });
    expect(await activeAgents(chat.body.id)).toEqual([agent.id]);
  });

  it("keeps the queue waiting when a retry alarm, not the opening, wakes it while closed", async () => {
    const biz = await newBusiness();
    const agent = await readyAgent(biz);
    const { hours, opensAt } = closedUntil(3);
    expect((await api("PUT", `/business/${biz.id}/hours`, { token: biz.admin.token, body: hours })).status).toBe(200);
    const customer = await newUser("customer");
    const chat = await openChat(customer, biz.id);
    expect(chat.body.queuePosition).toBe(1);
    // A write that failed meanwhile left a retry due in a minute, long before the opening (run early here).
    await runInDurableObject(desk(biz.id), async (instance: BusinessDesk, state) => {
      const store = (instance.desk as unknown as { deps: { store: { setRetryAt(at: number): void } } }).deps.store;
      store.setRetryAt(Date.now() + 60_000);
      await state.storage.setAlarm(Date.now() + 60_000);
    });
    expect(await runDurableObjectAlarm(desk(biz.id))).toBe(true);
    expect(await placement(chat.body.id, customer)).toMatchObject({ status: "queued", queuePosition: 1 });
    expect((await agentsOf(biz))[agent.id].activeChats).toBe(0);
    // The retry stays due (it was run early) and the opening stays set: a later wake-up serves the queue.
    const next = await runInDurableObject(desk(biz.id), async (instance: BusinessDesk, state) => ({
      alarm: await state.storage.getAlarm(),
      openAt: (instance.desk as unknown as { deps: { store: { openAlarmAt(): number | undefined } } }).deps.store.openAlarmAt(),
    }));
    expect(next.openAt).toBe(Date.parse(opensAt));
    expect(next.alarm).toBeLessThanOrEqual(Date.parse(opensAt));
  });

  it("serves the queue as soon as the hours change to open (or are removed)", async () => {
    const biz = await newBusiness();
    await readyAgent(biz);
    await api("PUT", `/business/${biz.id}/hours`, { token: biz.admin.token, body: closedUntil(2).hours });
    const customer = await newUser("customer");
    const chat = await openChat(customer, biz.id);
    expect(chat.body.queuePosition).toBe(1);
    expect((await api("DELETE", `/business/${biz.id}/hours`, { token: biz.admin.token })).status).toBe(204);
    expect((await placement(chat.body.id, customer)).status).toBe("assigned");
    const status = await api("GET", `/business/${biz.id}/hours/status`, { token: customer.token });
    expect(status.body).toMatchObject({ isOpen: true, alwaysOpen: true });
    const alarm = await runInDurableObject(desk(biz.id), async (_instance: BusinessDesk, state) => state.storage.getAlarm());
    expect(alarm).toBeNull();
  });
});

// ── Hours ──────────────────────────────────────────────────────────────────────────────────────────────────────

describe("business hours", () => {
  const weekdays = { isOpen: true, openTime: "09:00", closeTime: "17:00" };
  const weekSchedule = { monday: weekdays, tuesday: weekdays, wednesday: weekdays, thursday: weekdays, friday: weekdays };

  it("saves and returns hours; no hours means always open", async () => {
    const biz = await newBusiness();
    const viewer = await newUser("viewer");
    expectErrorShape(await api("GET", `/business/${biz.id}/hours`, { token: viewer.token }), 404);
    expect((await api("GET", `/business/${biz.id}/hours/status`, { token: viewer.token })).body).toMatchObject({ isOpen: true, alwaysOpen: true, nextOpenAt: null });
    const body = { timezone: "Europe/Berlin", schedule: weekSchedule, holidays: [{ date: "2026-12-25", name: "Christmas" }] };
    expect((await api("PUT", `/business/${biz.id}/hours`, { token: biz.admin.token, body })).status).toBe(200);
    const saved = await api("GET", `/business/${biz.id}/hours`, { token: viewer.token });
    expect(saved.body).toMatchObject({ businessId: biz.id, timezone: "Europe/Berlin", schedule: { monday: weekdays }, holidays: [{ date: "2026-12-25", isOpen: false }] });
    expect(saved.body.status).toMatchObject({ alwaysOpen: false, timezone: "Europe/Berlin" });
  });

  it("answers open / next opening in the business's time zone, across DST changes (at=...)", async () => {
    const biz = await newBusiness();
    await api("PUT", `/business/${biz.id}/hours`, { token: biz.admin.token, body: { timezone: "America/New_York", schedule: weekSchedule } });
    const at = (iso: string) => api("GET", `/business/${biz.id}/hours/status?at=${iso}`, { token: biz.admin.token }).then((r) => r.body);
    // Friday 2026-03-06, EST (UTC-5): 08:59 local is closed; opens 14:00Z.
    expect(await at("2026-03-06T13:59:00Z")).toMatchObject({ isOpen: false, localTime: "2026-03-06T08:59", nextOpenAt: "2026-03-06T14:00:00.000Z" });
    // Friday 17:30 local → next opening is Monday 2026-03-09, after the switch to EDT (UTC-4): 13:00Z, not 14:00Z.
    expect(await at("2026-03-06T22:30:00Z")).toMatchObject({ isOpen: false, nextOpenAt: "2026-03-09T13:00:00.000Z" });
    expect(await at("2026-03-09T13:30:00Z")).toMatchObject({ isOpen: true, localTime: "2026-03-09T09:30", closesAt: "2026-03-09T21:00:00.000Z" });
    // November: back to EST.
    expect(await at("2026-11-02T13:30:00Z")).toMatchObject({ isOpen: false, nextOpenAt: "2026-11-02T14:00:00.000Z" });

    const sydney = await newBusiness();
    await api("PUT", `/business/${sydney.id}/hours`, { token: sydney.admin.token, body: { timezone: "Australia/Sydney", schedule: weekSchedule } });
    const atSydney = (iso: string) => api("GET", `/business/${sydney.id}/hours/status?at=${iso}`, { token: sydney.admin.token }).then((r) => r.body);
    // Sydney leaves DST on Sunday 2026-04-05: Friday opens 09:00 AEDT (UTC+11) = 22:00Z the day before,
    // Monday opens 09:00 AEST (UTC+10) = 23:00Z the day before.
    expect(await atSydney("2026-04-02T21:30:00Z")).toMatchObject({ isOpen: false, nextOpenAt: "2026-04-02T22:00:00.000Z" });
    expect(await atSydney("2026-04-03T08:00:00Z")).toMatchObject({ isOpen: false, nextOpenAt: "2026-04-05T23:00:00.000Z" });

    const kolkata = await newBusiness();
    await api("PUT", `/business/${kolkata.id}/hours`, {
      token: kolkata.admin.token,
      body: { timezone: "Asia/Kolkata", schedule: { ...weekSchedule, saturday: { isOpen: true, openTime: "22:00", closeTime: "02:00" } } },
    });
    // Overnight Saturday window in UTC+5:30: Sunday 01:00 local (Saturday 19:30Z) is still open.
    expect(await api("GET", `/business/${kolkata.id}/hours/status?at=2026-03-07T19:30:00Z`, { token: kolkata.admin.token }).then((r) => r.body)).toMatchObject({
      isOpen: true,
      localTime: "2026-03-08T01:00",
      closesAt: "2026-03-07T20:30:00.000Z",
    });
  });

  it("rejects invalid hours and a bad `at` with 400", async () => {
    const biz = await newBusiness();
    for (const body of [
      { timezone: "Mars/Olympus", schedule: {} },
      { timezone: "UTC", schedule: { monday: { isOpen: true, openTime: "9:00", closeTime: "17:00" } } },
      { timezone: "UTC", schedule: { monday: { isOpen: true, openTime: "09:00" } } },
      { timezone: "UTC", schedule: { someday: { isOpen: false } } },
      { timezone: "UTC", schedule: {}, extra: true },
      { timezone: "UTC", schedule: {}, holidays: [{ date: "25/12/2026" }] },
      { timezone: "UTC", schedule: {}, holidays: [{ date: "2026-12-24", isOpen: true, openTime: "10:00" }] },
      { timezone: "UTC", schedule: {}, holidays: [{ date: "2026-12-24", isOpen: true, openTime: "10:00", closeTime: "10:00" }] },
      // A name jsonb refuses: it was a 503 "Database unavailable", which a client retries for ever.
      { timezone: "UTC", schedule: {}, holidays: [{ date: "2026-12-25", name: "Christmas\u0000" }] },
      { timezone: "UTC", schedule: {}, holidays: [{ date: "2026-12-25", name: "Christmas \ud800" }] },
      // Two entries for one day: the second was stored and shown, but never applied.
      { timezone: "UTC", schedule: {}, holidays: [{ date: "2026-12-25" }, { date: "2026-12-25", isOpen: true, openTime: "09:00", closeTime: "12:00" }] },
    ]) {
      expectErrorShape(await api("PUT", `/business/${biz.id}/hours`, { token: biz.admin.token, body }), 400);
    }
    expectErrorShape(await api("GET", `/business/${biz.id}/hours/status?at=yesterday`, { token: biz.admin.token }), 400);
    // A day that does not exist (it was evaluated as 2026-03-02), and a time with no zone (it was taken as UTC).
    for (const at of ["2026-02-30T10:00:00Z", "2026-03-29T08:30"]) {
      expectErrorShape(await api("GET", `/business/${biz.id}/hours/status?at=${at}`, { token: biz.admin.token }), 400);
    }
    expect((await api("GET", `/business/${biz.id}/hours/status?at=2026-03-29T08:30:00%2B02:00`, { token: biz.admin.token })).status).toBe(200);
  });
});

// ── Transfer and close ─────────────────────────────────────────────────────────────────────────────────────────

describe("business transfer and close", () => {
  it("keeps a chat on the list of an agent moved off it and back when the move's removal notice arrives last", async () => {
    const biz = await newBusiness();
    const first = await readyAgent(biz);
    const customer = await newUser("customer");
    const chat = await openChat(customer, biz.id);
    const id: string = chat.body.id;
    expect(roleMap(chat.body)[first.id]).toBe("agent");
    const second = await readyAgent(biz);
    const assign = (agentId: string) => api("POST", `/business/conversations/${id}/assign`, { token: biz.admin.token, body: { agentId } });
    expect((await assign(second.id)).status).toBe(200);
    const removals = () => first.socket.frames.filter((f) => f.type === "conversation_removed" && f.data.conversationId === id).length;
    await waitFor(async () => removals() === 1, "conversation_removed");
    // The desk's notices of that move, as its effects send them; the one for `first` is held on its way.
    const [{ left_at }] = (
      await withDb((db) => db.execute<{ left_at: string }>(sql`SELECT left_at FROM participants WHERE conversation_id = ${id} AND user_id = ${first.id}`))
    ).rows;
    const held: UserConversationEvent[] = [];
    const capture = { idFromName: (n: string) => n, get: (n: string) => ({ conversationEvent: async (e: UserConversationEvent) => void (n === first.id && held.push(e)) }) };
    const noRoom = { idFromName: (n: string) => n, get: () => ({ notify: async () => ({ ok: true }) }) };
    const effects = new WorkerDeskEffects({ ...env, USER_SESSION: capture, CONVERSATION_ROOM: noRoom } as unknown as Env, () => {}, createLogger({ test: "held" }));
    await effects.announceAssignment({ conversationId: id, agentId: second.id, previousAgentId: first.id, at: new Date(left_at) });
    expect(held.map((e) => e.type)).toEqual(["conversation_removed"]);
    // Moved back: the chat is on first's list again; then the held removal lands.
    expect((await assign(first.id)).status).toBe(200);
    await waitFor(async () => first.socket.frames.find((f) => f.type === "conversation_created" && f.data.conversation.id === id), "conversation_created");
    await env.USER_SESSION.get(env.USER_SESSION.idFromName(first.id)).conversationEvent(held[0]);
    const sent = await api("POST", `/conversations/${id}/messages`, { token: customer.token, body: { content: "still yours", clientMessageId: crypto.randomUUID() } });
    expect(sent.status).toBe(201);
    await waitFor(async () => first.socket.frames.find((f) => f.type === "notification" && f.data.conversationId === id), "notification");
    expect(removals()).toBe(1);
  });

  it("transfers to a chosen agent with a reason: the previous agent leaves, slots follow, audited", async () => {
    const biz = await newBusiness();
    const first = await readyAgent(biz);
    const customer = await newUser("customer");
    const chat = await openChat(customer, biz.id);
    expect(roleMap(chat.body)[first.id]).toBe("agent");
    const second = await readyAgent(biz);
    const res = await api("POST", `/business/conversations/${chat.body.id}/assign`, {
      token: biz.admin.token,
      body: { agentId: second.id, reason: "needs a specialist" },
    });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body).toMatchObject({ status: "assigned", agentId: second.id, previousAgentId: first.id });
    expect(await activeAgents(chat.body.id)).toEqual([second.id]);
    expect((await pgConversation(chat.body.id)).assigned_agent_id).toBe(second.id);
    const load = await agentsOf(biz);
    expect([load[first.id].activeChats, load[second.id].activeChats]).toEqual([0, 1]);
    expectErrorShape(await api("GET", `/conversations/${chat.body.id}`, { token: first.token }), 404);
    await waitFor(async () => first.socket.frames.find((f) => f.type === "conversation_removed" && f.data.conversationId === chat.body.id), "conversation_removed");
    await waitFor(async () => second.socket.frames.find((f) => f.type === "conversation_created" && f.data.conversation.id === chat.body.id), "conversation_created");
    const audit = await auditActions(chat.body.id);
    expect(audit.map((a) => a.action)).toEqual(["business.assigned", "business.transferred"]);
    expect(audit[1]).toMatchObject({ actor_id: biz.admin.id, target_id: second.id, details: { previousAgentId: first.id, reason: "needs a specialist", auto: false } });
    const history = await withDb((db) => db.execute<{ agent_id: string; end_reason: string | null }>(
      sql`SELECT agent_id, end_reason FROM business_assignments WHERE conversation_id = ${chat.body.id} ORDER BY id`,
    ));
    expect(history.rows).toEqual([
      { agent_id: first.id, end_reason: "transferred" },
      { agent_id: second.id, end_reason: null },
    ]);
  });

  it("lets the current agent hand over automatically; 409 when nobody else is free", async () => {
    const biz = await newBusiness();
    const first = await readyAgent(biz);
    const customer = await newUser("customer");
    const chat = await openChat(customer, biz.id);
    expectErrorShape(await api("POST", `/business/conversations/${chat.body.id}/assign`, { token: first.token, body: {} }), 409);
    const second = await readyAgent(biz);
    const res = await api("POST", `/business/conversations/${chat.body.id}/assign`, { token: first.token, body: { reason: "end of shift" } });
    expect(res.body).toMatchObject({ agentId: second.id, previousAgentId: first.id });
    expect((await auditActions(chat.body.id)).at(-1)).toMatchObject({ action: "business.transferred", actor_id: first.id, details: { auto: true, reason: "end of shift" } });
  });

  it("refuses transfers to non-agents (400), to the same agent (409) and over an agent's maximum (409)", async () => {
    const biz = await newBusiness();
    const full = await readyAgent(biz, { maxConcurrentChats: 1 });
    const chatA = await openChat(await newUser("customer"), biz.id);
    expect(roleMap(chatA.body)[full.id]).toBe("agent");
    const other = await readyAgent(biz);
    const chatB = await openChat(await newUser("customer"), biz.id);
    expect(roleMap(chatB.body)[other.id]).toBe("agent");
    const assign = (id: string, body: object) => api("POST", `/business/conversations/${id}/assign`, { token: biz.admin.token, body });
    expectErrorShape(await assign(chatB.body.id, { agentId: full.id }), 409);
    expectErrorShape(await assign(chatB.body.id, { agentId: other.id }), 409);
    expectErrorShape(await assign(chatB.body.id, { agentId: (await newUser("nobody")).id }), 400);
    expect(await activeAgents(chatB.body.id)).toEqual([other.id]);
  });

  it("assigns a queued conversation by hand, to an agent who is not even online", async () => {
    const biz = await newBusiness();
    const agent = await newUser("agent");
    await registerAgent(biz, agent);
    const customer = await newUser("customer");
    const chat = await openChat(customer, biz.id);
    expect(chat.body.queuePosition).toBe(1);
    // Automatic: nobody is eligible, so it stays queued (200, not an error).
    const auto = await api("POST", `/business/conversations/${chat.body.id}/assign`, { token: biz.admin.token });
    expect(auto.body).toMatchObject({ status: "queued", queuePosition: 1 });
    const res = await api("POST", `/business/conversations/${chat.body.id}/assign`, { token: biz.admin.token, body: { agentId: agent.id } });
    expect(res.body).toMatchObject({ status: "assigned", agentId: agent.id, previousAgentId: null });
    expect(await activeAgents(chat.body.id)).toEqual([agent.id]);
  });

  it("closes for the customer, the agent or an admin: status closed, slot freed, audited; then 409", async () => {
    const biz = await newBusiness();
    const agent = await readyAgent(biz, { maxConcurrentChats: 3 });
    const customers = await Promise.all([1, 2, 3].map(() => newUser("customer")));
    const chats: Awaited<ReturnType<typeof openChat>>[] = [];
    for (const c of customers) chats.push(await openChat(c, biz.id));
    expect((await agentsOf(biz))[agent.id].activeChats).toBe(3);
    const send = (body: Record<string, unknown>) => api("POST", `/conversations/${chats[0].body.id}/messages`, { token: customers[0].token, body });
    const before = await send({ content: "before the close", clientMessageId: "bc-1" });
    expect(before.status).toBe(201);
    const closers = [customers[0], agent, biz.admin];
    for (const [i, chat] of chats.entries()) {
      const res = await api("POST", `/business/conversations/${chat.body.id}/close`, { token: closers[i].token });
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      expect(res.body).toMatchObject({ status: "closed", agentId: agent.id });
      const row = await pgConversation(chat.body.id);
      expect(row.status).toBe("closed");
      expect(row.closed_at).not.toBeNull();
      expect((await auditActions(chat.body.id)).at(-1)).toMatchObject({ action: "business.closed", actor_id: closers[i].id });
    }
    expect((await agentsOf(biz))[agent.id].activeChats).toBe(0);
    expectErrorShape(await api("POST", `/business/conversations/${chats[0].body.id}/close`, { token: customers[0].token }), 409);
    // A closed conversation takes no new messages (its room heard of the close); retries of earlier ones still answer.
    expectErrorShape(await send({ content: "after the close" }), 409);
    const retry = await send({ content: "before the close", clientMessageId: "bc-1" });
    expect(retry.status).toBe(200);
    expect(retry.body.id).toBe(before.body.id);
    expect((await placement(chats[0].body.id, customers[0])).status).toBe("closed");
    // The customer can open a new conversation with the business afterwards.
    const next = await openChat(customers[0], biz.id);
    expect(next.status).toBe(201);
    expect(next.body.id).not.toBe(chats[0].body.id);
  });

  it("tells the room again from the desk's alarm when the close's notice to it was lost: the chat takes no more messages", async () => {
    const biz = await newBusiness();
    await readyAgent(biz);
    const customer = await newUser("customer");
    const id: string = (await openChat(customer, biz.id)).body.id;
    const send = (content: string) => api("POST", `/conversations/${id}/messages`, { token: customer.token, body: { content } });
    expect((await send("before the close")).status).toBe(201);
    await runInDurableObject(desk(biz.id), async (instance: BusinessDesk) => {
      type RoomTeller = { tellRoom(event: { kind: string }): Promise<boolean> };
      const effects = (instance.desk as unknown as { deps: { effects: RoomTeller } }).deps.effects;
      const tell = effects.tellRoom.bind(effects);
      effects.tellRoom = async (event) => {
        if (event.kind !== "conversation_updated") return tell(event);
        effects.tellRoom = tell;
        throw new Error("Network connection lost.");
      };
    });
    expect((await api("POST", `/business/conversations/${id}/close`, { token: customer.token })).status).toBe(200);
    // Without the retry the room took messages into the closed chat until its re-read of the list, a minute later.
    await runDurableObjectAlarm(desk(biz.id));
    expectErrorShape(await send("after the close"), 409);
  });

  it("keeps the last message in the close's conversation_updated when every message has moved to the archive", async () => {
    const biz = await newBusiness();
    const agent = await readyAgent(biz);
    const customer = await newUser("customer");
    const id = (await openChat(customer, biz.id)).body.id as string;
    const now = new Date();
    await seedMessages(id, customer.id, 1, 2, new Date(now.getTime() - 91 * 86_400_000));
    const archived = await withDb((db) =>
      runJob(archiveJob({ conversationIds: [id], name: `retention.archive:${id}` }), { env, config: getConfig(env), db, log: createLogger({ test: "business" }), force: true, now }),
    );
    expect(archived).toMatchObject({ rows: 2 });
    const socket = await connect(customer);
    expect((await api("POST", `/business/conversations/${id}/close`, { token: agent.token })).status).toBe(200);
    // Apps take the frame's conversation as the list entry: without lastMessage its preview went blank.
    const update = await waitFor(
      async () => socket.frames.find((f) => f.type === "conversation_updated" && f.data.conversation.id === id),
      "conversation_updated",
    );
    expect(update.data.conversation).toMatchObject({ status: "closed", lastMessage: { seq: 2, content: "old message 2" } });
  });

  it("does not bring back a conversation it closed when a request that read it open before the close arrives after", async () => {
    const biz = await newBusiness();
    const agent = await readyAgent(biz, { maxConcurrentChats: 1 });
    const customer = await newUser("customer");
    const chat = await openChat(customer, biz.id);
    expect(chat.body).toMatchObject({ status: "open" });
    const facts = { customerId: customer.id, category: null, assignedAgentId: agent.id };
    const closed = await api("POST", `/business/conversations/${chat.body.id}/close`, { token: agent.token });
    expect(closed.status).toBe(200);
    // A queue-position read, and a repeat open, that both read the conversation from Postgres before the close.
    const stale = await desk(biz.id).placement(biz.id, chat.body.id, facts);
    expect(stale).toMatchObject({ ok: true, value: { status: "closed" } });
    const reopened = await desk(biz.id).open({ businessId: biz.id, conversationId: chat.body.id, ...facts, preferredAgentId: null, notify: true });
    expect(reopened).toMatchObject({ ok: true, value: { status: "closed" } });
    const queuedFacts = { ...facts, assignedAgentId: null };
    expect(await desk(biz.id).open({ businessId: biz.id, conversationId: chat.body.id, ...queuedFacts, preferredAgentId: null, notify: true })).toMatchObject({
      ok: true,
      value: { status: "closed" },
    });
    // The slot is free: the next customer is served, not queued behind a ghost.
    expect((await agentsOf(biz))[agent.id].activeChats).toBe(0);
    const next = await openChat(await newUser("customer"), biz.id);
    expect(next.body).toMatchObject({ queuePosition: null });
    expect((await agentsOf(biz))[agent.id].activeChats).toBe(1);
  });

  /**
   * An agent with one slot holding a chat, a second customer waiting for it, and the chat closed in Postgres without
   * the desk hearing of it (a close or leave whose write committed but whose answer was lost: a timeout, a reset).
   */
  async function closedUnheardByDesk() {
    const biz = await newBusiness();
    const agent = await readyAgent(biz, { maxConcurrentChats: 1 });
    const customer = await newUser("customer");
    const chat = await openChat(customer, biz.id);
    const next = await newUser("customer");
    const waiting = await openChat(next, biz.id);
    expect(waiting.body.queuePosition).toBe(1);
    await withDb((db) => db.execute(sql`UPDATE conversations SET status = 'closed', closed_at = now() WHERE id = ${chat.body.id}`));
    // The agent's one slot must come free again, and the customer who waited be served with it.
    const servedNext = async () => expect(await placement(waiting.body.id, next)).toMatchObject({ status: "assigned", agentId: agent.id });
    return { biz, agent, customer, chatId: chat.body.id as string, servedNext };
  }

  it("frees the agent's slot when a close is repeated for a conversation Postgres has closed but the desk still holds", async () => {
    const { biz, agent, chatId, servedNext } = await closedUnheardByDesk();
    expectErrorShape(await api("POST", `/business/conversations/${chatId}/close`, { token: agent.token }), 409);
    await servedNext();
    expect((await agentsOf(biz))[agent.id].activeChats).toBe(1);
  });

  it("frees the agent's slot when the customer leaves a conversation Postgres has closed but the desk still holds", async () => {
    // The app retries the customer's leave whose answer was lost.
    const { customer, chatId, servedNext } = await closedUnheardByDesk();
    expect((await api("DELETE", `/conversations/${chatId}/participants/${customer.id}`, { token: customer.token })).status).toBe(204);
    await servedNext();
  });

  it("frees the agent's slot when the agent leaves a conversation Postgres has closed but the desk still holds", async () => {
    // The agent clears the closed chat from their list: the plain leave, and the desk lets go of the slot.
    const { agent, chatId, servedNext } = await closedUnheardByDesk();
    expect((await api("DELETE", `/conversations/${chatId}/participants/${agent.id}`, { token: agent.token })).status).toBe(204);
    await servedNext();
  });

  it("closes the conversation when its customer leaves it: slot freed for the queue, audited, and the leave still answers 204", async () => {
    const biz = await newBusiness();
    const agent = await readyAgent(biz, { maxConcurrentChats: 1 });
    const [leaver, waiting] = await Promise.all([newUser("customer"), newUser("customer")]);
    const first = await openChat(leaver, biz.id);
    const second = await openChat(waiting, biz.id);
    expect(await placement(second.body.id, waiting)).toMatchObject({ status: "queued", queuePosition: 1 });
    const left = await api("DELETE", `/conversations/${first.body.id}/participants/${leaver.id}`, { token: leaver.token });
    expect(left.status, JSON.stringify(left.body)).toBe(204);
    const row = await pgConversation(first.body.id);
    expect(row.status).toBe("closed");
    expect(await auditActions(first.body.id)).toContainEqual(expect.objectContaining({ action: "business.closed", actor_id: leaver.id }));
    // The agent's only slot went to the customer who was waiting.
    expect(await placement(second.body.id, waiting)).toMatchObject({ status: "assigned", agentId: agent.id });
    expect((await agentsOf(biz))[agent.id].activeChats).toBe(1);
    expectErrorShape(await api("GET", `/conversations/${first.body.id}`, { token: leaver.token }), 404);
  });

  it("puts an unregistered agent's conversations back at the front of the queue", async () => {
    const biz = await newBusiness();
    const leaving = await readyAgent(biz);
    const customer = await newUser("customer");
    const chat = await openChat(customer, biz.id);
    await api("PUT", "/business/agents/me/availability", { token: leaving.token, body: { isAvailable: false } });
    const waiting = await openChat(await newUser("customer"), biz.id);
    expect(waiting.body.queuePosition).toBe(1);
    expect((await api("DELETE", `/business/${biz.id}/agents/${leaving.id}`, { token: biz.admin.token })).status).toBe(204);
    expect(await placement(chat.body.id, customer)).toMatchObject({ status: "queued", queuePosition: 1 });
    await waitFor(async () => (await activeAgents(chat.body.id)).length === 0 && (await pgConversation(chat.body.id)).assigned_agent_id === null, "unassignment written");
    expect((await auditActions(chat.body.id)).at(-1)).toMatchObject({ action: "business.unassigned", target_id: leaving.id });
    const next = await readyAgent(biz);
    expect(await placement(chat.body.id, customer)).toMatchObject({ status: "assigned", agentId: next.id });
  });

  it("takes an unregistered agent out of their chats once the unassignment's failed write is retried, though nobody else is free", async () => {
    const biz = await newBusiness();
    const leaving = await readyAgent(biz);
    const customer = await newUser("customer");
    const chat = await openChat(customer, biz.id);
    const id: string = chat.body.id;
    expect(roleMap(chat.body)[leaving.id]).toBe("agent");
    // The unassignment's write fails once (a Postgres blip just after the agent's row was deleted).
    await runInDurableObject(desk(biz.id), async (instance: BusinessDesk) => {
      const effects = (instance.desk as unknown as { deps: { effects: WorkerDeskEffects } }).deps.effects;
      const write = effects.writeUnassignment.bind(effects);
      effects.writeUnassignment = async () => {
        effects.writeUnassignment = write;
        throw new Error("connection reset");
      };
    });
    expect((await api("DELETE", `/business/${biz.id}/agents/${leaving.id}`, { token: biz.admin.token })).status).toBe(204);
    expect(await placement(id, customer)).toMatchObject({ status: "queued", queuePosition: 1 });
    // Retried from the desk's alarm: the agent, no longer one, no longer reads or writes the customer's chat.
    expect(await runDurableObjectAlarm(desk(biz.id))).toBe(true);
    await waitFor(async () => (await activeAgents(id)).length === 0, "the unassignment written", 3_000);
    expectErrorShape(await api("GET", `/conversations/${id}`, { token: leaving.token }), 404);
    expect((await auditActions(id)).at(-1)).toMatchObject({ action: "business.unassigned", target_id: leaving.id, details: { reason: "agent_removed" } });
    await waitFor(async () => leaving.socket.frames.find((f) => f.type === "conversation_removed" && f.data.conversationId === id), "conversation_removed");
  });
});

describe("business agent leaving a conversation", () => {
  const leave = (conversationId: string, agent: TestUser) => api("DELETE", `/conversations/${conversationId}/participants/${agent.id}`, { token: agent.token });

  it("hands the conversation to another free agent at once: slot freed, unassignment audited with the agent as actor", async () => {
    const biz = await newBusiness();
    const a = await readyAgent(biz);
    const customer = await newUser("customer");
    const chat = await openChat(customer, biz.id);
    expect(roleMap(chat.body)[a.id]).toBe("agent");
    const b = await readyAgent(biz);
    const left = await leave(chat.body.id, a);
    expect(left.status, JSON.stringify(left.body)).toBe(204);
    expect(await placement(chat.body.id, customer)).toMatchObject({ status: "assigned", agentId: b.id, queuePosition: null });
    const load = await agentsOf(biz);
    expect([load[a.id].activeChats, load[b.id].activeChats]).toEqual([0, 1]);
    expect(await activeAgents(chat.body.id)).toEqual([b.id]);
    expect((await pgConversation(chat.body.id)).assigned_agent_id).toBe(b.id);
    const audit = await auditActions(chat.body.id);
    expect(audit.map((e) => e.action)).toEqual(["business.assigned", "business.unassigned", "business.assigned"]);
    expect(audit[1]).toMatchObject({ actor_id: a.id, target_id: a.id, details: { reason: "agent_left" } });
    expect(audit[2]).toMatchObject({ target_id: b.id, details: { auto: true } });
    const history = await withDb((db) => db.execute<{ agent_id: string; end_reason: string | null }>(
      sql`SELECT agent_id, end_reason FROM business_assignments WHERE conversation_id = ${chat.body.id} ORDER BY id`,
    ));
    expect(history.rows).toEqual([
      { agent_id: a.id, end_reason: "agent_left" },
      { agent_id: b.id, end_reason: null },
    ]);
    expectErrorShape(await api("GET", `/conversations/${chat.body.id}`, { token: a.token }), 404);
    await waitFor(async () => a.socket.frames.find((f) => f.type === "conversation_removed" && f.data.conversationId === chat.body.id), "conversation_removed");
    await waitFor(async () => b.socket.frames.find((f) => f.type === "conversation_created" && f.data.conversation.id === chat.body.id), "conversation_created");
  });

  it("takes a closed chat off the list of an agent who leaves it when the desk that assigned them ran a minute ahead of Postgres", async () => {
    const biz = await newBusiness();
    const a = await readyAgent(biz);
    const customer = await newUser("customer");
    // The desk (this isolate) assigns with its clock a minute fast; the leave, a moment later, is timed by Postgres.
    vi.useFakeTimers({ toFake: ["Date"], now: Date.now() + 60_000 });
    let chat: Awaited<ReturnType<typeof openChat>>;
    try {
      chat = await openChat(customer, biz.id);
    } finally {
      vi.useRealTimers();
    }
    const id: string = chat.body.id;
    expect(roleMap(chat.body)[a.id]).toBe("agent");
    await waitFor(async () => a.socket.frames.find((f) => f.type === "conversation_created" && f.data.conversation.id === id), "conversation_created");
    expect((await api("POST", `/business/conversations/${id}/close`, { token: a.token, body: {} })).status).toBe(200);
    expect((await leave(id, a)).status).toBe(204);
    // The session took the removal for older news than the assignment, and the chat stayed on a's other devices.
    await waitFor(async () => a.socket.frames.find((f) => f.type === "conversation_removed" && f.data.conversationId === id), "conversation_removed", 3_000);
  });

  it("puts it back at the front of the queue when nobody else is free, not straight back to the agent who left", async () => {
    const biz = await newBusiness();
    const a = await readyAgent(biz, { maxConcurrentChats: 1 });
    const [first, second] = [await newUser("customer"), await newUser("customer")];
    const chat = await openChat(first, biz.id);
    const waiting = await openChat(second, biz.id);
    expect(waiting.body.queuePosition).toBe(1);
    expect((await leave(chat.body.id, a)).status).toBe(204);
    // A's freed slot goes to the next customer; the conversation A left waits at the front for someone else.
    expect(await placement(chat.body.id, first)).toMatchObject({ status: "queued", agentId: null, queuePosition: 1 });
    expect(await placement(waiting.body.id, second)).toMatchObject({ status: "assigned", agentId: a.id });
    expect((await agentsOf(biz))[a.id].activeChats).toBe(1);
    expect((await pgConversation(chat.body.id)).assigned_agent_id).toBeNull();
    expect(await activeAgents(chat.body.id)).toEqual([]);
    expect((await auditActions(chat.body.id)).at(-1)).toMatchObject({ action: "business.unassigned", actor_id: a.id, details: { reason: "agent_left" } });
    const b = await readyAgent(biz, { maxConcurrentChats: 1 });
    expect(await placement(chat.body.id, first)).toMatchObject({ status: "assigned", agentId: b.id });
  });

  it("refuses the leaving agent's frames as soon as their leave reaches the room, while its member-list read is out", async () => {
    const biz = await newBusiness();
    const a = await readyAgent(biz);
    const customer = await newUser("customer");
    const chat = await openChat(customer, biz.id);
    const id = chat.body.id as string;
    const [watcher, leaving] = [await openSocket(`/conversations/${id}/ws`, customer), await openSocket(`/conversations/${id}/ws`, a)];
    for (const s of [watcher, leaving]) trackSocket(s.ws);
    let closedWith: number | undefined;
    leaving.ws.addEventListener("close", (e) => (closedWith = e.code));
    for (const s of [watcher, leaving]) await waitFor(async () => s.frames.find((f) => f.type === "ready"), "ready frame");
    const { reading, release } = await holdNextRead(id);
    const left = leave(id, a);
    await waitFor(async () => (reading() ? true : undefined), "the leave's member-list read");
    try {
      leaving.ws.send(JSON.stringify({ type: "send_message", id: "late", data: { content: "after I left", clientMessageId: crypto.randomUUID() } }));
    } catch {
      // Already closed on this side: nothing was sent.
    }
    await waitFor(async () => closedWith ?? leaving.frames.find((f) => f.id === "late"), "the late frame's answer or the close");
    release();
    expect((await left).status).toBe(204);
    expect(closedWith).toBe(4403);
    expect(leaving.frames.filter((f) => f.type === "message_ack")).toEqual([]);
    await waitFor(async () => watcher.frames.find((f) => f.type === "participant_left" && f.data.userId === a.id), "participant_left");
    expect(watcher.frames.filter((f) => f.type === "new_message")).toEqual([]);
  });
});

// ── Stats ──────────────────────────────────────────────────────────────────────────────────────────────────────

describe("business stats", () => {
  it("reports open, queued, per-agent load and the median first-response time", async () => {
    const biz = await newBusiness();
    const agent = await readyAgent(biz, { maxConcurrentChats: 2 });
    const customers = await Promise.all([1, 2, 3].map(() => newUser("customer")));
    const chats: Awaited<ReturnType<typeof openChat>>[] = [];
    for (const c of customers) chats.push(await openChat(c, biz.id));
    expect(chats.map((c) => c.body.queuePosition)).toEqual([null, null, 1]);
    let stats = await api("GET", `/business/${biz.id}/stats`, { token: biz.admin.token });
    expect(stats.status).toBe(200);
    expect(stats.body).toMatchObject({ open: 3, queued: 1, assigned: 2, created: 3, responded: 0, medianFirstResponseMs: null, windowDays: 30 });
    expect(stats.body.agents).toEqual([expect.objectContaining({ userId: agent.id, activeChats: 2, maxConcurrentChats: 2 })]);
    // The customer writes first (not a response); then the agent answers both assigned chats.
    for (const [i, chat] of chats.slice(0, 2).entries()) {
      expect((await api("POST", `/conversations/${chat.body.id}/messages`, { token: customers[i].token, body: { content: "hello?" } })).status).toBe(201);
      expect((await api("POST", `/conversations/${chat.body.id}/messages`, { token: agent.token, body: { content: "Hi, how can I help?" } })).status).toBe(201);
    }
    // One more slot: the queued conversation is served too, and answered.
    await registerAgent(biz, agent, { maxConcurrentChats: 3 });
    expect(await placement(chats[2].body.id, customers[2])).toMatchObject({ status: "assigned", agentId: agent.id });
    expect((await api("POST", `/conversations/${chats[2].body.id}/messages`, { token: agent.token, body: { content: "Hi!" } })).status).toBe(201);
    // Known response times (10 s, 20 s, 40 s): each conversation is backdated to that long before its agent's first
    // message. Their median is 20 s (their mean would be 23.3 s).
    for (const [i, seconds] of [10, 20, 40].entries()) {
      await withDb((db) => db.execute(sql`
        UPDATE conversations c SET created_at = (
          SELECT min(m.created_at) FROM messages m WHERE m.conversation_id = c.id AND m.sender_id = ${agent.id}
        ) - make_interval(secs => ${seconds})
        WHERE c.id = ${chats[i].body.id}`));
    }
    stats = await api("GET", `/business/${biz.id}/stats?days=7`, { token: biz.admin.token });
    expect(stats.body).toMatchObject({ open: 3, queued: 0, assigned: 3, created: 3, responded: 3, windowDays: 7 });
    expect(stats.body.agents).toEqual([expect.objectContaining({ userId: agent.id, activeChats: 3, maxConcurrentChats: 3 })]);
    expect(stats.body.medianFirstResponseMs).toBe(20_000);
  });

  it("counts a first response whose message has moved to the archive (a window longer than the retention)", async () => {
    const biz = await newBusiness();
    const agent = await readyAgent(biz);
    const customer = await newUser("customer");
    const id = (await openChat(customer, biz.id)).body.id as string;
    // Opened 100 days ago and answered 15 s later: older than the 90 days' retention, so the answer is archived.
    const now = new Date();
    const opened = new Date(now.getTime() - 100 * 86_400_000);
    await withDb((db) => db.execute(sql`UPDATE conversations SET created_at = ${opened.toISOString()}::timestamptz WHERE id = ${id}`));
    await seedMessages(id, agent.id, 1, 1, new Date(opened.getTime() + 15_000 - 1));
    const archived = await withDb((db) =>
      runJob(archiveJob({ conversationIds: [id], name: `retention.archive:${id}` }), { env, config: getConfig(env), db, log: createLogger({ test: "business" }), force: true, now }),
    );
    expect(archived).toMatchObject({ rows: 1 });
    const stats = await api("GET", `/business/${biz.id}/stats?days=365`, { token: biz.admin.token });
    expect(stats.body).toMatchObject({ created: 1, responded: 1, medianFirstResponseMs: 15_000 });
  });
});

// ── Authorisation ──────────────────────────────────────────────────────────────────────────────────────────────

describe("business authorisation", () => {
  it("answers 401 without a token on every route", async () => {
    const b = crypto.randomUUID();
    const id = crypto.randomUUID();
    const routes: [string, string, object?][] = [
      ["PUT", "/business/agents/me/availability", { isAvailable: true }],
      ["PUT", `/business/${b}/admins/${id}`],
      ["DELETE", `/business/${b}/admins/${id}`],
      ["PUT", `/business/${b}/agents/${id}`, {}],
      ["DELETE", `/business/${b}/agents/${id}`],
      ["GET", `/business/${b}/agents`],
      ["PUT", `/business/${b}/hours`, { timezone: "UTC", schedule: {} }],
      ["DELETE", `/business/${b}/hours`],
      ["GET", `/business/${b}/hours`],
      ["GET", `/business/${b}/hours/status`],
      ["GET", `/business/${b}/queue`],
      ["GET", `/business/${b}/stats`],
      ["POST", `/business/conversations/${id}/assign`, {}],
      ["POST", `/business/conversations/${id}/close`, {}],
      ["GET", `/business/conversations/${id}/queue-position`],
    ];
    for (const [method, path, body] of routes) expectErrorShape(await api(method, path, { body }), 401);
  });

  it("refuses a body on the routes that take none, and changes nothing (strict bodies, contract §1)", async () => {
    const biz = await newBusiness();
    const agent = await newUser("nobody-agent");
    await registerAgent(biz, agent);
    const other = await newUser("nobody-admin");
    const service = (await serviceUser()).token;
    await api("PUT", `/business/${biz.id}/hours`, { token: biz.admin.token, body: { timezone: "UTC", schedule: {} } });
    // Each answered as if the body were not there: an admin registered, an agent or the hours removed, by a request
    // whose body (an option, another id) said something else.
    for (const [method, path, token] of [
      ["PUT", `/business/${biz.id}/admins/${other.id}`, service],
      ["DELETE", `/business/${biz.id}/admins/${biz.admin.id}`, service],
      ["DELETE", `/business/${biz.id}/agents/${agent.id}`, biz.admin.token],
      ["DELETE", `/business/${biz.id}/hours`, biz.admin.token],
    ] as const) {
      expectErrorShape(await api(method, path, { token, body: { userId: crypto.randomUUID() } }), 400);
    }
    expect(Object.keys(await agentsOf(biz))).toEqual([agent.id]);
    expect((await api("GET", `/business/${biz.id}/hours`, { token: biz.admin.token })).status).toBe(200);
    // Neither registered nor unregistered an admin: stats are for the business's admins only.
    expect((await api("GET", `/business/${biz.id}/stats`, { token: other.token })).status).toBe(403);
    expect((await api("GET", `/business/${biz.id}/stats`, { token: biz.admin.token })).status).toBe(200);
    // No body, or {}, still works.
    expect((await api("DELETE", `/business/${biz.id}/hours`, { token: biz.admin.token, body: {} })).status).toBe(204);
    expect((await api("DELETE", `/business/${biz.id}/agents/${agent.id}`, { token: biz.admin.token })).status).toBe(204);
  });

  it("answers 403 to authenticated non-admins on admin routes; only a service token registers admins", async () => {
    const biz = await newBusiness();
    const outsider = await newUser("outsider");
    const agent = await newUser("agent");
    await registerAgent(biz, agent);
    for (const as of [outsider, agent]) {
      for (const [method, path, body] of [
        ["PUT", `/business/${biz.id}/agents/${outsider.id}`, { maxConcurrentChats: 2 }],
        ["DELETE", `/business/${biz.id}/agents/${agent.id}`],
        ["PUT", `/business/${biz.id}/hours`, { timezone: "UTC", schedule: {} }],
        ["DELETE", `/business/${biz.id}/hours`],
        ["GET", `/business/${biz.id}/stats`],
      ] as [string, string, object?][]) {
        expectErrorShape(await api(method, path, { token: as.token, body }), 403);
      }
    }
    // Anyone signed in may list the agents, but sees only ids, skills and availability (no presence, no load).
    for (const as of [outsider, agent]) {
      const listed = await api("GET", `/business/${biz.id}/agents`, { token: as.token });
      expect(listed.status, JSON.stringify(listed.body)).toBe(200);
      expect(listed.body).toEqual({ businessId: biz.id, agents: [{ businessId: biz.id, userId: agent.id, skills: [], isAvailable: false }] });
    }
    expect((await agentsOf(biz))[agent.id]).toMatchObject({ presence: "offline", activeChats: 0, maxConcurrentChats: 5 });
    // Registering admins: a registered business admin is not enough.
    expectErrorShape(await api("PUT", `/business/${biz.id}/admins/${outsider.id}`, { token: biz.admin.token }), 403);
    expectErrorShape(await api("PUT", `/business/${biz.id}/admins/${outsider.id}`, { token: outsider.token }), 403);
    const again = await api("PUT", `/business/${biz.id}/admins/${biz.admin.id}`, { token: (await serviceUser()).token });
    expect(again.status).toBe(200);
    // Nor does a registered admin unregister one, themselves included.
    for (const as of [biz.admin, outsider]) {
      expectErrorShape(await api("DELETE", `/business/${biz.id}/admins/${biz.admin.id}`, { token: as.token }), 403);
    }
    expect((await api("GET", `/business/${biz.id}/stats`, { token: biz.admin.token })).status).toBe(200);
    // A service token is an admin of every business.
    expect((await api("GET", `/business/${biz.id}/agents`, { token: (await serviceUser()).token })).status).toBe(200);
    // An admin of another business is not an admin of this one.
    const other = await newBusiness();
    expectErrorShape(await api("GET", `/business/${biz.id}/stats`, { token: other.admin.token }), 403);
    // Anyone authenticated may read the hours; the queue shows a non-admin only their own entries.
    expect((await api("GET", `/business/${biz.id}/hours/status`, { token: outsider.token })).status).toBe(200);
    expect((await api("GET", `/business/${biz.id}/queue`, { token: outsider.token })).body).toMatchObject({ total: 0, entries: [] });
  });

  it("takes an unregistered admin's rights away on their next request; they can be registered again", async () => {
    const biz = await newBusiness();
    await readyAgent(biz);
    const customer = await newUser("customer");
    const chat = await openChat(customer, biz.id);
    const service = await serviceUser();
    const asAdmin = () => [
      api("GET", `/business/${biz.id}/stats`, { token: biz.admin.token }),
      api("GET", `/business/conversations/${chat.body.id}/queue-position`, { token: biz.admin.token }),
    ];
    expect((await Promise.all(asAdmin())).map((r) => r.status)).toEqual([200, 200]);
    expect((await api("DELETE", `/business/${biz.id}/admins/${biz.admin.id}`, { token: service.token })).status).toBe(204);
    const [stats, conversation] = await Promise.all(asAdmin());
    expectErrorShape(stats, 403);
    expectErrorShape(conversation, 404);
    expectErrorShape(await api("PUT", `/business/${biz.id}/agents/${customer.id}`, { token: biz.admin.token, body: {} }), 403);
    // Someone who never was an admin is a 404 to the service token; a malformed id is a 400 naming it (it was a 404
    // "Agent not found").
    expectErrorShape(await api("DELETE", `/business/${biz.id}/admins/${customer.id}`, { token: service.token }), 404);
    for (const method of ["PUT", "DELETE"]) {
      const malformed = await api(method, `/business/${biz.id}/admins/not-a-uuid`, { token: service.token });
      expectErrorShape(malformed, 400);
      expect(malformed.body.message).toEqual(["userId: must be a UUID"]);
    }
    expect((await api("PUT", `/business/${biz.id}/admins/${biz.admin.id}`, { token: service.token })).status).toBe(201);
    expect((await Promise.all(asAdmin())).map((r) => r.status)).toEqual([200, 200]);
  });

  it("keeps conversations to their customer, their agent and the business's admins (404 for anyone else)", async () => {
    const biz = await newBusiness();
    const agent = await readyAgent(biz);
    const customer = await newUser("customer");
    const chat = await openChat(customer, biz.id);
    const outsider = await newUser("outsider");
    const otherAdmin = (await newBusiness()).admin;
    for (const as of [outsider, otherAdmin]) {
      expectErrorShape(await api("GET", `/business/conversations/${chat.body.id}/queue-position`, { token: as.token }), 404);
      expectErrorShape(await api("POST", `/business/conversations/${chat.body.id}/close`, { token: as.token }), 404);
      expectErrorShape(await api("POST", `/business/conversations/${chat.body.id}/assign`, { token: as.token, body: {} }), 404);
    }
    for (const id of [crypto.randomUUID(), "not-a-uuid"]) {
      expectErrorShape(await api("GET", `/business/conversations/${id}/queue-position`, { token: biz.admin.token }), 404);
      expectErrorShape(await api("POST", `/business/conversations/${id}/close`, { token: biz.admin.token }), 404);
      expectErrorShape(await api("POST", `/business/conversations/${id}/assign`, { token: biz.admin.token, body: {} }), 404);
    }
    // A group conversation is no business conversation.
    const [x, y] = [await newUser("g"), await newUser("g")];
    const group = await api("POST", "/conversations/group", { token: customer.token, body: { participantIds: [x.id, y.id] } });
    expectErrorShape(await api("POST", `/business/conversations/${group.body.id}/close`, { token: customer.token }), 404);
    // The customer sees where it stands but cannot move it.
    expect((await placement(chat.body.id, customer)).agentId).toBe(agent.id);
    expectErrorShape(await api("POST", `/business/conversations/${chat.body.id}/assign`, { token: customer.token, body: {} }), 403);
  });

  it("answers a malformed business, agent or user id in a business route's path with a 400 naming it, on every route", async () => {
    const biz = await newBusiness();
    const service = await serviceUser();
    const { hours } = closedUntil(3);
    // A malformed business id was a 404 "Business not found", an agent's or admin's a 404 "Agent not found".
    const cases: [string, string, unknown, string][] = [
      ["PUT", "/business/not-a-uuid/admins/" + biz.admin.id, undefined, "businessId"],
      ["DELETE", "/business/not-a-uuid/admins/" + biz.admin.id, undefined, "businessId"],
      ["PUT", "/business/not-a-uuid/agents/" + biz.admin.id, {}, "businessId"],
      ["DELETE", "/business/not-a-uuid/agents/" + biz.admin.id, undefined, "businessId"],
      ["PUT", `/business/${biz.id}/agents/not-a-uuid`, {}, "agentId"],
      ["DELETE", `/business/${biz.id}/agents/not-a-uuid`, undefined, "agentId"],
      ["GET", "/business/not-a-uuid/agents", undefined, "businessId"],
      ["PUT", "/business/not-a-uuid/hours", hours, "businessId"],
      ["GET", "/business/not-a-uuid/hours", undefined, "businessId"],
      ["DELETE", "/business/not-a-uuid/hours", undefined, "businessId"],
      ["GET", "/business/not-a-uuid/hours/status", undefined, "businessId"],
      ["GET", "/business/not-a-uuid/queue", undefined, "businessId"],
      ["GET", "/business/not-a-uuid/stats", undefined, "businessId"],
    ];
    for (const [method, path, body, name] of cases) {
      const res = await api(method, path, { token: service.token, body });
      expectErrorShape(res, 400);
      expect(res.body.message, `${method} ${path}`).toEqual([`${name}: must be a UUID`]);
    }
  });

  it("rejects unknown fields and bad values with 400 (strict bodies)", async () => {
    const biz = await newBusiness();
    const agent = await readyAgent(biz);
    const customer = await newUser("customer");
    const chat = await openChat(customer, biz.id);
    const cases: [string, string, TestUser, unknown][] = [
      ["PUT", `/business/${biz.id}/agents/${agent.id}`, biz.admin, { maxConcurrentChats: 0 }],
      ["PUT", `/business/${biz.id}/agents/${agent.id}`, biz.admin, { maxConcurrentChats: 101 }],
      ["PUT", `/business/${biz.id}/agents/${agent.id}`, biz.admin, { skills: [""] }],
      ["PUT", `/business/${biz.id}/agents/${agent.id}`, biz.admin, { skills: "billing" }],
      ["PUT", `/business/${biz.id}/agents/${agent.id}`, biz.admin, { isAvailable: true }],
      ["PUT", "/business/agents/me/availability", agent, { isAvailable: "yes" }],
      ["PUT", "/business/agents/me/availability", agent, { isAvailable: true, businessId: biz.id }],
      ["POST", `/business/conversations/${chat.body.id}/assign`, biz.admin, { agentId: "x" }],
      ["POST", `/business/conversations/${chat.body.id}/assign`, biz.admin, { agentId: agent.id, force: true }],
      ["POST", `/business/conversations/${chat.body.id}/close`, customer, { reason: "" }],
      ["POST", `/business/conversations/${chat.body.id}/close`, customer, { status: "closed" }],
      ["POST", "/conversations/business", customer, { businessId: biz.id, category: "" }],
      ["POST", "/conversations/business", customer, { businessId: biz.id, category: "x".repeat(51) }],
      // Unpaired surrogates: stored as U+FFFD, or refused by Postgres inside an audit entry's JSON, before.
      ["PUT", `/business/${biz.id}/agents/${agent.id}`, biz.admin, { skills: ["billing \ud800"] }],
      ["POST", "/conversations/business", customer, { businessId: biz.id, category: "half \udfff" }],
      ["POST", `/business/conversations/${chat.body.id}/assign`, biz.admin, { agentId: agent.id, reason: "half \ud800" }],
      ["POST", `/business/conversations/${chat.body.id}/close`, customer, { reason: "half \ud800" }],
    ];
    for (const [method, path, as, body] of cases) expectErrorShape(await api(method, path, { token: as.token, body }), 400);
    expectErrorShape(await api("GET", `/business/${biz.id}/stats?days=abc`, { token: biz.admin.token }), 400);
  });
});

// ── Concurrency ────────────────────────────────────────────────────────────────────────────────────────────────

describe("business routing under concurrency", () => {
  it("30 simultaneous customers, 3 agents of capacity 5: 15 assigned (5 each, never more), 15 queued in order", { timeout: 90_000 }, async () => {
    const biz = await newBusiness();
    const agents = [];
    for (let i = 0; i < 3; i++) agents.push(await readyAgent(biz, { maxConcurrentChats: 5 }));
    const customers = await Promise.all(Array.from({ length: 30 }, () => newUser("crowd")));
    const results = await Promise.all(customers.map((c) => openChat(c, biz.id)));
    expect(results.map((r) => r.status)).toEqual(Array(30).fill(201));

    const assigned = results.filter((r) => r.body.queuePosition === null);
    const queued = results.filter((r) => r.body.queuePosition !== null);
    expect(assigned).toHaveLength(15);
    expect(queued.map((r) => r.body.queuePosition).sort((a, b) => a - b)).toEqual(Array.from({ length: 15 }, (_, i) => i + 1));

    const load = await agentsOf(biz);
    expect(agents.map((a) => load[a.id].activeChats)).toEqual([5, 5, 5]);
    const perAgent = new Map<string, number>();
    for (const r of assigned) {
      const agentIds = r.body.participants.filter((p: { role: string }) => p.role === "agent").map((p: { userId: string }) => p.userId);
      expect(agentIds).toHaveLength(1);
      perAgent.set(agentIds[0], (perAgent.get(agentIds[0]) ?? 0) + 1);
    }
    expect([...perAgent.values()]).toEqual([5, 5, 5]);

    // Postgres agrees: 5 active agent rows per agent, assigned_agent_id on exactly the assigned ones.
    const rows = await withDb((db) => db.execute<{ user_id: string; n: string }>(sql`
      SELECT p.user_id, count(*) AS n FROM participants p JOIN conversations c ON c.id = p.conversation_id
      WHERE c.business_id = ${biz.id} AND p.role = 'agent' AND p.left_at IS NULL GROUP BY p.user_id`));
    expect(rows.rows.map((r) => Number(r.n))).toEqual([5, 5, 5]);
    const pgAssigned = await withDb((db) => db.execute<{ n: string }>(
      sql`SELECT count(*) AS n FROM conversations WHERE business_id = ${biz.id} AND assigned_agent_id IS NOT NULL`,
    ));
    expect(Number(pgAssigned.rows[0].n)).toBe(15);

    // The queue, in order, is what the customers were told.
    const queue = await api("GET", `/business/${biz.id}/queue`, { token: biz.admin.token });
    expect(queue.body.total).toBe(15);
    const told = new Map(queued.map((r) => [r.body.id, r.body.queuePosition]));
    expect(queue.body.entries.map((e: { conversationId: string; position: number }) => told.get(e.conversationId))).toEqual(
      queue.body.entries.map((e: { position: number }) => e.position),
    );
    const enqueued = queue.body.entries.map((e: { enqueuedAt: string }) => Date.parse(e.enqueuedAt));
    expect([...enqueued].sort((a, b) => a - b)).toEqual(enqueued);

    // A freed slot goes to the head of the queue, and everyone behind moves up by one.
    const head = queue.body.entries[0].conversationId;
    const closing = assigned[0];
    const owner = customers[results.indexOf(closing)];
    expect((await api("POST", `/business/conversations/${closing.body.id}/close`, { token: owner.token })).status).toBe(200);
    const headOwner = customers[results.findIndex((r) => r.body.id === head)];
    expect((await placement(head, headOwner)).status).toBe("assigned");
    const second = queue.body.entries[1];
    expect(await placement(second.conversationId, customers[results.findIndex((r) => r.body.id === second.conversationId)])).toMatchObject({
      status: "queued",
      queuePosition: 1,
    });
    const after = await agentsOf(biz);
    expect(agents.map((a) => after[a.id].activeChats)).toEqual([5, 5, 5]);
  });
});
