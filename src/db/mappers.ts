import type { Conversation, Message, Participant, Profile } from "../protocol/resources";
import type { conversations, messages, participants } from "./schema";

/** A point in time as a driver hands it over: a Date, a timestamp string, or epoch milliseconds. */
type Instant = Date | string | number;
type MessageRow = Omit<typeof messages.$inferSelect, "search" | "searchText" | "eventSeq" | "createdAt" | "editedAt" | "deletedAt"> & {
  eventSeq?: number;
  createdAt: Instant;
  editedAt: Instant | null;
  deletedAt: Instant | null;
};
type ParticipantRow = typeof participants.$inferSelect;

const iso = (d: Instant | null | undefined): string | null =>
  d === null || d === undefined ? null : d instanceof Date ? d.toISOString() : new Date(d).toISOString();

export function toMessage(row: MessageRow): Message {
  return {
    id: row.id,
    conversationId: row.conversationId,
    seq: Number(row.seq),
    senderId: row.senderId,
    clientMessageId: row.clientMessageId,
    type: row.type,
    content: row.deletedAt ? "" : row.content,
    replyToId: row.replyToId,
    createdAt: iso(row.createdAt)!,
    editedAt: iso(row.editedAt),
    deletedAt: iso(row.deletedAt),
    status: "sent",
  };
}

export function toParticipant(row: ParticipantRow): Participant {
  return {
    userId: row.userId,
    role: row.role,
    joinedAt: iso(row.joinedAt)!,
    isMuted: row.isMuted,
    lastReadSeq: Number(row.lastReadSeq),
    lastReadAt: iso(row.lastReadAt),
    lastDeliveredSeq: Number(row.lastDeliveredSeq),
  };
}

type ConversationRow = typeof conversations.$inferSelect;

/**
 * The Conversation resource (contract §4) from its row and the parts gathered around it. Shared by the Worker's
 * per-caller views and the business desk's shared view, so both say the same thing about a conversation.
 */
export function toConversation(
  conv: ConversationRow,
  parts: {
    participants: Participant[];
    lastMessage?: Conversation["lastMessage"];
    unreadCount: number;
    isMuted: boolean;
    business?: Profile;
  },
): Conversation {
  return {
    id: conv.id,
    type: conv.type,
    name: conv.name,
    businessId: conv.businessId,
    createdAt: conv.createdAt.toISOString(),
    lastActivity: conv.lastActivity.toISOString(),
    lastSeq: Math.max(Number(conv.lastSeq), parts.lastMessage?.seq ?? 0),
    version: Number(conv.version),
    participants: parts.participants,
    ...(parts.lastMessage ? { lastMessage: parts.lastMessage } : {}),
    unreadCount: parts.unreadCount,
    isMuted: parts.isMuted,
    ...(conv.type === "business" && conv.businessId ? { business: parts.business, status: conv.status } : {}),
  };
}
