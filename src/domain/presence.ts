import type { PresenceStatus } from "../protocol/frames";

/** Contract §6: heartbeat every 25 s; a device silent for 60 s is gone. */
export const HEARTBEAT_TIMEOUT_MS = 60_000;
/** A user whose last device left is published offline only after this grace, so a reconnect does not flap. */
export const OFFLINE_GRACE_MS = 3_000;

export interface DeviceState {
  /** What the device asked for (set_presence). */
  status: "online" | "away";
  /** Last frame of any kind (heartbeat included). */
  lastSeen: number;
  /** Last sign of a person: connect, set_presence online, activity in a conversation (withActivity). */
  lastActive: number;
}

export interface Presence {
  status: PresenceStatus;
  lastSeen: number;
}

/** The best of the user's devices: online > away > offline. */
export function aggregatePresence(devices: DeviceState[], now: number, awayAfterMs: number, previousLastSeen = 0): Presence {
  const live = devices.filter((d) => now - d.lastSeen <= HEARTBEAT_TIMEOUT_MS);
  const lastSeen = Math.max(previousLastSeen, ...devices.map((d) => d.lastSeen));
  if (live.length === 0) return { status: "offline", lastSeen };
  const online = live.some((d) => d.status === "online" && now - d.lastActive < awayAfterMs);
  return { status: online ? "online" : "away", lastSeen };
}

/**
 * When a device that is leaving was last seen. Its socket goes with it, and the aggregate's lastSeen was the time the
 * user came online: "last seen" showed the start of a session that had just ended. One closing while live was there
 * until the close; one closed for its silence, at its last frame.
 */
export function departedAt(device: DeviceState, now: number): number {
  return now - device.lastSeen > HEARTBEAT_TIMEOUT_MS ? device.lastSeen : now;
}

/** When the aggregate could next change without any frame arriving (a device timing out or going idle). */
export function nextPresenceCheck(devices: DeviceState[], now: number, awayAfterMs: number): number | undefined {
  const times: number[] = [];
  for (const d of devices) {
    times.push(d.lastSeen + HEARTBEAT_TIMEOUT_MS + 1);
    if (d.status === "online") times.push(d.lastActive + awayAfterMs + 1);
  }
  const future = times.filter((t) => t > now);
  return future.length ? Math.min(...future) : undefined;
}

/**
 * A person sending, typing or reading in a conversation is active, though their user socket carries only heartbeats:
 * without a word from the room, a user chatting in a tab that stayed visible went `away` after PRESENCE_AWAY_AFTER.
 * Only devices that say `online` take it; one the client set `away` (app in the background) stays so.
 */
export function withActivity(device: DeviceState, now: number): DeviceState {
  return device.status === "online" && device.lastActive < now ? { ...device, lastActive: now } : device;
}

/**
 * Which users' activity a room passes on to their sessions, at most once per a quarter of PRESENCE_AWAY_AFTER (a
 * minute at most) per user: one RPC per chatter per minute, not one per message. In memory: after an eviction the
 * first sign goes out again, which is harmless.
 */
export class ActivityNotes {
  private readonly last = new Map<string, number>();

  due(userId: string, now: number, awayAfterMs: number): boolean {
    const every = Math.min(60_000, awayAfterMs / 4);
    const last = this.last.get(userId);
    if (last !== undefined && now - last < every) return false;
    this.last.set(userId, now);
    return true;
  }
}
