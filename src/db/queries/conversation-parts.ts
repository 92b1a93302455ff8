import type { Message } from "../../protocol/resources";
import type { Db } from "../client";
import { toMessage } from "../mappers";
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

/**
 * What a page of conversations shows around each conversation row, in one statement: a Worker request opens a
 * connection of its own, and from the edge every further round trip to Postgres crosses the network again.
 */
export async function conversationParts(db: Db, userId: string, conversationIds: string[]): Promise<ConversationParts> {
  if (conversationIds.length === 0) return { members: [], latest: new Map(), unread: new Map() };
  const result = await db.$client.query<{ members: MemberJson[]; latest: Parameters<typeof toMessage>[0][]; unread: Record<string, number> }>({
    text: `WITH ids AS (SELECT DISTINCT unnest($1::uuid[]) AS id)
      SELECT
        (SELECT coalesce(json_agg(json_build_object(
            'conversationId', p.conversation_id, 'userId', p.user_id, 'role', p.role, 'joinedAt', ${epochMs("p.joined_at")},
            'isMuted', p.is_muted, 'lastReadSeq', p.last_read_seq, 'lastReadAt', ${epochMs("p.last_read_at")},
            'lastDeliveredSeq', p.last_delivered_seq, 'kahaId', u.kaha_id) ORDER BY p.joined_at, p.user_id), '[]'::json)
         FROM participants p JOIN users u ON u.id = p.user_id
         WHERE p.conversation_id IN (SELECT id FROM ids) AND p.left_at IS NULL) AS members,
        (SELECT coalesce(json_agg(l), '[]'::json) FROM ids CROSS JOIN LATERAL
           (SELECT ${PAGE_COLUMNS} FROM messages WHERE conversation_id = ids.id ORDER BY seq DESC LIMIT 1) l) AS latest,
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
    members: (row?.members ?? []).map(({ kahaId, ...p }) => ({ participant: participantRow(p), kahaId })),
    latest: new Map((row?.latest ?? []).map((m) => [m.conversationId, toMessage(m)])),
    unread: new Map(Object.entries(row?.unread ?? {}).map(([id, n]) => [id, Number(n)])),
  };
}

type MemberJson = Omit<ParticipantRow, "joinedAt" | "lastReadAt" | "leftAt"> & { joinedAt: number; lastReadAt: number | null; kahaId: string };

function participantRow(p: Omit<MemberJson, "kahaId">): ParticipantRow {
  return { ...p, joinedAt: new Date(p.joinedAt), lastReadAt: p.lastReadAt === null ? null : new Date(p.lastReadAt), leftAt: null };
}
