import { errorReason } from "../lib/errors";
import { withTimeout } from "../lib/redis";
import { metrics } from "../lib/metrics";
import { archiveCandidates, moveArchiveBatch, nextConversationPage, SCAN_START } from "../db/queries/retention";
import { hasTime, type JobContext, type JobDefinition, type JobOutcome } from "./runner";

/**
 * Retention: messages older than their conversation's retention (conversations.retention_days when ≥ 1, else
 * MESSAGE_RETENTION_DAYS) move from `messages` to `message_archive`; conversations on legal hold are skipped.
 *
 * A pass scans conversations in id order, a page at a time; for each one with an old oldest message it moves the old
 * prefix (by seq) in batches of ARCHIVE_BATCH_SIZE, one statement per batch (delete + insert + archived_up_to_seq
 * together). The run stops when its time budget is spent, saving `{after}` (the last conversation finished) in
 * job_runs.cursor; the next run resumes there. A conversation interrupted mid-way is simply examined again: its moved
 * rows are gone from `messages`, so nothing moves twice. When a pass completes the cursor is cleared and the next pass
 * starts after the job's interval.
 *
 * After moving rows of a conversation the job tells its room (`ConversationRoom.archived(upToSeq)`), which drops its
 * local copies and broadcasts `messages_archived {conversationId, upToSeq}` to the conversation's sockets.
 */

export interface ArchiveOptions {
  /** Restrict the scan to these conversations (manual runs, tests). */
  conversationIds?: string[];
  batchSize?: number;
  /** Conversations examined per page of the scan. */
  pageSize?: number;
  /** Job name (one job_runs row, one cursor, per name). */
  name?: string;
}

interface ArchiveCursor {
  after: string;
}

const PASS_INTERVAL_MS = 60 * 60_000;

export function archiveJob(options: ArchiveOptions = {}): JobDefinition {
  return {
    name: options.name ?? "retention.archive",
    intervalMs: PASS_INTERVAL_MS,
    run: (ctx) => archive(ctx, options),
  };
}

async function archive(ctx: JobContext, options: ArchiveOptions): Promise<JobOutcome> {
  const batchSize = options.batchSize ?? ctx.config.ARCHIVE_BATCH_SIZE;
  const pageSize = options.pageSize ?? 200;
  const only = options.conversationIds?.map((id) => id.toLowerCase());
  const start = (ctx.cursor as ArchiveCursor | null)?.after ?? SCAN_START;
  let after = start;
  let moved = 0;
  let conversations = 0;
  let batches = 0;
  let notifyFailed = 0;
  let complete = false;
  let stopped = false;

  let pages = 0;
  let error: string | undefined;
  // The conversation being moved, and what has moved of it: on an error its room is still told (rooms do not need
  // Postgres), and the run reports what it did rather than nothing.
  let current: { id: string; movedHere: number; upToSeq: number } | undefined;
  try {
    scan: for (;;) {
      if (pages > 0 && !hasTime(ctx)) {
        stopped = true;
        break;
      }
      pages++;
      const upTo = await nextConversationPage(ctx.db, after, pageSize, only);
      if (!upTo) {
        complete = true;
        break;
      }
      const candidates = await archiveCandidates(ctx.db, { after, upTo }, ctx.now, ctx.config.MESSAGE_RETENTION_DAYS, only);
      for (const candidate of candidates) {
        current = { id: candidate.id, movedHere: 0, upToSeq: candidate.archivedUpToSeq };
        for (;;) {
          if (batches > 0 && !hasTime(ctx)) {
            stopped = true;
            break scan; // this conversation is examined again next run; `after` still points before it
          }
          const batch = await moveArchiveBatch(ctx.db, candidate.id, candidate.cutoff, batchSize, ctx.now);
          batches++;
          current.movedHere += batch.moved;
          current.upToSeq = batch.upToSeq;
          if (batch.moved < batchSize) break;
        }
        const done = current;
        current = undefined;
        moved += done.movedHere;
        if (done.movedHere > 0) {
          conversations++;
          notifyFailed += await notifyRoom(ctx, done.id, done.upToSeq);
        }
        after = candidate.id;
      }
      after = upTo;
    }
  } catch (err) {
    // Postgres went away mid-run: what moved stays moved (each batch commits alone), and the next run resumes after
    // the last conversation finished, not where the run before this one stopped.
    error = errorReason(err).slice(0, 300);
    ctx.log.warn("archive run failed", { moved: moved + (current?.movedHere ?? 0), resumeAfter: after, error });
  }
  if (current && current.movedHere > 0) {
    moved += current.movedHere;
    conversations++;
    notifyFailed += await notifyRoom(ctx, current.id, current.upToSeq);
  }
  // A run that stopped inside a conversation resumes before it; a page finished resumes after it.
  if (stopped && moved > 0) ctx.log.info("archive run stopped on its time budget", { moved, resumeAfter: after });
  metrics.count("archive_messages_moved_total", moved);
  return {
    rows: moved,
    details: { moved, conversations, batches, pages, notifyFailed, passComplete: complete, defaultRetentionDays: ctx.config.MESSAGE_RETENTION_DAYS },
    cursor: complete ? null : { after },
    more: !complete,
    error,
  };
}

/** Best effort: sockets learn of the archive; a room that cannot be reached learns on its next resume. */
async function notifyRoom(ctx: JobContext, conversationId: string, upToSeq: number): Promise<number> {
  try {
    const ns = ctx.env.CONVERSATION_ROOM;
    await withTimeout(ns.get(ns.idFromName(conversationId)).archived(upToSeq), 5000, "room archived notification");
    return 0;
  } catch (err) {
    ctx.log.warn("archive notification failed", { conversationId, error: errorReason(err).slice(0, 200) });
    return 1;
  }
}
