import { z } from "zod";

/** Resource shapes of contract §4, shared by the Worker (responses, OpenAPI), the Durable Objects and the SDK. */

export const profileSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    avatarUrl: z.string().nullable(),
    kind: z.enum(["user", "business"]),
    stale: z.literal(true).optional(),
    placeholder: z
      .literal(true)
      .optional()
      .meta({ description: "not a profile the service gave: a name made from the kahaId or the id; an app that knows a real name keeps it" }),
  })
  .meta({ id: "Profile" });
export type Profile = z.infer<typeof profileSchema>;

export const conversationTypes = ["direct", "group", "business"] as const;
export type ConversationType = (typeof conversationTypes)[number];
export const roles = ["admin", "member", "customer", "agent", "business"] as const;
export type Role = (typeof roles)[number];
/** The roles the participant routes give; business roles come from the business's routing, never from a client. */
export const groupRoles = ["admin", "member"] as const satisfies readonly Role[];
export type GroupRole = (typeof groupRoles)[number];
export const messageTypes = ["text", "image", "file", "system"] as const;
export type MessageType = (typeof messageTypes)[number];

export const participantSchema = z
  .object({
    userId: z.string().uuid(),
    role: z.enum(roles),
    joinedAt: z.string(),
    isMuted: z.boolean(),
    lastReadSeq: z.number().int(),
    lastReadAt: z.string().nullable(),
    lastDeliveredSeq: z.number().int(),
    profile: profileSchema.optional(),
  })
  .meta({ id: "Participant" });
export type Participant = z.infer<typeof participantSchema>;

/**
 * A participant as `viewerId` may see them: whether a member muted the conversation is theirs alone (others saw who
 * had muted their group). Without a viewer (a frame broadcast to every member) nobody's flag is shown.
 */
export function publicParticipant<P extends Participant>(p: P, viewerId?: string): P {
  return p.isMuted && p.userId !== viewerId ? { ...p, isMuted: false } : p;
}

export const messageSchema = z
  .object({
    id: z.string().uuid(),
    conversationId: z.string().uuid(),
    seq: z.number().int().positive(),
    senderId: z.string().uuid(),
    clientMessageId: z.string().nullable(),
    type: z.enum(messageTypes),
    content: z.string(),
    replyToId: z.string().uuid().nullable(),
    createdAt: z.string(),
    editedAt: z.string().nullable(),
    deletedAt: z.string().nullable(),
    /** "sent": committed to PostgreSQL; "pending": held in the conversation's outbox, retried until committed. */
    status: z.enum(["sent", "pending"]),
    sender: profileSchema.optional(),
  })
  .meta({ id: "Message" });
export type Message = z.infer<typeof messageSchema>;

export const conversationSchema = z
  .object({
    id: z.string().uuid(),
    type: z.enum(conversationTypes),
    name: z.string().nullable(),
    businessId: z.string().uuid().nullable(),
    createdAt: z.string(),
    lastActivity: z.string(),
    lastSeq: z.number().int(),
    version: z.number().int().meta({
      description:
        "grows with every change to the name, status, members or roles: a conversation_updated with a lower version than one already applied is older news, to drop",
    }),
    participants: z.array(participantSchema),
    lastMessage: messageSchema.optional(),
    unreadCount: z.number().int(),
    isMuted: z.boolean(),
    business: profileSchema.optional(),
    status: z.enum(["open", "closed"]).optional(),
  })
  .meta({ id: "Conversation" });
export type Conversation = z.infer<typeof conversationSchema>;

export const errorSchema = z
  .object({
    statusCode: z.number().int(),
    error: z.string(),
    message: z.union([z.string(), z.array(z.string())]),
    requestId: z.string(),
  })
  .meta({ id: "Error" });

export { LIMITS } from "./limits";
