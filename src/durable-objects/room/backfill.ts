import { errorReason } from "../../lib/errors";
import type { StoredMessage } from "../../db/queries/messages";
import { backoffMs } from "../../domain/backoff";
import type { Logger } from "../../lib/log";

/**
 * Hydration: a room that starts over existing history (or over storage from before rooms held whole histories) holds
 * only its newest rows. The backfill reads the rows just below `heldFrom` from Postgres, a chunk per alarm run (each
 * run stays short; requests interleave between chunks), until every unarchived seq is held and pages, lookups and
 * resume never need Postgres. Driven by the room's one alarm: no timers of its own, so a hibernating room is not
 * kept awake, and an evicted one resumes where its storage says.
 */
export const BACKFILL_CHUNK = 1000;
/** A chunk is due this soon after the previous one (or a start). */
export const BACKFILL_NEXT_MS = 10;
const RETRY_BASE_MS = 2_000;
const RETRY_CAP_MS = 5 * 60_000;

/** What the backfill needs of the room's store (room/store.ts). */
export interface BackfillStore {
  meta(): { heldFrom: number } | undefined;
  adoptBackfill(rows: StoredMessage[], from: number, to: number, archivedUpToSeq: number): boolean;
}

export interface BackfillDeps {
  store: BackfillStore;
  archivedUpToSeq: () => number;
  /** A newer archive mark learnt from the read: drops the room's rows at or below it. */
  noteArchived: (upToSeq: number) => void;
  /** The stored messages from..to, and the archive mark as of the same read (none: the conversation is gone). */
  read: (from: number, to: number) => Promise<{ messages: StoredMessage[]; archivedUpToSeq: number | undefined }>;
  log: Logger;
}

/** The seqs of the next chunk: up to `chunk` just below heldFrom, none at or below the archive mark. */
export function nextChunk(heldFrom: number, archivedUpToSeq: number, chunk = BACKFILL_CHUNK): { from: number; to: number } | undefined {
  const to = heldFrom - 1;
  const from = Math.max(archivedUpToSeq + 1, heldFrom - chunk);
  return from <= to ? { from, to } : undefined;
}

export class Backfill {
  private running = false;
  private failures = 0;
  private retryAt = 0;
  private started: { at: number; rows: number } | undefined;
  /**
   * Postgres lacks seqs the room should be able to read (a gap no archive mark explains), or the conversation is gone:
   * retrying would wake the room for nothing, so this instance stops; the next one (after an eviction) tries again.
   */
  private stopped = false;

  constructor(private readonly deps: BackfillDeps) {}

  /** Whether seqs older than those held remain to be read. */
  incomplete(): boolean {
    const meta = this.deps.store.meta();
    return meta !== undefined && nextChunk(meta.heldFrom, this.deps.archivedUpToSeq()) !== undefined;
  }

  private waiting(): boolean {
    return this.running || this.stopped || !this.incomplete();
  }

  /** When the next chunk is due (for the room's alarm), or undefined: complete, or a chunk is being read now. */
  dueAt(now: number): number | undefined {
    if (this.waiting()) return undefined;
    return Math.max(this.retryAt, now + BACKFILL_NEXT_MS);
  }

  /** Whether the alarm running at `now` should read a chunk. */
  due(now: number): boolean {
    return !this.waiting() && this.retryAt <= now;
  }

  /** Reads and adopts one chunk. Never throws: a failure backs off (the room's alarm asks dueAt again). */
  async step(): Promise<void> {
    const meta = this.deps.store.meta();
    const chunk = meta && nextChunk(meta.heldFrom, this.deps.archivedUpToSeq());
    if (!chunk || this.running || this.stopped) return;
    this.running = true;
    if (!this.started) this.deps.log.info("history backfill started", { heldFrom: meta.heldFrom, archivedUpToSeq: this.deps.archivedUpToSeq() });
    const run = (this.started ??= { at: Date.now(), rows: 0 });
    try {
      const read = await this.deps.read(chunk.from, chunk.to);
      if (read.archivedUpToSeq === undefined) return this.stop("conversation gone", chunk, 0);
      this.deps.noteArchived(read.archivedUpToSeq);
      const adopted = this.deps.store.adoptBackfill(read.messages, chunk.from, chunk.to, this.deps.archivedUpToSeq());
      // Short, and not explained by the archive mark: claim nothing.
      if (!adopted && this.incomplete()) return this.stop("seqs missing in Postgres", chunk, read.messages.length);
      this.failures = 0;
      this.retryAt = 0;
      run.rows += read.messages.length;
      if (!this.incomplete()) {
        this.deps.log.info("history backfill complete", { rows: run.rows, ms: Date.now() - run.at });
        this.started = undefined;
      }
    } catch (err) {
      this.failures++;
      this.retryAt = Date.now() + backoffMs(this.failures, RETRY_BASE_MS, RETRY_CAP_MS);
      this.deps.log.warn("history backfill failed", { error: errorReason(err).slice(0, 200), failures: this.failures });
    } finally {
      this.running = false;
    }
  }

  private stop(reason: string, chunk: { from: number; to: number }, rows: number): void {
    this.stopped = true;
    this.deps.log.warn("history backfill stopped", { reason, from: chunk.from, to: chunk.to, rows });
  }
}
