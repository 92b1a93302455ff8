import { randomUUID } from "node:crypto";
import pg from "pg";
import { SignJWT } from "jose";

/**
 * Direct Postgres access for seeding and counting: the `pg` package on the server's own TCP port (the embedded
 * PGlite's or DATABASE_URL), never through the Worker, so setup does not load the system under test.
 */
export class BenchDb {
  readonly pool: pg.Pool;
  constructor(databaseUrl: string, max = 4) {
    this.pool = new pg.Pool({ connectionString: databaseUrl, max });
    this.pool.on("error", () => {});
  }

  async query<T extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values: unknown[] = []): Promise<T[]> {
    return (await this.pool.query<T>(text, values)).rows;
  }

  async end(): Promise<void> {
    await this.pool.end().catch(() => {});
  }

  /** Users inserted in one statement, each with an HS256 token as dev-login would sign it (24 h). */
  async createUsers(n: number, prefix: string, secret: string): Promise<BenchUser[]> {
    const key = new TextEncoder().encode(secret);
    const exp = Math.floor(Date.now() / 1000) + 24 * 3600;
    const users: BenchUser[] = [];
    for (let i = 0; i < n; i++) {
      const id = randomUUID();
      const kahaId = `${prefix}-${i}-${id.slice(0, 8)}`;
      const token = await new SignJWT({ id, kahaId }).setProtectedHeader({ alg: "HS256", typ: "JWT" }).setIssuedAt().setExpirationTime(exp).sign(key);
      users.push({ id, kahaId, token });
    }
    for (let i = 0; i < users.length; i += 5000) {
      const chunk = users.slice(i, i + 5000);
      await this.query("INSERT INTO users (id, kaha_id) SELECT * FROM unnest($1::uuid[], $2::text[]) ON CONFLICT DO NOTHING", [
        chunk.map((u) => u.id),
        chunk.map((u) => u.kahaId),
      ]);
    }
    return users;
  }

  /** Conversations written straight to Postgres (rooms do not enforce the group size cap on seeded data). */
  async seedConversations(memberLists: string[][], type: "group" | "direct" = "group"): Promise<string[]> {
    const ids = memberLists.map(() => randomUUID());
    const convIds: string[] = [];
    const convCreators: string[] = [];
    const keys: (string | null)[] = [];
    const pConv: string[] = [];
    const pUser: string[] = [];
    const pRole: string[] = [];
    memberLists.forEach((members, i) => {
      convIds.push(ids[i]);
      convCreators.push(members[0]);
      keys.push(type === "direct" ? [...members].sort().join(":") : null);
      members.forEach((u, j) => {
        pConv.push(ids[i]);
        pUser.push(u);
        pRole.push(type === "group" && j === 0 ? "admin" : "member");
      });
    });
    await this.query(
      `INSERT INTO conversations (id, type, name, direct_key, created_by)
       SELECT c.id, $2, CASE WHEN $2 = 'group' THEN 'bench' END, c.k, c.creator
       FROM unnest($1::uuid[], $3::text[], $4::uuid[]) AS c(id, k, creator)`,
      [convIds, type, keys, convCreators],
    );
    for (let i = 0; i < pConv.length; i += 20_000) {
      await this.query(
        "INSERT INTO participants (conversation_id, user_id, role) SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[])",
        [pConv.slice(i, i + 20_000), pUser.slice(i, i + 20_000), pRole.slice(i, i + 20_000)],
      );
    }
    return ids;
  }

  async seedConversation(members: string[], type: "group" | "direct" = "group"): Promise<string> {
    return (await this.seedConversations([members], type))[0];
  }

  /**
   * n messages with seq 1..n in one INSERT ... SELECT generate_series, senders in rotation, one minute apart in the
   * past. Content: "message <seq>", the word "needle" in 1% of rows, and a fixed filler.
   */
  async bulkMessages(conversationId: string, senderIds: string[], n: number): Promise<void> {
    await this.query(
      `INSERT INTO messages (id, conversation_id, seq, sender_id, type, content, created_at, event_seq)
       SELECT gen_random_uuid(), $1, g, ($2::uuid[])[1 + (g % cardinality($2::uuid[]))], 'text',
              'message ' || g || CASE WHEN g % 100 = 0 THEN ' needle' ELSE '' END || ' lorem ipsum dolor sit amet',
              now() - make_interval(secs => ($3 - g) * 60), g
       FROM generate_series(1, $3::int) AS g`,
      [conversationId, senderIds, n],
    );
    await this.query("UPDATE conversations SET last_seq = $2 WHERE id = $1", [conversationId, n]);
  }

  async countMessages(conversationId: string, clientIdPrefix?: string): Promise<number> {
    const rows = clientIdPrefix
      ? await this.query<{ n: string }>("SELECT count(*) AS n FROM messages WHERE conversation_id = $1 AND client_message_id LIKE $2", [
          conversationId,
          `${clientIdPrefix}%`,
        ])
      : await this.query<{ n: string }>("SELECT count(*) AS n FROM messages WHERE conversation_id = $1", [conversationId]);
    return Number(rows[0].n);
  }
}

export interface BenchUser {
  id: string;
  kahaId: string;
  token: string;
}
