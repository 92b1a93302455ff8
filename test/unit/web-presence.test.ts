import { describe, expect, it } from "vitest";
import { presenceText } from "../../web/src/format";
import { PresenceBook } from "../../web/src/presence";

describe("the web app's presence dots", () => {
  it("keeps a change pushed while a read is under way: the read's older answer does not put Online back", () => {
    const book = new PresenceBook();
    book.push({ userId: "bob", status: "online", lastSeen: null });
    const read = book.read();
    // Bob leaves while the read (asked after a reconnect) is answered.
    book.push({ userId: "bob", status: "offline", lastSeen: "2026-01-01T10:00:00.000Z" });
    read.apply([
      { userId: "bob", status: "online", lastSeen: null },
      { userId: "cat", status: "away", lastSeen: null },
    ]);
    read.end();
    expect(book.status("bob")).toBe("offline");
    expect(book.status("cat")).toBe("away");
    // The next read applies in full.
    const next = book.read();
    next.apply([{ userId: "bob", status: "online", lastSeen: null }]);
    next.end();
    expect(book.status("bob")).toBe("online");
  });

  it("says when someone offline was last seen, and keeps that time while they are online", () => {
    const book = new PresenceBook();
    expect(book.status("dan")).toBe("offline");
    expect(presenceText("offline", undefined)).toBe("Offline");
    const lastSeen = new Date().toISOString();
    book.push({ userId: "dan", status: "offline", lastSeen });
    expect(presenceText("offline", book.get("dan")?.lastSeen)).toMatch(/^Last seen \S/);
    expect(book.push({ userId: "dan", status: "online", lastSeen: null })).toBe(true);
    expect(book.get("dan")?.lastSeen).toBe(lastSeen);
    expect(presenceText("online", lastSeen)).toBe("Online");
    expect(presenceText("away", lastSeen)).toBe("Away");
  });

  it("says at what time someone was last seen on an earlier day, not only the date", () => {
    const now = new Date(2026, 10, 29, 18, 0);
    const yesterday = new Date(2026, 10, 28, 15, 4);
    const time = new Intl.DateTimeFormat(undefined, { hour: "numeric", minute: "2-digit" }).format(yesterday);
    const day = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric" }).format(yesterday);
    const text = presenceText("offline", yesterday.toISOString(), now);
    expect(text).toMatch(/^Last seen /);
    expect(text).toContain(day);
    expect(text).toContain(time);
  });
});
