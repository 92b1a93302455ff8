import { sql } from "drizzle-orm";
import type { Message } from "../../protocol/resources";
import type { Db } from "../client";
import { toMessage } from "../mappers";
import { conversations, participants } from "../schema";
import type { ParticipantRow } from "./conversations";
import { epochMs, PAGE_COLUMNS } from "./messages";
import type { ParticipantWithKaha } from "./participants";

export interface ConversationParts {
  /** Active participants, in joining order. */
  members: ParticipantWithKaha[];
  /** The newest message of each conversation that has one. */
  latest: Map<string, Message>;
  /** The caller's unread count per conversation; conversations with nothing unread are absent. */
  unread: Map<string, number>;
}

type MemberJson = Omit<ParticipantRow, "joinedAt" | "lastReadAt" | "leftAt"> & { joinedAt: number; lastReadAt: number | null; kahaId: string };
type LatestJson = Parameters<typeof toMessage>[0];

/** One participant as JSON (instants as epoch milliseconds), from `p` joined to its user `u`. */
const MEMBER_JSON = `json_build_object(
  'conversationId', p.conversation_id, 'userId', p.user_id, 'role', p.role, 'joinedAt', ${epochMs("p.joined_at")},
  'isMuted', p.is_muted, 'lastReadSeq', p.last_read_seq, 'lastReadAt', ${epochMs("p.last_read_at")},
  'lastDeliveredSeq', p.last_delivered_seq, 'kahaId', u.kaha_id)`;

/**
 * The newest message of a conversation, from the archive when every message has moved there (a conversation quiet
 * past the retention period kept its `lastSeq` and lost its preview). The archive's branch runs only when `messages`
 * has no row: an Append under LIMIT 1 stops at the first row.
 */
function latestOf(conversationIdColumn: string): string {
  return `(SELECT ${PAGE_COLUMNS} FROM messages WHERE conversation_id = ${conversationIdColumn} ORDER BY seq DESC LIMIT 1)
    UNION ALL
    (SELECT ${PAGE_COLUMNS} FROM message_archive WHERE conversation_id = ${conversationIdColumn} ORDER BY seq DESC LIMIT 1)
    LIMIT 1`;
}

/**
 * The newest message of each conversation (from the archive when every message has moved there), for the business
 * desk's shared view. It read `messages` only: closing or reassigning a chat quiet past the retention period sent
 * `conversation_updated` without `lastMessage`, and apps that take the frame as the list entry lost its preview.
 */
export async function lastMessages(db: Db, conversationIds: string[]): Promise<Map<string, Message>> {
  if (conversationIds.length === 0) return new Map();
  const result = await db.$client.query<LatestJson>({
    text: `SELECT l.* FROM (SELECT DISTINCT unnest($1::uuid[]) AS id) AS ids CROSS JOIN LATERAL (${latestOf("ids.id")}) AS l`,
    values: [conversationIds],
  });
  return new Map(result.rows.map((m) => [m.conversationId, toMessage(m)]));
}

/**
 * What a page of conversations shows around each conversation row, in one statement: a Worker request opens a
 * connection of its own, and from the edge every further round trip to Postgres crosses the network again.
 */
export async function conversationParts(db: Db, userId: string, conversationIds: string[]): Promise<ConversationParts> {
  if (conversationIds.length === 0) return { members: [], latest: new Map(), unread: new Map() };
  const result = await db.$client.query<{ members: MemberJson[]; latest: LatestJson[]; unread: Record<string, number> }>({
    text: `WITH ids AS (SELECT DISTINCT unnest($1::uuid[]) AS id)
      SELECT
        (SELECT coalesce(json_agg(${MEMBER_JSON} ORDER BY p.joined_at, p.user_id), '[]'::json)
         FROM participants p JOIN users u ON u.id = p.user_id
         WHERE p.conversation_id IN (SELECT id FROM ids) AND p.left_at IS NULL) AS members,
        (SELECT coalesce(json_agg(l), '[]'::json) FROM ids CROSS JOIN LATERAL
           (${latestOf("ids.id")}) l) AS latest,
        (SELECT coalesce(json_object_agg(c.conversation_id, c.n), '{}'::json) FROM
           (SELECT p.conversation_id, count(*) AS n
            FROM participants p JOIN messages m ON m.conversation_id = p.conversation_id AND m.seq > p.last_read_seq
              AND m.sender_id <> p.user_id AND m.deleted_at IS NULL
            WHERE p.user_id = $2 AND p.left_at IS NULL AND p.conversation_id IN (SELECT id FROM ids)
            GROUP BY p.conversation_id) c) AS unread`,
    values: [conversationIds, userId],
  });
  const row = result.rows[0];
  return {
    members: (row?.members ?? []).map(memberOf),
    latest: new Map((row?.latest ?? []).map((m) => [m.conversationId, toMessage(m)])),
    unread: new Map(Object.entries(row?.unread ?? {}).map(([id, n]) => [id, Number(n)])),
  };
}

/**
 * The same parts as columns of a select over `participants` (the caller's row) joined to `conversations`, so a
 * list page, or one conversation, and everything it shows come back in one statement. Postgres evaluates these
 * subqueries only for the rows that survive the page's ORDER BY and LIMIT.
 */
export const partsColumns = {
  members: sql<MemberJson[]>`(SELECT coalesce(json_agg(${sql.raw(MEMBER_JSON)} ORDER BY p.joined_at, p.user_id), '[]'::json)
    FROM participants p JOIN users u ON u.id = p.user_id
    WHERE p.conversation_id = ${conversations.id} AND p.left_at IS NULL)`,
  latest: sql<LatestJson | null>`(SELECT row_to_json(l) FROM (${sql.raw(latestOf('"conversations"."id"'))}) l)`,
  unread: sql<number>`(SELECT count(*) FROM messages m
    WHERE m.conversation_id = ${participants.conversationId} AND m.seq > ${participants.lastReadSeq}
      AND m.sender_id <> ${participants.userId} AND m.deleted_at IS NULL)`.mapWith(Number),
};

export interface PartsColumns {
  members: MemberJson[];
  latest: LatestJson | null;
  unread: number;
}

/** The parts of rows selected with `partsColumns` (as `parts`), as `conversationParts` returns them. */
export function partsOf(rows: { conversation: { id: string }; parts: PartsColumns }[]): ConversationParts {
  const all: ConversationParts = { members: [], latest: new Map(), unread: new Map() };
  for (const { conversation, parts } of rows) {
    for (const m of parts.members) all.members.push(memberOf(m));
    if (parts.latest) all.latest.set(conversation.id, toMessage(parts.latest));
    if (parts.unread > 0) all.unread.set(conversation.id, parts.unread);
  }
  return all;
}

function memberOf({ kahaId, ...p }: MemberJson): ParticipantWithKaha {
  return {
    participant: { ...p, joinedAt: new Date(p.joinedAt), lastReadAt: p.lastReadAt === null ? null : new Date(p.lastReadAt), leftAt: null },
    kahaId,
  };
}
