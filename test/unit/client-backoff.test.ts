import { describe, expect, it } from "vitest";
import { Backoff, backoffDelay } from "../../src/client/backoff";

describe("client backoff", () => {
  it("grows exponentially up to the cap, with no jitter when asked", () => {
    const o = { initialMs: 100, maxMs: 1000, factor: 2, jitter: 0 };
    expect([0, 1, 2, 3, 4, 5, 20].map((a) => backoffDelay(a, o))).toEqual([100, 200, 400, 800, 1000, 1000, 1000]);
  });

  it("keeps jittered delays inside [base·(1−jitter), base]", () => {
    const o = { initialMs: 1000, maxMs: 30_000, factor: 2, jitter: 0.5 };
    expect(backoffDelay(3, o, () => 0)).toBe(4000);
    expect(backoffDelay(3, o, () => 0.999999)).toBe(8000);
    for (let i = 0; i < 1000; i++) {
      const d = backoffDelay(i % 8, o);
      const base = Math.min(30_000, 1000 * 2 ** (i % 8));
      expect(d).toBeGreaterThanOrEqual(base / 2);
      expect(d).toBeLessThanOrEqual(base);
    }
  });

  it("full jitter spreads over [0, base]; many clients do not retry in step", () => {
    const delays = Array.from({ length: 200 }, () => backoffDelay(4, { initialMs: 100, jitter: 1 }));
    expect(Math.min(...delays)).toBeLessThan(400);
    expect(Math.max(...delays)).toBeGreaterThan(1200);
    expect(new Set(delays).size).toBeGreaterThan(50);
  });

  it("never returns a negative, NaN or unbounded delay for odd inputs", () => {
    for (const a of [-5, 0, 1e9, Number.MAX_SAFE_INTEGER]) {
      const d = backoffDelay(a, { maxMs: 5000 });
      expect(Number.isFinite(d)).toBe(true);
      expect(d).toBeGreaterThanOrEqual(0);
      expect(d).toBeLessThanOrEqual(5000);
    }
  });

  it("Backoff counts attempts and starts over after reset", () => {
    const b = new Backoff({ initialMs: 10, jitter: 0 });
    expect([b.next(), b.next(), b.next()]).toEqual([10, 20, 40]);
    expect(b.attempts).toBe(3);
    b.reset();
    expect(b.next()).toBe(10);
  });
});
