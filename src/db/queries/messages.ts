import { and, asc, desc, eq, gt, gte, isNotNull, lt, lte, or, sql } from "drizzle-orm";
import type { Message } from "../../protocol/resources";
import type { Db } from "../client";
import { toMessage } from "../mappers";
import { appendAudit, type AuditEntry } from "./audit";
import { conversations, messages, participants } from "../schema";

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
 * One transaction per flush: a multi-row upsert keyed by (conversation, seq) — so a retried flush, or an edit of a
 * message whose first flush is still in flight, is harmless — the conversation's activity, and receipt watermarks
 * (which only ever move forward).
 */
export async function flushBatch(
  db: Db,
  conversationId: string,
  batch: StoredMessage[],
  watermarks: ReadWatermark[],
  audit: AuditEntry[] = [],
): Promise<void> {
  await db.transaction(async (tx) => {
    if (batch.length > 0) {
      await tx
        .insert(messages)
        .values(
          batch.map((m) => ({
            id: m.id,
            conversationId,
            seq: m.seq,
            senderId: m.senderId,
            clientMessageId: m.clientMessageId,
            type: m.type,
            content: m.content,
            replyToId: m.replyToId,
            createdAt: new Date(m.createdAt),
            editedAt: m.editedAt ? new Date(m.editedAt) : null,
            deletedAt: m.deletedAt ? new Date(m.deletedAt) : null,
            eventSeq: m.eventSeq,
          })),
        )
        .onConflictDoUpdate({
          target: [messages.conversationId, messages.seq],
          set: {
            content: sql`excluded.content`,
            editedAt: sql`excluded.edited_at`,
            deletedAt: sql`excluded.deleted_at`,
            eventSeq: sql`excluded.event_seq`,
          },
        });
      const maxSeq = Math.max(...batch.map((m) => m.seq));
      const lastCreated = batch.reduce((a, m) => (m.createdAt > a ? m.createdAt : a), batch[0].createdAt);
      await tx
        .update(conversations)
        .set({
          lastSeq: sql`GREATEST(${conversations.lastSeq}, ${maxSeq})`,
          lastActivity: sql`GREATEST(${conversations.lastActivity}, ${new Date(lastCreated).toISOString()}::timestamptz)`,
        })
        .where(eq(conversations.id, conversationId));
    }
    for (const w of watermarks) {
      await tx
        .update(participants)
        .set({
          ...(w.lastReadSeq !== undefined
            ? {
                lastReadSeq: sql`GREATEST(${participants.lastReadSeq}, ${w.lastReadSeq})`,
                lastReadAt: w.lastReadAt ? new Date(w.lastReadAt) : new Date(),
              }
            : {}),
          ...(w.lastDeliveredSeq !== undefined
            ? { lastDeliveredSeq: sql`GREATEST(${participants.lastDeliveredSeq}, ${w.lastDeliveredSeq})` }
            : {}),
        })
        .where(and(eq(participants.conversationId, conversationId), eq(participants.userId, w.userId)));
    }
    await appendAudit(tx, audit);
  });
}

export interface PageQuery {
  before?: number;
  after?: number;
  limit: number;
}

/** Keyset page by seq on the (conversation_id, seq) unique index; fetches limit+1 to know whether there is more. */
export async function messagePage(db: Db, conversationId: string, q: PageQuery): Promise<{ messages: Message[]; hasMore: boolean }> {
  const take = q.limit + 1;
  let rows;
  if (q.after !== undefined) {
    rows = await db
      .select(messageColumns)
      .from(messages)
      .where(and(eq(messages.conversationId, conversationId), gt(messages.seq, q.after)))
      .orderBy(asc(messages.seq))
      .limit(take);
  } else {
    const where =
      q.before !== undefined
        ? and(eq(messages.conversationId, conversationId), lt(messages.seq, q.before))
        : eq(messages.conversationId, conversationId);
    rows = (await db.select(messageColumns).from(messages).where(where).orderBy(desc(messages.seq)).limit(take)).reverse();
  }
  const hasMore = rows.length > q.limit;
  if (hasMore) {
    if (q.after !== undefined) rows = rows.slice(0, q.limit);
    else rows = rows.slice(rows.length - q.limit);
  }
  return { messages: rows.map(toMessage), hasMore };
}

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

export async function messageByClientId(db: Db, conversationId: string, senderId: string, clientMessageId: string) {
  const rows = await db
    .select({ ...messageColumns, eventSeq: messages.eventSeq })
    .from(messages)
    .where(
      and(eq(messages.conversationId, conversationId), eq(messages.senderId, senderId), eq(messages.clientMessageId, clientMessageId)),
    )
    .limit(1);
  return rows[0] ? { ...toMessage(rows[0]), eventSeq: Number(rows[0].eventSeq), rawContent: rows[0].content } : undefined;
}

export async function maxSeq(db: Db, conversationId: string): Promise<number> {
  const rows = await db
    .select({ seq: sql<string | null>`max(${messages.seq})` })
    .from(messages)
    .where(eq(messages.conversationId, conversationId));
  return Number(rows[0]?.seq ?? 0);
}

/** Unread = others' non-deleted messages after the watermark: derived from seq, so it cannot drift. */
export async function unreadCount(db: Db, conversationId: string, userId: string, afterSeq: number): Promise<number> {
  const rows = await db
    .select({ n: sql<string>`count(*)` })
    .from(messages)
    .where(
      and(
        eq(messages.conversationId, conversationId),
        gt(messages.seq, afterSeq),
        sql`${messages.senderId} <> ${userId}`,
        sql`${messages.deletedAt} IS NULL`,
      ),
    );
  return Number(rows[0]?.n ?? 0);
}
