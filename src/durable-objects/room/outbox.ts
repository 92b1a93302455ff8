import type { ReadWatermark, StoredMessage } from "../../db/queries/messages";
import type { AuditEntry } from "../../db/queries/audit";

/** A message waiting for Postgres, with the version it had when read (an edit bumps it). */
export interface PendingRow {
  message: StoredMessage;
  version: number;
}

/** The part of the room's storage the flusher uses (RoomStore; a small fake in the unit tests). */
export interface OutboxStore {
  pending(limit: number): PendingRow[];
  watermarks(): ReadWatermark[];
  audits(): { id: number; entry: AuditEntry }[];
  /** Bumped by every watermark or audit entry stored: tells whether a flight's snapshot of them is still whole. */
  readonly extrasVersion: number;
  markFlushed(rows: PendingRow[]): void;
  clearWatermarks(flushed: ReadWatermark[]): void;
  clearAudits(upToId: number): void;
}

export interface OutboxDeps {
  store: OutboxStore;
  /** Commits one batch of messages and watermarks to Postgres in one transaction. */
  write(batch: StoredMessage[], watermarks: ReadWatermark[], audit: AuditEntry[]): Promise<void>;
  onCommitted(rows: PendingRow[]): void;
  onFailed(err: unknown): void;
  /** Milliseconds; Date.now by default (in a Durable Object it moves with I/O, which is what flights are). */
  now?: () => number;
}

const BATCH = 500;

/**
 * Flights in the air at once. With one, a message that arrives while a flight is out waits for it to land and then
 * rides the next: 1.5 round trips to Postgres on average, and up to two, once the room sends faster than one round
 * trip per message. A second flight takes it at once. Flights never share a message, and only one carries the
 * watermarks and the audit entries (the audit chain is written in order, and two transactions that both update
 * participants could deadlock); otherwise their rows are independent upserts. A flight with watermarks or audits
 * only does not count here, so at most MAX_FLIGHTS + 1 are out.
 */
export const MAX_FLIGHTS = 2;

/**
 * A second flight costs a round of CPU in the room, the driver and Postgres (a commit of its own); it is worth it
 * only when the flight in the air is expected to stay out at least this long. Against a nearby database (here, 1 ms
 * round trips) the room therefore keeps one flight and its large batches; against a distant one it sends at once.
 */
export const SECOND_FLIGHT_MIN_WAIT_MS = 1;

interface Flight {
  /** seq → the version this flight writes. */
  rows: Map<number, number>;
  /** The store's extrasVersion when this flight took the watermarks and audits; undefined when it took none. */
  extras: number | undefined;
  done: Promise<void>;
  startedAt: number;
}

/**
 * Group commit with up to MAX_FLIGHTS flights: everything appended while the flights are full goes in the next
 * one. `flush()` resolves once everything pending at the call is in Postgres, and rejects when a flight it waited
 * for failed (the rows stay pending; retrying is the caller's alarm's business, not a loop here).
 */
export class OutboxFlusher {
  private readonly flights = new Set<Flight>();
  private relaunch: Promise<void> | undefined;
  /** Smoothed duration of recent flights; unknown (infinite) until one lands. */
  private roundTripMs = Number.POSITIVE_INFINITY;
  private readonly now: () => number;

  constructor(private readonly deps: OutboxDeps) {
    this.now = deps.now ?? Date.now;
  }

  flush(): Promise<void> {
    // The flights in the air now hold some of what is pending now; a flight launched now takes the rest.
    const needed = [...this.flights];
    const { flight, leftover } = this.launch();
    if (flight) needed.push(flight);
    const landed = Promise.all(needed.map((f) => f.done)).then(() => {});
    if (!leftover || this.flights.size === 0) return landed;
    // The rest waits for a slot. One relaunch serves every caller waiting meanwhile: a landing wakes one flush,
    // not each waiting sender (under overload that was a scan of the outbox per sender per landing).
    this.relaunch ??= Promise.race([...this.flights].map((f) => f.done)).then(
      () => {
        this.relaunch = undefined;
        return this.flush();
      },
      (err: unknown) => {
        this.relaunch = undefined;
        throw err;
      },
    );
    return Promise.all([landed, this.relaunch]).then(() => {});
  }

  /**
   * Starts a flight with the pending rows no flight holds (and the watermarks and audits, unless a flight holds
   * them). `leftover`: something pending now is in no flight, old or new, as it stands (no free slot, a row edited
   * while its older version flies, more than a batch, watermarks changed since their flight took them).
   */
  private launch(): { flight?: Flight; leftover: boolean } {
    const { store } = this.deps;
    const flying = new Map<number, number>();
    let extrasHolder: Flight | undefined;
    let messageFlights = 0;
    for (const f of this.flights) {
      for (const [seq, version] of f.rows) flying.set(seq, version);
      if (f.extras !== undefined) extrasHolder = f;
      if (f.rows.size > 0) messageFlights++;
    }
    // Receipts alone (a watermarks-only flight) do not take a message's slot: in a busy room every delivery is
    // followed by receipts, and they would otherwise keep the next message waiting.
    const messagesMayFly = messageFlights < MAX_FLIGHTS && this.worthAnotherFlight();
    if (!messagesMayFly && extrasHolder) return { leftover: true };
    const free: PendingRow[] = [];
    let leftover = !messagesMayFly;
    if (messagesMayFly) {
      const limit = BATCH + flying.size;
      const pending = store.pending(limit);
      leftover = pending.length === limit;
      for (const r of pending) {
        const version = flying.get(r.message.seq);
        if (version === undefined) free.push(r);
        else if (version !== r.version) leftover = true;
      }
      if (free.length > BATCH) {
        free.length = BATCH;
        leftover = true;
      }
    }
    const extrasVersion = store.extrasVersion;
    const watermarks = extrasHolder ? [] : store.watermarks();
    const audits = extrasHolder ? [] : store.audits();
    if (extrasHolder && extrasHolder.extras !== extrasVersion) leftover = true;
    const carriesExtras = watermarks.length > 0 || audits.length > 0;
    if (free.length === 0 && !carriesExtras) return { leftover };

    const flight: Flight = {
      rows: new Map(free.map((r) => [r.message.seq, r.version])),
      extras: carriesExtras ? extrasVersion : undefined,
      done: Promise.resolve(),
      startedAt: this.now(),
    };
    flight.done = this.fly(flight, free, watermarks, audits).finally(() => this.flights.delete(flight));
    this.flights.add(flight);
    return { flight, leftover: leftover || audits.length === BATCH };
  }

  /** With no flight out, always; otherwise when those out are expected to stay out long enough not to wait. */
  private worthAnotherFlight(): boolean {
    if (this.flights.size === 0) return true;
    const oldest = Math.min(...[...this.flights].map((f) => f.startedAt));
    return this.roundTripMs - (this.now() - oldest) >= SECOND_FLIGHT_MIN_WAIT_MS;
  }

  private async fly(flight: Flight, rows: PendingRow[], watermarks: ReadWatermark[], audits: { id: number; entry: AuditEntry }[]): Promise<void> {
    const { store } = this.deps;
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
    const took = Math.max(0, this.now() - flight.startedAt);
    this.roundTripMs = Number.isFinite(this.roundTripMs) ? 0.8 * this.roundTripMs + 0.2 * took : took;
    store.markFlushed(rows);
    if (watermarks.length) store.clearWatermarks(watermarks);
    if (audits.length) store.clearAudits(audits[audits.length - 1].id);
    this.deps.onCommitted(rows);
  }
}
