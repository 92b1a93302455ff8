import { createRedis, withTimeout } from "../lib/redis";
import type { Redis } from "@upstash/redis/cloudflare";
import type { Db } from "../db/client";
import { anchoredEntriesPresent, chainHeadsAfter, xidHorizon, type ChainHead } from "../db/queries/audit-anchors";
import type { Logger } from "../lib/log";
import { ANCHORS_KEY, CURSOR_FIELD, SCANNED_FIELD, anchorField, formatScanned, parseScanned, readAnchors } from "./audit-anchor-store";
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
 *
 * Ids are taken when an entry is written, not when it commits: an entry whose transaction was still open when a run
 * read past its id (another chain's newer entry already committed) was not there to see, and a position that moved
 * past it left its chain unanchored until that chain got a newer entry, for good if it got none. So the position
 * (CURSOR_FIELD) only moves up to what was read once every transaction that could hold a lower id has ended: the run
 * reads ahead from where it read up to (SCANNED_FIELD), and when Postgres's oldest open transaction is newer than
 * the newest one that read saw, it looks once more between the position and there for entries of transactions not
 * over when that region was read (a few, or none: found by their xmin), and moves the position up. Transactions
 * that span a whole run interval only hold the position back; the read ahead goes on, and the look back reads
 * the region once. (Postgres gives a transaction its id at its first write, and an entry's id is taken by the
 * statement that writes the entry: a transaction holding an entry id has its own id, or is a moment from it.)
 */

/** How many log entries one batch looks at: one statement, one HMGET, one check, one HSET. */
const BATCH = 1000;

interface Tally {
  anchored: number;
  held: number;
}

/** The anchor updates for these chain heads: forward only, and only past an anchored entry still in place. */
async function anchorUpdates(db: Db, redis: Redis, log: Logger, heads: ChainHead[], tally: Tally): Promise<Record<string, string>> {
  const previous = await readAnchors(redis, heads.map((h) => h.conversationId));
  const toCheck: ChainHead[] = [...previous].map(([conversationId, a]) => ({ conversationId, ...a }));
  const present = await anchoredEntriesPresent(db, toCheck);
  const updates: Record<string, string> = {};
  for (const head of heads) {
    const before = previous.get(head.conversationId);
    if (before && before.id >= head.id) continue;
    if (before && !present.has(before.id)) {
      tally.held++;
      log.error("audit anchor no longer in its chain: entries removed or rewritten", { conversationId: head.conversationId, anchoredId: before.id });
      continue;
    }
    updates[anchorField(head.conversationId)] = `${head.id}:${head.hash}`;
  }
  tally.anchored += Object.keys(updates).length;
  return updates;
}

export function auditAnchorJob(): JobDefinition {
  return {
    name: "audit.anchor",
    intervalMs: 0,
    async run(ctx): Promise<JobOutcome> {
      const redis = createRedis(ctx.config);
      const write = (fields: Record<string, string>) => withTimeout(redis.hset(ANCHORS_KEY, fields), 3000, "audit anchors");
      const recorded = typeof ctx.cursor === "number" ? ctx.cursor : 0;
      const [present, kept] = await withTimeout(
        Promise.all([redis.exists(ANCHORS_KEY), redis.hmget<Record<string, unknown>>(ANCHORS_KEY, CURSOR_FIELD, SCANNED_FIELD)]),
        3000,
        "audit anchors",
      );
      const keptCursor = Number(kept?.[CURSOR_FIELD]);
      // No anchors at all: start over. Anchors written before the position was kept with them: job_runs has it.
      let cursor = present === 0 ? 0 : Number.isSafeInteger(keptCursor) && keptCursor > 0 ? Math.min(recorded, keptCursor) : recorded;
      const scanned = present === 0 ? undefined : parseScanned(kept?.[SCANNED_FIELD]);
      const now = await xidHorizon(ctx.db);
      const tally: Tally = { anchored: 0, held: 0 };
      // The region read ahead of the position: from where, and how old the snapshots that read it may be.
      let position = cursor;
      let since = now.xmin;
      if (scanned && scanned.id > cursor) {
        if (BigInt(now.xmin) >= BigInt(scanned.xmax)) {
          // Every transaction that could hold an id up to scanned.id is over: what they wrote is there to read now.
          let from = cursor;
          for (;;) {
            const { heads } = await chainHeadsAfter(ctx.db, from, BATCH, { upTo: scanned.id, since: scanned.since });
            if (heads.length === 0) break;
            const updates = await anchorUpdates(ctx.db, redis, ctx.log, heads, tally);
            if (Object.keys(updates).length > 0) await write(updates);
            from = Math.max(...heads.map((h) => h.id));
          }
          cursor = position = scanned.id;
        } else {
          position = scanned.id;
          since = scanned.since;
        }
      }
      let xmax = scanned && position === scanned.id ? scanned.xmax : now.xmax;
      let more = false;
      for (;;) {
        const { heads, horizon } = await chainHeadsAfter(ctx.db, position, BATCH);
        if (heads.length === 0) break;
        const updates = await anchorUpdates(ctx.db, redis, ctx.log, heads, tally);
        position = Math.max(...heads.map((h) => h.id));
        xmax = horizon.xmax;
        // The position goes with the anchors it covers, in one write.
        await write({ ...updates, [CURSOR_FIELD]: String(cursor), [SCANNED_FIELD]: formatScanned({ id: position, since, xmax }) });
        if (Date.now() >= ctx.deadline) {
          more = true;
          break;
        }
      }
      await write({ [CURSOR_FIELD]: String(cursor), [SCANNED_FIELD]: formatScanned({ id: position, since, xmax }) });
      return { rows: tally.anchored, details: { ...tally }, cursor, more };
    },
  };
}
