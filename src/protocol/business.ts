import { z } from "zod";
import { hoursSchema } from "../domain/business-hours";
import { conversationSchema } from "./resources";

/**
 * Response shapes of the business routes (contract §5 "Business"), shared by the Worker (responses, OpenAPI) and the
 * SDK (result types). Plain zod with `.meta()`, which the OpenAPI generator reads, so the SDK needs no OpenAPI code.
 */

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
    eligible: z.boolean().meta({ description: "online, available and below the maximum: gets the next conversation" }),
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
    alwaysOpen: z.boolean().meta({ description: "no hours saved: always open" }),
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
  total: z.number().int().meta({ description: "entries visible to the caller: the whole queue for admins, their own for customers" }),
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
  open: z.number().int().meta({ description: "open conversations (assigned or queued)" }),
  queued: z.number().int(),
  assigned: z.number().int(),
  windowDays: z.number().int(),
  since: z.string(),
  created: z.number().int().meta({ description: "conversations opened in the window" }),
  closed: z.number().int().meta({ description: "of those, closed" }),
  responded: z.number().int().meta({ description: "of those, answered by an agent" }),
  medianFirstResponseMs: z
    .number()
    .nullable()
    .meta({ description: "median time from opening to the first message of an assigned agent, over the window" }),
  agents: z.array(agentSchema),
});

/** POST /conversations/business: the conversation, and where it waits when no agent took it yet. */
export const businessConversationSchema = conversationSchema.extend({
  queuePosition: z.number().int().nullable().meta({ description: "1-based position in the business's queue; null when assigned" }),
});

export type BusinessAgent = z.infer<typeof agentSchema>;
export type BusinessAgents = z.infer<typeof agentsResult>;
export type AgentAvailability = z.infer<typeof availabilityResult>;
export type BusinessAdmin = z.infer<typeof adminResult>;
export type BusinessHoursStatus = z.infer<typeof hoursStatusSchema>;
export type SavedBusinessHours = z.infer<typeof hoursResult>;
export type BusinessQueueEntry = z.infer<typeof queueEntrySchema>;
export type BusinessQueue = z.infer<typeof queueResult>;
export type BusinessPlacement = z.infer<typeof placementSchema>;
export type BusinessAssignment = z.infer<typeof assignResult>;
export type BusinessClosed = z.infer<typeof closeResult>;
export type BusinessStats = z.infer<typeof statsResult>;
export type BusinessConversation = z.infer<typeof businessConversationSchema>;
