import type { Message } from "../../src/client";

/** A participant other than the viewer, with how far they have read. */
export interface Reader {
  id: string;
  name: string;
  read: number;
}

/**
 * The "Seen by" line of each message that has one: under the newest loaded message a reader has read that they did not
 * write themselves. By seq, the line's text.
 */
export function seenByLines(messages: Iterable<{ seq: number; senderId: string }>, readers: readonly Reader[]): Map<number, string> {
  const sorted = [...messages].sort((a, b) => b.seq - a.seq);
  const names = new Map<number, string[]>();
  for (const r of readers) {
    if (r.read <= 0) continue;
    const target = sorted.find((m) => m.seq <= r.read && m.senderId !== r.id);
    if (target) names.set(target.seq, [...(names.get(target.seq) ?? []), r.name]);
  }
  return new Map([...names].map(([seq, list]) => [seq, `Seen by ${list.join(", ")}`]));
}

/**
 * What to change on screen to go from the lines shown to the lines wanted: only the lines that differ. The messages
 * are a live region announcing what is added, and redrawing every line on each message or receipt had a screen reader
 * say "Seen by …" again after everything that happened in the conversation.
 */
export function seenByChanges(shown: ReadonlyMap<number, string>, wanted: ReadonlyMap<number, string>): { remove: number[]; add: [number, string][] } {
  const remove = [...shown].filter(([seq, text]) => wanted.get(seq) !== text).map(([seq]) => seq);
  const add = [...wanted].filter(([seq, text]) => shown.get(seq) !== text);
  return { remove, add };
}

/**
 * Where the unread messages begin in the newest page, on opening a conversation: the first of the last `unread` of
 * others' messages that are not deleted (the server's count). Undefined when nothing is unread, or when they begin on an
 * older page (the newest is shown then, as before).
 */
export function firstUnread(
  page: readonly Pick<Message, "seq" | "senderId" | "deletedAt">[],
  unread: number,
  me: string,
  hasMore: boolean,
): number | undefined {
  if (unread <= 0) return undefined;
  const theirs = page.filter((m) => m.senderId !== me && m.deletedAt === null);
  if (theirs.length < unread && hasMore) return undefined;
  return theirs[Math.max(0, theirs.length - unread)]?.seq;
}
