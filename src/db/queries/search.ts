import { sql, type SQL } from "drizzle-orm";
import type { Message } from "../../protocol/resources";
import type { Db } from "../client";
import { toMessage } from "../mappers";

export interface SearchQuery {
  userId: string;
  q: string;
  cursor?: { createdAt: string; id: string };
  limit: number;
}

export interface ConversationSearchQuery {
  conversationId: string;
  q: string;
  /** Only messages with a lower seq (the cursor of the previous page). */
  beforeSeq?: number;
  limit: number;
}

/** LIKE pattern with the user's %, _ and \ taken literally. */
export function likePattern(q: string): string {
  return `%${q.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

type Row = {
  id: string;
  conversation_id: string;
  seq: string;
  sender_id: string;
  client_message_id: string | null;
  type: Message["type"];
  content: string;
  reply_to_id: string | null;
  created_at: string;
  edited_at: string | null;
  deleted_at: string | null;
};

/** Full-text (websearch syntax, which never raises on odd input) OR substring match (trigram index). */
const matches = (q: string) =>
  sql`m.deleted_at IS NULL AND (m.search @@ websearch_to_tsquery('simple', ${q}) OR m.content ILIKE ${likePattern(q)})`;

const COLUMNS = sql`m.id, m.conversation_id, m.seq, m.sender_id, m.client_message_id, m.type, m.content, m.reply_to_id,
  m.created_at, m.edited_at, m.deleted_at`;

function toMessages(rows: Row[], limit: number): Message[] {
  return rows.slice(0, limit).map((r) =>
    toMessage({
      id: r.id,
      conversationId: r.conversation_id,
      seq: Number(r.seq),
      senderId: r.sender_id,
      clientMessageId: r.client_message_id,
      type: r.type,
      content: r.content,
      replyToId: r.reply_to_id,
      createdAt: new Date(r.created_at),
      editedAt: r.edited_at ? new Date(r.edited_at) : null,
      deletedAt: r.deleted_at ? new Date(r.deleted_at) : null,
    }),
  );
}

/**
 * Across every conversation where the caller is an active participant, newest first; keyset cursor by
 * (created_at, id).
 */
export async function searchMessages(db: Db, query: SearchQuery): Promise<{ messages: Message[]; next?: { createdAt: string; id: string } }> {
  const conditions: SQL[] = [matches(query.q)];
  if (query.cursor) conditions.push(sql`(m.created_at, m.id) < (${query.cursor.createdAt}::timestamptz, ${query.cursor.id}::uuid)`);
  const result = await db.execute<Row>(sql`
    SELECT ${COLUMNS}
    FROM messages m
    JOIN participants p ON p.conversation_id = m.conversation_id AND p.user_id = ${query.userId} AND p.left_at IS NULL
    WHERE ${sql.join(conditions, sql` AND `)}
    ORDER BY m.created_at DESC, m.id DESC
    LIMIT ${query.limit + 1}`);
  const messages = toMessages(result.rows, query.limit);
  const last = messages[messages.length - 1];
  return { messages, next: result.rows.length > query.limit && last ? { createdAt: last.createdAt, id: last.id } : undefined };
}

/**
 * One conversation (the caller's membership is checked by its room), newest first by seq: the (conversation, seq)
 * index walks only this conversation. Ordered by created_at, the planner preferred the global created_at index and
 * filtered other conversations' newer rows (measured: 20–28 ms instead of 2.4 ms for a 1%-frequency word).
 */
export async function searchConversation(db: Db, query: ConversationSearchQuery): Promise<{ messages: Message[]; nextBeforeSeq?: number }> {
  const conditions: SQL[] = [matches(query.q), sql`m.conversation_id = ${query.conversationId}`];
  if (query.beforeSeq !== undefined) conditions.push(sql`m.seq < ${query.beforeSeq}`);
  const result = await db.execute<Row>(sql`
    SELECT ${COLUMNS}
    FROM messages m
    WHERE ${sql.join(conditions, sql` AND `)}
    ORDER BY m.seq DESC
    LIMIT ${query.limit + 1}`);
  const messages = toMessages(result.rows, query.limit);
  const last = messages[messages.length - 1];
  return { messages, nextBeforeSeq: result.rows.length > query.limit && last ? last.seq : undefined };
}

/** Active membership, for routes that read Postgres directly and must answer 404 to outsiders. */
export async function isActiveMember(db: Db, conversationId: string, userId: string): Promise<boolean> {
  const result = await db.execute(
    sql`SELECT 1 FROM participants WHERE conversation_id = ${conversationId} AND user_id = ${userId} AND left_at IS NULL`,
  );
  return result.rows.length > 0;
}
