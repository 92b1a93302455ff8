/** A page of the REST conversation list, as far as paging goes. */
export interface CursorPage<T> {
  conversations: readonly T[];
  nextCursor: string | null;
}

/** At most this many pages in a row that bring nothing new (see next): a runaway loop must not hammer the server. */
const MAX_EMPTY_PAGES = 10;

/**
 * The conversation list's later pages. Only the first page was ever read (`limit: 100`): a user with more
 * conversations could never reach the older ones. Reading goes on from the cursor the last page returned; a reload
 * (after a reconnect) reads as many pages as were read and goes on from the last one's cursor, and a later page read
 * before that reload is still shown but does not move the cursor back (it belongs to the list as it was).
 */
export class ListPages<T extends { id: string }> {
  private cursor: string | null = null;
  private generation = 0;
  private reading: Promise<T[]> | undefined;
  /** Pages read since the first one (itself included): a reload reads as many again. */
  private shown = 1;
  /** Removals pushed while a page is being read: that page, read before, must not put them back. */
  private readonly removedDuring = new Set<Set<string>>();

  /** The first page was (re)loaded (`pages` of them, read as one): later pages follow from its cursor. */
  first(page: CursorPage<T>, pages = 1): void {
    this.generation++;
    this.cursor = page.nextCursor;
    this.shown = pages;
  }

  /**
   * Reads the list again from its first page, as many pages as the user had read, and gives them as one page (the
   * last one's cursor, without what was removed meanwhile). After a reconnect only the first page was read again: a
   * conversation further down that was renamed, or left, while offline stayed as it was until the page was reloaded.
   */
  async reload(read: (cursor?: string) => Promise<CursorPage<T>>): Promise<CursorPage<T>> {
    const want = this.shown;
    const removed = new Set<string>();
    this.removedDuring.add(removed);
    try {
      let page = await read();
      const conversations = [...page.conversations];
      let pages = 1;
      for (; pages < want && page.nextCursor !== null; pages++) {
        page = await read(page.nextCursor);
        conversations.push(...page.conversations);
      }
      const all = { conversations: conversations.filter((c) => !removed.has(c.id)), nextCursor: page.nextCursor };
      this.first(all, pages);
      return all;
    } finally {
      this.removedDuring.delete(removed);
    }
  }

  /** Whether older conversations remain to be read. */
  get hasMore(): boolean {
    return this.cursor !== null;
  }

  get busy(): boolean {
    return this.reading !== undefined;
  }

  /** conversation_removed: a page being read keeps it out. */
  removed(id: string): void {
    for (const set of this.removedDuring) set.add(id);
  }

  /**
   * Reads the next page (once at a time: a second call while one is read gets the same answer). A page that brings
   * only conversations already held (read again after a reload started over) is followed by the next one at once, or
   * the user scrolled to the end for nothing. Gives what was read, without what was removed meanwhile.
   */
  next(read: (cursor: string) => Promise<CursorPage<T>>, held: (id: string) => boolean): Promise<T[]> {
    if (this.reading) return this.reading;
    if (this.cursor === null) return Promise.resolve([]);
    const removed = new Set<string>();
    this.removedDuring.add(removed);
    const generation = this.generation;
    const run = async (): Promise<T[]> => {
      const found: T[] = [];
      let cursor: string | null = this.cursor;
      for (let empty = 0; cursor !== null && empty < MAX_EMPTY_PAGES; empty++) {
        const page = await read(cursor);
        found.push(...page.conversations);
        cursor = page.nextCursor;
        if (generation === this.generation) {
          this.cursor = cursor;
          this.shown++;
        }
        if (page.conversations.some((c) => !held(c.id))) break;
      }
      return found.filter((c) => !removed.has(c.id));
    };
    const reading = run().finally(() => {
      this.removedDuring.delete(removed);
      if (this.reading === reading) this.reading = undefined;
    });
    this.reading = reading;
    return reading;
  }
}
