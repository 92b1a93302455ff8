import { z } from "@hono/zod-openapi";
import { hoursSchema } from "../../domain/business-hours";
import { agentBody, PLAIN_TEXT, PLAIN_TEXT_MESSAGE, uuidField } from "../../protocol/requests";
import { intParam, limitParam } from "../params";

export {
  agentSchema,
  agentsResult,
  availabilityResult,
  adminResult,
  hoursStatusSchema,
  hoursResult,
  queueEntrySchema,
  queueResult,
  placementSchema,
  assignResult,
  closeResult,
  statsResult,
  businessConversationSchema,
} from "../../protocol/business";

/** Request and response shapes of the business routes (contract §5 "Business"). Bodies are strict. */

const reasonField = z
  .string()
  .trim()
  .min(1)
  .max(500)
  .regex(PLAIN_TEXT, PLAIN_TEXT_MESSAGE);

export { agentBody };

export const availabilityBody = z.strictObject({ isAvailable: z.boolean() });

export const assignBody = z.strictObject({ agentId: uuidField.optional(), reason: reasonField.optional() });

export const closeBody = z.strictObject({ reason: reasonField.optional() });

export { hoursSchema as hoursBody };

export const statsQuery = z.object({
  days: intParam(1).openapi({ type: "integer", description: "window of the history figures in days (default 30, at most 365)" }),
});

export const queueQuery = z.object({ limit: limitParam(50) });

export const statusQuery = z.object({
  at: z
    .string()
    .optional()
    .openapi({ description: "ISO-8601 instant to evaluate instead of now (plan ahead, check a DST change)", example: "2026-03-29T08:30:00Z" }),
});
