import type { Context } from "hono";
import { conversationParts, partsOf, type ConversationParts } from "../db/queries/conversation-parts";
import type { ListedConversation, Membership, ParticipantRow } from "../db/queries/conversations";
import { kahaIdsOf } from "../db/queries/participants";
import { toConversation, toParticipant } from "../db/mappers";
import { publicParticipant, type Conversation, type Participant } from "../protocol/resources";
import type { AppEnv } from "./env";
import { loadProfiles } from "./profiles";

/**
 * Conversation resources (contract §4) for one caller. A page costs a fixed number of round trips whatever its size:
 * participants, last messages and unread counts in one statement (none when the page's own query brought them,
 * `known`), then one profile lookup for every id on the page.
 */
export async function conversationViews(c: Context<AppEnv>, memberships: Membership[], known?: ConversationParts): Promise<Conversation[]> {
  if (memberships.length === 0) return [];
  const ids = memberships.map((m) => m.conversation.id);
  const { members, latest, unread } = known ?? (await conversationParts(c.get("db")(), c.get("user").id, ids));
  const kahaIds = new Map(members.map((m) => [m.participant.userId, m.kahaId]));
  const businessIds = memberships.flatMap((m) => (m.conversation.businessId ? [m.conversation.businessId] : []));
  const senderIds = [...latest.values()].map((m) => m.senderId);
  const profiles = await loadProfiles(c, { userIds: [...kahaIds.keys(), ...senderIds], businessIds });

  // Each conversation as its listing member sees it (`me`: the caller, or the member a notice is for).
  const viewers = new Map(memberships.map((m) => [m.conversation.id, m.me.userId]));
  const byConversation = new Map<string, Participant[]>();
  for (const { participant } of members) {
    const list = byConversation.get(participant.conversationId) ?? [];
    const p = { ...toParticipant(participant), profile: profiles.user(participant.userId, kahaIds.get(participant.userId)) };
    list.push(publicParticipant(p, viewers.get(participant.conversationId)));
    byConversation.set(participant.conversationId, list);
  }

  return memberships.map(({ conversation: conv, me }) => {
    const last = latest.get(conv.id);
    return toConversation(conv, {
      participants: byConversation.get(conv.id) ?? [],
      lastMessage: last && { ...last, sender: profiles.user(last.senderId, kahaIds.get(last.senderId)) },
      unreadCount: unread.get(conv.id) ?? 0,
      isMuted: me.isMuted,
      business: conv.businessId ? profiles.business(conv.businessId) : undefined,
    });
  });
}

export async function conversationView(c: Context<AppEnv>, membership: Membership, known?: ConversationParts): Promise<Conversation> {
  const [view] = await conversationViews(c, [membership], known);
  return view;
}

/** A conversation read with its parts (`findListed`, `requireListed`); `conversation` replaces a changed row. */
export function listedView(c: Context<AppEnv>, listed: ListedConversation, conversation = listed.conversation): Promise<Conversation> {
  return conversationView(c, { ...listed, conversation }, partsOf([listed]));
}

/** For a broadcast to every member: the caller's own unread count and mute flag are not theirs to see. */
export function sharedView(conversation: Conversation): Conversation {
  return { ...conversation, unreadCount: 0, isMuted: false, participants: conversation.participants.map((p) => publicParticipant(p)) };
}

/** Participants with profiles, in one profile lookup. */
export async function participantViews(c: Context<AppEnv>, rows: ParticipantRow[]): Promise<Participant[]> {
  if (rows.length === 0) return [];
  const db = c.get("db")();
  const userIds = rows.map((r) => r.userId);
  const [profiles, kahaIds] = await Promise.all([loadProfiles(c, { userIds }), kahaIdsOf(db, userIds)]);
  // Also broadcast to the room as they are: nobody's mute flag.
  return rows.map((r) => publicParticipant({ ...toParticipant(r), profile: profiles.user(r.userId, kahaIds.get(r.userId)) }));
}
