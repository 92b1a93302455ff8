import { and, eq, isNull, sql } from "drizzle-orm";
import type { ConversationType, Participant } from "../../protocol/resources";
import type { Db } from "../client";
import { toParticipant } from "../mappers";
import { conversations, messages, participants, users } from "../schema";

export interface RoomState {
  type: ConversationType;
  /** Business conversations are closed for good by an agent, the customer or an admin. */
  closed: boolean;
  participants: Participant[];
  maxSeq: number;
  /** Seqs up to this one were moved to message_archive by the retention job. */
  archivedUpToSeq: number;
  /** Members with no device on their user socket: they get no live notifications. */
  offline: string[];
}

/** What a room needs from Postgres when its storage is first initialised: type, active members, highest seq. */
export async function loadRoomState(db: Db, conversationId: string): Promise<RoomState | undefined> {
  const [conv] = await db
    .select({ type: conversations.type, status: conversations.status, archivedUpToSeq: conversations.archivedUpToSeq })
    .from(conversations)
    .where(eq(conversations.id, conversationId))
    .limit(1);
  if (!conv) return undefined;
  const [members, top, offline] = await Promise.all([
    activeParticipants(db, conversationId),
    db.select({ seq: sql<string | null>`max(${messages.seq})` }).from(messages).where(eq(messages.conversationId, conversationId)),
    db
      .select({ userId: participants.userId })
      .from(participants)
      .innerJoin(users, eq(users.id, participants.userId))
      .where(and(eq(participants.conversationId, conversationId), isNull(participants.leftAt), eq(users.online, false))),
  ]);
  return {
    type: conv.type,
    closed: conv.status === "closed",
    participants: members,
    // Archived messages left `messages`: the next seq still follows them.
    maxSeq: Math.max(Number(top[0]?.seq ?? 0), Number(conv.archivedUpToSeq)),
    archivedUpToSeq: Number(conv.archivedUpToSeq),
    offline: offline.map((r) => r.userId),
  };
}

export async function activeParticipants(db: Db, conversationId: string): Promise<Participant[]> {
  const rows = await db
    .select()
    .from(participants)
    .where(and(eq(participants.conversationId, conversationId), isNull(participants.leftAt)));
  return rows.map(toParticipant);
}
