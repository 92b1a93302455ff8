import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { drizzle } from "drizzle-orm/neon-serverless";
import { messageById, messagePage, type PageQuery } from "../../src/db/queries/messages";
import { pool, seedConversation, type User } from "./harness";

/**
 * History must stay an index walk at 100,000 messages (issue [rest]): the plans are taken for the SQL that
 * messagePage itself sends, recorded on the pool it is given, not for a hand-written copy of it.
 */

const TOTAL = 100_000;
const LIMIT = 50;
const SEQ_INDEX = "messages_conversation_seq_uq";

interface PlanNode {
  "Node Type": string;
  "Index Name"?: string;
  "Relation Name"?: string;
  "Actual Rows"?: number;
  "Actual Loops"?: number;
  Plans?: PlanNode[];
}

function nodes(plan: PlanNode): PlanNode[] {
  return [plan, ...(plan.Plans ?? []).flatMap(nodes)];
}

const people: User[] = [0, 1].map((i) => ({ id: crypto.randomUUID(), kahaId: `plan-${process.pid}-${Date.now().toString(36)}-${i}`, token: "" }));
let conversationId = "";

beforeAll(async () => {
  conversationId = await seedConversation("direct", people);
  const db = pool();
  try {
    // One statement: 100,000 rows alternating between the two senders, one second apart, newest = seq 100000.
    await db.query(
      `INSERT INTO messages (id, conversation_id, seq, sender_id, type, content, created_at, event_seq)
       SELECT gen_random_uuid(), $1, g, CASE WHEN g % 2 = 0 THEN $2::uuid ELSE $3::uuid END, 'text', 'message ' || g,
              now() - make_interval(secs => $4::int - g), g
         FROM generate_series(1, $4::int) AS g`,
      [conversationId, people[0].id, people[1].id, TOTAL],
    );
    await db.query("UPDATE conversations SET last_seq = $2 WHERE id = $1", [conversationId, TOTAL]);
    await db.query("ANALYZE messages");
  } finally {
    await db.end();
  }
}, 180_000);

afterAll(async () => {
  if (!conversationId) return;
  const db = pool();
  try {
    // Messages and participants go with the conversation (ON DELETE CASCADE).
    await db.query("DELETE FROM conversations WHERE id = $1", [conversationId]);
    await db.query("DELETE FROM users WHERE id = ANY($1::uuid[])", [people.map((p) => p.id)]);
  } finally {
    await db.end();
  }
}, 120_000);

/** What the pool is asked, whether through drizzle or directly (messagePage skips the ORM's row mapping). */
function recordQueries(client: ReturnType<typeof pool>): { query: string; params: unknown[] }[] {
  const recorded: { query: string; params: unknown[] }[] = [];
  const query = client.query.bind(client) as (config: unknown, values?: unknown[]) => Promise<unknown>;
  (client as { query: unknown }).query = (config: string | { text: string; values?: unknown[] }, values?: unknown[]) => {
    recorded.push(typeof config === "string" ? { query: config, params: values ?? [] } : { query: config.text, params: config.values ?? [] });
    return query(config, values);
  };
  return recorded;
}

describe("history at 100,000 messages", () => {
  it("a page says what the ORM's mapping of the same rows says: times to the millisecond, a deleted message blank", async () => {
    const client = pool();
    try {
      // Microsecond timestamps, which a Date cannot hold. One row edited, one deleted with its content still there.
      const at = (us: string) => `2026-01-02T03:04:05.${us}Z`;
      await client.query("UPDATE messages SET created_at = $2 WHERE conversation_id = $1 AND seq = 1", [conversationId, at("678999")]);
      await client.query("UPDATE messages SET edited_at = $2 WHERE conversation_id = $1 AND seq = 2", [conversationId, at("000501")]);
      await client.query("UPDATE messages SET deleted_at = $2 WHERE conversation_id = $1 AND seq = 3", [conversationId, at("999999")]);
      const db = drizzle({ client });
      const page = await messagePage(db, conversationId, { after: 0, limit: 4 });
      expect(page.messages.map((m) => m.seq)).toEqual([1, 2, 3, 4]);
      expect(page.hasMore).toBe(true);
      for (const m of page.messages) {
        const { eventSeq: _eventSeq, ...viaOrm } = (await messageById(db, conversationId, m.id))!;
        expect(m).toEqual(viaOrm);
      }
      expect([page.messages[0].createdAt, page.messages[1].editedAt]).toEqual([at("678"), at("000")]);
      expect(page.messages[2]).toMatchObject({ content: "", deletedAt: expect.any(String) });
    } finally {
      await client.end();
    }
  });

  const cases: { name: string; q: PageQuery; seqs: [number, number] }[] = [
    { name: "newest page", q: { limit: LIMIT }, seqs: [TOTAL - LIMIT + 1, TOTAL] },
    { name: "before a seq in the middle", q: { before: TOTAL / 2, limit: LIMIT }, seqs: [TOTAL / 2 - LIMIT, TOTAL / 2 - 1] },
    { name: "after a seq in the middle", q: { after: TOTAL / 2, limit: LIMIT }, seqs: [TOTAL / 2 + 1, TOTAL / 2 + LIMIT] },
  ];

  for (const { name, q, seqs } of cases) {
    it(`${name}: an index walk on (conversation_id, seq) that reads at most limit+1 rows, no sort`, async () => {
      const client = pool();
      try {
        const recorded = recordQueries(client);
        const db = drizzle({ client });
        const page = await messagePage(db, conversationId, q);
        expect(page.messages.map((m) => m.seq)).toEqual(Array.from({ length: LIMIT }, (_, i) => seqs[0] + i));
        expect(page.hasMore).toBe(true);
        expect(recorded).toHaveLength(1);

        // enable_seqscan stays on: the planner chooses the index by cost, as in production.
        const { rows } = await client.query(`EXPLAIN (ANALYZE, FORMAT JSON) ${recorded[0].query}`, recorded[0].params);
        const raw = rows[0]["QUERY PLAN"];
        const [explained] = (typeof raw === "string" ? JSON.parse(raw) : raw) as { Plan: PlanNode; "Execution Time": number }[];
        const all = nodes(explained.Plan);
        const types = all.map((n) => n["Node Type"]);
        expect(types, JSON.stringify(types)).not.toContain("Seq Scan");
        expect(types.filter((t) => /Sort|Bitmap/.test(t)), JSON.stringify(types)).toEqual([]);
        const scans = all.filter((n) => n["Node Type"] === "Index Scan" || n["Node Type"] === "Index Only Scan");
        expect(scans.map((n) => [n["Relation Name"], n["Index Name"]])).toEqual([["messages", SEQ_INDEX]]);
        expect(scans[0]["Actual Loops"]).toBe(1);
        expect(scans[0]["Actual Rows"]).toBeLessThanOrEqual(LIMIT + 1);
        console.log(`history plan, ${name}: ${types.join(" > ")}, ${scans[0]["Actual Rows"]} rows, ${explained["Execution Time"]} ms`);
      } finally {
        await client.end();
      }
    });
  }
});
