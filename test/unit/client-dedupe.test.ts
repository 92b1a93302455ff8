import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { SeqBuffer, VersionSet } from "../../src/client/seq";

describe("client dedupe by seq", () => {
  it("delivers in order, drops duplicates, and holds messages after a gap until it is filled", () => {
    const b = new SeqBuffer<string>(0);
    expect(b.offer(1, "1").deliver).toEqual(["1"]);
    expect(b.offer(1, "1 again")).toEqual({ deliver: [], duplicate: true });
    expect(b.offer(3, "3").deliver).toEqual([]);
    expect(b.hasGap).toBe(true);
    expect(b.firstHeld).toBe(3);
    expect(b.offer(3, "3 again").duplicate).toBe(true);
    expect(b.offer(2, "2").deliver).toEqual(["2", "3"]);
    expect(b.hasGap).toBe(false);
    expect(b.lastSeq).toBe(3);
  });

  it("starts from a known position: anything at or below it is a duplicate", () => {
    const b = new SeqBuffer<number>(10);
    expect(b.offer(10, 10).duplicate).toBe(true);
    expect(b.offer(11, 11).deliver).toEqual([11]);
  });

  it("property: any interleaving of live frames and overlapping replays yields every seq once, in order", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 60 }),
        fc.array(fc.tuple(fc.integer({ min: 1, max: 60 }), fc.integer({ min: 1, max: 60 })), { maxLength: 30 }),
        fc.integer({ min: 0, max: 1_000_000 }),
        (n, replays, seed) => {
          // Live frames in order, with replays of arbitrary ranges spliced in and a few shuffled neighbours.
          const stream: number[] = [];
          for (let s = 1; s <= n; s++) stream.push(s);
          for (const [a, b] of replays) {
            const at = (a * 7919 + seed) % (stream.length + 1);
            const lo = Math.min(a, b, n);
            const hi = Math.min(Math.max(a, b), n);
            const range = Array.from({ length: hi - lo + 1 }, (_, i) => lo + i);
            stream.splice(at, 0, ...range);
          }
          const buf = new SeqBuffer<number>(0);
          const out: number[] = [];
          for (const s of stream) out.push(...buf.offer(s, s).deliver);
          return out.length === n && out.every((s, i) => s === i + 1) && !buf.hasGap;
        },
      ),
      { numRuns: 300 },
    );
  });

  it("VersionSet passes each version of a message once and stays bounded", () => {
    const v = new VersionSet(3);
    expect(v.add("m1", "a")).toBe(true);
    expect(v.add("m1", "a")).toBe(false);
    expect(v.add("m1", "b")).toBe(true);
    v.add("m2", "a");
    v.add("m3", "a");
    v.add("m4", "a");
    // m1 was the oldest: forgotten, so its version counts as new again.
    expect(v.add("m1", "b")).toBe(true);
  });
});
