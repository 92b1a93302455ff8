import { OpenAPIHono, createRoute, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { agentBusinesses, businessStats, hasWaitingConversation, listAgents, loadHours, registerAdmin, revokeAdmin } from "../../db/queries/business";
import { provisionUserIds } from "../../db/queries/users";
import { hoursStatus, isCalendarDate, type BusinessHours } from "../../domain/business-hours";
import { badRequest, conflict, forbidden, HttpError, notFound } from "../../lib/errors";
import type { AppEnv } from "../env";
import { isServiceToken } from "../middleware/auth";
import { errorResponses, json, jsonBody, noBody, pathId, secured } from "../openapi";
import {
  adminResult,
  agentBody,
  agentSchema,
  agentsResult,
  assignBody,
  assignResult,
  availabilityBody,
  availabilityResult,
  closeBody,
  closeResult,
  hoursBody,
  hoursResult,
  hoursStatusSchema,
  placementSchema,
  queueQuery,
  queueResult,
  statsQuery,
  statsResult,
  statusQuery,
} from "./business-schemas";
import {
  callDesk,
  deskStub,
  factsOf,
  identityParam,
  isBusinessAdmin,
  requireBusinessAdmin,
  requireBusinessConversation,
} from "./business-support";

/**
 * Customer ↔ business chats (contract §5 "Business"): agents, availability, opening hours, the queue, assignment,
 * closing and stats. The business's Durable Object (BusinessDesk) owns the queue and the agents' load and makes every
 * routing decision; these routes authorise, validate and ask it.
 */
const tags = ["business"];
const businessParams = z.object({ businessId: pathId("businessId") });
const agentParams = z.object({ businessId: pathId("businessId"), agentId: pathId("agentId") });
const adminParams = z.object({ businessId: pathId("businessId"), userId: pathId("userId") });
const conversationParams = z.object({ id: pathId("id") });

function statusAt(businessId: string, hours: BusinessHours | null, at: number): z.infer<typeof hoursStatusSchema> {
  const iso = new Date(at).toISOString();
  if (!hours) return { businessId, isOpen: true, alwaysOpen: true, at: iso, timezone: null, localTime: null, closesAt: null, nextOpenAt: null };
  return { businessId, alwaysOpen: false, at: iso, ...hoursStatus(hours, at) };
}

function hoursView(businessId: string, hours: BusinessHours) {
  return {
    businessId,
    timezone: hours.timezone,
    schedule: hours.schedule,
    holidays: (hours.holidays ?? []).map((h) => ({ ...h, isOpen: h.isOpen ?? false })),
    status: statusAt(businessId, hours, Date.now()),
  };
}

// An instant: a real day, and a zone (Z or an offset); a local time would be read as UTC without saying so.
const INSTANT = /^(\d{4}-\d{2}-\d{2})T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})$/;

function instantParam(raw: string | undefined): number {
  if (raw === undefined || raw === "") return Date.now();
  const m = INSTANT.exec(raw);
  const at = Date.parse(raw);
  if (!m || !isCalendarDate(m[1]) || Number.isNaN(at)) throw badRequest("at: must be an ISO-8601 instant with a zone, e.g. 2026-03-29T08:30:00Z");
  return at;
}

const uniqueSkills = (skills: string[] | undefined) => (skills ? [...new Set(skills)] : undefined);

const adminOnly = (c: Context<AppEnv>) => {
  const businessId = identityParam(c.req.param("businessId") ?? "", "businessId");
  return requireBusinessAdmin(c, businessId).then(() => businessId);
};

export const business = new OpenAPIHono<AppEnv>()
  .openapi(
    createRoute({
      method: "put",
      path: "/agents/me/availability",
      tags,
      summary: "Set the caller's availability as an agent, for every business they are an agent of",
      description:
        "An agent gets new conversations only while online (an open user socket), available and below their maximum. " +
        "Becoming available serves the waiting queue at once.",
      ...secured,
      request: jsonBody(availabilityBody),
      responses: { 200: json("The caller's agent records", availabilityResult), ...errorResponses(400, 401, 403) },
    }),
    async (c) => {
      const { isAvailable } = c.req.valid("json");
      const me = c.get("user").id;
      const businesses = await agentBusinesses(c.get("httpDb")(), me);
      if (businesses.length === 0) throw forbidden("You are not an agent of any business");
      const agents = await Promise.all(
        businesses.map(async (businessId) => ({
          businessId,
          agent: await callDesk(() => deskStub(c, businessId).setAvailability(businessId, me, isAvailable)),
        })),
      );
      return c.json({ userId: me, isAvailable, agents }, 200);
    },
  )
  .openapi(
    createRoute({
      method: "put",
      path: "/{businessId}/admins/{userId}",
      tags,
      summary: "Register a business admin (service token only: role \"admin\"; audited)",
      ...secured,
      request: { params: adminParams, ...noBody() },
      responses: {
        201: json("Registered", adminResult),
        200: json("Already registered", adminResult),
        ...errorResponses(400, 401, 403, 404),
      },
    }),
    async (c) => {
      const params = c.req.valid("param");
      const businessId = identityParam(params.businessId, "businessId");
      const userId = identityParam(params.userId, "userId");
      if (!isServiceToken(c.get("user"))) throw forbidden("Only a service token can register business admins");
      const db = c.get("db")();
      await provisionUserIds(db, [userId]);
      const created = await registerAdmin(db, businessId, userId, c.get("user").id);
      return c.json({ businessId, userId }, created ? 201 : 200);
    },
  )
  .openapi(
    createRoute({
      method: "delete",
      path: "/{businessId}/admins/{userId}",
      tags,
      summary: "Unregister a business admin (service token only; audited). Their next request is no longer an admin's",
      description: "A token with role \"admin\" stays an admin of every business: that comes from the token, not from this list.",
      ...secured,
      request: { params: adminParams, ...noBody() },
      responses: { 204: { description: "Unregistered" }, ...errorResponses(400, 401, 403, 404) },
    }),
    async (c) => {
      const params = c.req.valid("param");
      const businessId = identityParam(params.businessId, "businessId");
      const userId = identityParam(params.userId, "userId");
      if (!isServiceToken(c.get("user"))) throw forbidden("Only a service token can unregister business admins");
      if (!(await revokeAdmin(c.get("db")(), businessId, userId, c.get("user").id))) throw notFound("Business admin");
      return c.body(null, 204);
    },
  )
  .openapi(
    createRoute({
      method: "put",
      path: "/{businessId}/agents/{agentId}",
      tags,
      summary: "Register an agent or change their skills / maximum of concurrent chats (business admin; audited)",
      description: "Absent fields keep their value (new agents: no skills, at most 5 chats, not available until they say so).",
      ...secured,
      request: { params: agentParams, ...jsonBody(agentBody) },
      responses: {
        201: json("Agent registered", agentSchema),
        200: json("Agent updated", agentSchema),
        ...errorResponses(400, 401, 403, 404),
      },
    }),
    async (c) => {
      const businessId = await adminOnly(c);
      const agentId = identityParam(c.req.valid("param").agentId, "agentId");
      const body = c.req.valid("json");
      await provisionUserIds(c.get("db")(), [agentId]);
      const { agent, created } = await callDesk(() =>
        deskStub(c, businessId).upsertAgent(businessId, agentId, { skills: uniqueSkills(body.skills), maxConcurrentChats: body.maxConcurrentChats }, c.get("user").id),
      );
      return c.json(agent, created ? 201 : 200);
    },
  )
  .openapi(
    createRoute({
      method: "delete",
      path: "/{businessId}/agents/{agentId}",
      tags,
      summary: "Unregister an agent (business admin; audited); their open conversations go back to the front of the queue",
      ...secured,
      request: { params: agentParams, ...noBody() },
      responses: { 204: { description: "Removed" }, ...errorResponses(400, 401, 403, 404) },
    }),
    async (c) => {
      const businessId = await adminOnly(c);
      const agentId = identityParam(c.req.valid("param").agentId, "agentId");
      await callDesk(() => deskStub(c, businessId).removeAgent(businessId, agentId, c.get("user").id));
      return c.body(null, 204);
    },
  )
  .openapi(
    createRoute({
      method: "get",
      path: "/{businessId}/agents",
      tags,
      summary: "The business's agents: ids, skills and availability for anyone; maximum, presence and current load for its admins",
      ...secured,
      request: { params: businessParams },
      responses: { 200: json("Agents", agentsResult), ...errorResponses(400, 401, 404) },
    }),
    async (c) => {
      const businessId = identityParam(c.req.valid("param").businessId, "businessId");
      if (await isBusinessAdmin(c, businessId)) {
        const snapshot = await callDesk(() => deskStub(c, businessId).snapshot(businessId));
        return c.json({ businessId, agents: snapshot.agents }, 200);
      }
      // Presence and load stay with the admins. From Postgres: a look does not wake the business's object.
      const rows = await listAgents(c.get("httpDb")(), businessId);
      return c.json({ businessId, agents: rows.map((a) => ({ businessId, userId: a.userId, skills: a.skills, isAvailable: a.isAvailable })) }, 200);
    },
  )
  .openapi(
    createRoute({
      method: "put",
      path: "/{businessId}/hours",
      tags,
      summary: "Set the opening hours (business admin; audited)",
      description:
        "Weekly schedule in the business's IANA time zone (DST handled), overnight ranges, holidays and special days. " +
        "While closed, new conversations wait in the queue; it is served when the business opens.",
      ...secured,
      request: { params: businessParams, ...jsonBody(hoursBody) },
      responses: { 200: json("The hours and the current status", hoursResult), ...errorResponses(400, 401, 403, 404) },
    }),
    async (c) => {
      const businessId = await adminOnly(c);
      const hours = c.req.valid("json");
      await callDesk(() => deskStub(c, businessId).setHours(businessId, hours, c.get("user").id));
      return c.json(hoursView(businessId, hours), 200);
    },
  )
  .openapi(
    createRoute({
      method: "delete",
      path: "/{businessId}/hours",
      tags,
      summary: "Remove the opening hours: always open again (business admin; audited)",
      ...secured,
      request: { params: businessParams, ...noBody() },
      responses: { 204: { description: "Removed" }, ...errorResponses(400, 401, 403, 404) },
    }),
    async (c) => {
      const businessId = await adminOnly(c);
      await callDesk(() => deskStub(c, businessId).setHours(businessId, null, c.get("user").id));
      return c.body(null, 204);
    },
  )
  .openapi(
    createRoute({
      method: "get",
      path: "/{businessId}/hours",
      tags,
      summary: "The opening hours (any authenticated user); 404 when none are set (always open)",
      ...secured,
      request: { params: businessParams },
      responses: { 200: json("The hours and the current status", hoursResult), ...errorResponses(400, 401, 404) },
    }),
    async (c) => {
      const businessId = identityParam(c.req.valid("param").businessId, "businessId");
      const hours = await loadHours(c.get("httpDb")(), businessId);
      if (!hours) throw new HttpError(404, "No opening hours set: the business is always open");
      return c.json(hoursView(businessId, hours), 200);
    },
  )
  .openapi(
    createRoute({
      method: "get",
      path: "/{businessId}/hours/status",
      tags,
      summary: "Open now (or at `at`)? When it closes, or when it opens next (any authenticated user)",
      ...secured,
      request: { params: businessParams, query: statusQuery },
      responses: { 200: json("Status", hoursStatusSchema), ...errorResponses(400, 401, 404) },
    }),
    async (c) => {
      const businessId = identityParam(c.req.valid("param").businessId, "businessId");
      const at = instantParam(c.req.valid("query").at);
      const hours = await loadHours(c.get("httpDb")(), businessId);
      return c.json(statusAt(businessId, hours, at), 200);
    },
  )
  .openapi(
    createRoute({
      method: "get",
      path: "/{businessId}/queue",
      tags,
      summary: "The waiting queue in order: all of it for business admins, the caller's own entries for customers",
      ...secured,
      request: { params: businessParams, query: queueQuery },
      responses: { 200: json("The queue", queueResult), ...errorResponses(400, 401, 404) },
    }),
    async (c) => {
      const businessId = identityParam(c.req.valid("param").businessId, "businessId");
      const { limit } = c.req.valid("query");
      const me = c.get("user").id;
      if (await isBusinessAdmin(c, businessId)) {
        const snapshot = await callDesk(() => deskStub(c, businessId).snapshot(businessId));
        return c.json({ businessId, isOpen: snapshot.isOpen, total: snapshot.queue.length, entries: snapshot.queue.slice(0, limit) }, 200);
      }
      // Nothing of theirs can be waiting: answer without waking the business's object.
      if (!(await hasWaitingConversation(c.get("httpDb")(), businessId, me))) {
        const hours = await loadHours(c.get("httpDb")(), businessId);
        return c.json({ businessId, isOpen: statusAt(businessId, hours, Date.now()).isOpen, total: 0, entries: [] }, 200);
      }
      const snapshot = await callDesk(() => deskStub(c, businessId).snapshot(businessId));
      const mine = snapshot.queue.filter((q) => q.customerId === me);
      return c.json({ businessId, isOpen: snapshot.isOpen, total: mine.length, entries: mine.slice(0, limit) }, 200);
    },
  )
  .openapi(
    createRoute({
      method: "get",
      path: "/{businessId}/stats",
      tags,
      summary: "Open and queued conversations, per-agent load, median first-response time (business admin)",
      description:
        "First response: the first message of an agent assigned to the conversation, measured from the moment the " +
        "customer opened it (queue time included); median over the conversations opened in the last `days` days.",
      ...secured,
      request: { params: businessParams, query: statsQuery },
      responses: { 200: json("Stats", statsResult), ...errorResponses(400, 401, 403, 404) },
    }),
    async (c) => {
      const businessId = await adminOnly(c);
      const days = Math.min(365, c.req.valid("query").days ?? 30);
      const since = new Date(Date.now() - days * 86_400_000);
      const [snapshot, history] = await Promise.all([
        callDesk(() => deskStub(c, businessId).snapshot(businessId)),
        businessStats(c.get("httpDb")(), businessId, since),
      ]);
      return c.json(
        {
          businessId,
          isOpen: snapshot.isOpen,
          open: history.open,
          queued: snapshot.queue.length,
          assigned: snapshot.assigned,
          windowDays: days,
          since: since.toISOString(),
          created: history.created,
          closed: history.closed,
          responded: history.responded,
          medianFirstResponseMs: history.medianFirstResponseMs,
          agents: snapshot.agents,
        },
        200,
      );
    },
  )
  .openapi(
    createRoute({
      method: "post",
      path: "/conversations/{id}/assign",
      tags,
      summary: "Assign or transfer a conversation (business admin, or its current agent); automatic when agentId is omitted",
      description:
        "The previous agent leaves the conversation and their slot is freed. With agentId: a registered agent with a " +
        "free slot. Without: the routing rules choose among online, available agents (never the current one); a queued " +
        "conversation stays queued when nobody is free, an assigned one answers 409. Audited with the reason.",
      ...secured,
      request: { params: conversationParams, ...jsonBody(assignBody, false) },
      responses: { 200: json("Where the conversation stands", assignResult), ...errorResponses(400, 401, 403, 404, 409) },
    }),
    async (c) => {
      const access = await requireBusinessConversation(c, c.req.valid("param").id);
      const body = (c.req.valid("json") as z.infer<typeof assignBody> | undefined) ?? {};
      const me = c.get("user").id;
      const isCurrentAgent = access.role === "agent" && access.conversation.assignedAgentId === me;
      if (!access.admin && !isCurrentAgent) throw forbidden("Only a business admin or the assigned agent can assign this conversation");
      if (access.conversation.status !== "open") throw conflictClosed();
      const agentId = body.agentId?.toLowerCase();
      if (agentId) await provisionUserIds(c.get("db")(), [agentId]);
      const outcome = await callDesk(() =>
        deskStub(c, access.businessId).assign({
          businessId: access.businessId,
          conversationId: access.conversation.id,
          actorId: me,
          ...(agentId ? { agentId } : {}),
          ...(body.reason ? { reason: body.reason } : {}),
          facts: factsOf(access.conversation),
        }),
      );
      return c.json(outcome, 200);
    },
  )
  .openapi(
    createRoute({
      method: "post",
      path: "/conversations/{id}/close",
      tags,
      summary: "Close a business conversation (its customer, its agent or a business admin); frees the agent's slot",
      ...secured,
      request: { params: conversationParams, ...jsonBody(closeBody, false) },
      responses: { 200: json("Closed", closeResult), ...errorResponses(400, 401, 404, 409) },
    }),
    async (c) => {
      const access = await requireBusinessConversation(c, c.req.valid("param").id);
      const body = (c.req.valid("json") as z.infer<typeof closeBody> | undefined) ?? {};
      // A closed one goes to the desk too, which answers 409: it may still hold the agent's slot for it (a close
      // that committed without the desk hearing of it), and frees it.
      const outcome = await callDesk(() =>
        deskStub(c, access.businessId).close({
          businessId: access.businessId,
          conversationId: access.conversation.id,
          actorId: c.get("user").id,
          ...(body.reason ? { reason: body.reason } : {}),
          facts: factsOf(access.conversation),
        }),
      );
      return c.json(outcome, 200);
    },
  )
  .openapi(
    createRoute({
      method: "get",
      path: "/conversations/{id}/queue-position",
      tags,
      summary: "Where a business conversation stands: queued (with its position), assigned (with the agent) or closed",
      ...secured,
      request: { params: conversationParams },
      responses: { 200: json("Placement", placementSchema), ...errorResponses(401, 404) },
    }),
    async (c) => {
      const access = await requireBusinessConversation(c, c.req.valid("param").id);
      if (access.conversation.status !== "open") {
        return c.json({ conversationId: access.conversation.id, status: "closed" as const, agentId: access.conversation.assignedAgentId, queuePosition: null }, 200);
      }
      const placement = await callDesk(() => deskStub(c, access.businessId).placement(access.businessId, access.conversation.id, factsOf(access.conversation)));
      return c.json(placement, 200);
    },
  );

const conflictClosed = () => conflict("The conversation is already closed");
