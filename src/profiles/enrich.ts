import type { Conversation, Profile } from "../protocol/resources";
import type { ProfileRequest, ProfileSet } from "./types";

/** Ids to load for a page: collect first, load once, then enrich, so a page costs one lookup whatever its size. */
export interface ProfileSources {
  messages?: Iterable<{ senderId: string }>;
  participants?: Iterable<{ userId: string }>;
  conversations?: Iterable<{
    businessId: string | null;
    participants?: Iterable<{ userId: string }>;
    lastMessage?: { senderId: string };
  }>;
  userIds?: Iterable<string>;
  businessIds?: Iterable<string>;
}

export interface CollectedIds extends ProfileRequest {
  userIds: string[];
  businessIds: string[];
}

export function collectIds(sources: ProfileSources): CollectedIds {
  const users = new Set<string>(sources.userIds ?? []);
  const businesses = new Set<string>(sources.businessIds ?? []);
  for (const m of sources.messages ?? []) users.add(m.senderId);
  for (const p of sources.participants ?? []) users.add(p.userId);
  for (const c of sources.conversations ?? []) {
    if (c.businessId) businesses.add(c.businessId);
    for (const p of c.participants ?? []) users.add(p.userId);
    if (c.lastMessage) users.add(c.lastMessage.senderId);
  }
  return { userIds: [...users], businessIds: [...businesses] };
}

export function collectSenderIds(messages: Iterable<{ senderId: string }>): CollectedIds {
  return collectIds({ messages });
}

/** kahaIds, when the caller knows them, give placeholders a readable name. */
export type KahaIds = ReadonlyMap<string, string>;

export function enrichMessages<M extends { senderId: string }>(
  messages: readonly M[],
  set: ProfileSet,
  kahaIds?: KahaIds,
): (M & { sender: Profile })[] {
  return messages.map((m) => ({ ...m, sender: set.user(m.senderId, kahaIds?.get(m.senderId)) }));
}

export function enrichParticipants<P extends { userId: string }>(
  participants: readonly P[],
  set: ProfileSet,
  kahaIds?: KahaIds,
): (P & { profile: Profile })[] {
  return participants.map((p) => ({ ...p, profile: set.user(p.userId, kahaIds?.get(p.userId)) }));
}

/**
 * Senders for a page of messages: one profile load for all of them, then kahaIds (one lookup) only for senders left
 * as placeholders, so a page whose senders are all cached costs no database round trip. Without kahaIds (the lookup
 * failed) placeholders are named from the id.
 */
async function senderProfiles(
  messages: readonly { senderId: string }[],
  load: (request: ProfileRequest) => Promise<ProfileSet>,
  kahaIdsOf: (userIds: string[]) => Promise<KahaIds>,
): Promise<(senderId: string) => Profile> {
  const ids = collectSenderIds(messages);
  const set = await load(ids);
  const unresolved = ids.userIds.filter((id) => !set.hasUser(id));
  const kahaIds = unresolved.length > 0 ? await kahaIdsOf(unresolved).catch(() => undefined) : undefined;
  return (senderId) => set.user(senderId, kahaIds?.get(senderId));
}

export async function withSenderProfiles<M extends { senderId: string }>(
  messages: readonly M[],
  load: (request: ProfileRequest) => Promise<ProfileSet>,
  kahaIdsOf: (userIds: string[]) => Promise<KahaIds>,
): Promise<(M & { sender: Profile })[]> {
  if (messages.length === 0) return [];
  const sender = await senderProfiles(messages, load, kahaIdsOf);
  return messages.map((m) => ({ ...m, sender: sender(m.senderId) }));
}

/**
 * The same for messages that are already JSON objects (a history page from the room): the result is the JSON array
 * text, each sender's profile serialized once and added to its messages' objects as text.
 */
export async function withSenderProfilesJson(
  messages: readonly { json: string; senderId: string }[],
  load: (request: ProfileRequest) => Promise<ProfileSet>,
  kahaIdsOf: (userIds: string[]) => Promise<KahaIds>,
): Promise<string> {
  if (messages.length === 0) return "[]";
  const sender = await senderProfiles(messages, load, kahaIdsOf);
  const profileJson = new Map<string, string>();
  const parts = messages.map((m) => {
    let p = profileJson.get(m.senderId);
    if (p === undefined) profileJson.set(m.senderId, (p = JSON.stringify(sender(m.senderId))));
    // Each text is a JSON object without a `sender` key (the room removes it), so the key goes before its brace.
    return `${m.json.slice(0, -1)},"sender":${p}}`;
  });
  return `[${parts.join(",")}]`;
}

/** Participants, the last message's sender and, for business conversations, the business. */
export function enrichConversation(conversation: Conversation, set: ProfileSet, kahaIds?: KahaIds): Conversation {
  const out: Conversation = { ...conversation, participants: enrichParticipants(conversation.participants, set, kahaIds) };
  const last = conversation.lastMessage;
  if (last) out.lastMessage = { ...last, sender: set.user(last.senderId, kahaIds?.get(last.senderId)) };
  if (conversation.businessId) out.business = set.business(conversation.businessId);
  return out;
}
