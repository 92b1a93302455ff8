import { createRedis, withTimeout } from "../lib/redis";
import { anchoredEntriesPresent, chainHeadsAfter, type ChainHead } from "../db/queries/audit-anchors";
import { ANCHORS_KEY, CURSOR_FIELD, anchorField, readAnchors } from "./audit-anchor-store";
import type { JobDefinition, JobOutcome } from "./runner";

/**
 * Audit anchors: the newest entry (id and hash) of each audit chain, copied out of Postgres into Redis by the
 * `audit.anchor` job. The hash chain alone catches an entry changed or removed inside a chain, but not the newest
 * entries removed, nor a chain rewritten from some entry on by whoever can switch the append-only trigger off: the
 * chain that is left is consistent in itself. An anchor is what that chain must still contain, kept where a
 * Postgres owner cannot reach. Verification (audit-verify.ts) reports an anchored entry that is gone or changed.
 *
 * An anchor only moves forward, and only past an anchored entry that is still in place: when a chain has new
 * entries but its anchored one is gone, the old anchor stays (the break stays visible) and the run counts it.
 *
 * The run resumes after the newest entry it looked at, but Postgres's record of that (job_runs.cursor) outlives a
 * Redis that lost its data (flushed, replaced, the in-memory one of a restarted `npm run dev`): every chain without
 * newer entries then stayed unanchored for good. So the position is also kept in the anchors' hash, written with
 * them, and the run starts from the lower of the two; with no anchors at all, from the oldest entry again.
 */

/** How many log entries one batch looks at: one statement, one HMGET, one check, one HSET. */
const BATCH = 1000;

export function auditAnchorJob(): JobDefinition {
  return {
    name: "audit.anchor",
    intervalMs: 0,
    async run(ctx): Promise<JobOutcome> {
      const redis = createRedis(ctx.config);
      const recorded = typeof ctx.cursor === "number" ? ctx.cursor : 0;
      const [present, stored] = await withTimeout(
        Promise.all([redis.exists(ANCHORS_KEY), redis.hget<unknown>(ANCHORS_KEY, CURSOR_FIELD)]),
        3000,
        "audit anchors",
      );
      const kept = Number(stored);
      // No anchors at all: start over. Anchors written before the position was kept with them: job_runs has it.
      let cursor = present === 0 ? 0 : Number.isSafeInteger(kept) && kept > 0 ? Math.min(recorded, kept) : recorded;
      let anchored = 0;
      let held = 0;
      let more = false;
      for (;;) {
        const heads = await chainHeadsAfter(ctx.db, cursor, BATCH);
        if (heads.length === 0) break;
        const previous = await readAnchors(redis, heads.map((h) => h.conversationId));
        const toCheck: ChainHead[] = [...previous].map(([conversationId, a]) => ({ conversationId, ...a }));
        const present = await anchoredEntriesPresent(ctx.db, toCheck);
        const updates: Record<string, string> = {};
        for (const head of heads) {
          const before = previous.get(head.conversationId);
          if (before && before.id >= head.id) continue;
          if (before && !present.has(before.id)) {
            held++;
            ctx.log.error("audit anchor no longer in its chain: entries removed or rewritten", {
              conversationId: head.conversationId,
              anchoredId: before.id,
            });
            continue;
          }
          updates[anchorField(head.conversationId)] = `${head.id}:${head.hash}`;
        }
        anchored += Object.keys(updates).length;
        cursor = Math.max(...heads.map((h) => h.id));
        // The position goes with the anchors it covers, in one write.
        await withTimeout(redis.hset(ANCHORS_KEY, { ...updates, [CURSOR_FIELD]: String(cursor) }), 3000, "audit anchors");
        if (Date.now() >= ctx.deadline) {
          more = true;
          break;
        }
      }
      return { rows: anchored, details: { anchored, held }, cursor, more };
    },
  };
}
