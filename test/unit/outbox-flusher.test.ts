// The room's group commit (OutboxFlusher) over a small in-memory store, with Postgres writes the test lands by hand:
// how many flights fly at once, what each carries, and when a sender's wait ends.
import { describe, expect, it } from "vitest";
import type { AuditEntry } from "../../src/db/queries/audit";
import type { ReadWatermark, StoredMessage } from "../../src/db/queries/messages";
import { MAX_FLIGHTS, OutboxFlusher, SECOND_FLIGHT_MIN_WAIT_MS, type OutboxStore, type PendingRow } from "../../src/durable-objects/room/outbox";

class MemoryStore implements OutboxStore {
  rows = new Map<number, { message: StoredMessage; version: number; pending: boolean }>();
  marks = new Map<string, ReadWatermark>();
  auditLog: { id: number; entry: AuditEntry }[] = [];
  extrasVersion = 0;
  scans = 0;

  append(seq: number, content = `m${seq}`): void {
    this.rows.set(seq, { message: message(seq, content), version: 0, pending: true });
  }
  edit(seq: number, content: string): void {
    const r = this.rows.get(seq)!;
    this.rows.set(seq, { message: { ...r.message, content }, version: r.version + 1, pending: true });
  }
  mark(userId: string, lastReadSeq: number): void {
    this.marks.set(userId, { userId, lastReadSeq });
    this.extrasVersion++;
  }
  pending(limit: number): PendingRow[] {
    this.scans++;
    return [...this.rows.values()]
      .filter((r) => r.pending)
      .sort((a, b) => a.message.seq - b.message.seq)
      .slice(0, limit)
      .map((r) => ({ message: r.message, version: r.version }));
  }
  watermarks(): ReadWatermark[] {
    return [...this.marks.values()].map((w) => ({ ...w }));
  }
  audits() {
    return this.auditLog.slice();
  }
  markFlushed(rows: PendingRow[]): void {
    for (const r of rows) {
      const row = this.rows.get(r.message.seq)!;
      if (row.version === r.version) row.pending = false;
    }
  }
  clearWatermarks(flushed: ReadWatermark[]): void {
    for (const w of flushed) if ((this.marks.get(w.userId)?.lastReadSeq ?? 0) <= (w.lastReadSeq ?? 0)) this.marks.delete(w.userId);
  }
  clearAudits(upToId: number): void {
    this.auditLog = this.auditLog.filter((a) => a.id > upToId);
  }
}

function message(seq: number, content: string): StoredMessage {
  return {
    id: `00000000-0000-4000-8000-${String(seq).padStart(12, "0")}`,
    conversationId: "00000000-0000-4000-8000-000000000000",
    seq,
    senderId: "00000000-0000-4000-8000-00000000aaaa",
    clientMessageId: null,
    type: "text",
    content,
    replyToId: null,
    createdAt: new Date(0).toISOString(),
    editedAt: null,
    deletedAt: null,
    status: "pending",
    eventSeq: seq,
  };
}

/**
 * A Postgres stand-in whose commits the test lands one by one; `db` holds what was committed. `clock.t` is the
 * flusher's clock (ms): a flight's round trip is the time between its launch and its landing.
 */
function harness() {
  const store = new MemoryStore();
  const clock = { t: 0 };
  const writes: { seqs: string[]; watermarks: string[]; land(): void; fail(err: Error): void }[] = [];
  const db = new Map<number, string>();
  const readState = new Map<string, number>();
  const flusher = new OutboxFlusher({
    store,
    write: (batch, watermarks) =>
      new Promise<void>((resolve, reject) => {
        writes.push({
          seqs: batch.map((m) => `${m.seq}:${m.content}`),
          watermarks: watermarks.map((w) => `${w.userId}@${w.lastReadSeq}`),
          land: () => {
            for (const m of batch) db.set(m.seq, m.content);
            for (const w of watermarks) readState.set(w.userId, Math.max(readState.get(w.userId) ?? 0, w.lastReadSeq ?? 0));
            resolve();
          },
          fail: reject,
        });
      }),
    onCommitted: () => {},
    onFailed: () => {},
    now: () => clock.t,
  });
  return { store, writes, db, readState, flusher, clock };
}

const settled = () => new Promise((r) => setTimeout(r, 0));

/** Messages 1..count, each followed by the sender's wait: the first at t = 0, the rest at t = 8 ms. */
function sendEach(store: MemoryStore, flusher: OutboxFlusher, clock: { t: number }, count: number) {
  const waits = [];
  for (let seq = 1; seq <= count; seq++) {
    if (seq === 2) clock.t = 8;
    store.append(seq);
    waits.push(track(flusher.flush()));
  }
  return waits;
}

function track(p: Promise<void>) {
  const state = { done: false, error: undefined as unknown };
  p.then(
    () => (state.done = true),
    (err) => (state.error = err),
  );
  return state;
}

describe("outbox group commit", () => {
  it("sends a message that arrives while a flight is out at once, in a second flight; an ack means everything before it is in", async () => {
    const { store, writes, db, flusher } = harness();
    store.append(1);
    const first = track(flusher.flush());
    store.append(2);
    const second = track(flusher.flush());
    await settled();
    expect(writes.map((w) => w.seqs)).toEqual([["1:m1"], ["2:m2"]]);
    writes[1].land();
    await settled();
    expect(db.has(2)).toBe(true);
    // Message 2 is in, but 1, sent before it, is still in the air: the ack of 2 waits for it.
    expect(second.done).toBe(false);
    writes[0].land();
    await settled();
    expect(first.done).toBe(true);
    expect(second.done).toBe(true);
  });

  it(`with ${MAX_FLIGHTS} flights out, later messages wait for a free slot and go together`, async () => {
    const { store, writes, db, flusher, clock } = harness();
    const waits = sendEach(store, flusher, clock, 5);
    await settled();
    expect(writes.map((w) => w.seqs)).toEqual([["1:m1"], ["2:m2"]]);
    // 10 ms round trips: the second flight is expected out for 8 ms more, not worth waiting for.
    clock.t = 10;
    writes[0].land();
    await settled();
    expect(writes.map((w) => w.seqs)).toEqual([["1:m1"], ["2:m2"], ["3:m3", "4:m4", "5:m5"]]);
    expect(waits.map((w) => w.done)).toEqual([true, false, false, false, false]);
    writes[2].land();
    writes[1].land();
    await settled();
    expect(waits.every((w) => w.done)).toBe(true);
    expect([...db.keys()].sort()).toEqual([1, 2, 3, 4, 5]);
  });

  it("never flies one message twice at once: an edit made in flight is written after the flight lands, before the editor's wait ends", async () => {
    const { store, writes, db, flusher } = harness();
    store.append(1);
    const send = track(flusher.flush());
    store.edit(1, "edited");
    const edit = track(flusher.flush());
    await settled();
    expect(writes.map((w) => w.seqs)).toEqual([["1:m1"]]);
    writes[0].land();
    await settled();
    expect(send.done).toBe(true);
    expect(edit.done).toBe(false);
    expect(writes.map((w) => w.seqs)).toEqual([["1:m1"], ["1:edited"]]);
    writes[1].land();
    await settled();
    expect(edit.done).toBe(true);
    expect(db.get(1)).toBe("edited");
  });

  it("one flight at a time carries the read watermarks; a read marked meanwhile goes in a later one", async () => {
    const { store, writes, readState, flusher } = harness();
    store.mark("u1", 3);
    const read1 = track(flusher.flush());
    store.mark("u1", 5);
    store.append(6);
    const read2 = track(flusher.flush());
    await settled();
    expect(writes.map((w) => [w.seqs, w.watermarks])).toEqual([
      [[], ["u1@3"]],
      [["6:m6"], []],
    ]);
    writes[1].land();
    writes[0].land();
    await settled();
    expect(read1.done).toBe(true);
    expect(read2.done).toBe(false);
    expect(writes[2].watermarks).toEqual(["u1@5"]);
    writes[2].land();
    await settled();
    expect(read2.done).toBe(true);
    expect(readState.get("u1")).toBe(5);
  });

  it("a failed flight fails the waits that need it, keeps its rows pending and is not retried by the flusher", async () => {
    const { store, writes, flusher } = harness();
    store.append(1);
    const send = track(flusher.flush());
    await settled();
    writes[0].fail(new Error("connection reset"));
    await settled();
    expect(send.error).toBeInstanceOf(Error);
    expect(writes).toHaveLength(1);
    expect(store.pending(10).map((r) => r.message.seq)).toEqual([1]);
    // The room's alarm retries: the next flush takes the row again.
    const retry = track(flusher.flush());
    await settled();
    writes[1].land();
    await settled();
    expect(retry.done).toBe(true);
    expect(store.pending(10)).toEqual([]);
  });

  it("a flight that fails while others wait for a slot fails those waits, and the next flush launches as usual", async () => {
    const { store, writes, flusher, clock } = harness();
    for (const seq of [1, 2]) {
      store.append(seq);
      void flusher.flush().catch(() => {});
    }
    store.append(3);
    const waiting = track(flusher.flush());
    await settled();
    expect(writes).toHaveLength(2);
    writes[0].fail(new Error("connection reset"));
    await settled();
    expect(waiting.error).toBeInstanceOf(Error);
    // The room's retry: 1 and 3 fly again beside 2; 4 then waits for a slot, and gets one.
    clock.t = 8;
    const retry = track(flusher.flush());
    store.append(4);
    const next = track(flusher.flush());
    await settled();
    expect(writes.slice(2).map((w) => w.seqs)).toEqual([["1:m1", "3:m3"]]);
    expect(next.error).toBeUndefined();
    clock.t = 10;
    writes[1].land();
    await settled();
    expect(writes.slice(3).map((w) => w.seqs)).toEqual([["4:m4"]]);
    writes[2].land();
    writes[3].land();
    await settled();
    expect(retry.done && next.done).toBe(true);
    expect(store.pending(10)).toEqual([]);
  });

  it("under overload, a landing wakes one relaunch, not every waiting sender", async () => {
    const { store, writes, flusher, clock } = harness();
    const waits = sendEach(store, flusher, clock, 200);
    await settled();
    const scansBefore = store.scans;
    clock.t = 10;
    writes[0].land();
    await settled();
    expect(store.scans - scansBefore).toBeLessThanOrEqual(2);
    expect(writes[2].seqs).toHaveLength(198);
    writes[1].land();
    writes[2].land();
    await settled();
    expect(waits.every((w) => w.done)).toBe(true);
  });

  it("against a nearby database (flights land within a millisecond) a message waits for the flight in the air instead of launching another", async () => {
    const { store, writes, flusher, clock } = harness();
    store.append(1);
    const first = track(flusher.flush());
    await settled();
    clock.t = SECOND_FLIGHT_MIN_WAIT_MS / 2;
    writes[0].land();
    await settled();
    expect(first.done).toBe(true);
    store.append(2);
    const second = track(flusher.flush());
    store.append(3);
    const third = track(flusher.flush());
    await settled();
    expect(writes.slice(1).map((w) => w.seqs)).toEqual([["2:m2"]]);
    clock.t = SECOND_FLIGHT_MIN_WAIT_MS;
    writes[1].land();
    await settled();
    expect(second.done).toBe(true);
    expect(writes.slice(2).map((w) => w.seqs)).toEqual([["3:m3"]]);
    writes[2].land();
    await settled();
    expect(third.done).toBe(true);
  });

  it("receipts alone do not take a message's slot: a message still flies beside a message flight and a receipts flight", async () => {
    const { store, writes, flusher } = harness();
    store.append(1);
    void flusher.flush();
    store.mark("u1", 1);
    const read = track(flusher.flush());
    store.append(2);
    const send = track(flusher.flush());
    await settled();
    expect(writes.map((w) => [w.seqs, w.watermarks])).toEqual([
      [["1:m1"], []],
      [[], ["u1@1"]],
      [["2:m2"], []],
    ]);
    for (const w of writes) w.land();
    await settled();
    expect(read.done && send.done).toBe(true);
  });
});
