import { describe, expect, it } from "vitest";
import { Backfill, BACKFILL_CHUNK, nextChunk, type BackfillDeps, type BackfillStore } from "../../src/durable-objects/room/backfill";
import type { StoredMessage } from "../../src/db/queries/messages";

describe("nextChunk", () => {
  it("reads up to a chunk just below heldFrom, never at or below the archive mark, and nothing once it meets it", () => {
    expect(nextChunk(2501, 0)).toEqual({ from: 2501 - BACKFILL_CHUNK, to: 2500 });
    expect(nextChunk(501, 0)).toEqual({ from: 1, to: 500 });
    expect(nextChunk(501, 120)).toEqual({ from: 121, to: 500 });
    expect(nextChunk(1, 0)).toBeUndefined();
    expect(nextChunk(121, 120)).toBeUndefined();
    // The archive mark passed heldFrom: everything left is archived.
    expect(nextChunk(100, 500)).toBeUndefined();
  });
});

/** A room of lastSeq 3000 holding 2901–3000, over a fake store that records what it is given. */
function setup(read: BackfillDeps["read"]) {
  let heldFrom = 2901;
  let archived = 0;
  const logs: string[] = [];
  const store: BackfillStore = {
    meta: () => ({ heldFrom }),
    // As RoomStore's: only seqs above the mark count, and only a complete range lowers heldFrom.
    adoptBackfill: (rows: StoredMessage[], from: number, to: number, mark: number) => {
      const low = Math.max(from, mark + 1);
      if (rows.filter((m) => m.seq >= low).length !== to - low + 1) return false;
      heldFrom = low;
      return true;
    },
  };
  const backfill = new Backfill({
    store,
    archivedUpToSeq: () => archived,
    noteArchived: (upTo) => {
      archived = Math.max(archived, upTo);
    },
    read,
    log: { info: (m: string) => logs.push(m), warn: (m: string) => logs.push(m), error: (m: string) => logs.push(m) } as unknown as BackfillDeps["log"],
  });
  return { backfill, logs, heldFrom: () => heldFrom };
}

const rows = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => ({ seq: from + i }) as StoredMessage);

describe("Backfill", () => {
  it("reads a chunk per step until it is complete, logging only the start and the end", async () => {
    const { backfill, logs, heldFrom } = setup(async (from, to) => ({ messages: rows(from, to), archivedUpToSeq: 0 }));
    const now = Date.now();
    expect(backfill.due(now)).toBe(true);
    for (let i = 0; i < 3; i++) await backfill.step();
    expect(heldFrom()).toBe(1);
    expect(backfill.incomplete()).toBe(false);
    expect(backfill.dueAt(now)).toBeUndefined();
    expect(logs).toEqual(["history backfill started", "history backfill complete"]);
  });

  it("backs off after a failed read, and is not due while a read is on its way", async () => {
    let fail = true;
    const { backfill, heldFrom } = setup(async (from, to) => {
      if (fail) throw new Error("down");
      return { messages: rows(from, to), archivedUpToSeq: 0 };
    });
    const now = Date.now();
    const first = backfill.step();
    expect(backfill.due(now)).toBe(false);
    expect(backfill.dueAt(now)).toBeUndefined();
    await first;
    expect(heldFrom()).toBe(2901);
    expect(backfill.due(Date.now())).toBe(false);
    expect(backfill.dueAt(Date.now())! - Date.now()).toBeGreaterThanOrEqual(900);
    fail = false;
    expect(backfill.due(Date.now() + 10 * 60_000)).toBe(true);
  });

  it("takes a newer archive mark from the read, and stops (claiming nothing) on a gap the mark does not explain", async () => {
    // Seq 1–2000 were archived meanwhile: the chunk below 2901 comes back as 2001–2900.
    const archivedMeanwhile = setup(async (from, to) => ({ messages: rows(Math.max(from, 2001), to), archivedUpToSeq: 2000 }));
    await archivedMeanwhile.backfill.step();
    expect(archivedMeanwhile.heldFrom()).toBe(2001);
    expect(archivedMeanwhile.backfill.incomplete()).toBe(false);
    expect(archivedMeanwhile.logs).toEqual(["history backfill started", "history backfill complete"]);

    const gap = setup(async (from, to) => ({ messages: rows(from, to).filter((m) => m.seq !== 2000), archivedUpToSeq: 0 }));
    await gap.backfill.step();
    expect(gap.heldFrom()).toBe(2901);
    expect(gap.logs).toContain("history backfill stopped");
    expect(gap.backfill.dueAt(Date.now())).toBeUndefined();
  });
});
