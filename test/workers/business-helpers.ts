import { env } from "cloudflare:test";
import { sql } from "drizzle-orm";
import { expect } from "vitest";
import { api, newUser, type TestUser } from "./helpers";
import { withDb } from "./fixtures";
import { openSocket, type TestSocket } from "./sockets";

/** Business fixtures through the public routes, shared by business.test.ts and business.serial.test.ts. */

let service: TestUser | undefined;
/** A service token (role "admin"): registers business admins. */
export async function serviceUser(): Promise<TestUser> {
  service ??= await newUser("svc", "admin");
  return service;
}

export interface Biz {
  id: string;
  admin: TestUser;
}

/** A fresh business with a registered (non-service) admin. */
export async function newBusiness(): Promise<Biz> {
  const id = crypto.randomUUID();
  const admin = await newUser("bizadmin");
  const res = await api("PUT", `/business/${id}/admins/${admin.id}`, { token: (await serviceUser()).token });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return { id, admin };
}

export async function registerAgent(biz: Biz, agent: TestUser, body: { skills?: string[]; maxConcurrentChats?: number } = {}) {
  const res = await api("PUT", `/business/${biz.id}/agents/${agent.id}`, { token: biz.admin.token, body });
  expect([200, 201], JSON.stringify(res.body)).toContain(res.status);
  return res.body;
}

export async function setAvailable(agent: TestUser, isAvailable = true) {
  const res = await api("PUT", "/business/agents/me/availability", { token: agent.token, body: { isAvailable } });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body;
}

/** An agent's or customer's user socket (GET /ws). */
export type UserSocket = TestSocket;

const sockets: WebSocket[] = [];
/** A socket the test opened, closed after it by closeSockets. */
export function trackSocket(ws: WebSocket): void {
  sockets.push(ws);
}

/** For afterEach: closes the sockets the test opened. */
export function closeSockets(): void {
  for (const ws of sockets.splice(0)) {
    try {
      ws.close(1000, "test done");
    } catch {
      // already closed
    }
  }
}

/** The agent's user socket (GET /ws): makes them online through their UserSession, the real presence path. */
export async function connect(user: TestUser): Promise<UserSocket> {
  const socket = await openSocket("/ws", user);
  sockets.push(socket.ws);
  return socket;
}

/** Registered, online (a user socket) and available: an agent who gets conversations. */
export async function readyAgent(biz: Biz, body: { skills?: string[]; maxConcurrentChats?: number } = {}, prefix = "agent") {
  const agent = await newUser(prefix);
  await registerAgent(biz, agent, body);
  const socket = await connect(agent);
  await setAvailable(agent);
  return { ...agent, socket };
}

export async function openChat(customer: TestUser, businessId: string, extra: { category?: string; agentId?: string } = {}) {
  return api("POST", "/conversations/business", { token: customer.token, body: { businessId, ...extra } });
}

export async function waitFor<T>(probe: () => Promise<T | undefined | false>, what: string, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export const agentsOf = async (biz: Biz) => {
  const res = await api("GET", `/business/${biz.id}/agents`, { token: biz.admin.token });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return Object.fromEntries((res.body.agents as any[]).map((a) => [a.userId, a]));
};

export const placement = async (conversationId: string, as: TestUser) => {
  const res = await api("GET", `/business/conversations/${conversationId}/queue-position`, { token: as.token });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body as { status: string; agentId: string | null; queuePosition: number | null };
};

export const roleMap = (conversation: { participants: { userId: string; role: string }[] }) =>
  Object.fromEntries(conversation.participants.map((p) => [p.userId, p.role]));

export const pgConversation = (id: string) =>
  withDb(async (db) => (await db.execute<{ status: string; assigned_agent_id: string | null; closed_at: string | null; category: string | null }>(
    sql`SELECT status, assigned_agent_id, closed_at, category FROM conversations WHERE id = ${id}`,
  )).rows[0]);

export const activeAgents = (id: string) =>
  withDb(async (db) =>
    (await db.execute<{ user_id: string }>(sql`SELECT user_id FROM participants WHERE conversation_id = ${id} AND role = 'agent' AND left_at IS NULL`)).rows.map(
      (r) => r.user_id,
    ),
  );

export const auditActions = (id: string) =>
  withDb(async (db) =>
    (await db.execute<{ action: string; actor_id: string | null; target_id: string | null; details: any }>(
      sql`SELECT action, actor_id, target_id, details FROM audit_log WHERE conversation_id = ${id} AND action LIKE 'business.%' ORDER BY id`,
    )).rows,
  );

export const desk = (businessId: string) => env.BUSINESS_DESK.get(env.BUSINESS_DESK.idFromName(businessId));

/** A weekly schedule open only on the weekday `days` days from now (UTC), 10:00–11:00: closed now, opening soon. */
export function closedUntil(days: number) {
  const day = new Date(Date.now() + days * 86_400_000);
  const weekday = ["sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"][day.getUTCDay()];
  return {
    hours: { timezone: "UTC", schedule: { [weekday]: { isOpen: true, openTime: "10:00", closeTime: "11:00" } } },
    opensAt: `${day.toISOString().slice(0, 10)}T10:00:00.000Z`,
  };
}
