/** A small LRU with per-entry expiry; Map iteration order is insertion order, so re-inserting marks "recently used". */
export interface MemoryCacheOptions {
  maxEntries: number;
  ttlMs: number;
}

export const DEFAULT_MEMORY_OPTIONS: MemoryCacheOptions = { maxEntries: 1000, ttlMs: 60_000 };

export class MemoryCache<V> {
  private readonly entries = new Map<string, { value: V; expiresAt: number }>();
  // When each recently deleted key was deleted (a count of deletes), for setUnlessDeletedSince. Bounded like the
  // entries; forgottenUpTo is the newest record dropped, and a mark older than it can no longer be vouched for.
  private readonly deletedAt = new Map<string, number>();
  private deletes = 0;
  private forgottenUpTo = 0;
  readonly options: MemoryCacheOptions;

  constructor(options: Partial<MemoryCacheOptions> = {}) {
    this.options = {
      maxEntries: Math.max(1, options.maxEntries ?? DEFAULT_MEMORY_OPTIONS.maxEntries),
      ttlMs: Math.max(0, options.ttlMs ?? DEFAULT_MEMORY_OPTIONS.ttlMs),
    };
  }

  get size(): number {
    return this.entries.size;
  }

  get(key: string, now = Date.now()): V | undefined {
    const hit = this.entries.get(key);
    if (!hit) return undefined;
    this.entries.delete(key);
    if (hit.expiresAt <= now) return undefined;
    this.entries.set(key, hit);
    return hit.value;
  }

  /** Keeps the entry for the cache's ttl, or less when the value itself goes out of date sooner. */
  set(key: string, value: V, now = Date.now(), maxAgeMs = this.options.ttlMs): void {
    const ttl = Math.min(this.options.ttlMs, maxAgeMs);
    this.entries.delete(key);
    if (ttl <= 0) return;
    this.entries.set(key, { value, expiresAt: now + ttl });
    while (this.entries.size > this.options.maxEntries) {
      const oldest = this.entries.keys().next().value;
      if (oldest === undefined) break;
      this.entries.delete(oldest);
    }
  }

  delete(key: string): void {
    this.entries.delete(key);
    this.deletes++;
    this.deletedAt.delete(key);
    this.deletedAt.set(key, this.deletes);
    while (this.deletedAt.size > this.options.maxEntries) {
      const [oldest, at] = this.deletedAt.entries().next().value ?? [];
      if (oldest === undefined || at === undefined) break;
      this.deletedAt.delete(oldest);
      this.forgottenUpTo = at;
    }
  }

  /** A point in this cache's history of deletes, taken before fetching a value that setUnlessDeletedSince stores. */
  mark(): number {
    return this.deletes;
  }

  /**
   * set, unless the key was deleted after mark: a value fetched before a delete (an invalidation) must not come back
   * once the delete is done. Returns whether it was stored.
   */
  setUnlessDeletedSince(mark: number, key: string, value: V, now = Date.now(), maxAgeMs = this.options.ttlMs): boolean {
    const deleted = this.deletedAt.get(key);
    if ((deleted !== undefined && deleted > mark) || this.forgottenUpTo > mark) return false;
    this.set(key, value, now, maxAgeMs);
    return true;
  }

  /** Counts as a delete of every key: nothing fetched before it may be stored by setUnlessDeletedSince. */
  clear(): void {
    this.entries.clear();
    this.deletedAt.clear();
    this.forgottenUpTo = ++this.deletes;
  }
}
