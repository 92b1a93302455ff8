import { errorReason } from "../lib/errors";
import { eq, sql } from "drizzle-orm";
import { metrics } from "../lib/metrics";
import type { Db } from "../db/client";
import { appendAudit } from "../db/queries/audit";
import {
  blankDeletedContent,
  contentBearingEntries,
  retentionCutoff,
  unredactedDeleteEvents,
  type DeleteEvent,
} from "../db/queries/retention";
import { auditLog } from "../db/schema";
import { REDACTION_ACTION, rowHash } from "./audit-verify";
import { hasTime, type JobContext, type JobDefinition, type JobOutcome } from "./runner";

/**
 * Purge of soft-deleted content after DELETED_CONTENT_GRACE_DAYS (default 30).
 *
 * Where deleted content still lives: the room stores a tombstone (content "") at once, but the audit log keeps the
 * previous content — `message.deleted` entries, and the `message.edited` entries of the same message, hold
 * `details.previousContent` — so admins can review a deletion during the grace period. After it, this job removes
 * `previousContent` from all of that message's entries and marks them `details.redacted`. The entries stay (who
 * deleted what, when); only the text goes. To keep the hash chain verifiable, each redaction appends an
 * `audit.redacted` entry to the same chain, in the same transaction, registering the hash of every redacted row
 * (see src/jobs/audit-verify.ts). A row whose hash does not verify is never redacted (that would launder tampering):
 * it is reported and left for an operator. Conversations on legal hold are skipped entirely.
 *
 * Safety net: tombstones in `messages` / `message_archive` that still have content (written by some other path)
 * are blanked too.
 */

export const REDACTION_REASON = "deleted_content_grace";

export function purgeJob(options: { name?: string; conversationIds?: string[] } = {}): JobDefinition {
  const only = options.conversationIds?.map((id) => id.toLowerCase());
  return {
    name: options.name ?? "retention.purge-deleted",
    intervalMs: 60 * 60_000,
    run: (ctx) => purge(ctx, only),
  };
}

const PAGE = 50;

/** `only`: these conversations alone (manual runs, tests), as the archive job's option. */
async function purge(ctx: JobContext, only?: string[]): Promise<JobOutcome> {
  const cutoff = retentionCutoff(ctx.now, ctx.config.DELETED_CONTENT_GRACE_DAYS);
  let tombstones = 0;
  let messagesPurged = 0;
  let entriesRedacted = 0;
  let refused = 0;
  let held = 0;
  let more = false;
  let statements = 0;

  let error: string | undefined;
  try {
    for (const table of ["messages", "message_archive"] as const) {
      for (;;) {
        const n = await blankDeletedContent(ctx.db, table, cutoff, 500, only);
        statements++;
        tombstones += n;
        if (n < 500) break;
        if (!hasTime(ctx)) {
          more = true;
          break;
        }
      }
    }

    // Pages read on from the last event handled: a refused event stays unredacted, and re-reading from the oldest,
    // a page full of them ended the run with every later deletion left as it was, run after run.
    let from: DeleteEvent | undefined;
    while (!more) {
      if (statements > 0 && !hasTime(ctx)) {
        more = true;
        break;
      }
      const events = await unredactedDeleteEvents(ctx.db, cutoff, PAGE, from, only);
      statements++;
      if (events.length === 0) break;
      for (const event of events) {
        if (!hasTime(ctx)) {
          more = true;
          break;
        }
        from = event;
        const result = await redactMessageHistory(ctx.db, event, ctx.now);
        if (result.held) {
          held++;
          continue;
        }
        if (result.refused !== undefined) {
          refused++;
          ctx.log.error("audit entry does not verify; its content was not redacted", {
            conversationId: event.conversationId,
            auditId: result.refused,
          });
          continue;
        }
        messagesPurged++;
        entriesRedacted += result.redacted;
      }
    }
  } catch (err) {
    // Each redaction commits alone: those done before Postgres went away are reported, not a run of 0 rows.
    error = errorReason(err).slice(0, 300);
  }
  metrics.count("purge_rows_total", entriesRedacted + tombstones);
  return {
    rows: entriesRedacted + tombstones,
    details: { graceDays: ctx.config.DELETED_CONTENT_GRACE_DAYS, messagesPurged, entriesRedacted, tombstonesBlanked: tombstones, refused, held },
    more,
    error,
  };
}

/**
 * One deleted message: redacts `previousContent` in every entry of its chain that holds it, and registers the new
 * hashes with an `audit.redacted` entry, in one transaction under the chain's advisory lock.
 */
export async function redactMessageHistory(
  db: Db,
  event: DeleteEvent,
  now: Date,
): Promise<{ redacted: number; refused?: number; held?: true }> {
  return db.transaction(async (tx) => {
    // The hold as it is now, not as the page of events read it: an operator may place it while the run works through
    // the page, and the content it must keep was redacted all the same. FOR SHARE waits for a retention change in
    // flight (it locks the row FOR UPDATE) and keeps one from committing until this redaction has; taken before the
    // chain's lock, in the order that change takes the two.
    const hold = await tx.execute<{ legal_hold: boolean }>(
      sql`SELECT legal_hold FROM conversations WHERE id = ${event.conversationId}::uuid FOR SHARE`,
    );
    if (hold.rows[0]?.legal_hold) return { redacted: 0, held: true };
    await tx.execute(sql`SELECT pg_advisory_xact_lock(hashtext(${"audit:" + event.conversationId}))`);
    const rows = await contentBearingEntries(tx, event.conversationId, event.targetId);
    if (rows.length === 0) return { redacted: 0 };
    for (const r of rows) {
      if ((await rowHash(r.prevHash ?? null, r)) !== r.hash) return { redacted: 0, refused: r.id };
    }
    const at = now.toISOString();
    const registered: { id: number; redactedHash: string }[] = [];
    for (const r of rows) {
      const { previousContent: _gone, ...rest } = r.details ?? {};
      const details = { ...rest, redacted: { fields: ["previousContent"], reason: REDACTION_REASON, at } };
      const redactedHash = await rowHash(r.prevHash ?? null, { ...r, details });
      await tx.update(auditLog).set({ details }).where(eq(auditLog.id, r.id));
      registered.push({ id: r.id, redactedHash });
    }
    await appendAudit(tx, [
      {
        conversationId: event.conversationId,
        actorId: null,
        action: REDACTION_ACTION,
        targetId: event.targetId,
        details: { reason: REDACTION_REASON, fields: ["previousContent"], rows: registered },
        at,
      },
    ]);
    return { redacted: rows.length };
  });
}
