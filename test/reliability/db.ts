// Direct Postgres access for the reliability suite and the soak run: seeding and the ledger's "persisted" column.
// Always through a bridge that no fault touches (the test's view of the truth), never through the fault proxy.
import type { Pool } from "@neondatabase/serverless";
import { nodePool } from "../../scripts/lib/migrate";
import { LOCAL_JWT_SECRET } from "../../scripts/lib/stack";
import { devUserId } from "../../src/lib/ids";
import { signDevToken } from "../../src/lib/jwt";

export interface ChatUser {
  id: string;
  kahaId: string;
  token: string;
}

export interface PgRow {
  id: string;
  seq: number;
  senderId: string;
  clientMessageId: string | null;
  content: string;
}

let counter = 0;

/** A user with a locally signed token (the stack's dev secret); provisioned in Postgres by seedConversation. */
export async function makeUser(prefix = "rel", secret = LOCAL_JWT_SECRET, ttlSeconds = 3 * 3600): Promise<ChatUser> {
  const kahaId = `${prefix}-${process.pid}-${Date.now().toString(36)}-${(counter++).toString(36)}`;
  const id = await devUserId(kahaId);
  return { id, kahaId, token: await signDevToken({ id, kahaId }, secret, ttlSeconds) };
}

export class TruthDb {
  private readonly pool: Pool;
  constructor(databaseUrl: string, bridge: string) {
    this.pool = nodePool(databaseUrl, bridge, 3);
  }

  async query<T extends Record<string, unknown>>(text: string, params: unknown[] = []): Promise<T[]> {
    const r = await this.pool.query(text, params);
    return r.rows as T[];
  }

  /** Users, a conversation and its participants written straight to Postgres (independent of the REST routes). */
  async seedConversation(type: "direct" | "group", users: ChatUser[]): Promise<string> {
    const id = crypto.randomUUID();
    for (const u of users) await this.query("INSERT INTO users (id, kaha_id) VALUES ($1, $2) ON CONFLICT DO NOTHING", [u.id, u.kahaId]);
    const key = type === "direct" ? [users[0].id, users[1].id].sort().join(":") : null;
    await this.query("INSERT INTO conversations (id, type, name, direct_key, created_by) VALUES ($1, $2, $3, $4, $5)", [
      id,
      type,
      type === "group" ? "reliability" : null,
      key,
      users[0].id,
    ]);
    for (const [i, u] of users.entries()) {
      await this.query("INSERT INTO participants (conversation_id, user_id, role) VALUES ($1, $2, $3)", [
        id,
        u.id,
        type === "group" && i === 0 ? "admin" : "member",
      ]);
    }
    return id;
  }

  async messages(conversationId: string): Promise<PgRow[]> {
    const rows = await this.query<{ id: string; seq: string; sender_id: string; client_message_id: string | null; content: string }>(
      "SELECT id, seq, sender_id, client_message_id, content FROM messages WHERE conversation_id = $1 ORDER BY seq",
      [conversationId],
    );
    return rows.map((r) => ({ id: r.id, seq: Number(r.seq), senderId: r.sender_id, clientMessageId: r.client_message_id, content: r.content }));
  }

  async count(conversationIds: string[]): Promise<number> {
    if (conversationIds.length === 0) return 0;
    const r = await this.query<{ n: string }>("SELECT count(*) AS n FROM messages WHERE conversation_id = ANY($1::uuid[])", [conversationIds]);
    return Number(r[0]?.n ?? 0);
  }

  async end(): Promise<void> {
    await this.pool.end().catch(() => {});
  }
}
