import { and, asc, desc, eq, gt, gte, isNotNull, lte, or, sql, type SQL } from "drizzle-orm";
import { PgDialect } from "drizzle-orm/pg-core";
import type { Message } from "../../protocol/resources";
import type { Db } from "../client";
import { toMessage } from "../mappers";
import { appendAudit, type AuditEntry } from "./audit";
import { messages } from "../schema";

/** The public columns of a message row (everything but the search vector and the resume stamp). */
export const messageColumns = {
  id: messages.id,
  conversationId: messages.conversationId,
  seq: messages.seq,
  senderId: messages.senderId,
  clientMessageId: messages.clientMessageId,
  type: messages.type,
  content: messages.content,
  replyToId: messages.replyToId,
  createdAt: messages.createdAt,
  editedAt: messages.editedAt,
  deletedAt: messages.deletedAt,
};

/** A message as the conversation's outbox holds it: the full row, including the stamp resume relies on. */
export interface StoredMessage extends Message {
  eventSeq: number;
}

export interface ReadWatermark {
  userId: string;
  lastReadSeq?: number;
  lastReadAt?: string;
  lastDeliveredSeq?: number;
}

/**
 * One atomic write per flush: a multi-row upsert keyed by (conversation, seq) — so a retried flush, or an edit of a
 * message whose first flush is still in flight, is harmless — the conversation's activity, and receipt watermarks
 * (which only ever move forward, the read time with the read seq: a flush that timed out can still commit after its
 * retry, with an older mark). Without audit entries it is a single statement (one round trip, atomic without
 * BEGIN/COMMIT: the flush used to cost four round trips and capped a room's throughput); audit entries need their
 * hash chain read under a lock, so a flush that carries them runs as a transaction.
 */
export async function flushBatch(
  db: Db,
  conversationId: string,
  batch: StoredMessage[],
  watermarks: ReadWatermark[],
  audit: AuditEntry[] = [],
): Promise<void> {
  if (audit.length === 0) {
    if (batch.length === 0 && watermarks.length === 0) return;
    // A named statement: Postgres parses and plans it once per connection, not on every flush (about 0.4 ms of
    // server time each on this machine's PostgreSQL 15). The text never changes, so the name is safe to reuse.
    const { statement, name } = flushStatement(conversationId, batch, watermarks);
    const { sql: text, params } = dialect.sqlToQuery(statement);
    await db.$client.query({ name, text, values: params });
    return;
  }
  await db.transaction(async (tx) => {
    if (batch.length > 0 || watermarks.length > 0) await tx.execute(flushStatement(conversationId, batch, watermarks).statement);
    await appendAudit(tx, audit);
  });
}

const dialect = new PgDialect();
/** Two texts, each prepared once per connection under its own name: new messages only, and with edits or deletes. */
const FLUSH_STATEMENT = "room_flush_v4";

function flushStatement(conversationId: string, batch: StoredMessage[], watermarks: ReadWatermark[]): { statement: SQL; name: string } {
  // Rows travel as one JSON parameter: a fixed statement text whatever the batch size, no parameter limit.
  const rows = JSON.stringify(
    batch.map((m) => ({
      id: m.id,
      seq: m.seq,
      sender_id: m.senderId,
      client_message_id: m.clientMessageId,
      type: m.type,
      content: m.content,
      reply_to_id: m.replyToId,
      created_at: m.createdAt,
      edited_at: m.editedAt,
      deleted_at: m.deletedAt,
      event_seq: m.eventSeq,
    })),
  );
  const marks = JSON.stringify(
    watermarks.map((w) => ({
      user_id: w.userId,
      last_read_seq: w.lastReadSeq ?? null,
      last_read_at: w.lastReadSeq !== undefined ? (w.lastReadAt ?? new Date().toISOString()) : null,
      last_delivered_seq: w.lastDeliveredSeq ?? null,
    })),
  );
  // Rows at or below the conversation's archive mark were moved by the retention job while the room held their
  // change (an edit or delete during an outage): the change goes to the archived copy. Upserted back into
  // `messages`, they were in both tables, and the archive kept the old text until the next pass. Only an edit or a
  // delete can be that old (a new message is never past the retention before its first flush), so a batch of new
  // messages keeps the plain statement: the mark's lookup costs about 0.05 ms of Postgres time per flush. The mark
  // is read under the conversation row's lock (the one `activity` takes anyway, and the retention job's move takes
  // first: retention.ts moveArchiveBatch): read without it, a move still in flight was not seen, and the change went
  // back into `messages` once the move committed.
  const olderChanges = batch.some((m) => m.editedAt !== null || m.deletedAt !== null);
  const recordset = sql`json_to_recordset(${rows}::json) AS r(id uuid, seq bigint, sender_id uuid, client_message_id text,
             type text, content text, reply_to_id uuid, created_at timestamptz, edited_at timestamptz,
             deleted_at timestamptz, event_seq bigint)`;
  // New messages only: the statement as it always was (the rows read straight from the parameter).
  const source = olderChanges ? sql`r WHERE r.seq > COALESCE((SELECT up_to FROM mark), 0)` : recordset;
  const opening = olderChanges
    ? sql`WITH r AS (SELECT * FROM ${recordset}), mark AS (
      SELECT archived_up_to_seq AS up_to FROM conversations WHERE id = ${conversationId}::uuid FOR NO KEY UPDATE
    ), archived AS (
      INSERT INTO message_archive (id, conversation_id, seq, sender_id, client_message_id, type, content, reply_to_id,
                                   created_at, edited_at, deleted_at, archived_at)
      SELECT r.id, ${conversationId}::uuid, r.seq, r.sender_id, r.client_message_id, r.type, r.content, r.reply_to_id,
             r.created_at, r.edited_at, r.deleted_at, now()
        FROM r WHERE r.seq <= COALESCE((SELECT up_to FROM mark), 0)
      ON CONFLICT (conversation_id, seq) DO UPDATE
        SET content = excluded.content, edited_at = excluded.edited_at, deleted_at = excluded.deleted_at
    ), `
    : sql`WITH `;
  const statement = sql`
    ${opening}written AS (
      INSERT INTO messages (id, conversation_id, seq, sender_id, client_message_id, type, content, reply_to_id,
                            created_at, edited_at, deleted_at, event_seq)
      SELECT r.id, ${conversationId}::uuid, r.seq, r.sender_id, r.client_message_id, r.type, r.content, r.reply_to_id,
             r.created_at, r.edited_at, r.deleted_at, r.event_seq
        FROM ${source}
      ON CONFLICT (conversation_id, seq) DO UPDATE
        SET content = excluded.content, edited_at = excluded.edited_at, deleted_at = excluded.deleted_at,
            event_seq = excluded.event_seq
      RETURNING seq, created_at
    ), activity AS (
      UPDATE conversations c
         SET last_seq = GREATEST(c.last_seq, w.max_seq), last_activity = GREATEST(c.last_activity, w.last_created)
        FROM (SELECT max(seq) AS max_seq, max(created_at) AS last_created FROM written) w
       WHERE c.id = ${conversationId}::uuid AND w.max_seq IS NOT NULL
      RETURNING 1
    ), receipts AS (
      UPDATE participants p
         SET last_read_seq = GREATEST(p.last_read_seq, COALESCE(m.last_read_seq, p.last_read_seq)),
             last_read_at = CASE WHEN m.last_read_seq > p.last_read_seq THEN m.last_read_at ELSE p.last_read_at END,
             last_delivered_seq = GREATEST(p.last_delivered_seq, COALESCE(m.last_delivered_seq, p.last_delivered_seq))
        FROM json_to_recordset(${marks}::json) AS m(user_id uuid, last_read_seq bigint, last_read_at timestamptz,
             last_delivered_seq bigint)
       WHERE p.conversation_id = ${conversationId}::uuid AND p.user_id = m.user_id
      RETURNING 1
    )
    SELECT (SELECT count(*) FROM written) AS written, (SELECT count(*) FROM activity) AS activity,
           (SELECT count(*) FROM receipts) AS receipts`;
  return { statement, name: olderChanges ? `${FLUSH_STATEMENT}_changes` : FLUSH_STATEMENT };
}

export interface PageQuery {
  before?: number;
  after?: number;
  limit: number;
}

/**
 * Keyset page by seq on the (conversation_id, seq) unique index; fetches limit+1 to know whether there is more.
 * The scrollback read, so it skips drizzle's per-cell mapping (mapped by drizzle, a page cost the room a fifth more
 * CPU): the driver's rows go straight to toMessage, timestamps as epoch milliseconds, cut as a Date's are.
 */
export async function messagePage(db: Db, conversationId: string, q: PageQuery): Promise<{ messages: Message[]; hasMore: boolean }> {
  const take = q.limit + 1;
  const newestFirst = q.after === undefined;
  const where = q.after !== undefined ? "AND seq > $3" : q.before !== undefined ? "AND seq < $3" : "";
  const cursor = q.after ?? q.before;
  const result = await db.$client.query<Parameters<typeof toMessage>[0]>({
    text: `SELECT ${PAGE_COLUMNS} FROM messages WHERE conversation_id = $1 ${where}
           ORDER BY seq ${newestFirst ? "DESC" : "ASC"} LIMIT $2`,
    values: cursor === undefined ? [conversationId, take] : [conversationId, take, cursor],
  });
  let rows = result.rows;
  if (newestFirst) rows = rows.reverse();
  const hasMore = rows.length > q.limit;
  if (hasMore) rows = newestFirst ? rows.slice(rows.length - q.limit) : rows.slice(0, q.limit);
  return { messages: rows.map(toMessage), hasMore };
}

/** A timestamp column as epoch milliseconds: the driver then parses a number, not a timestamp string, per cell. */
export const epochMs = (column: string) => `floor(extract(epoch FROM ${column}) * 1000)::float8`;
/** A message row's select list for raw queries: instants as epoch milliseconds (no timestamp parsing per cell). */
export const PAGE_COLUMNS = `id, conversation_id AS "conversationId", seq, sender_id AS "senderId",
  client_message_id AS "clientMessageId", type, content, reply_to_id AS "replyToId",
  ${epochMs("created_at")} AS "createdAt", ${epochMs("edited_at")} AS "editedAt", ${epochMs("deleted_at")} AS "deletedAt"`;

/** Edits and deletes, made at or after `afterSeq`, of messages the client already had (seq <= afterSeq). */
export async function editsSince(db: Db, conversationId: string, afterSeq: number, limit: number): Promise<Message[]> {
  const rows = await db
    .select(messageColumns)
    .from(messages)
    .where(
      and(
        eq(messages.conversationId, conversationId),
        lte(messages.seq, afterSeq),
        gte(messages.eventSeq, afterSeq),
        or(isNotNull(messages.editedAt), isNotNull(messages.deletedAt)),
      ),
    )
    .orderBy(asc(messages.seq))
    .limit(limit);
  return rows.map(toMessage);
}

export async function messageById(db: Db, conversationId: string, id: string): Promise<StoredMessage | undefined> {
  const rows = await db
    .select({ ...messageColumns, eventSeq: messages.eventSeq })
    .from(messages)
    .where(and(eq(messages.conversationId, conversationId), eq(messages.id, id)))
    .limit(1);
  return rows[0] ? { ...toMessage(rows[0]), eventSeq: Number(rows[0].eventSeq) } : undefined;
}

/**
 * The content a message was sent with, which a retry is compared with: an edited or deleted message's first audit
 * entry holds it (edits and deletes commit with their entry). Null when the purge has redacted it. Compared with the
 * edited text (or a tombstone's ""), the sender's own retry was a 409 "already used for a different message".
 * Read only for a changed message, by the conversation's audit index.
 */
const SENT_CONTENT = `CASE WHEN m.edited_at IS NULL AND m.deleted_at IS NULL THEN m.content ELSE (
  SELECT a.details->>'previousContent' FROM audit_log a
  WHERE a.conversation_id = $1 AND a.target_id = m.id::text AND a.action IN ('message.edited', 'message.deleted')
    AND a.details ? 'previousContent'
  ORDER BY a.id LIMIT 1) END`;

/**
 * A sender's message by client id, for a retry the room cannot settle from its own ids: from `messages`, or from the
 * archive (`archived`) when the retention job moved it. Looked up in `messages` alone, a retry of an archived
 * message was stored as a second message. One statement: the archive's branch runs only when `messages` has no row.
 * `rawContent`: what it was sent with (SENT_CONTENT), null when no longer known.
 */
export async function messageByClientId(db: Db, conversationId: string, senderId: string, clientMessageId: string) {
  const result = await db.$client.query<Parameters<typeof toMessage>[0] & { eventSeq: string; rawContent: string | null; archived: boolean }>({
    text: `(SELECT ${PAGE_COLUMNS}, event_seq AS "eventSeq", ${SENT_CONTENT} AS "rawContent", false AS archived FROM messages m
            WHERE conversation_id = $1 AND sender_id = $2 AND client_message_id = $3)
           UNION ALL
           (SELECT ${PAGE_COLUMNS}, seq AS "eventSeq", ${SENT_CONTENT} AS "rawContent", true AS archived FROM message_archive m
            WHERE conversation_id = $1 AND sender_id = $2 AND client_message_id = $3)
           LIMIT 1`,
    values: [conversationId, senderId, clientMessageId],
  });
  const row = result.rows[0];
  return row ? { ...toMessage(row), eventSeq: Number(row.eventSeq), rawContent: row.rawContent, archived: row.archived } : undefined;
}

/** The newest messages with their resume stamps, oldest first: what a room starting on fresh storage adopts. */
export async function newestMessages(db: Db, conversationId: string, limit: number): Promise<StoredMessage[]> {
  const rows = await db
    .select({ ...messageColumns, eventSeq: messages.eventSeq })
    .from(messages)
    .where(eq(messages.conversationId, conversationId))
    .orderBy(desc(messages.seq))
    .limit(limit);
  return rows.reverse().map((r) => ({ ...toMessage(r), eventSeq: Number(r.eventSeq) }));
}

/**
 * The messages with seq from..to (inclusive) with their resume stamps, in seq order, and the conversation's archive
 * mark read in the same statement (one snapshot): a range that comes back short tells whether the retention job
 * moved part of it. No mark: the conversation is gone. What a room hydrating its history (room/backfill.ts) adopts;
 * a raw keyset read like messagePage.
 */
export async function messageRange(
  db: Db,
  conversationId: string,
  from: number,
  to: number,
): Promise<{ messages: StoredMessage[]; archivedUpToSeq: number | undefined }> {
  const result = await db.$client.query<Parameters<typeof toMessage>[0] & { eventSeq: string; archivedUpToSeq: string | null }>({
    // The lateral join keeps one row (the mark's) when the range is empty.
    text: `SELECT (SELECT archived_up_to_seq FROM conversations WHERE id = $1) AS "archivedUpToSeq", r.*
           FROM (SELECT 1) AS one LEFT JOIN LATERAL (
             SELECT ${PAGE_COLUMNS}, event_seq AS "eventSeq" FROM messages
             WHERE conversation_id = $1 AND seq BETWEEN $2 AND $3
           ) AS r ON true ORDER BY r.seq`,
    values: [conversationId, from, to],
  });
  const rows = result.rows.filter((r) => r.id !== null);
  return {
    messages: rows.map((r) => ({ ...toMessage(r), eventSeq: Number(r.eventSeq) })),
    archivedUpToSeq: result.rows[0]?.archivedUpToSeq == null ? undefined : Number(result.rows[0].archivedUpToSeq),
  };
}

export async function maxSeq(db: Db, conversationId: string): Promise<number> {
  const rows = await db
    .select({ seq: sql<string | null>`max(${messages.seq})` })
    .from(messages)
    .where(eq(messages.conversationId, conversationId));
  return Number(rows[0]?.seq ?? 0);
}

/**
 * Unread = others' non-deleted messages after the watermark: derived from seq, so it cannot drift. `asOf`: the
 * newest seq Postgres holds, which the count covers (a badge then counts notifications of later ones only).
 */
export async function unreadCount(db: Db, conversationId: string, userId: string, afterSeq: number): Promise<{ count: number; asOf: number }> {
  const rows = await db
    .select({
      n: sql<string>`count(*) FILTER (WHERE ${messages.senderId} <> ${userId} AND ${messages.deletedAt} IS NULL)`,
      top: sql<string | null>`max(${messages.seq})`,
    })
    .from(messages)
    .where(and(eq(messages.conversationId, conversationId), gt(messages.seq, afterSeq)));
  return { count: Number(rows[0]?.n ?? 0), asOf: Math.max(afterSeq, Number(rows[0]?.top ?? 0)) };
}
