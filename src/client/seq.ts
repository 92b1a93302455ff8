/**
 * Delivery by seq: every seq is passed on exactly once and in order. A seq at or below the last one delivered is a
 * duplicate (a replay overlapping live frames, an ack and its broadcast); a seq beyond the next one is held back
 * until the gap before it is filled (the caller asks the server to resume from `lastSeq`).
 */
export class SeqBuffer<T> {
  private last: number;
  private readonly held = new Map<number, T>();

  constructor(
    lastSeq = 0,
    private readonly maxHeld = 10_000,
  ) {
    this.last = lastSeq;
  }

  /** The highest seq delivered with nothing missing before it. */
  get lastSeq(): number {
    return this.last;
  }

  /** True while something newer than lastSeq + 1 is held back. */
  get hasGap(): boolean {
    return this.held.size > 0;
  }

  /** Lowest seq held back (the gap ends just before it), if any. */
  get firstHeld(): number | undefined {
    let min: number | undefined;
    for (const s of this.held.keys()) if (min === undefined || s < min) min = s;
    return min;
  }

  /** The item held back at `seq`, if any. */
  heldAt(seq: number): T | undefined {
    return this.held.get(seq);
  }

  /** Replaces the item held back at `seq` (a newer copy of it); false when nothing is held there. */
  replaceHeld(seq: number, item: T): boolean {
    if (!this.held.has(seq)) return false;
    this.held.set(seq, item);
    return true;
  }

  /**
   * Starts over from `lastSeq` (held items at or below it are dropped). Returns the held items that now follow it
   * without a gap, to deliver: left held, nothing released them (their replayed copies count as already held).
   */
  reset(lastSeq: number): T[] {
    this.last = lastSeq;
    for (const s of [...this.held.keys()]) if (s <= lastSeq) this.held.delete(s);
    return this.drain();
  }

  private drain(): T[] {
    const deliver: T[] = [];
    for (;;) {
      const next = this.held.get(this.last + 1);
      if (next === undefined) break;
      this.held.delete(this.last + 1);
      this.last++;
      deliver.push(next);
    }
    return deliver;
  }

  /**
   * Offers one item. Returns the items now deliverable in order (possibly none), and whether the offered seq was
   * a duplicate.
   */
  offer(seq: number, item: T): { deliver: T[]; duplicate: boolean } {
    if (!Number.isSafeInteger(seq) || seq <= this.last || this.held.has(seq)) return { deliver: [], duplicate: true };
    this.held.set(seq, item);
    const deliver = this.drain();
    if (this.held.size > this.maxHeld) {
      // Something is badly wrong (a server that skips seqs): never grow without bound; deliver what we have.
      const seqs = [...this.held.keys()].sort((a, b) => a - b);
      for (const s of seqs) {
        deliver.push(this.held.get(s)!);
        this.held.delete(s);
        this.last = s;
      }
    }
    return { deliver, duplicate: false };
  }
}

/**
 * Edits and deletes are replayed after a reconnect too; the same version of a message is passed on once.
 * Bounded: the oldest entries are forgotten first.
 */
export class VersionSet {
  private readonly seen = new Map<string, string>();
  constructor(private readonly max = 5000) {}

  /** True when this (id, version) is new. */
  add(id: string, version: string): boolean {
    if (this.seen.get(id) === version) return false;
    this.seen.delete(id);
    this.seen.set(id, version);
    if (this.seen.size > this.max) this.seen.delete(this.seen.keys().next().value as string);
    return true;
  }
}

/**
 * The newest view version passed on, by conversation. `conversation_updated` pushes of changes made in quick
 * succession (two renames, a rename and an add) can arrive out of order: the older one, passed on last, left the
 * app with the old name or members until the next change. A view without a version (an older server) passes.
 */
export class ViewVersions {
  private readonly newest = new Map<string, number>();
  constructor(private readonly max = 5000) {}

  /** False for a view older than one already noted; notes the version otherwise. */
  note(conversation: { id: string; version?: number }): boolean {
    const { id, version } = conversation;
    if (typeof version !== "number") return true;
    const known = this.newest.get(id);
    if (known !== undefined && version < known) return false;
    this.newest.delete(id);
    this.newest.set(id, version);
    if (this.newest.size > this.max) this.newest.delete(this.newest.keys().next().value as string);
    return true;
  }
}
