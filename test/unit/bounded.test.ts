import { describe, expect, it } from "vitest";
import { settleBounded } from "../../src/lib/bounded";

describe("settleBounded", () => {
  it("keeps at most `limit` in flight and settles every item in input order", async () => {
    let inFlight = 0;
    let peak = 0;
    const results = await settleBounded([1, 2, 3, 4, 5, 6, 7], 3, async (n) => {
      inFlight++;
      peak = Math.max(peak, inFlight);
      await new Promise((r) => setTimeout(r, 5 * (8 - n)));
      inFlight--;
      if (n === 4) throw new Error("four");
      return n * 10;
    });
    expect(peak).toBe(3);
    expect(results.map((r) => (r.status === "fulfilled" ? r.value : (r.reason as Error).message))).toEqual([10, 20, 30, "four", 50, 60, 70]);
  });

  it("handles no items", async () => {
    expect(await settleBounded([], 4, async () => 1)).toEqual([]);
  });
});
