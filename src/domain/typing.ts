/** Typing is a lease: refreshed by start_typing, ended by stop, send, disconnect or expiry (an alarm). */
export const TYPING_LEASE_MS = 6_000;

export interface Lease {
  userId: string;
  expiresAt: number;
}

export function expired(leases: Lease[], now: number): string[] {
  return leases.filter((l) => l.expiresAt <= now).map((l) => l.userId);
}

export function nextExpiry(leases: Lease[], now: number): number | undefined {
  const live = leases.filter((l) => l.expiresAt > now).map((l) => l.expiresAt);
  return live.length ? Math.min(...live) : undefined;
}

/** Who `viewer` is shown typing: live leases of everyone else (a user's own typing is never echoed to them). */
export function typingSeenBy(leases: Lease[], viewer: string, now: number): string[] {
  return leases.filter((l) => l.expiresAt > now && l.userId !== viewer).map((l) => l.userId);
}
