import { describe, expect, it, vi } from "vitest";
import { ChatApiError } from "../../src/client/errors";
import { Emitter } from "../../src/client/emitter";

class Events extends Emitter<{ ping: number }> {
  fire(n: number) {
    this.emit("ping", n);
  }
}

describe("client event emitter", () => {
  it("off() with the listener given to once() removes it (it fired later anyway)", () => {
    const e = new Events();
    const fn = vi.fn();
    e.once("ping", fn);
    e.off("ping", fn);
    e.fire(1);
    expect(fn).not.toHaveBeenCalled();
  });

  it("a listener removed by an earlier one during the same event is not called (a view torn down by it)", () => {
    const e = new Events();
    const calls: string[] = [];
    const second = () => calls.push("second");
    e.on("ping", () => {
      calls.push("first");
      e.off("ping", second);
    });
    e.on("ping", second);
    e.fire(1);
    e.fire(2);
    expect(calls).toEqual(["first", "first"]);
  });

  it("a listener that removes itself, or throws, does not stop the others", () => {
    const e = new Events();
    const seen: number[] = [];
    const spy = vi.spyOn(console, "error").mockImplementation(() => {});
    const off = e.on("ping", () => off());
    e.on("ping", () => {
      throw new Error("boom");
    });
    e.on("ping", (n) => seen.push(n));
    e.fire(1);
    e.fire(2);
    expect(seen).toEqual([1, 2]);
    spy.mockRestore();
  });

  it("next() rejects when its match function throws, instead of waiting for ever", async () => {
    const e = new Events();
    const spy = vi.spyOn(console, "error").mockImplementation(() => {});
    const p = e.next("ping", () => {
      throw new Error("bad match");
    });
    e.fire(1);
    await expect(Promise.race([p, new Promise((r) => setTimeout(() => r("pending"), 50))])).rejects.toThrow("bad match");
    spy.mockRestore();
  });

  // A plain Error: an app could not tell this timeout from a bug, nor branch on a code as for every other failure.
  it("next() times out with the SDK's error, code `timeout`, which an app can branch on", async () => {
    const e = new Events();
    const error = await e.next("ping", () => true, 10).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(ChatApiError);
    expect(error).toMatchObject({ code: "timeout", statusCode: 0, message: 'timed out after 10 ms waiting for "ping"' });
  });
});
