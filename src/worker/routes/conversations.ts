import { OpenAPIHono, createRoute, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import {
  createBusiness,
  createDirect,
  createGroup,
  findListed,
  findListedDirect,
  isBusinessAgent,
  listByCursor,
  listByPage,
  renameConversation,
  type CreateResult,
} from "../../db/queries/conversations";
import { partsOf } from "../../db/queries/conversation-parts";
import { provisionUserIds } from "../../db/queries/users";
import { laterMarks } from "../../domain/marks";
import { checkDirectTarget, checkRename, directKey, groupMembers, isDenial } from "../../domain/membership";
import { badRequest, unavailable } from "../../lib/errors";
import type { Conversation } from "../../protocol/resources";
import { enforce, refusal, requireListed } from "../access";
import { conversationView, conversationViews, listedView, sharedView } from "../conversation-view";
import type { AppEnv } from "../env";
import { errorResponses, json, jsonBody, pathId, secured, securedReader } from "../openapi";
import { decodeCursor, encodeCursor } from "../params";
import { backWithHeldMarks, tellCreatedAsSeen, tellMembersOfList, tellRoom, tellUsers, withHeldMark } from "../room-events";
import { heldMarks } from "../rooms";
import {
  businessBody,
  conversationSchema,
  cursorPage,
  directBody,
  groupBody,
  listCursor,
  listQuery,
  numberedPage,
  renameBody,
} from "./conversation-schemas";
import { conversationMembers } from "./conversation-members";
import { conversationReads } from "./conversation-reads";
import { businessConversationSchema } from "./business-schemas";
import { handOverToDesk } from "./business-support";

const tags = ["conversations"];

/** The created-or-found conversation as the caller sees it, after telling the room about anyone who came back. */
async function answerCreate(c: Context<AppEnv>, result: CreateResult, toldAlready: string | null = null): Promise<Conversation> {
  const listed = await findListed(c.get("db")(), result.id, c.get("user").id);
  if (!listed) throw unavailable("Conversation changed concurrently, please retry", 1);
  let view = await listedView(c, listed);
  if (result.created) {
    const audience = view.participants.map((p) => p.userId).filter((id) => id !== toldAlready);
    tellUsers(c, audience, { type: "conversation_created", conversation: sharedView(view) });
  }
  if (result.rejoined.length > 0) {
    const back = new Set(result.rejoined);
    await tellRoom(c, { kind: "participants", conversationId: result.id, joined: view.participants.filter((p) => back.has(p.userId)) });
    // Their apps dropped the conversation when they left: it comes back to their lists, with their own counts (the
    // other side's sessions read theirs, so this request keeps its round trips).
    const others = result.rejoined.filter((id) => id !== c.get("user").id);
    if (others.length > 0) tellUsers(c, others, { type: "conversation_created", conversation: sharedView(view), unread: "read" });
    if (back.has(c.get("user").id)) {
      view = await backWithHeldMarks(c, view, c.get("user").id);
      tellCreatedAsSeen(c, c.get("user").id, view);
    }
    tellMembersOfList(c, view, result.rejoined);
  }
  return view;
}

const createdOrFound = (description: string) => ({
  201: json(`${description} created`, conversationSchema),
  200: json(`The existing ${description}`, conversationSchema),
});

export const conversations = new OpenAPIHono<AppEnv>()
  .openapi(
    createRoute({
      method: "post",
      path: "/direct",
      tags,
      summary: "The direct conversation with another user: created once per pair, found afterwards",
      ...secured,
      request: jsonBody(directBody),
      responses: { ...createdOrFound("direct conversation"), ...errorResponses(400, 401) },
    }),
    async (c) => {
      const me = c.get("user").id;
      const target = c.req.valid("json").targetUserId.toLowerCase();
      enforce(checkDirectTarget(me, target));
      const key = directKey(me, target);
      // Opening a chat with someone again: one statement when both are still in it (no transaction, no rejoin).
      const found = await findListedDirect(c.get("httpDb")(), key, me);
      if (found) {
        const parts = partsOf([found]);
        if (parts.members.some((m) => m.participant.userId === target)) return c.json(await conversationView(c, found, parts), 200);
      }
      const result = await createDirect(c.get("db")(), me, target, key);
      const view = await answerCreate(c, result);
      return c.json(view, result.created ? 201 : 200);
    },
  )
  .openapi(
    createRoute({
      method: "post",
      path: "/group",
      tags,
      summary: "A group of 3–8 members including the caller, who becomes its admin",
      ...secured,
      request: jsonBody(groupBody),
      responses: { 201: json("Group created", conversationSchema), ...errorResponses(400, 401) },
    }),
    async (c) => {
      const body = c.req.valid("json");
      const me = c.get("user").id;
      const group = groupMembers(me, body.participantIds);
      if (isDenial(group)) throw refusal(group);
      const db = c.get("db")();
      const id = await createGroup(db, me, body.name ?? null, group.members);
      const view = await answerCreate(c, { id, created: true, rejoined: [] });
      return c.json(view, 201);
    },
  )
  .openapi(
    createRoute({
      method: "post",
      path: "/business",
      tags,
      summary: "The caller's open conversation with a business (as customer); optionally with one of its agents",
      description:
        "A new conversation goes to the business's routing: the preferred agentId (a registered agent of the business) " +
        "when available, else an agent with the category as a skill, else the least busy; queued when nobody is free " +
        "or the business is closed (queuePosition). Later assignment is the business routes' job.",
      ...secured,
      request: jsonBody(businessBody),
      responses: {
        201: json("business conversation created", businessConversationSchema),
        200: json("The existing business conversation", businessConversationSchema),
        ...errorResponses(400, 401),
      },
    }),
    async (c) => {
      const body = c.req.valid("json");
      const me = c.get("user").id;
      const businessId = body.businessId.toLowerCase();
      const agentId = body.agentId?.toLowerCase();
      const db = c.get("db")();
      if (agentId) {
        if (agentId === me) throw badRequest("agentId: you cannot be your own agent");
        if (!(await isBusinessAgent(db, businessId, agentId))) throw badRequest("agentId: not an agent of this business");
        await provisionUserIds(db, [agentId]);
      }
      const result = await createBusiness(db, me, businessId, body.category ?? null);
      const placed = await handOverToDesk(c, { conversationId: result.id, businessId, customerId: me, created: result.created, category: body.category, preferredAgentId: agentId });
      const view = await answerCreate(c, result, placed.agentAnnounced ? placed.agentId : null);
      return c.json({ ...view, queuePosition: placed.queuePosition }, result.created ? 201 : 200);
    },
  )
  .openapi(
    createRoute({
      method: "get",
      path: "/",
      tags,
      summary: "The caller's conversations, most recent activity first",
      description: "Keyset pages with `cursor` (the default), or numbered pages with `page` for older clients.",
      ...securedReader,
      request: { query: listQuery },
      responses: { 200: json("A page of conversations", z.union([cursorPage, numberedPage])), ...errorResponses(400, 401) },
    }),
    async (c) => {
      const { limit, page, cursor } = c.req.valid("query");
      const me = c.get("user").id;
      const db = c.get("httpDb")();
      if (page !== undefined) {
        if (cursor) throw badRequest("use either cursor or page, not both");
        const { rows, total } = await listByPage(db, me, limit, page);
        const list = await conversationViews(c, rows, partsOf(rows));
        return c.json({ conversations: list, total, hasMore: page * limit < total, page, limit }, 200);
      }
      const after = cursor ? decodeCursor(cursor, listCursor) : undefined;
      if (cursor && !after) throw badRequest("cursor is invalid");
      const rows = await listByCursor(db, me, limit, after && { activity: after[0], id: after[1] });
      const shown = rows.slice(0, limit);
      const last = shown[shown.length - 1];
      const nextCursor = rows.length > limit ? encodeCursor([last.activityKey, last.conversation.id]) : null;
      return c.json({ conversations: await conversationViews(c, shown, partsOf(shown)), nextCursor }, 200);
    },
  )
  .openapi(
    createRoute({
      method: "get",
      path: "/{id}",
      tags,
      summary: "One conversation, with participants, last message and the caller's unread count",
      ...securedReader,
      request: { params: z.object({ id: pathId("id") }) },
      responses: { 200: json("The conversation", conversationSchema), ...errorResponses(401, 404) },
    }),
    async (c) => {
      const listed = await requireListed(c, c.req.valid("param").id);
      // The members' marks as the room holds them (as the read receipts give them), asked while the view waits for
      // its profiles: the receipts a member's app has already shown must not go back in the conversation's details.
      const [view, held] = await Promise.all([listedView(c, listed), heldMarks(c, listed.conversation.id)]);
      // The caller's own count follows their mark: a read answered at the write-through deadline (Postgres slow) left
      // Postgres's count for the older mark beside a mark that said all read.
      const me = c.get("user").id;
      const mine = await withHeldMark(c, view, me, held.get(me));
      return c.json({ ...mine, participants: mine.participants.map((p) => laterMarks(p, held.get(p.userId))) }, 200);
    },
  )
  .openapi(
    createRoute({
      method: "patch",
      path: "/{id}",
      tags,
      summary: "Rename a group (group admin; audited)",
      ...secured,
      request: { params: z.object({ id: pathId("id") }), ...jsonBody(renameBody) },
      responses: { 200: json("The renamed conversation", conversationSchema), ...errorResponses(400, 401, 403, 404) },
    }),
    async (c) => {
      const { name } = c.req.valid("json");
      // A concurrent rename or member change between the check and the UPDATE makes the UPDATE a no-op (its `from` or
      // `version` is stale): read again.
      for (let attempt = 1; ; attempt++) {
        // The name is all a rename changes: the parts read with the membership check stay true.
        const listed = await requireListed(c, c.req.valid("param").id);
        enforce(checkRename(listed.conversation.type, listed.me.role));
        // The same name again changes nothing: no audit entry, no conversation_updated.
        if (listed.conversation.name === name) return c.json(await listedView(c, listed), 200);
        const { id, version } = listed.conversation;
        const rename = { conversationId: id, actorId: c.get("user").id, from: listed.conversation.name, to: name, version: Number(version) };
        if (await renameConversation(c.get("httpDb")(), rename)) {
          const view = await listedView(c, listed, { ...listed.conversation, name, version: Number(version) + 1 });
          await tellRoom(c, { kind: "conversation_updated", conversationId: view.id, conversation: sharedView(view) });
          tellUsers(c, view.participants.map((p) => p.userId), { type: "conversation_updated", conversation: sharedView(view) });
          return c.json(view, 200);
        }
        if (attempt === 3) throw unavailable("Conversation changed concurrently, please retry", 1);
      }
    },
  )
  .route("/", conversationMembers)
  .route("/", conversationReads);
