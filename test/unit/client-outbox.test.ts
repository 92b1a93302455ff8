import { describe, expect, it } from "vitest";
import { Outbox } from "../../src/client/outbox";

const entry = (id: string) => ({ clientMessageId: id, content: `c-${id}`, type: "text" as const, replyToId: null, createdAt: "2026-01-01T00:00:00.000Z" });

describe("client outbox", () => {
  it("keeps order, and adding the same clientMessageId twice keeps one entry", () => {
    const o = new Outbox();
    o.add(entry("a"));
    o.add(entry("b"));
    o.add(entry("a"));
    expect(o.list().map((e) => e.clientMessageId)).toEqual(["a", "b"]);
  });

  it("the oldest is due on a new connection, and again only after the ack timeout; the next waits for it", () => {
    const o = new Outbox();
    o.add(entry("a"));
    o.add(entry("b"));
    expect(o.next(1000, 5000)?.clientMessageId).toBe("a");
    o.markSent("a", 1000, "m1");
    expect(o.next(3000, 5000)).toBeUndefined();
    expect(o.next(6000, 5000)?.clientMessageId).toBe("a");
    o.connectionChanged();
    expect(o.next(1001, 5000)?.clientMessageId).toBe("a");
    expect(o.get("a")?.attempts).toBe(1);
    o.remove("a");
    expect(o.next(1001, 5000)?.clientMessageId).toBe("b");
  });

  it("finds an entry by the frame id an error names, and only removes on explicit remove", () => {
    const o = new Outbox();
    o.add(entry("a"));
    o.markSent("a", 0, "m7");
    expect(o.byFrameId("m7")?.clientMessageId).toBe("a");
    expect(o.byFrameId("m8")).toBeUndefined();
    o.connectionChanged();
    expect(o.byFrameId("m7")).toBeUndefined();
    expect(o.size).toBe(1);
    expect(o.remove("a")?.content).toBe("c-a");
    expect(o.size).toBe(0);
  });

  it("a transient refusal holds the entry back until its retry time", () => {
    const o = new Outbox();
    o.add(entry("a"));
    o.markSent("a", 0, "m1");
    o.retryLater("a", 100, 500);
    expect(o.next(300, 10_000)).toBeUndefined();
    expect(o.next(600, 10_000)?.clientMessageId).toBe("a");
  });

  it("list() hands out copies: callers cannot corrupt the queue", () => {
    const o = new Outbox();
    o.add(entry("a"));
    o.list()[0].content = "changed";
    expect(o.get("a")?.content).toBe("c-a");
  });
});

describe("client outbox: order", () => {
  it("an entry held back after a transient refusal holds back the entries written after it", () => {
    const o = new Outbox();
    o.add(entry("a"));
    o.markSent("a", 0, "m1");
    o.retryLater("a", 100, 500);
    o.add(entry("b"));
    expect(o.next(300, 10_000)).toBeUndefined();
    expect(o.next(600, 10_000)?.clientMessageId).toBe("a");
  });
});

describe("client outbox: a new connection", () => {
  it("forgets the retry time and the refusals of the old connection: the entry is due at once", () => {
    const o = new Outbox();
    o.add(entry("a"));
    o.markSent("a", 0, "m1");
    o.retryLater("a", 100, 30_000);
    expect(o.get("a")?.refusals).toBe(1);
    o.connectionChanged();
    expect(o.next(200, 10_000)?.clientMessageId).toBe("a");
    expect(o.get("a")?.refusals).toBeUndefined();
  });
});
