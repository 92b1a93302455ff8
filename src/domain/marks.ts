/**
 * A member's read and delivered marks. Two copies exist: the room's (moved first, acknowledged to clients) and
 * Postgres's (written by the room's next flush, or later while Postgres is unreachable). Either can be the newer one
 * for a while, and marks only ever move forward: the later of the two is the member's mark.
 */
export interface Marks {
  lastReadSeq: number;
  lastReadAt: string | null;
  lastDeliveredSeq: number;
}

/** `base` with the later of each mark; the read time goes with the read seq it was taken for. */
export function laterMarks<T extends Marks>(base: T, other: Marks | undefined): T {
  if (!other) return base;
  const readAhead = other.lastReadSeq > base.lastReadSeq;
  if (!readAhead && other.lastDeliveredSeq <= base.lastDeliveredSeq) return base;
  return {
    ...base,
    lastReadSeq: readAhead ? other.lastReadSeq : base.lastReadSeq,
    lastReadAt: readAhead ? other.lastReadAt : base.lastReadAt,
    lastDeliveredSeq: Math.max(base.lastDeliveredSeq, other.lastDeliveredSeq),
  };
}
