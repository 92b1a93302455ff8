import type { ReadWatermark, StoredMessage } from "../../db/queries/messages";
import type { AuditEntry } from "../../db/queries/audit";
import type { PendingRow, RoomStore } from "./store";

export interface OutboxDeps {
  store: RoomStore;
  /** Commits one batch of messages and watermarks to Postgres in one transaction. */
  write(batch: StoredMessage[], watermarks: ReadWatermark[], audit: AuditEntry[]): Promise<void>;
  onCommitted(rows: PendingRow[]): void;
  onFailed(err: unknown): void;
}

const BATCH = 500;

/**
 * Group commit: one flush in flight at a time; everything appended meanwhile goes in the next one. `flush()`
 * resolves when a flush that started after the call has committed, so a caller waiting on it knows its own rows
 * are in Postgres.
 */
export class OutboxFlusher {
  private current: Promise<void> | undefined;
  private queued: Promise<void> | undefined;

  constructor(private readonly deps: OutboxDeps) {}

  flush(): Promise<void> {
    if (!this.current) {
      this.current = this.run().finally(() => {
        this.current = undefined;
      });
      return this.current;
    }
    this.queued ??= this.current
      .catch(() => {})
      .then(() => {
        this.queued = undefined;
        return this.flush();
      });
    return this.queued;
  }

  get busy(): boolean {
    return this.current !== undefined;
  }

  private async run(): Promise<void> {
    const { store } = this.deps;
    for (;;) {
      const rows = store.pending(BATCH);
      const watermarks = store.watermarks();
      const audits = store.audits();
      if (rows.length === 0 && watermarks.length === 0 && audits.length === 0) return;
      try {
        await this.deps.write(
          rows.map((r) => r.message),
          watermarks,
          audits.map((a) => a.entry),
        );
      } catch (err) {
        this.deps.onFailed(err);
        throw err;
      }
      store.markFlushed(rows);
      store.clearWatermarks(watermarks);
      if (audits.length) store.clearAudits(audits[audits.length - 1].id);
      this.deps.onCommitted(rows);
      if (rows.length < BATCH && audits.length < BATCH) return;
    }
  }
}
