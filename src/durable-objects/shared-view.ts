import { eq } from "drizzle-orm";
import type { Db } from "../db/client";
import { toConversation, toParticipant } from "../db/mappers";
import { lastMessages } from "../db/queries/conversation-parts";
import { activeParticipants } from "../db/queries/participants";
import { conversations } from "../db/schema";
import type { ProfileProvider } from "../profiles/types";
import { publicParticipant, type Conversation } from "../protocol/resources";

/**
 * A conversation as every participant may see it (the caller-specific unreadCount / isMuted zeroed, as the Worker's
 * sharedView does), for the events objects send themselves (the desk's, a room's preview updates): the Worker's view
 * builder needs a request.
 */
export async function sharedConversation(db: Db, profiles: ProfileProvider, conversationId: string): Promise<Conversation | undefined> {
  // The row (its version) before the members: members read first could be older than the version the view then
  // carries, and a receiver would take that view for as new as the change's own (see conversations.version).
  const [conv] = await db.select().from(conversations).where(eq(conversations.id, conversationId)).limit(1);
  if (!conv) return undefined;
  const [members, latest] = await Promise.all([activeParticipants(db, [conversationId]), lastMessages(db, [conversationId])]);
  const last = latest.get(conversationId);
  const kahaIds = new Map(members.map((m) => [m.participant.userId, m.kahaId]));
  const set = await profiles.load({
    userIds: [...kahaIds.keys(), ...(last ? [last.senderId] : [])],
    businessIds: conv.businessId ? [conv.businessId] : [],
  });
  return toConversation(conv, {
    participants: members.map(({ participant }) =>
      publicParticipant({ ...toParticipant(participant), profile: set.user(participant.userId, kahaIds.get(participant.userId)) }),
    ),
    lastMessage: last && { ...last, sender: set.user(last.senderId, kahaIds.get(last.senderId)) },
    unreadCount: 0,
    isMuted: false,
    business: conv.businessId ? set.business(conv.businessId) : undefined,
  });
}
