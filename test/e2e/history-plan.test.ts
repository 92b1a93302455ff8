import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { drizzle } from "drizzle-orm/neon-serverless";
import { messagePage, type PageQuery } from "../../src/db/queries/messages";
import * as schema from "../../src/db/schema";
import { pool, seedConversation, type User } from "./harness";

/**
 * History must stay an index walk at 100,000 messages (issue [rest]): the plans are taken for the SQL that
 * messagePage itself sends, recorded through drizzle's query logger, not for a hand-written copy of it.
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

describe("history at 100,000 messages", () => {
  const cases: { name: string; q: PageQuery; seqs: [number, number] }[] = [
    { name: "newest page", q: { limit: LIMIT }, seqs: [TOTAL - LIMIT + 1, TOTAL] },
    { name: "before a seq in the middle", q: { before: TOTAL / 2, limit: LIMIT }, seqs: [TOTAL / 2 - LIMIT, TOTAL / 2 - 1] },
    { name: "after a seq in the middle", q: { after: TOTAL / 2, limit: LIMIT }, seqs: [TOTAL / 2 + 1, TOTAL / 2 + LIMIT] },
  ];

  for (const { name, q, seqs } of cases) {
    it(`${name}: an index walk on (conversation_id, seq) that reads at most limit+1 rows, no sort`, async () => {
      const client = pool();
      try {
        const recorded: { query: string; params: unknown[] }[] = [];
        const db = drizzle({ client, schema, logger: { logQuery: (query, params) => recorded.push({ query, params }) } });
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
