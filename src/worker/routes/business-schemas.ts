import { z } from "@hono/zod-openapi";
import { hoursSchema } from "../../domain/business-hours";
import { conversationSchema } from "../../protocol/resources";
import { intParam, limitParam } from "../params";

/** Request and response shapes of the business routes (contract §5 "Business"). Bodies are strict. */

const uuidField = z.guid("must be a UUID");

/** A skill, and a conversation's category: compared case-insensitively, so stored trimmed and in lower case. */
export const skillField = z
  .string()
  .trim()
  .toLowerCase()
  .min(1)
  .max(50)
  .regex(/^[^\p{Cc}]*$/u, "must not contain control characters");

const reasonField = z
  .string()
  .trim()
  .min(1)
  .max(500)
  .regex(/^[^\p{Cc}]*$/u, "must not contain control characters");

export const agentBody = z.strictObject({
  skills: z.array(skillField).max(20).optional(),
  maxConcurrentChats: z.number().int().min(1).max(100).optional(),
});

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

export const agentSchema = z
  .object({
    businessId: z.string(),
    userId: z.string(),
    skills: z.array(z.string()),
    maxConcurrentChats: z.number().int(),
    isAvailable: z.boolean(),
    presence: z.enum(["online", "away", "offline"]),
    online: z.boolean(),
    activeChats: z.number().int(),
    eligible: z.boolean().openapi({ description: "online, available and below the maximum: gets the next conversation" }),
    lastAssignedAt: z.string().nullable(),
  })
  .meta({ id: "BusinessAgent" });

/** What anyone signed in sees of an agent (a customer may ask for one by id); the rest is for the business's admins. */
const listedAgentSchema = agentSchema
  .partial({ maxConcurrentChats: true, presence: true, online: true, activeChats: true, eligible: true, lastAssignedAt: true })
  .meta({
    id: "BusinessAgentListed",
    description: "businessId, userId, skills and isAvailable for everyone; presence, load and the other fields only for the business's admins",
  });

export const agentsResult = z.object({ businessId: z.string(), agents: z.array(listedAgentSchema) });

export const availabilityResult = z.object({
  userId: z.string(),
  isAvailable: z.boolean(),
  agents: z.array(z.object({ businessId: z.string(), agent: agentSchema })),
});

export const adminResult = z.object({ businessId: z.string(), userId: z.string() });

export const hoursStatusSchema = z
  .object({
    businessId: z.string(),
    isOpen: z.boolean(),
    alwaysOpen: z.boolean().openapi({ description: "no hours saved: always open" }),
    at: z.string(),
    timezone: z.string().nullable(),
    localTime: z.string().nullable(),
    closesAt: z.string().nullable(),
    nextOpenAt: z.string().nullable(),
  })
  .meta({ id: "BusinessHoursStatus" });

/** The saved hours (as sent, holidays defaulted), with the business id and the status now. */
export const hoursResult = z.object({
  businessId: z.string(),
  timezone: z.string(),
  schedule: hoursSchema.shape.schedule,
  holidays: z.array(z.object({ date: z.string(), name: z.string().optional(), isOpen: z.boolean(), openTime: z.string().optional(), closeTime: z.string().optional() })),
  status: hoursStatusSchema,
});

export const queueEntrySchema = z
  .object({
    conversationId: z.string(),
    customerId: z.string(),
    category: z.string().nullable(),
    preferredAgentId: z.string().nullable(),
    position: z.number().int(),
    enqueuedAt: z.string(),
  })
  .meta({ id: "BusinessQueueEntry" });

export const queueResult = z.object({
  businessId: z.string(),
  isOpen: z.boolean(),
  total: z.number().int().openapi({ description: "entries visible to the caller: the whole queue for admins, their own for customers" }),
  entries: z.array(queueEntrySchema),
});

export const placementSchema = z
  .object({
    conversationId: z.string(),
    status: z.enum(["assigned", "queued", "closed"]),
    agentId: z.string().nullable(),
    queuePosition: z.number().int().nullable(),
  })
  .meta({ id: "BusinessPlacement" });

export const assignResult = placementSchema.extend({ previousAgentId: z.string().nullable() });

export const closeResult = z.object({
  conversationId: z.string(),
  status: z.literal("closed"),
  closedAt: z.string(),
  agentId: z.string().nullable(),
});

export const statsResult = z.object({
  businessId: z.string(),
  isOpen: z.boolean(),
  open: z.number().int().openapi({ description: "open conversations (assigned or queued)" }),
  queued: z.number().int(),
  assigned: z.number().int(),
  windowDays: z.number().int(),
  since: z.string(),
  created: z.number().int().openapi({ description: "conversations opened in the window" }),
  closed: z.number().int().openapi({ description: "of those, closed" }),
  responded: z.number().int().openapi({ description: "of those, answered by an agent" }),
  medianFirstResponseMs: z
    .number()
    .nullable()
    .openapi({ description: "median time from opening to the first message of an assigned agent, over the window" }),
  agents: z.array(agentSchema),
});

/** POST /conversations/business: the conversation, and where it waits when no agent took it yet. */
export const businessConversationSchema = conversationSchema.extend({
  queuePosition: z.number().int().nullable().openapi({ description: "1-based position in the business's queue; null when assigned" }),
});
