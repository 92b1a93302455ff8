import { messageSummary } from "./attachments";
import type { Conversation, Message, Participant, PresenceStatus, Profile, TypingEvent } from "../../src/client";

const timeFmt = new Intl.DateTimeFormat(undefined, { hour: "numeric", minute: "2-digit" });
const dayFmt = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric" });
const dayYearFmt = new Intl.DateTimeFormat(undefined, { year: "numeric", month: "short", day: "numeric" });
const dayTimeFmt = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric", hour: "numeric", minute: "2-digit" });
const dayYearTimeFmt = new Intl.DateTimeFormat(undefined, { year: "numeric", month: "short", day: "numeric", hour: "numeric", minute: "2-digit" });
const fullFmt = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

function parse(iso: string | null | undefined): Date | undefined {
  if (!iso) return undefined;
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? undefined : d;
}

/**
 * The list's time: today's as a time, an earlier day's as its date, with the year when it is not this year's (a
 * conversation quiet since last November showed "Nov 28", as if it were this month's).
 */
export function shortTime(iso: string | null | undefined, now: Date = new Date()): string {
  const d = parse(iso);
  if (!d) return "";
  if (d.toDateString() === now.toDateString()) return timeFmt.format(d);
  return d.getFullYear() === now.getFullYear() ? dayFmt.format(d) : dayYearFmt.format(d);
}

/**
 * A message's time in its bubble: the time of day always, with the date when it is not today's and the year when not
 * this year's. A message of any earlier day showed its date alone ("Nov 28"): when it was written could only be found
 * by hovering, which touch screens and screen readers cannot.
 */
export function messageTime(iso: string | null | undefined, now: Date = new Date()): string {
  const d = parse(iso);
  if (!d) return "";
  if (d.toDateString() === now.toDateString()) return timeFmt.format(d);
  return d.getFullYear() === now.getFullYear() ? dayTimeFmt.format(d) : dayYearTimeFmt.format(d);
}

export function fullTime(iso: string | null | undefined): string {
  if (!iso) return "";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? "" : fullFmt.format(d);
}

export const shortId = (id: string) => id.slice(0, 8);

export function profileName(profile: Profile | undefined, userId: string): string {
  return profile?.name?.trim() || `User ${shortId(userId)}`;
}

/** Names changed in the directory (a name became known, or a person renamed), by user id. */
export type NamesListener = (changed: ReadonlySet<string>) => void;

/**
 * Profiles known from conversations (participants, message senders, typers): the one place the app takes names from,
 * so that a rename shows everywhere at once, and listeners redraw what names a changed user.
 */
export class Directory {
  private readonly profiles = new Map<string, Profile>();
  private readonly listeners = new Set<NamesListener>();

  learn(conversation: Conversation): void {
    const found: [string, Profile][] = [];
    for (const p of conversation.participants) if (p.profile) found.push([p.userId, p.profile]);
    if (conversation.lastMessage?.sender) found.push([conversation.lastMessage.senderId, conversation.lastMessage.sender]);
    this.take(found);
  }

  learnParticipants(participants: readonly Participant[]): void {
    this.take(participants.flatMap((p): [string, Profile][] => (p.profile ? [[p.userId, p.profile]] : [])));
  }

  learnMessage(m: Message): void {
    if (m.sender) this.take([[m.senderId, m.sender]]);
  }

  /**
   * A typing_start names its typer: a business agent just assigned, say, is in no list or message yet, and showed as
   * "User 1a2b3c4d is typing…".
   */
  learnTyping(t: Pick<TypingEvent, "userId" | "isTyping" | "profile">): void {
    if (t.isTyping && t.profile) this.take([[t.userId, t.profile]]);
  }

  set(userId: string, profile: Profile): void {
    this.take([[userId, profile]]);
  }

  name(userId: string): string {
    return profileName(this.profiles.get(userId), userId);
  }

  /**
   * The top bar's "Name (kahaId)" for the signed-in user, from the same names as the rest of the app: it kept the
   * name /auth/me gave at sign-in while bubbles and the member list showed a rename. The kahaId alone while no real
   * name is known (a placeholder's name is made from the kahaId, and said it twice).
   */
  accountLabel(userId: string, kahaId: string): string {
    const profile = this.profiles.get(userId);
    const name = profile && !profile.placeholder ? profile.name.trim() : "";
    return name ? `${name} (${kahaId})` : kahaId;
  }

  /** Called with the users whose shown name changed; returns the unsubscribe. */
  onNames(listener: NamesListener): () => void {
    this.listeners.add(listener);
    return () => void this.listeners.delete(listener);
  }

  private take(found: readonly [string, Profile][]): void {
    const changed = new Set<string>();
    for (const [userId, profile] of found) {
      const held = this.profiles.get(userId);
      // A placeholder is what the server made up while the profile service could not name the user (down, slow):
      // taken over a real name, one person showed under their kahaId until the next reload.
      if (held && !held.placeholder && profile.placeholder) continue;
      this.profiles.set(userId, profile);
      if (profileName(held, userId) !== profileName(profile, userId)) changed.add(userId);
    }
    if (changed.size === 0) return;
    for (const listener of [...this.listeners]) listener(changed);
  }
}

/** The typing line: who of the others is typing, by their names as known now. */
export function typingText(userIds: readonly string[], dir: Pick<Directory, "name">): string {
  const names = userIds.map((u) => dir.name(u));
  if (names.length === 0) return "";
  if (names.length === 1) return `${names[0]} is typing…`;
  return names.length === 2 ? `${names[0]} and ${names[1]} are typing…` : "Several people are typing…";
}

export function conversationTitle(c: Conversation, me: string, dir: Directory): string {
  if (c.type === "business") {
    const business = c.business?.name?.trim() || c.name?.trim() || "Business chat";
    // To its agent (or the business), a chat is the customer it is with: every chat an agent answered was titled by
    // the business, and one customer could not be told from another in the list.
    const role = c.participants.find((p) => p.userId === me)?.role;
    if (role === undefined || role === "customer") return business;
    const customers = c.participants.filter((p) => p.role === "customer" && p.userId !== me).map((p) => dir.name(p.userId));
    return customers.length > 0 ? `${customers.join(", ")} · ${business}` : business;
  }
  if (c.type === "group") {
    if (c.name?.trim()) return c.name.trim();
    const names = c.participants.filter((p) => p.userId !== me).map((p) => dir.name(p.userId));
    return names.length ? names.join(", ") : "Group";
  }
  const other = c.participants.find((p) => p.userId !== me);
  return other ? dir.name(other.userId) : "Direct chat";
}

/**
 * What a business conversation's header says of it besides the member count: closed (nothing more can be sent), or
 * the agent who answers. It said "Business chat" whatever happened, and a customer wrote into a closed chat to be told
 * "Not sent" only after sending.
 */
export function businessState(c: Pick<Conversation, "status" | "participants">, me: string, dir: Directory): string | undefined {
  if (c.status === "closed") return "Closed";
  const agents = c.participants.filter((p) => p.role === "agent" && p.userId !== me).map((p) => dir.name(p.userId));
  return agents.length > 0 ? `Agent: ${agents.join(", ")}` : undefined;
}

/** For a direct conversation: the other person (whose presence the list shows). */
export const directPeer = (c: Conversation, me: string): string | undefined =>
  c.type === "direct" ? c.participants.find((p) => p.userId !== me)?.userId : undefined;

/** Grapheme clusters (an emoji with its modifiers, a flag, a letter with its marks), or code points without Intl's. */
function characters(text: string): string[] {
  if (typeof Intl.Segmenter !== "function") return [...text];
  return Array.from(new Intl.Segmenter(undefined, { granularity: "grapheme" }).segment(text), (s) => s.segment);
}

/**
 * The text cut to at most `max` characters, "…" included, never inside one: cut by UTF-16 units, an emoji or a flag
 * at the cut lost half of itself and showed as "�".
 */
export function clip(text: string, max: number): string {
  if (text.length <= max) return text;
  const chars = characters(text);
  return chars.length > max ? `${chars.slice(0, max - 1).join("")}…` : text;
}

/** Up to two letters for an avatar: of the first two words, skipping punctuation ("Cora · Cafe Uno" gave "C·"). */
export function initials(name: string): string {
  const words = name.split(/\s+/).filter((w) => /^[\p{L}\p{N}\p{So}]/u.test(w));
  const parts = (words.length > 0 ? words : name.split(/\s+/).filter(Boolean)).map(characters);
  const letters = parts.length >= 2 ? parts[0][0] + parts[1][0] : (parts[0] ?? ["?"]).slice(0, 2).join("");
  return letters.toUpperCase();
}

/**
 * The copy of a conversation's last message to preview: the newer message and, of two copies of one message, the
 * later version. Copies come from both sockets and REST in any order: the notification of a message (sent once it
 * is stored) can land after the open conversation's delete, and taken as newer it showed the deleted text again.
 */
export function laterMessage(a: Message | undefined, b: Message | undefined): Message | undefined {
  if (!a) return b;
  if (!b) return a;
  if (a.seq !== b.seq) return b.seq > a.seq ? b : a;
  // A delete is final; otherwise the later edit (server times), and of equal versions the copy seen last.
  if (a.deletedAt) return a;
  if (b.deletedAt) return b;
  return (b.editedAt ?? "") >= (a.editedAt ?? "") ? b : a;
}

/**
 * A conversation as held, updated by another copy (a push, a reload, a fetch). The copy may have been read before a
 * message the app already shows (a reload answered after that message's notification): its older activity sorted the
 * conversation below others while its row showed the newer message. Activity and head never go back.
 */
export function mergeConversation(held: Conversation, incoming: Conversation): Conversation {
  // An older version (a read answered after a later change's push) keeps the newer name, members and status.
  const shown =
    incoming.version < held.version
      ? { ...incoming, name: held.name, participants: held.participants, status: held.status, version: held.version }
      : incoming;
  // A business named by the server's placeholder (the profile service down) keeps the name it had: the header and the
  // list called a business chat "Business b1000000" until the service was back.
  const keepBusiness = incoming.business?.placeholder === true && held.business !== undefined && held.business.placeholder !== true;
  return {
    ...held,
    ...shown,
    ...(keepBusiness ? { business: held.business } : {}),
    lastMessage: laterMessage(held.lastMessage, incoming.lastMessage),
    lastActivity: incoming.lastActivity > held.lastActivity ? incoming.lastActivity : held.lastActivity,
    lastSeq: Math.max(held.lastSeq, incoming.lastSeq),
  };
}

/**
 * The open conversation's copy, updated by the list's when that is a newer version (a rename or a close read by the
 * list's reload after a reconnect, or pushed on the user socket). The header kept the name it opened with: a group
 * renamed while the app was offline had its new name in the list and its old one in the header and the tab. The
 * view's own unread count and mute flag stay.
 */
export function withNewerCopy(own: Conversation, listed: Conversation | undefined): Conversation {
  if (!listed || listed.version <= own.version) return own;
  return { ...mergeConversation(own, listed), unreadCount: own.unreadCount, isMuted: own.isMuted };
}

/** The list's line for the last message: an image or a file by its name (it showed the URL). */
export function preview(m: Message | undefined): string {
  if (!m) return "No messages yet";
  return clip(messageSummary(m), 80);
}

/**
 * The count in the tab's title: unread messages, except in the conversation being read and in muted ones (muting says
 * "do not call me for this"; a busy muted group kept the tab announcing messages). Their rows keep their badges.
 */
export function titleUnread(conversations: Iterable<Pick<Conversation, "id" | "unreadCount" | "isMuted">>, reading: string | undefined): number {
  let n = 0;
  for (const c of conversations) if (c.id !== reading && !c.isMuted) n += c.unreadCount;
  return n;
}

/** The tab's title: what is unread (elsewhere, or not yet seen here) and the conversation on screen. */
export function pageTitle(unread: number, conversation: string | undefined): string {
  return `${unread > 0 ? `(${unread}) ` : ""}${conversation ? `${conversation} · ` : ""}Edge Chat`;
}

export const presenceLabel: Record<PresenceStatus, string> = { online: "Online", away: "Away", offline: "Offline" };

/**
 * A direct conversation's header: the other person's presence, and when they were last seen once offline: with the
 * time of day on an earlier day too (it said "Last seen Nov 28", whether that was at 1 a.m. or just before midnight).
 */
export function presenceText(status: PresenceStatus, lastSeen: string | null | undefined, now: Date = new Date()): string {
  const when = status === "offline" ? messageTime(lastSeen, now) : "";
  return when ? `Last seen ${when}` : presenceLabel[status];
}

export const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
