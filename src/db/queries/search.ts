import { sql, type SQL } from "drizzle-orm";
import type { Message } from "../../protocol/resources";
import type { Db } from "../client";
import { toMessage } from "../mappers";

export interface SearchQuery {
  userId: string;
  q: string;
  conversationId?: string;
  cursor?: { createdAt: string; id: string };
  limit: number;
}

/** LIKE pattern with the user's %, _ and \ taken literally. */
export function likePattern(q: string): string {
  return `%${q.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

/**
 * Full-text (websearch syntax, which never raises on odd input) OR substring match (trigram index), newest first,
 * only in conversations where the caller is an active participant; keyset cursor by (created_at, id).
 */
export async function searchMessages(db: Db, query: SearchQuery): Promise<{ messages: Message[]; next?: { createdAt: string; id: string } }> {
  const conditions: SQL[] = [
    sql`m.deleted_at IS NULL`,
    sql`(m.search @@ websearch_to_tsquery('simple', ${query.q}) OR m.content ILIKE ${likePattern(query.q)})`,
  ];
  if (query.conversationId) conditions.push(sql`m.conversation_id = ${query.conversationId}`);
  if (query.cursor) conditions.push(sql`(m.created_at, m.id) < (${query.cursor.createdAt}::timestamptz, ${query.cursor.id}::uuid)`);
  const result = await db.execute<{
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
  }>(sql`
    SELECT m.id, m.conversation_id, m.seq, m.sender_id, m.client_message_id, m.type, m.content, m.reply_to_id,
           m.created_at, m.edited_at, m.deleted_at
    FROM messages m
    JOIN participants p ON p.conversation_id = m.conversation_id AND p.user_id = ${query.userId} AND p.left_at IS NULL
    WHERE ${sql.join(conditions, sql` AND `)}
    ORDER BY m.created_at DESC, m.id DESC
    LIMIT ${query.limit + 1}`);
  const rows = result.rows.slice(0, query.limit).map((r) =>
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
  const last = rows[rows.length - 1];
  return { messages: rows, next: result.rows.length > query.limit && last ? { createdAt: last.createdAt, id: last.id } : undefined };
}

/** Active membership, for routes that read Postgres directly and must answer 404 to outsiders. */
export async function isActiveMember(db: Db, conversationId: string, userId: string): Promise<boolean> {
  const result = await db.execute(
    sql`SELECT 1 FROM participants WHERE conversation_id = ${conversationId} AND user_id = ${userId} AND left_at IS NULL`,
  );
  return result.rows.length > 0;
}
