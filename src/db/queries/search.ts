import { sql, type SQL } from "drizzle-orm";
import type { Message } from "../../protocol/resources";
import type { AnyDb, Db } from "../client";
import { toMessage } from "../mappers";

/** Position after the last row of a global search page, in its sort order. */
export interface GlobalSearchCursor {
  /** The row's created_at at full (microsecond) precision: a millisecond-rounded value would skip or repeat rows. */
  createdAt: string;
  conversationId: string;
  seq: number;
}

export interface SearchQuery {
  userId: string;
  q: string;
  cursor?: GlobalSearchCursor;
  limit: number;
}

export interface ConversationSearchQuery {
  conversationId: string;
  q: string;
  /** Only messages with a lower seq (the cursor of the previous page). */
  beforeSeq?: number;
  limit: number;
}

/**
 * The LIKE pattern for `q` as a substring, its %, _ and \ taken literally. Escaped in SQL after the accents are taken
 * out: unaccent also turns full-width "％", "＿", "＼" (and "﹪", "﹨", "∖") into those three, and escaped before it
 * they came out as wildcards ("％" found every message) or as an escape ("C:＼temp" found nothing).
 */
export const substringPattern = (q: string) =>
  sql`'%' || regexp_replace(public.chat_unaccent(${q}), ${sql.raw(String.raw`'([\\%_])', '\\\1', 'g'`)}) || '%'`;

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
  cursor_at?: string;
};

/**
 * Every word (plain text: never raises, and no operators) OR the text as a substring (trigram index), both without
 * accents on either side (migration 0015: "cafe" finds "café"). With the websearch parser a leading "-" meant NOT, so
 * a search for "-rc1" answered with every message without "rc1".
 */
const matches = (q: string) =>
  sql`m.deleted_at IS NULL AND (m.search @@ plainto_tsquery('simple', public.chat_unaccent(${q}))
    OR coalesce(m.search_text, m.content) ILIKE ${substringPattern(q)})`;

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
 * Across every conversation where the caller is an active participant, newest first. created_at alone ties (one
 * millisecond, several conversations), so (conversation_id, seq) — unique — breaks ties, all descending: one row
 * comparison is then both the order and the keyset cursor, and a page boundary inside a tie skips or repeats nothing.
 */
export async function searchMessages(db: AnyDb, query: SearchQuery): Promise<{ messages: Message[]; next?: GlobalSearchCursor }> {
  const conditions: SQL[] = [matches(query.q)];
  const c = query.cursor;
  if (c) conditions.push(sql`(m.created_at, m.conversation_id, m.seq) < (${c.createdAt}::timestamptz, ${c.conversationId}::uuid, ${c.seq})`);
  const result = await db.execute<Row>(sql`
    SELECT ${COLUMNS}, to_char(m.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS cursor_at
    FROM messages m
    JOIN participants p ON p.conversation_id = m.conversation_id AND p.user_id = ${query.userId} AND p.left_at IS NULL
    WHERE ${sql.join(conditions, sql` AND `)}
    ORDER BY m.created_at DESC, m.conversation_id DESC, m.seq DESC
    LIMIT ${query.limit + 1}`);
  const messages = toMessages(result.rows, query.limit);
  const last = result.rows.length > query.limit ? result.rows[query.limit - 1] : undefined;
  return { messages, next: last?.cursor_at ? { createdAt: last.cursor_at, conversationId: last.conversation_id, seq: Number(last.seq) } : undefined };
}

/**
 * Newest rows of a conversation that its search walks by `seq` before it asks the search indexes for the older rest.
 * The planner estimates a term's frequency over the whole table, so for a term rare in (or absent from) a large
 * conversation it walked the conversation by `seq` to the end: 228 ms at 100,000 messages for a word in none of them
 * (PostgreSQL 15), where the indexes answer in 1. The walk is now bounded to this window, and the older rows are
 * found through the indexes (bitmap scans, cost proportional to the matches), only when the window did not fill
 * the page. Measured at 100,000 messages: a 1%-frequency word 2.6 → 2.9 ms, an absent one 238 → 0.7, a phrase
 * whose trigrams are in every row 228 → 19.
 */
const SEARCH_WALK_WINDOW = 5000;

/**
 * One conversation (the caller's membership is checked by its room), newest first by seq. Ordered by created_at,
 * the planner preferred the global created_at index and filtered other conversations' newer rows (20–28 ms instead
 * of 2.4 ms for a 1%-frequency word). The search indexes' first column is the conversation (migration 0012: they no
 * longer hand back every conversation's matches).
 */
export async function searchConversation(db: Db, query: ConversationSearchQuery): Promise<{ messages: Message[]; nextBeforeSeq?: number }> {
  const id = query.conversationId;
  const below = query.beforeSeq === undefined ? sql`` : sql`AND m.seq < ${query.beforeSeq}`;
  const top = query.beforeSeq === undefined ? sql`max(seq)` : sql`least(max(seq), ${query.beforeSeq}::bigint - 1)`;
  // Postgres runs a UNION ALL's branches in turn and the LIMIT stops it: the indexed branch (and its CTE) runs only
  // when the window did not fill the page.
  const result = await db.execute<Row>(sql`
    WITH edge AS MATERIALIZED (
      SELECT coalesce(${top}, 0) - ${SEARCH_WALK_WINDOW} AS seq FROM messages WHERE conversation_id = ${id}
    ), older AS MATERIALIZED (
      SELECT m.seq FROM messages m WHERE m.conversation_id = ${id} AND m.seq <= (SELECT seq FROM edge) AND ${matches(query.q)}
    )
    (SELECT ${COLUMNS} FROM messages m
      WHERE m.conversation_id = ${id} AND m.seq > (SELECT seq FROM edge) ${below} AND ${matches(query.q)}
      ORDER BY m.seq DESC LIMIT ${query.limit + 1})
    UNION ALL
    (SELECT ${COLUMNS} FROM messages m
      WHERE m.conversation_id = ${id} AND m.seq IN (SELECT seq FROM older ORDER BY seq DESC LIMIT ${query.limit + 1})
      ORDER BY m.seq DESC)
    LIMIT ${query.limit + 1}`);
  // The branches come in order; sorted here too, so the page never depends on how Postgres appends them.
  const rows = [...result.rows].sort((a, b) => Number(b.seq) - Number(a.seq));
  const messages = toMessages(rows, query.limit);
  const last = messages[messages.length - 1];
  return { messages, nextBeforeSeq: rows.length > query.limit && last ? last.seq : undefined };
}

/** Active membership, for routes that read Postgres directly and must answer 404 to outsiders. */
export async function isActiveMember(db: Db, conversationId: string, userId: string): Promise<boolean> {
  const result = await db.execute(
    sql`SELECT 1 FROM participants WHERE conversation_id = ${conversationId} AND user_id = ${userId} AND left_at IS NULL`,
  );
  return result.rows.length > 0;
}
