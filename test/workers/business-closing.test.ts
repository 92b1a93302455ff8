import { afterEach, describe, expect, it } from "vitest";
import { runDurableObjectAlarm } from "cloudflare:test";
import { api, newUser, type TestUser } from "./helpers";
import { closeSockets, connect, desk, newBusiness, openChat, placement, registerAgent, setAvailable, waitFor } from "./business-helpers";

afterEach(closeSockets);

const WEEKDAYS = ["sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"] as const;
const hhmm = (ms: number) => new Date(ms).toISOString().slice(11, 16);

/**
 * Hours (UTC) open today from midnight until the end of the current minute, and on no other day: open now, closed
 * within a minute, and next open on this weekday next week. Waits first when midnight or the minute's end is too
 * close for that window.
 */
async function closingThisMinute() {
  for (;;) {
    const now = new Date();
    if (now.getUTCHours() === 23 && now.getUTCMinutes() >= 58) await new Promise((r) => setTimeout(r, 5_000));
    else if (now.getUTCHours() === 0 && now.getUTCMinutes() === 0) await new Promise((r) => setTimeout(r, 5_000));
    // Too close to the minute's end: the queue would form after the closing, which sets the alarm anyway.
    else if (now.getUTCSeconds() >= 45) await new Promise((r) => setTimeout(r, 1_000));
    else break;
  }
  const now = Date.now();
  const closeAt = Math.floor(now / 60_000) * 60_000 + 60_000;
  const weekday = WEEKDAYS[new Date(now).getUTCDay()];
  return { timezone: "UTC", schedule: { [weekday]: { isOpen: true, openTime: "00:00", closeTime: hhmm(closeAt) } } };
}

/** Waits (up to the minute's end and a little) until the business says it is closed. */
async function untilClosed(businessId: string, token: string) {
  await waitFor(async () => !(await api("GET", `/business/${businessId}/hours/status`, { token })).body.isOpen, "the business to close", 75_000);
}

/**
 * Runs the desk's alarms until the one set for the next opening has run (early), then reads the placement. A retry
 * of a write that timed out on a loaded machine is due before the opening and runs first: it acts on the present,
 * where the business is closed.
 */
async function afterOpening(businessId: string, conversationId: string, as: TestUser) {
  for (let run = 0; ; run++) {
    expect(await runDurableObjectAlarm(desk(businessId))).toBe(true);
    const placed = await placement(conversationId, as);
    if (placed.status === "assigned" || run === 3) return placed;
  }
}

/** The customer who queued before closing is served at the next opening by an agent who became available meanwhile. */
async function agentBecameAvailable(hours: Awaited<ReturnType<typeof closingThisMinute>>) {
  const biz = await newBusiness();
  expect((await api("PUT", `/business/${biz.id}/hours`, { token: biz.admin.token, body: hours })).status).toBe(200);
  // Online, but not available: the customer who writes now waits in the queue while the business is open.
  const agent = await newUser("agent");
  await registerAgent(biz, agent);
  await connect(agent);
  const customer = await newUser("customer");
  const chat = await openChat(customer, biz.id);
  expect(chat.body.queuePosition).toBe(1);

  // The business closes with the customer still waiting; then the agent makes themselves available.
  await untilClosed(biz.id, customer.token);
  await setAvailable(agent);
  expect(await placement(chat.body.id, customer)).toMatchObject({ status: "queued", queuePosition: 1 });

  // The next opening (run early here) must hand the waiting customer to the now available agent.
  expect(await afterOpening(biz.id, chat.body.id, customer)).toMatchObject({ status: "assigned", agentId: agent.id });
}

/** The queue is served at the next opening when an admin raised a busy agent's maximum while it was closed. */
async function maximumRaised(hours: Awaited<ReturnType<typeof closingThisMinute>>) {
  const biz = await newBusiness();
  expect((await api("PUT", `/business/${biz.id}/hours`, { token: biz.admin.token, body: hours })).status).toBe(200);
  const agent = await newUser("agent");
  await registerAgent(biz, agent, { maxConcurrentChats: 1 });
  await connect(agent);
  await setAvailable(agent);
  const [first, second] = await Promise.all([newUser("customer"), newUser("customer")]);
  expect((await openChat(first, biz.id)).body.queuePosition).toBeNull();
  const waiting = await openChat(second, biz.id);
  expect(waiting.body.queuePosition).toBe(1);

  await untilClosed(biz.id, second.token);
  await registerAgent(biz, agent, { maxConcurrentChats: 2 });
  expect(await placement(waiting.body.id, second)).toMatchObject({ status: "queued", queuePosition: 1 });

  expect(await afterOpening(biz.id, waiting.body.id, second)).toMatchObject({ status: "assigned", agentId: agent.id });
}

describe("business queue across a closing", () => {
  // Both cases wait for the same real minute's end (hours have minute precision), so they share one wait: as two
  // tests they held a worker of the suite idle for about two minutes.
  it(
    "serves a waiting customer at the next opening when, while closed, an agent became available or an admin raised an agent's maximum",
    { timeout: 120_000 },
    async () => {
      const hours = await closingThisMinute();
      const outcomes = await Promise.allSettled([agentBecameAvailable(hours), maximumRaised(hours)]);
      const failures = outcomes.flatMap((o, i) => (o.status === "rejected" ? [`${["agent became available", "maximum raised"][i]}: ${(o.reason as Error).message}`] : []));
      expect(failures).toEqual([]);
    },
  );
});
