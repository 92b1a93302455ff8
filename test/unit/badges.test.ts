import { describe, expect, it } from "vitest";
import { badgeOf, totalUnread, withCount, withMessages } from "../../src/domain/badges";

const fresh = badgeOf(undefined);

describe("unread badges from counts and notifications in any order", () => {
  it("a read mark that already saw a message is not undone by that message's late notification", () => {
    // Read up to 6 with messages up to 6 in the room: 0. The notification of 6 comes after (it waits for the commit).
    const read = withCount(withMessages(fresh, [5]), 0, 6, 6);
    expect(withMessages(read, [6]).count).toBe(0);
    // Either order ends the same.
    expect(withCount(withMessages(withMessages(fresh, [5]), [6]), 0, 6, 6).count).toBe(0);
  });

  it("keeps messages notified after the count it is given, and ignores a count older than the one it has", () => {
    const counted = withMessages(withCount(fresh, 2, 10, 8), [11, 12]);
    expect(counted.count).toBe(4);
    // A read computed when the room was at 10 arrives after 11 and 12 were notified: they stay unread.
    const staleRead = withCount(counted, 0, 10, 10);
    expect(staleRead.count).toBe(2);
    // A count from before (an earlier read, arriving late) changes nothing.
    expect(withCount(staleRead, 5, 9, 4)).toBe(staleRead);
    expect(withCount(staleRead, 1, 10, 9)).toBe(staleRead);
    // A read past the notified seqs clears them.
    expect(withCount(staleRead, 0, 12, 12)).toEqual({ count: 0, asOf: 12, readSeq: 12, counted: [] });
  });

  it("counts each seq once, and never one the read mark covers", () => {
    const b = withMessages(withMessages(fresh, [1, 2]), [2, 3]);
    expect(b.count).toBe(3);
    expect(withMessages(withCount(fresh, 0, 4, 5), [5, 6]).count).toBe(1);
  });

  it("keeps a bounded list of notified seqs, folding older ones into the absolute part", () => {
    const b = withMessages(fresh, Array.from({ length: 250 }, (_, i) => i + 1));
    expect(b.count).toBe(250);
    expect(b.counted).toHaveLength(200);
    expect(b.asOf).toBe(50);
    expect(withMessages(b, [40]).count).toBe(250);
  });

  it("reads counts stored before badges knew seqs, and totals them", () => {
    expect(badgeOf(3)).toEqual({ count: 3, asOf: 0, readSeq: 0, counted: [] });
    expect(totalUnread({ a: 3, b: withMessages(fresh, [1, 2]) })).toBe(5);
  });
});
