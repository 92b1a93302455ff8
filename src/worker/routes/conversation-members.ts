import { OpenAPIHono, createRoute, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { addParticipant, changeRole, removeParticipant, setMuted } from "../../db/queries/participants";
import { findListed } from "../../db/queries/conversations";
import { provisionUserIds } from "../../db/queries/users";
import { checkAdd, checkRemove, checkRoleChange, isDenial } from "../../domain/membership";
import { errorReason, notFound } from "../../lib/errors";
import { enforce, participantParam, refusal, requireMembership } from "../access";
import { listedView, participantViews } from "../conversation-view";
import type { AppEnv } from "../env";
import { callRoom, roomStub } from "../rooms";
import { errorResponses, json, jsonBody, noBody, pathId, secured } from "../openapi";
import { tellMemberAdded, tellMembersLater, tellRoom, tellUsers } from "../room-events";
import { closeForLeavingCustomer, releaseToDesk } from "./business-support";
import { addParticipantBody, muteBody, muteResult, participantSchema, roleBody } from "./conversation-schemas";

const tags = ["participants"];

/**
 * The room's newest seq, which Postgres lags while messages wait in the room: a newcomer's marks start there, or the
 * messages sent before they joined counted as unread once flushed. A room that cannot answer leaves Postgres's.
 */
async function newestInRoom(c: Context<AppEnv>, conversationId: string): Promise<number | undefined> {
  try {
    return await callRoom(() => roomStub(c, conversationId).newestSeq(conversationId));
  } catch (err) {
    c.get("log").warn("room's newest seq unavailable", { conversationId, error: errorReason(err).slice(0, 200) });
    return undefined;
  }
}
const memberParams = z.object({ id: pathId("id"), userId: pathId("userId") });

/** Membership changes of one conversation: add, leave/remove, role, and the caller's own mute flag. */
export const conversationMembers = new OpenAPIHono<AppEnv>()
  .openapi(
    createRoute({
      method: "post",
      path: "/{id}/participants",
      tags,
      summary: "Add a member to a group (group admin; a group never exceeds 8; never on direct conversations)",
      description: "A user who left earlier is brought back (their read marks kept).",
      ...secured,
      request: { params: z.object({ id: pathId("id") }), ...jsonBody(addParticipantBody) },
      responses: { 201: json("The new participant", participantSchema), ...errorResponses(400, 401, 403, 404, 409) },
    }),
    async (c) => {
      const { conversation, me } = await requireMembership(c, c.req.valid("param").id);
      const body = c.req.valid("json");
      const role = body.role ?? "member";
      enforce(checkAdd(conversation.type, me.role, role));
      const db = c.get("db")();
      const userId = body.userId.toLowerCase();
      const [, roomSeq] = await Promise.all([provisionUserIds(db, [userId]), newestInRoom(c, conversation.id)]);
      const added = await addParticipant(db, conversation.id, userId, role, me.userId, roomSeq);
      if (isDenial(added)) throw refusal(added);
      const [participant] = await participantViews(c, [added.participant]);
      const newcomers = added.rejoined ? undefined : [userId];
      await tellRoom(c, { kind: "participants", conversationId: conversation.id, joined: [participant], newcomers });
      await tellMemberAdded(c, conversation.id, userId);
      return c.json(participant, 201);
    },
  )
  .openapi(
    createRoute({
      method: "delete",
      path: "/{id}/participants/{userId}",
      tags,
      summary: "Leave (your own id) or remove a member (group admin)",
      description:
        "History stays. When the last admin leaves a group, the member who joined first becomes admin. A business customer who leaves closes the conversation (its agent's slot goes to the queue; their next POST /conversations/business opens a new one). A business conversation's assigned agent who leaves is unassigned: the conversation goes back to the front of its business's queue and to another free agent at once.",
      ...secured,
      // The target is the path's: a body naming another (`{userId}`) is a 400, not the caller leaving.
      request: { params: memberParams, ...noBody() },
      responses: { 204: { description: "Left or removed" }, ...errorResponses(400, 401, 403, 404) },
    }),
    async (c) => {
      const params = c.req.valid("param");
      const { conversation, me } = await requireMembership(c, params.id);
      const target = participantParam(params.userId);
      enforce(checkRemove(conversation.type, me.role, target === me.userId));
      if (target === me.userId && me.role === "agent" && (await releaseToDesk(c, conversation, me.userId))) return c.body(null, 204);
      if (target === me.userId && me.role === "customer") await closeForLeavingCustomer(c, conversation, me.userId);
      const result = await removeParticipant(c.get("db")(), conversation.type, conversation.id, target, me.userId);
      if (!result) throw notFound("Participant");
      if (isDenial(result)) throw refusal(result);
      const updated = result.promoted ? await participantViews(c, [result.promoted]) : undefined;
      const leftAt = result.left.leftAt?.toISOString();
      await tellRoom(c, { kind: "participants", conversationId: conversation.id, left: [target], leftAt, updated });
      tellUsers(c, [target], { type: "conversation_removed", conversationId: conversation.id, at: result.left.leftAt?.toISOString() });
      tellMembersLater(c, conversation.id, result.remaining[0]);
      return c.body(null, 204);
    },
  )
  .openapi(
    createRoute({
      method: "put",
      path: "/{id}/participants/{userId}/role",
      tags,
      summary: "Change a member's role (group admin; a group keeps at least one admin)",
      ...secured,
      request: { params: memberParams, ...jsonBody(roleBody) },
      responses: { 200: json("The updated participant", participantSchema), ...errorResponses(400, 401, 403, 404, 409) },
    }),
    async (c) => {
      const params = c.req.valid("param");
      const { conversation, me } = await requireMembership(c, params.id);
      const target = participantParam(params.userId);
      const { role } = c.req.valid("json");
      enforce(checkRoleChange(conversation.type, me.role, role));
      const changed = await changeRole(c.get("db")(), conversation.id, target, role, me.userId);
      if (!changed) throw notFound("Participant");
      if (isDenial(changed)) throw refusal(changed);
      const [participant] = await participantViews(c, [changed.participant]);
      if (changed.changed) {
        await tellRoom(c, { kind: "participants", conversationId: conversation.id, updated: [participant] });
        // Lists show who the admins are (a member's own role decides what their app offers them).
        tellMembersLater(c, conversation.id, me.userId);
      }
      return c.json(participant, 200);
    },
  )
  .openapi(
    createRoute({
      method: "put",
      path: "/{id}/mute",
      tags,
      summary: "Mute or unmute the conversation for the caller",
      ...secured,
      request: { params: z.object({ id: pathId("id") }), ...jsonBody(muteBody) },
      responses: { 200: json("The caller's mute flag", muteResult), ...errorResponses(400, 401, 404) },
    }),
    async (c) => {
      const { conversation, me } = await requireMembership(c, c.req.valid("param").id);
      const { isMuted } = c.req.valid("json");
      const saved = await setMuted(c.get("httpDb")(), conversation.id, me.userId, isMuted);
      if (!saved) throw notFound("Conversation");
      // The room reloads its participants (it flags notifications to muted members); a mute is private, so nothing
      // is named for broadcast.
      await tellRoom(c, { kind: "participants", conversationId: conversation.id });
      // The user's other devices: their lists showed the old flag until a reload. After the response, as the
      // caller's own view (one read, then the profiles the view carries).
      c.get("afterResponse")(async () => {
        const listed = await findListed(c.get("httpDb")(), conversation.id, me.userId);
        if (listed) tellUsers(c, [me.userId], { type: "conversation_updated", conversation: await listedView(c, listed), own: true });
      });
      return c.json({ conversationId: conversation.id, isMuted: saved.isMuted }, 200);
    },
  );
