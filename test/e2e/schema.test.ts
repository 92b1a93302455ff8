import path from "node:path";
import { describe, expect, it } from "vitest";
import { getTableConfig, type PgTable } from "drizzle-orm/pg-core";
import * as schema from "../../src/db/schema";
import { runMigrations } from "../../scripts/lib/migrate";
import { ROOT } from "../../scripts/lib/stack";
import { pool } from "./harness";

const tables = (Object.values(schema) as unknown[]).filter((v): v is PgTable => typeof v === "object" && v !== null && Symbol.for("drizzle:IsDrizzleTable") in v);

describe("database schema", () => {
  it("the drizzle schema and the SQL migrations agree on every table and column", async () => {
    const db = pool();
    try {
      expect(tables.length).toBeGreaterThanOrEqual(10);
      for (const table of tables) {
        const config = getTableConfig(table);
        const { rows } = await db.query<{ column_name: string; is_nullable: string; data_type: string; udt_name: string }>(
          "SELECT column_name, is_nullable, data_type, udt_name FROM information_schema.columns WHERE table_schema = 'public' AND table_name = $1",
          [config.name],
        );
        expect(rows.length, `table ${config.name} exists`).toBeGreaterThan(0);
        const actual = new Map(rows.map((r) => [r.column_name, r]));
        expect([...actual.keys()].sort(), `columns of ${config.name}`).toEqual(config.columns.map((c) => c.name).sort());
        for (const column of config.columns) {
          const db = actual.get(column.name)!;
          expect(db.is_nullable === "NO", `${config.name}.${column.name} NOT NULL`).toBe(column.notNull);
          const sqlType = column.getSQLType().replace(/\(.*\)/, "").replace(/ with time zone/, "tz");
          const dbType = db.data_type === "ARRAY" ? `${db.udt_name.replace(/^_/, "")}[]` : db.udt_name;
          const aliases: Record<string, string> = { timestamptz: "timestamptz", bigserial: "int8", bigint: "int8", integer: "int4", boolean: "bool", "text[]": "text[]" };
          expect(dbType, `${config.name}.${column.name} type`).toBe(aliases[sqlType] ?? sqlType);
        }
      }
    } finally {
      await db.end();
    }
  });

  it("running the migrations again changes nothing", async () => {
    const result = await runMigrations({
      databaseUrl: process.env.STACK_DATABASE_URL!,
      bridge: process.env.STACK_PG_BRIDGE!,
      dir: path.join(ROOT, "migrations"),
    });
    expect(result.applied).toEqual([]);
    expect(result.skipped).toBeGreaterThanOrEqual(2);
    const db = pool();
    try {
      const { rows } = await db.query<{ name: string }>("SELECT name FROM schema_migrations ORDER BY name");
      expect(rows.map((r) => r.name)).toContain("0001_init.sql");
    } finally {
      await db.end();
    }
  });

  it("uses an index for keyset history and the full-text index for search", async () => {
    const db = pool();
    const client = await db.connect();
    try {
      // SET LOCAL in a transaction: the embedded PGlite is one session shared by every socket, so a plain SET would
      // reach the rest of the suite.
      await client.query("BEGIN");
      await client.query("SET LOCAL enable_seqscan = off");
      const history = await client.query<{ "QUERY PLAN": string }>(
        "EXPLAIN SELECT id FROM messages WHERE conversation_id = $1 AND seq < $2 ORDER BY seq DESC LIMIT 51",
        [crypto.randomUUID(), 1000],
      );
      expect(history.rows.map((r) => r["QUERY PLAN"]).join("\n")).toMatch(/messages_conversation_seq_uq/);
      const search = await client.query<{ "QUERY PLAN": string }>(
        "EXPLAIN SELECT id FROM messages WHERE search @@ websearch_to_tsquery('simple', $1)",
        ["hello"],
      );
      expect(search.rows.map((r) => r["QUERY PLAN"]).join("\n")).toMatch(/messages_search_idx/);
    } finally {
      await client.query("ROLLBACK").catch(() => {});
      client.release();
      await db.end();
    }
  });

  it("can serve a conversation-list page in activity order from an index, the keyset as its index condition", async () => {
    const db = pool();
    try {
      // One simple-protocol message with SET LOCAL: the embedded PGlite is one session shared by every socket, so
      // the planner switches must end with this statement and never reach the rest of the suite.
      const user = crypto.randomUUID();
      const results = (await db.query(`BEGIN; SET LOCAL enable_sort = off; SET LOCAL enable_seqscan = off;
        EXPLAIN SELECT c.id FROM participants p JOIN conversations c ON c.id = p.conversation_id
          WHERE p.user_id = '${user}' AND p.left_at IS NULL
            AND (c.last_activity, c.id) < ('2030-01-01T00:00:00Z'::timestamptz, '${crypto.randomUUID()}'::uuid)
          ORDER BY c.last_activity DESC, c.id DESC LIMIT 21;
        ROLLBACK`)) as unknown as { rows: { "QUERY PLAN": string }[] }[];
      const plan = results.flatMap((r) => r.rows ?? []).map((r) => r["QUERY PLAN"]).join("\n");
      expect(plan).toMatch(/Index (Only )?Scan using conversations_last_activity_idx/);
      expect(plan).toMatch(/Index Cond: \(ROW\(last_activity, id\) </);
      expect(plan).not.toMatch(/\bSort\b/);
    } finally {
      await db.end();
    }
  });
});
