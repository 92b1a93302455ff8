import { OpenAPIHono, createRoute, z } from "@hono/zod-openapi";
import { partsOf } from "../../db/queries/conversation-parts";
import { toParticipant } from "../../db/mappers";
import { laterMarks } from "../../domain/marks";
import { badRequest } from "../../lib/errors";
import { requireListed, requireMembership } from "../access";
import type { AppEnv } from "../env";
import { errorResponses, json, jsonBody, pathId, secured, securedReader } from "../openapi";
import { actorOf, callRoom, heldMarks, roomStub } from "../rooms";
import { readBody, readResult, receiptsResult, unreadResult } from "./conversation-schemas";

const tags = ["receipts"];
const params = z.object({ id: pathId("id") });

/**
 * Read marks: moved by the conversation's room (it owns seq and broadcasts receipts), read back from Postgres with
 * the room's own copy laid over them (Postgres has a mark only once the room's flush commits).
 */
export const conversationReads = new OpenAPIHono<AppEnv>()
  .openapi(
    createRoute({
      method: "put",
      path: "/{id}/read",
      tags,
      summary: "Mark read up to a seq or a message (default: the latest); read marks never move backwards",
      ...secured,
      request: { params, ...jsonBody(readBody, false) },
      responses: { 200: json("The caller's read mark", readResult), ...errorResponses(400, 401, 404) },
    }),
    async (c) => {
      const { conversation } = await requireMembership(c, c.req.valid("param").id);
      const { seq, messageId } = c.req.valid("json");
      if (seq !== undefined && messageId !== undefined) throw badRequest("give either seq or messageId, not both");
      const conversationId = conversation.id;
      const result = await callRoom(() =>
        roomStub(c, conversationId).markRead({ conversationId, actor: actorOf(c), seq, messageId: messageId?.toLowerCase() }),
      );
      return c.json({ conversationId, lastReadSeq: result.lastReadSeq, unreadCount: result.unreadCount }, 200);
    },
  )
  .openapi(
    createRoute({
      method: "get",
      path: "/{id}/unread-count",
      tags,
      summary: "The caller's unread count: others' messages after their read mark, deleted ones excluded",
      ...securedReader,
      request: { params },
      responses: { 200: json("Unread count", unreadResult), ...errorResponses(401, 404) },
    }),
    async (c) => {
      // The membership check and the count in one statement (the list's own select).
      const { conversation, parts } = await requireListed(c, c.req.valid("param").id);
      return c.json({ conversationId: conversation.id, unreadCount: parts.unread }, 200);
    },
  )
  .openapi(
    createRoute({
      method: "get",
      path: "/{id}/read-receipts",
      tags,
      summary: "Read and delivery marks of every current participant",
      ...securedReader,
      request: { params },
      responses: { 200: json("Read receipts", receiptsResult), ...errorResponses(401, 404) },
    }),
    async (c) => {
      const listed = await requireListed(c, c.req.valid("param").id);
      const conversationId = listed.conversation.id;
      // Asked after Postgres was read: the room's copy then has every mark Postgres's read could have missed.
      const held = await heldMarks(c, conversationId);
      // Postgres says who the members are; a member the room still lists after they left is not shown.
      const participants = partsOf([listed]).members.map(({ participant }) => {
        const p = toParticipant(participant);
        const marks = { lastReadSeq: p.lastReadSeq, lastReadAt: p.lastReadAt, lastDeliveredSeq: p.lastDeliveredSeq };
        return { userId: p.userId, ...laterMarks(marks, held.get(p.userId)) };
      });
      return c.json({ conversationId, participants }, 200);
    },
  );
