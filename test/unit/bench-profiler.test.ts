import { describe, expect, it } from "vitest";
import { sampleWeights, summarizeProfile, type CpuProfile } from "../../bench/harness/profiler";

const frame = (functionName: string, lineNumber: number) => ({ functionName, url: "index.js", lineNumber, scriptId: "1" });

/** 100 samples in `send` about 1 ms apart, then one in `parse` that ends a 142 ms pause of the sampler. */
function pausedProfile(): CpuProfile {
  const samples: number[] = [];
  const timeDeltas: number[] = [];
  for (let i = 0; i < 100; i++) {
    samples.push(2);
    timeDeltas.push(1000 + (i % 3) * 100);
  }
  samples.push(3);
  timeDeltas.push(142_000);
  return {
    nodes: [
      { id: 1, callFrame: frame("(root)", -1), children: [2, 3] },
      { id: 2, callFrame: frame("send", 10) },
      { id: 3, callFrame: frame("parse", 20) },
    ],
    samples,
    timeDeltas,
  };
}

describe("bench CPU profile summary", () => {
  it("does not hand a pause of the sampler to the function the next sample caught", () => {
    const summary = summarizeProfile(pausedProfile(), 5);
    const share = (name: string) => summary.self.find((h) => h.function.startsWith(name))?.selfPct ?? 0;
    expect(share("send")).toBeGreaterThan(95);
    expect(share("parse")).toBeLessThan(5);
  });

  it("keeps ordinary deltas as they are", () => {
    const weights = sampleWeights({ samples: [1, 1, 1, 1], timeDeltas: [900, 1100, 1000, 1200] });
    expect(weights).toEqual([900, 1100, 1000, 1200]);
  });
});
