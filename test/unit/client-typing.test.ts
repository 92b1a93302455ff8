import { describe, expect, it } from "vitest";
import { TypingThrottle, type Clock } from "../../src/client/typing";

class FakeClock implements Clock {
  t = 0;
  private timers: { at: number; fn: () => void; id: number }[] = [];
  private ids = 0;
  now = () => this.t;
  setTimeout = (fn: () => void, ms: number) => {
    const id = ++this.ids;
    this.timers.push({ at: this.t + ms, fn, id });
    return id;
  };
  clearTimeout = (h: unknown) => {
    this.timers = this.timers.filter((x) => x.id !== h);
  };
  advance(ms: number) {
    const end = this.t + ms;
    for (;;) {
      const due = this.timers.filter((x) => x.at <= end).sort((a, b) => a.at - b.at)[0];
      if (!due) break;
      this.t = due.at;
      this.timers = this.timers.filter((x) => x !== due);
      due.fn();
    }
    this.t = end;
  }
}

describe("client typing throttle", () => {
  it("sends start_typing at most every 2 s while typing, and stop after 3 s idle", () => {
    const clock = new FakeClock();
    const sent: { at: number; type: string }[] = [];
    const t = new TypingThrottle((type) => sent.push({ at: clock.t, type }), {}, clock);
    // 10 s of a keystroke every 100 ms.
    for (let i = 0; i < 100; i++) {
      t.keystroke();
      clock.advance(100);
    }
    const starts = sent.filter((s) => s.type === "start_typing");
    expect(starts.length).toBe(5);
    for (let i = 1; i < starts.length; i++) expect(starts[i].at - starts[i - 1].at).toBeGreaterThanOrEqual(2000);
    expect(sent.some((s) => s.type === "stop_typing")).toBe(false);
    // The last keystroke was at 9.9 s: stop 3 s later.
    clock.advance(2899);
    expect(sent.at(-1)?.type).toBe("start_typing");
    clock.advance(1);
    expect(sent.at(-1)).toEqual({ at: 12_900, type: "stop_typing" });
    expect(t.isTyping).toBe(false);
  });

  it("stop() sends stop_typing only after a start; reset() forgets silently", () => {
    const clock = new FakeClock();
    const sent: string[] = [];
    const t = new TypingThrottle((type) => sent.push(type), { refreshMs: 2000, idleMs: 3000 }, clock);
    t.stop();
    expect(sent).toEqual([]);
    t.keystroke();
    t.stop();
    expect(sent).toEqual(["start_typing", "stop_typing"]);
    t.keystroke();
    t.reset();
    clock.advance(10_000);
    expect(sent).toEqual(["start_typing", "stop_typing", "start_typing"]);
    // After a reset the next keystroke starts again at once.
    t.keystroke();
    expect(sent.at(-1)).toBe("start_typing");
  });
});
