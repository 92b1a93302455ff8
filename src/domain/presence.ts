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
  /** Last sign of a person: connect, set_presence online, get_presence. */
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
