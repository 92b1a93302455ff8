import { errorReason } from "../lib/errors";
import { createRedis, withTimeout } from "../lib/redis";
import { metrics } from "../lib/metrics";
import { deleteExpiredTickets } from "../db/queries/tickets";
import { hotProfileIds } from "../db/queries/maintenance";
import { confirmOnline, staleOnlineUsers, type StaleOnlineCursor } from "../db/queries/user-session";
import { createProfileProvider, profileOptionsFromConfig } from "../profiles/provider";
import { refreshHotProfiles } from "../profiles/refresh";
import { OUTBOX_PENDING_KEY, clearOutboxPending, pendingRooms, type RegistryPosition } from "./outbox-registry";
import { hasTime, type JobContext, type JobDefinition, type JobOutcome } from "./runner";

/**
 * Small maintenance jobs run by every Cron invocation (or on their interval).
 *
 * Typing leaves nothing behind outside an object: its leases live in each room's SQLite storage and end by the
 * room's own alarm (which sends typing_stop). Presence does: each user's session writes `users.online` on every
 * transition (rooms read it to decide whom to notify), and a write that fails is not retried by the session, so
 * `presenceReconcileJob` checks the flags that have not been written for a while against the sessions themselves.
 */

/** Realtime tickets live 60 s and are single use; expired, never-used ones are deleted here. */
export function ticketsJob(options: { name?: string; userIds?: string[] } = {}): JobDefinition {
  return {
    name: options.name ?? "tickets.expire",
    intervalMs: 0,
    async run(ctx): Promise<JobOutcome> {
      const expired = await deleteExpiredTickets(ctx.db, ctx.now, options.userIds);
      return { rows: expired, details: { expired } };
    },
  };
}

/** How long a room must have been registered before the sweeper looks at it (its own alarm retries first). */
export const SWEEP_MIN_AGE_MS = 30_000;

type SweepableRoom = {
  outboxStatus(): Promise<{ pending: number; lastSeq: number; retryAttempt: number }>;
  /** Recommended room RPC (see README): flush now, answer what is still pending. Absent until the room has it. */
  flushNow?: () => Promise<{ pending: number }>;
};

/**
 * Outbox sweeper: rooms registered as having unflushed messages (src/jobs/outbox-registry.ts) are asked for their
 * outbox; a room with nothing pending leaves the registry; one still pending is asked to flush now (when the room
 * offers `flushNow`) — its own alarm keeps retrying with backoff regardless. Publishes the backlog gauges (of the
 * rooms this run checked).
 *
 * Each run takes at most `limit` rooms, in registry order after where the previous run stopped (job_runs.cursor):
 * rooms that stay pending stay registered, and always starting from the oldest would check only them. A page that
 * is not full ends the pass; the next run starts again from the oldest.
 */
export function outboxSweepJob(options: { name?: string; limit?: number; registryKey?: string } = {}): JobDefinition {
  return {
    name: options.name ?? "outbox.sweep",
    intervalMs: 0,
    async run(ctx): Promise<JobOutcome> {
      const redis = createRedis(ctx.config);
      const limit = options.limit ?? 100;
      const key = options.registryKey ?? OUTBOX_PENDING_KEY;
      const after = (ctx.cursor as RegistryPosition | null) ?? null;
      const fetched = await pendingRooms(redis, ctx.now.getTime() - SWEEP_MIN_AGE_MS, limit + 1, { after, key });
      const rooms = fetched.slice(0, limit);
      let cleared = 0;
      let stillPending = 0;
      let backlog = 0;
      let unreachable = 0;
      let checked = 0;
      let last = after;
      for (const entry of rooms) {
        if (checked > 0 && !hasTime(ctx)) break;
        checked++;
        last = entry;
        const conversationId = entry.member;
        const ns = ctx.env.CONVERSATION_ROOM;
        const room = ns.get(ns.idFromName(conversationId)) as unknown as SweepableRoom;
        try {
          let { pending } = await withTimeout(room.outboxStatus(), 5000, "outbox status");
          if (pending > 0) pending = await flushNow(room, pending);
          if (pending === 0) {
            await clearOutboxPending(redis, conversationId, key);
            cleared++;
          } else {
            stillPending++;
            backlog += pending;
          }
        } catch (err) {
          unreachable++;
          ctx.log.warn("outbox sweep: room unreachable", { conversationId, error: errorReason(err).slice(0, 200) });
        }
      }
      metrics.gauge("outbox_backlog_messages", backlog);
      metrics.gauge("outbox_backlog_rooms", stillPending);
      const more = checked < rooms.length || fetched.length > limit;
      return {
        rows: checked,
        details: { registered: rooms.length, checked, cleared, stillPending, backlog, unreachable },
        cursor: more ? last : null,
        more,
      };
    },
  };
}

async function flushNow(room: SweepableRoom, pending: number): Promise<number> {
  try {
    const result = await withTimeout(room.flushNow!(), 10_000, "room flush");
    return result.pending;
  } catch {
    // The room does not offer flushNow yet, or Postgres is still down: its alarm keeps retrying.
    return pending;
  }
}

/** users.online older than this is checked against the user's session. */
export const PRESENCE_STALE_AFTER_MS = 30 * 60_000;

type ReconcilableSession = {
  reconcilePresence(userId: string): Promise<{ state: "online" | "settling" | "offline"; republished: boolean }>;
};

/**
 * Presence reconcile: users marked online whose flag was last written more than PRESENCE_STALE_AFTER_MS before
 * `now` (oldest first, at most `limit` per run) are checked with their UserSession. A session with devices is online:
 * the flag is confirmed (stamped `now`, so it is no longer stale). One without devices republishes offline
 * (users.online = false, then its rooms, contacts and desks). The reverse error (online but flagged offline) is
 * repaired by the session itself at the user's next presence change.
 *
 * A pass pages by (last_seen_at, id), the resume point in job_runs.cursor: users whose check failed keep their stale
 * flag, and without the cursor they would fill every page; the next pass (after a page that was not full) retries them.
 */
export function presenceReconcileJob(options: { name?: string; staleAfterMs?: number; limit?: number; userIds?: string[] } = {}): JobDefinition {
  return {
    name: options.name ?? "presence.reconcile",
    intervalMs: 0,
    async run(ctx): Promise<JobOutcome> {
      const before = new Date(ctx.now.getTime() - (options.staleAfterMs ?? PRESENCE_STALE_AFTER_MS));
      const limit = options.limit ?? 100;
      const after = (ctx.cursor as StaleOnlineCursor | null) ?? null;
      // One more than a page: whether anything is left after it.
      const fetched = await staleOnlineUsers(ctx.db, before, limit + 1, { after, userIds: options.userIds });
      const candidates = fetched.slice(0, limit);
      const counts = { candidates: candidates.length, checked: 0, confirmedOnline: 0, settling: 0, republishedOffline: 0, failed: 0 };
      let last: StaleOnlineCursor | null = after;
      for (const candidate of candidates) {
        if (counts.checked > 0 && !hasTime(ctx)) break;
        counts.checked++;
        last = candidate;
        const userId = candidate.id;
        const ns = ctx.env.USER_SESSION;
        const session = ns.get(ns.idFromName(userId)) as unknown as ReconcilableSession;
        try {
          const result = await withTimeout(session.reconcilePresence(userId), 5000, "presence reconcile");
          if (result.state === "online") {
            await confirmOnline(ctx.db, userId, ctx.now);
            counts.confirmedOnline++;
          } else if (result.state === "settling") counts.settling++;
          else if (result.republished) counts.republishedOffline++;
          else counts.failed++;
        } catch (err) {
          counts.failed++;
          ctx.log.warn("presence reconcile: session unreachable", { userId, error: errorReason(err).slice(0, 200) });
        }
      }
      const more = counts.checked < candidates.length || fetched.length > limit;
      return { rows: counts.checked, details: counts, cursor: more ? last : null, more };
    },
  };
}

/**
 * Refreshes the cached profiles of hot ids (senders of the last hour's messages, businesses of the last hour's
 * business conversations) through the profile module's public refresh helper, so readers keep hitting fresh
 * entries and never wait on the profile service. Runs at a quarter of PROFILE_CACHE_TTL (at least every hour).
 */
export function profileRefreshJob(options: { cacheTtlSeconds: number; limit?: number; name?: string }): JobDefinition {
  return {
    name: options.name ?? "profiles.refresh-hot",
    intervalMs: profileRefreshInterval(options.cacheTtlSeconds),
    async run(ctx): Promise<JobOutcome> {
      const since = new Date(ctx.now.getTime() - 60 * 60_000);
      const ids = await hotProfileIds(ctx.db, since, options.limit ?? 500);
      if (ids.userIds.length + ids.businessIds.length === 0) return { rows: 0, details: { requested: 0, refreshed: 0 } };
      const provider = createProfileProvider({ ...profileOptionsFromConfig(ctx.config), memory: false, log: ctx.log });
      const result = await refreshHotProfiles(provider, ids);
      if (!result.ok) ctx.log.warn("profile refresh incomplete", { reason: result.reason ?? "unknown" });
      return {
        rows: result.refreshed,
        details: { requested: result.requested, refreshed: result.refreshed, unknown: result.unknown, refreshOk: result.ok },
      };
    },
  };
}

export function profileRefreshInterval(cacheTtlSeconds: number): number {
  return Math.max(5 * 60_000, Math.min(60 * 60_000, (cacheTtlSeconds * 1000) / 4));
}
