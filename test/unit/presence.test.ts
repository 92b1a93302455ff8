import { describe, expect, it } from "vitest";
import { ActivityNotes, aggregatePresence, departedAt, HEARTBEAT_TIMEOUT_MS, nextPresenceCheck, withActivity } from "../../src/domain/presence";

const AWAY = 300_000;

describe("presence aggregation", () => {
  it("is offline with no live device, online with one active device, away when all are away or idle", () => {
    const now = 1_000_000;
    expect(aggregatePresence([], now, AWAY).status).toBe("offline");
    expect(aggregatePresence([{ status: "online", lastSeen: now, lastActive: now }], now, AWAY).status).toBe("online");
    expect(aggregatePresence([{ status: "away", lastSeen: now, lastActive: now }], now, AWAY).status).toBe("away");
    expect(aggregatePresence([{ status: "online", lastSeen: now, lastActive: now - AWAY }], now, AWAY).status).toBe("away");
  });

  it("takes the best device and ignores devices that stopped heartbeating", () => {
    const now = 5_000_000;
    const phone = { status: "away" as const, lastSeen: now, lastActive: now };
    const laptop = { status: "online" as const, lastSeen: now - HEARTBEAT_TIMEOUT_MS - 1, lastActive: now };
    expect(aggregatePresence([phone, laptop], now, AWAY).status).toBe("away");
    expect(aggregatePresence([phone, { ...laptop, lastSeen: now }], now, AWAY).status).toBe("online");
    expect(aggregatePresence([laptop], now, AWAY)).toEqual({ status: "offline", lastSeen: now - HEARTBEAT_TIMEOUT_MS - 1 });
  });

  it("knows when to look again without a frame", () => {
    const now = 100;
    const next = nextPresenceCheck([{ status: "online", lastSeen: now, lastActive: now }], now, AWAY);
    expect(next).toBe(now + HEARTBEAT_TIMEOUT_MS + 1);
    expect(nextPresenceCheck([], now, AWAY)).toBeUndefined();
  });

  it("a device leaving while live was last seen as it left; one closed for its silence, at its last frame", () => {
    const now = 10_000_000;
    expect(departedAt({ status: "online", lastSeen: now - 20_000, lastActive: now - 400_000 }, now)).toBe(now);
    expect(departedAt({ status: "away", lastSeen: now - HEARTBEAT_TIMEOUT_MS - 5, lastActive: 0 }, now)).toBe(now - HEARTBEAT_TIMEOUT_MS - 5);
  });

  it("activity in a conversation counts on devices that say online; one set away stays away", () => {
    const now = 2_000_000;
    const idle = { status: "online" as const, lastSeen: now, lastActive: now - AWAY - 1 };
    expect(aggregatePresence([withActivity(idle, now)], now, AWAY).status).toBe("online");
    const away = { ...idle, status: "away" as const };
    expect(withActivity(away, now)).toBe(away);
  });

  it("a room passes a user's activity on at most once a quarter of the away delay, a minute at most", () => {
    const notes = new ActivityNotes();
    expect(notes.due("u", 0, AWAY)).toBe(true);
    expect(notes.due("u", 59_999, AWAY)).toBe(false);
    expect(notes.due("other", 1, AWAY)).toBe(true);
    expect(notes.due("u", 60_000, AWAY)).toBe(true);
    const short = new ActivityNotes();
    expect(short.due("u", 0, 8_000)).toBe(true);
    expect(short.due("u", 2_000, 8_000)).toBe(true);
  });
});
