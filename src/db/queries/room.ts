import { and, eq, isNull, sql } from "drizzle-orm";
import type { ConversationType, Participant } from "../../protocol/resources";
import type { Db } from "../client";
import { toParticipant } from "../mappers";
import { conversations, participants, users } from "../schema";

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

/**
 * What a room needs from Postgres when its storage is first initialised: type, active members, highest seq.
 * Two statements, one after the other: a room starts on a cold pool, where queries in parallel would each open a
 * connection, and opening one costs more than the round trip it saves.
 */
export async function loadRoomState(db: Db, conversationId: string): Promise<RoomState | undefined> {
  const [conv] = await db
    .select({
      type: conversations.type,
      status: conversations.status,
      archivedUpToSeq: conversations.archivedUpToSeq,
      // Spelled out: drizzle leaves column names unqualified inside sql``, and "id" would be the message's.
      topSeq: sql<string | null>`(SELECT max(m.seq) FROM messages m WHERE m.conversation_id = "conversations"."id")`,
    })
    .from(conversations)
    .where(eq(conversations.id, conversationId))
    .limit(1);
  if (!conv) return undefined;
  const members = await db
    .select({ participant: participants, online: users.online })
    .from(participants)
    .leftJoin(users, eq(users.id, participants.userId))
    .where(and(eq(participants.conversationId, conversationId), isNull(participants.leftAt)));
  return {
    type: conv.type,
    closed: conv.status === "closed",
    participants: members.map((m) => toParticipant(m.participant)),
    // Archived messages left `messages`: the next seq still follows them.
    maxSeq: Math.max(Number(conv.topSeq ?? 0), Number(conv.archivedUpToSeq)),
    archivedUpToSeq: Number(conv.archivedUpToSeq),
    offline: members.filter((m) => m.online === false).map((m) => m.participant.userId),
  };
}
