/**
 * A conversation's unread badge in a user's session. Two sources feed it, and their RPCs can arrive in any order:
 * absolute counts (after a read mark, from a refresh out of Postgres), each true as of a message seq and a read
 * mark, and notifications of new messages, which come after the Postgres commit. A read mark made as a message
 * arrives is computed with that message already in it; added once more by its later notification, the badge stayed
 * one above zero for good.
 *
 * `count` = unread messages up to `asOf` (the absolute count) + those counted from notifications since (`counted`,
 * seqs above `asOf`).
 */
export interface Badge {
  count: number;
  /** The newest seq the absolute count covered. */
  asOf: number;
  /** The read mark it was computed for: of two counts as of the same seq, the later read wins. */
  readSeq: number;
  /** Seqs above `asOf` counted from notifications, ascending. */
  counted: number[];
}

/** Stored before badges knew seqs: a bare count. */
export type StoredBadge = Badge | number;

/** Notified seqs kept per badge; older ones fold into the absolute part. */
const COUNTED_KEEP = 200;

export function badgeOf(stored: StoredBadge | undefined): Badge {
  if (stored === undefined) return { count: 0, asOf: 0, readSeq: 0, counted: [] };
  if (typeof stored === "number") return { count: stored, asOf: 0, readSeq: 0, counted: [] };
  return stored;
}

/** An absolute count as of (`asOf`, `readSeq`). An older one than the badge's is ignored; later notifications stay. */
export function withCount(b: Badge, count: number, asOf: number, readSeq: number): Badge {
  if (asOf < b.asOf || (asOf === b.asOf && readSeq < b.readSeq)) return b;
  const later = b.counted.filter((s) => s > asOf && s > readSeq);
  return { count: count + later.length, asOf, readSeq, counted: later };
}

/** New messages: each seq counts once, and only when neither the absolute count nor the read mark covers it. */
export function withMessages(b: Badge, seqs: number[]): Badge {
  const counted = [...b.counted];
  let { count, asOf } = b;
  for (const s of seqs) {
    if (s <= asOf || s <= b.readSeq || counted.includes(s)) continue;
    counted.push(s);
    count++;
  }
  counted.sort((x, y) => x - y);
  if (counted.length > COUNTED_KEEP) asOf = Math.max(asOf, ...counted.splice(0, counted.length - COUNTED_KEEP));
  return { count, asOf, readSeq: b.readSeq, counted };
}

export function totalUnread(badges: Record<string, StoredBadge>): number {
  return Object.values(badges).reduce<number>((sum, b) => sum + badgeOf(b).count, 0);
}
