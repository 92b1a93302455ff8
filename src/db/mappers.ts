import type { Message, Participant } from "../protocol/resources";
import type { messages, participants } from "./schema";

type MessageRow = Omit<typeof messages.$inferSelect, "search" | "eventSeq"> & { eventSeq?: number };
type ParticipantRow = typeof participants.$inferSelect;

const iso = (d: Date | string | null | undefined): string | null =>
  d === null || d === undefined ? null : typeof d === "string" ? new Date(d).toISOString() : d.toISOString();

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
