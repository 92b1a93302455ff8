import { describe, expect, it } from "vitest";
import { aggregatePresence, departedAt, HEARTBEAT_TIMEOUT_MS, nextPresenceCheck } from "../../src/domain/presence";

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
});
