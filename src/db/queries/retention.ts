import { and, asc, desc, eq, lt, sql } from "drizzle-orm";
import type { Message } from "../../protocol/resources";
import type { StoredMessage } from "./messages";
import type { Db } from "../client";
import { toMessage } from "../mappers";
import { auditLog, messageArchive } from "../schema";

/**
 * Retention (issue [operations]): moving old messages to `message_archive`, reading the archive, and purging the
 * content of soft-deleted messages. Every statement is bounded (a batch of rows, one conversation), so no
 * statement holds locks for long and a run can stop between any two of them.
 */

const iso = (d: Date) => d.toISOString();
const DAY_MS = 86_400_000;

/** Conversation ids follow this one in a scan (uuid order); the scan starts below every uuid. */
export const SCAN_START = "00000000-0000-0000-0000-000000000000";

/** The effective retention of a conversation: its own positive override, else the default. */
export function retentionDays(override: number | null | undefined, fallback: number): number {
  return typeof override === "number" && Number.isInteger(override) && override >= 1 ? override : fallback;
}

export function retentionCutoff(now: Date, days: number): Date {
  return new Date(now.getTime() - days * DAY_MS);
}

/** The last id of the next page of conversations after `after` (undefined: the scan is complete). */
export async function nextConversationPage(db: Db, after: string, pageSize: number, only?: string[]): Promise<string | undefined> {
  if (only && only.length === 0) return undefined;
  const scope = only ? sql`AND id IN ${only}` : sql``;
  const result = await db.execute<{ last: string }>(sql`
    SELECT id AS last FROM (
      SELECT id FROM conversations WHERE id > ${after}::uuid ${scope} ORDER BY id LIMIT ${pageSize}
    ) page ORDER BY id DESC LIMIT 1`);
  return result.rows[0]?.last;
}

export interface ArchiveCandidate {
  id: string;
  cutoff: Date;
  archivedUpToSeq: number;
}

/**
 * Conversations in (after, upTo] whose oldest remaining message is past their retention: not on legal hold, with
 * the per-conversation override applied. One index probe per conversation ((conversation_id, seq) is unique).
 */
export async function archiveCandidates(
  db: Db,
  range: { after: string; upTo: string },
  now: Date,
  defaultDays: number,
  only?: string[],
): Promise<ArchiveCandidate[]> {
  const scope = only ? sql`AND c.id IN ${only}` : sql``;
  const result = await db.execute<{ id: string; cutoff: string; archived_up_to_seq: string }>(sql`
    WITH page AS (
      SELECT c.id, c.archived_up_to_seq,
             -- Days of 24 hours, as retentionCutoff: a calendar day (interval '1 day', make_interval(days =>)) follows
             -- the session's time zone, and across a DST change 90 of them were an hour short of 90 days.
             ${iso(now)}::timestamptz - (CASE WHEN c.retention_days >= 1 THEN c.retention_days ELSE ${defaultDays}::int END) * interval '24 hours' AS cutoff
      FROM conversations c
      WHERE c.id > ${range.after}::uuid AND c.id <= ${range.upTo}::uuid AND NOT c.legal_hold ${scope}
    )
    SELECT p.id, p.cutoff, p.archived_up_to_seq FROM page p
    WHERE EXISTS (
      SELECT 1 FROM messages m
      WHERE m.conversation_id = p.id AND m.created_at < p.cutoff
        AND m.seq = (SELECT min(m2.seq) FROM messages m2 WHERE m2.conversation_id = p.id)
    )
    ORDER BY p.id`);
  return result.rows.map((r) => ({ id: r.id, cutoff: new Date(r.cutoff), archivedUpToSeq: Number(r.archived_up_to_seq) }));
}

export interface MovedBatch {
  moved: number;
  /** conversations.archived_up_to_seq after the batch (unchanged when nothing moved). */
  upToSeq: number;
}

/**
 * Moves the longest old prefix (by seq) of at most `batchSize` messages to the archive in ONE statement: the delete,
 * the insert and the conversation's high-water mark commit together, so a row is moved exactly once even if the run
 * stops right after. Stops at the first message that is not past the cutoff (seq order is the order clients see).
 * Moves nothing while the conversation is on legal hold. A message the room re-flushed after it was archived (an
 * edit racing the move) updates its archived copy.
 */
export async function moveArchiveBatch(
  db: Db,
  conversationId: string,
  cutoff: Date,
  batchSize: number,
  now: Date,
): Promise<MovedBatch> {
  // The conversation's row is locked before any message is touched, and read again once the lock is granted: a
  // legal hold placed since the candidates were read stops the move, and a room's flush of an edit or delete (which
  // takes the same lock before it reads the mark: messages.ts flushStatement) either lands before the move, which
  // then moves the changed row, or waits and reads the new mark. Without the lock, a flush that read the old mark
  // waited on the deleted row and then inserted it again: one message in both tables, the archive with the old text.
  const result = await db.execute<{ moved: string; up_to: string | null }>(sql`
    WITH conv AS (
      SELECT id FROM conversations WHERE id = ${conversationId}::uuid AND NOT legal_hold FOR UPDATE
    ), head AS (
      SELECT seq, created_at FROM messages
      WHERE conversation_id = ${conversationId}::uuid AND EXISTS (SELECT 1 FROM conv) ORDER BY seq LIMIT ${batchSize}
    ), bound AS (
      SELECT COALESCE(
        (SELECT min(seq) FROM head WHERE created_at >= ${iso(cutoff)}::timestamptz),
        (SELECT max(seq) + 1 FROM head)
      ) AS stop
    ), moved AS (
      DELETE FROM messages m
      WHERE m.conversation_id = ${conversationId}::uuid
        AND m.seq IN (SELECT h.seq FROM head h, bound b WHERE h.seq < b.stop)
      RETURNING m.id, m.conversation_id, m.seq, m.sender_id, m.client_message_id, m.type, m.content, m.reply_to_id,
                m.created_at, m.edited_at, m.deleted_at
    ), ins AS (
      INSERT INTO message_archive (id, conversation_id, seq, sender_id, client_message_id, type, content, reply_to_id,
                                   created_at, edited_at, deleted_at, archived_at)
      SELECT id, conversation_id, seq, sender_id, client_message_id, type, content, reply_to_id,
             created_at, edited_at, deleted_at, ${iso(now)}::timestamptz
      FROM moved
      ON CONFLICT (conversation_id, seq) DO UPDATE SET
        content = EXCLUDED.content, edited_at = EXCLUDED.edited_at, deleted_at = EXCLUDED.deleted_at, archived_at = EXCLUDED.archived_at
      RETURNING seq
    ), mark AS (
      UPDATE conversations SET archived_up_to_seq = GREATEST(archived_up_to_seq, (SELECT max(seq) FROM ins))
      WHERE id = ${conversationId}::uuid AND EXISTS (SELECT 1 FROM ins)
      RETURNING archived_up_to_seq
    )
    SELECT (SELECT count(*) FROM ins) AS moved,
           COALESCE((SELECT archived_up_to_seq FROM mark),
                    (SELECT archived_up_to_seq FROM conversations WHERE id = ${conversationId}::uuid)) AS up_to`);
  const row = result.rows[0];
  return { moved: Number(row?.moved ?? 0), upToSeq: Number(row?.up_to ?? 0) };
}

const archiveColumns = {
  id: messageArchive.id,
  conversationId: messageArchive.conversationId,
  seq: messageArchive.seq,
  senderId: messageArchive.senderId,
  clientMessageId: messageArchive.clientMessageId,
  type: messageArchive.type,
  content: messageArchive.content,
  replyToId: messageArchive.replyToId,
  createdAt: messageArchive.createdAt,
  editedAt: messageArchive.editedAt,
  deletedAt: messageArchive.deletedAt,
};

/** Keyset page of archived messages by seq (newest page without `before`), ascending within the page. */
export async function archivePage(
  db: Db,
  conversationId: string,
  q: { before?: number; limit: number },
): Promise<{ messages: Message[]; hasMore: boolean }> {
  const where =
    q.before !== undefined
      ? and(eq(messageArchive.conversationId, conversationId), lt(messageArchive.seq, q.before))
      : eq(messageArchive.conversationId, conversationId);
  const rows = await db.select(archiveColumns).from(messageArchive).where(where).orderBy(desc(messageArchive.seq)).limit(q.limit + 1);
  const hasMore = rows.length > q.limit;
  const page = (hasMore ? rows.slice(0, q.limit) : rows).reverse();
  return { messages: page.map(toMessage), hasMore };
}

/** One archived message by id: edits, deletes, replies and read marks can name a message the job moved. */
export async function archivedMessageById(db: Db, conversationId: string, id: string): Promise<StoredMessage | undefined> {
  const rows = await db
    .select(archiveColumns)
    .from(messageArchive)
    .where(and(eq(messageArchive.conversationId, conversationId), eq(messageArchive.id, id)))
    .limit(1);
  const m = rows[0] && toMessage(rows[0]);
  return m && { ...m, eventSeq: m.seq };
}

// ── Purge of soft-deleted content ────────────────────────────────────────────────────────────────────────────────

/**
 * Safety net: blanks the content of soft-deleted messages (live and archived) deleted before the cutoff, outside
 * legal hold. The room already stores "" on delete, so this normally touches nothing.
 */
export async function blankDeletedContent(
  db: Db,
  table: "messages" | "message_archive",
  cutoff: Date,
  limit: number,
  only?: string[],
): Promise<number> {
  if (only && only.length === 0) return 0;
  const t = sql.identifier(table);
  const scope = only ? sql`AND x.conversation_id IN ${only}` : sql``;
  const result = await db.execute(sql`
    UPDATE ${t} SET content = ''
    WHERE id IN (
      SELECT x.id FROM ${t} x
      WHERE x.deleted_at IS NOT NULL AND x.content <> '' AND x.deleted_at < ${iso(cutoff)}::timestamptz
        AND NOT EXISTS (SELECT 1 FROM conversations c WHERE c.id = x.conversation_id AND c.legal_hold) ${scope}
      LIMIT ${limit}
    )`);
  return result.rowCount ?? 0;
}

export interface DeleteEvent {
  id: number;
  conversationId: string;
  targetId: string;
  /** created_at as Postgres prints it (full precision): with `id`, the position to read on from. */
  createdAt: string;
}

/**
 * Oldest `message.deleted` audit entries before the cutoff whose previous content is still there (not on hold),
 * after `from` (the last event of the previous page): events left as they were (refused) must not fill every page.
 */
export async function unredactedDeleteEvents(
  db: Db,
  cutoff: Date,
  limit: number,
  from?: Pick<DeleteEvent, "createdAt" | "id">,
  only?: string[],
): Promise<DeleteEvent[]> {
  if (only && only.length === 0) return [];
  const after = from ? sql`AND (a.created_at, a.id) > (${from.createdAt}::timestamptz, ${from.id})` : sql``;
  const scope = only ? sql`AND a.conversation_id IN ${only}` : sql``;
  const result = await db.execute<{ id: string; conversation_id: string; target_id: string; created_at: string }>(sql`
    SELECT a.id, a.conversation_id, a.target_id, a.created_at::text AS created_at FROM audit_log a
    WHERE a.action = 'message.deleted' AND NOT (a.details ? 'redacted') AND a.created_at < ${iso(cutoff)}::timestamptz
      AND a.details ? 'previousContent' AND a.conversation_id IS NOT NULL AND a.target_id IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM conversations c WHERE c.id = a.conversation_id AND c.legal_hold)
      ${after} ${scope}
    ORDER BY a.created_at, a.id
    LIMIT ${limit}`);
  return result.rows.map((r) => ({ id: Number(r.id), conversationId: r.conversation_id, targetId: r.target_id, createdAt: r.created_at }));
}

export type AuditRow = typeof auditLog.$inferSelect;

/** Every not-yet-redacted entry of one conversation's chain that holds a previous content of this message. */
export async function contentBearingEntries(db: Db | Tx, conversationId: string, targetId: string): Promise<AuditRow[]> {
  return db
    .select()
    .from(auditLog)
    .where(
      and(
        eq(auditLog.conversationId, conversationId),
        eq(auditLog.targetId, targetId),
        sql`${auditLog.action} IN ('message.edited', 'message.deleted')`,
        sql`${auditLog.details} ? 'previousContent'`,
        sql`NOT (${auditLog.details} ? 'redacted')`,
      ),
    )
    .orderBy(asc(auditLog.id));
}

export type Tx = Parameters<Parameters<Db["transaction"]>[0]>[0];
