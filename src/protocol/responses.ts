import { z } from "zod";
import { conversationSchema, messageSchema, profileSchema } from "./resources";

/**
 * Response envelopes of the auth, health, conversation, message, notification, realtime and profile routes (contract
 * §5), shared by the Worker (responses, OpenAPI) and the SDK (result types). Plain zod, like business.ts, so the SDK
 * needs no OpenAPI code; none has a component id, so the document inlines them as before.
 */

export const devLoginResult = z.object({ access_token: z.string(), user: z.object({ id: z.string(), kahaId: z.string() }) });
export const meResult = z.object({ id: z.string(), kahaId: z.string(), profile: profileSchema });
export const ticketResult = z.object({ ticket: z.string(), expiresAt: z.string() });

export const healthResult = z.object({ status: z.literal("ok"), service: z.string(), version: z.string(), timestamp: z.string() });
export const dependencyCheckSchema = z.object({ status: z.enum(["ok", "down"]), latencyMs: z.number(), error: z.string().optional() });
export const healthDetailedResult = z.object({
  status: z.enum(["ok", "degraded", "down"]),
  checks: z.object({ database: dependencyCheckSchema, cache: dependencyCheckSchema, profileService: dependencyCheckSchema }),
  /** Last run of each scheduled job (job_runs); absent when the database cannot be read. */
  jobs: z
    .record(
      z.string(),
      z.object({ lastRunAt: z.string(), finishedAt: z.string().nullable(), durationMs: z.number().nullable(), rows: z.number(), running: z.boolean(), ok: z.boolean().nullable() }),
    )
    .optional(),
});

export const cursorPage = z.object({ conversations: z.array(conversationSchema), nextCursor: z.string().nullable() });
export const numberedPage = z.object({
  conversations: z.array(conversationSchema),
  total: z.number().int(),
  hasMore: z.boolean(),
  page: z.number().int(),
  limit: z.number().int(),
});

export const muteResult = z.object({ conversationId: z.string(), isMuted: z.boolean() });
export const readResult = z.object({ conversationId: z.string(), lastReadSeq: z.number().int(), unreadCount: z.number().int() });
export const unreadResult = z.object({ conversationId: z.string(), unreadCount: z.number().int() });
const receiptSchema = z.object({
  userId: z.string(),
  lastReadSeq: z.number().int(),
  lastReadAt: z.string().nullable(),
  lastDeliveredSeq: z.number().int(),
});
export const receiptsResult = z.object({ conversationId: z.string(), participants: z.array(receiptSchema) });

/** A page of messages in ascending seq (history, and the archive with the newest page first). */
export const messagePage = z.object({ messages: z.array(messageSchema), hasMore: z.boolean() });
/** History: the numbered form (`?page=`, for older clients) adds page, limit and total. */
export const historyPage = messagePage.extend({ page: z.number().int().optional(), limit: z.number().int().optional(), total: z.number().int().optional() });
/** Newest first. */
export const searchResult = z.object({ messages: z.array(messageSchema), nextCursor: z.string().nullable() });

export const unreadCounts = z.object({
  userId: z.string(),
  unreadCounts: z.record(z.string(), z.number().int()),
  totalUnread: z.number().int(),
  muted: z.array(z.string()),
});
export const markAllReadResult = z.object({ markedConversations: z.number().int() });

export const invalidateResult = z.object({ invalidated: z.number().int().nonnegative() });

export type DevLoginResult = z.infer<typeof devLoginResult>;
export type Me = z.infer<typeof meResult>;
export type Ticket = z.infer<typeof ticketResult>;
export type Health = z.infer<typeof healthResult>;
export type DependencyCheck = z.infer<typeof dependencyCheckSchema>;
export type HealthDetailed = z.infer<typeof healthDetailedResult>;
export type ConversationPage = z.infer<typeof cursorPage>;
export type NumberedConversationPage = z.infer<typeof numberedPage>;
export type MuteResult = z.infer<typeof muteResult>;
export type ReadResult = z.infer<typeof readResult>;
export type UnreadResult = z.infer<typeof unreadResult>;
export type ReadReceipt = z.infer<typeof receiptSchema>;
export type ReadReceipts = z.infer<typeof receiptsResult>;
export type MessagePage = z.infer<typeof historyPage>;
export type ArchivePage = z.infer<typeof messagePage>;
export type SearchResult = z.infer<typeof searchResult>;
export type UnreadCounts = z.infer<typeof unreadCounts>;
export type MarkAllReadResult = z.infer<typeof markAllReadResult>;
export type InvalidateResult = z.infer<typeof invalidateResult>;
