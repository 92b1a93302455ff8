import { describe, expect, it } from "vitest";
import { calibrate, calibrationText } from "../../bench/harness/calibrate";

describe("bench machine-phase probe", () => {
  it("times a CPU workload and a loopback round trip to a child process", async () => {
    const c = await calibrate();
    expect(c.cpuMs).toBeGreaterThan(0);
    expect(c.rttP50Us).toBeGreaterThan(0);
    expect(c.rttP99Us).toBeGreaterThanOrEqual(c.rttP50Us);
    expect(calibrationText(c)).toMatch(/^CPU probe [\d.]+ ms, loopback RTT p50 \d+ \/ p99 \d+ µs$/);
  }, 30_000);
});
