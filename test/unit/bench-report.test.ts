import { describe, expect, it } from "vitest";
import { ratioMatrix, type Ratio } from "../../bench/harness/report";

const ratio = (what: string, edge: number, baseline: string, baselineValue: number): Ratio => ({
  what,
  edge,
  baseline,
  baselineValue,
  ratio: Math.round((edge / baselineValue) * 100) / 100,
});

describe("bench report: ratios at a glance", () => {
  it("puts each metric on one row with a column per baseline, and a dash where a baseline has no figure", () => {
    const lines = ratioMatrix([
      ratio("S1 p50", 2, "ws-floor", 0.2),
      ratio("S4 msgs/s", 1000, "ws-floor", 8000),
      ratio("S1 p50", 2, "socketio-pg", 1.25),
    ]);
    expect(lines).toContain("| Metric | edge | ÷ ws-floor | ÷ socketio-pg |");
    expect(lines).toContain("| S1 p50 | 2.00 | 10.00 | 1.60 |");
    expect(lines).toContain("| S4 msgs/s | 1000 | 0.13 | – |");
  });

  it("writes nothing when no ratio was measured", () => {
    expect(ratioMatrix([])).toEqual([]);
  });
});
