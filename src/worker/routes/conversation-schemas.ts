import { z } from "@hono/zod-openapi";
import { isUuid } from "../../lib/ids";
import { conversationSchema, groupRoles, participantSchema } from "../../protocol/resources";
import { intParam, limitParam } from "../params";
import { businessBody, groupBody, groupName, uuidField } from "../../protocol/requests";

/** Request and response shapes of the conversation routes (contract §5). Bodies are strict: unknown fields are a 400. */

export { businessBody, groupBody };

export const directBody = z.strictObject({ targetUserId: uuidField });

export const renameBody = z.strictObject({ name: groupName });

// Only the roles these routes can give: the document offered the business roles too, which were always a 400.
export const addParticipantBody = z.strictObject({ userId: uuidField, role: z.enum(groupRoles).optional() });

export const roleBody = z.strictObject({ role: z.enum(groupRoles) });

export const muteBody = z.strictObject({ isMuted: z.boolean() });

export const readBody = z.strictObject({
  seq: z.number().int().min(0).optional(),
  messageId: uuidField.optional(),
});

export const listQuery = z.object({
  limit: limitParam(20),
  cursor: z.string().optional().openapi({ description: "nextCursor of the previous page" }),
  page: intParam(1).openapi({ type: "integer", description: "1-based page number (numbered form, for older clients)" }),
});

const ACTIVITY_KEY = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/;
/**
 * A well-formed instant Postgres accepts: a calendar-invalid date would be a database error instead of a 400, and
 * so would year 0, which JavaScript's calendar has and Postgres's does not.
 */
const isActivityKey = (s: string) =>
  ACTIVITY_KEY.test(s) && !s.startsWith("0000") && new Date(`${s.slice(0, 19)}Z`).toISOString().slice(0, 19) === s.slice(0, 19);

/** The list cursor: the last row's lastActivity (microseconds, as Postgres holds it) and id. */
export const listCursor = z.tuple([z.string().refine(isActivityKey), z.string().refine(isUuid)]);

export { cursorPage, muteResult, numberedPage, readResult, receiptsResult, unreadResult } from "../../protocol/responses";
export { conversationSchema, participantSchema };
