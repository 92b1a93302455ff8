import path from "node:path";
import { describe, expect, it } from "vitest";
import { is, sql, SQL, StringChunk } from "drizzle-orm";
import { getTableConfig, PgDialect, type PgColumn, type PgTable } from "drizzle-orm/pg-core";
import * as schema from "../../src/db/schema";
import { mayMatch } from "../../src/domain/history";
import { substringPattern } from "../../src/db/queries/search";
import { MigrationChangedError, runMigrations } from "../../scripts/lib/migrate";
import { ROOT } from "../../scripts/lib/stack";
import { pool } from "./harness";

const tables = (Object.values(schema) as unknown[]).filter((v): v is PgTable => typeof v === "object" && v !== null && Symbol.for("drizzle:IsDrizzleTable") in v);

/** Tables in the public schema that src/db/schema.ts is not meant to declare, each with its reason. */
const NOT_IN_DRIZZLE: Record<string, string> = {
  migrations: "bookkeeping of scripts/lib/migrate.ts, created by the runner rather than by a migration",
};

/** What both sides can say about an index. Columns read "name[ DESC][ opclass]" (opclass only when not the default). */
interface IndexShape {
  unique: boolean;
  method: string;
  partial: boolean;
  columns: string[];
}

/**
 * The indexes src/db/schema.ts declares for a table, by name, the way Postgres lists them: a primary key or unique
 * constraint is backed by a unique btree index under the constraint's name (a single-column primary key by
 * `<table>_pkey`).
 */
function declaredIndexes(table: PgTable): { indexes: Map<string, IndexShape>; problems: string[] } {
  const config = getTableConfig(table);
  const indexes = new Map<string, IndexShape>();
  const problems: string[] = [];
  const add = (name: string | undefined, shape: IndexShape) => {
    if (!name) problems.push(`an unnamed index on ${config.name} in src/db/schema.ts: give it the name the migration uses`);
    else if (indexes.has(name)) problems.push(`index ${name} is declared twice in src/db/schema.ts`);
    else indexes.set(name, shape);
  };
  const key = (columns: PgColumn[]): IndexShape => ({ unique: true, method: "btree", partial: false, columns: columns.map((c) => c.name) });
  const primary = config.columns.filter((c) => c.primary);
  if (primary.length > 0) add(`${config.name}_pkey`, key(primary));
  for (const pk of config.primaryKeys) add(pk.getName(), key(pk.columns));
  for (const c of config.columns) if (c.isUnique) add(c.uniqueName, key([c]));
  for (const uc of config.uniqueConstraints) add(uc.getName(), key(uc.columns));
  for (const index of config.indexes) {
    const { name, unique, method, where, columns } = index.config;
    add(name, {
      unique,
      method: method ?? "btree",
      partial: where !== undefined,
      columns: columns.map((c) => {
        // An expression's operator class can only be written inside its SQL (`sql\`(...) gin_trgm_ops\``).
        if (is(c, SQL)) {
          const text = c.queryChunks.map((chunk) => (is(chunk, StringChunk) ? chunk.value.join("") : "")).join("");
          const opClass = /\s(\w+_ops)\s*$/.exec(text)?.[1];
          return `(expression)${opClass ? ` ${opClass}` : ""}`;
        }
        if (!("name" in c) || !c.name) return "(expression)";
        const { order, opClass } = c.indexConfig ?? {};
        return `${c.name}${order === "desc" ? " DESC" : ""}${opClass ? ` ${opClass}` : ""}`;
      }),
    });
  }
  return { indexes, problems };
}

/** Every index in the public schema after the migrations, by table and name. */
const ACTUAL_INDEXES = `
  SELECT t.relname AS table_name, i.relname AS index_name, ix.indisunique AS is_unique, am.amname AS method,
         ix.indpred IS NOT NULL AS partial,
         ARRAY(
           SELECT COALESCE(a.attname::text, '(expression)')
                  || CASE WHEN (ix.indoption[k.n]::int & 1) = 1 THEN ' DESC' ELSE '' END
                  || CASE WHEN oc.opcdefault THEN '' ELSE ' ' || oc.opcname END
             FROM generate_series(0, ix.indnkeyatts - 1) AS k(n)
             LEFT JOIN pg_attribute a ON a.attrelid = ix.indrelid AND a.attnum = ix.indkey[k.n] AND ix.indkey[k.n] <> 0
             JOIN pg_opclass oc ON oc.oid = ix.indclass[k.n]
            ORDER BY k.n
         ) AS columns
    FROM pg_index ix
    JOIN pg_class i ON i.oid = ix.indexrelid
    JOIN pg_class t ON t.oid = ix.indrelid
    JOIN pg_namespace ns ON ns.oid = t.relnamespace
    JOIN pg_am am ON am.oid = i.relam
   WHERE ns.nspname = 'public' AND t.relkind IN ('r', 'p')`;

function compareIndexes(table: string, declared: Map<string, IndexShape>, actual: Map<string, IndexShape>): string[] {
  const problems: string[] = [];
  for (const [name, sqlIndex] of actual) {
    const drizzleIndex = declared.get(name);
    if (!drizzleIndex) {
      problems.push(`index ${name} on ${table} exists in SQL (migrations/) but not in src/db/schema.ts: declare it there under the same name`);
      continue;
    }
    const where = `index ${name} on ${table}`;
    const fix = "fix src/db/schema.ts (the migrations are the source of truth)";
    if (sqlIndex.unique !== drizzleIndex.unique)
      problems.push(`${where}: SQL says ${sqlIndex.unique ? "UNIQUE" : "not unique"}, src/db/schema.ts says ${drizzleIndex.unique ? "unique" : "not unique"}; ${fix}`);
    if (sqlIndex.method !== drizzleIndex.method)
      problems.push(`${where}: SQL uses ${sqlIndex.method}, src/db/schema.ts ${drizzleIndex.method}; ${fix}`);
    if (sqlIndex.partial !== drizzleIndex.partial)
      problems.push(`${where}: SQL ${sqlIndex.partial ? "has" : "has no"} WHERE clause, src/db/schema.ts ${drizzleIndex.partial ? "has" : "has no"} .where(); ${fix}`);
    if (sqlIndex.columns.join(", ") !== drizzleIndex.columns.join(", "))
      problems.push(`${where}: SQL indexes (${sqlIndex.columns.join(", ")}), src/db/schema.ts (${drizzleIndex.columns.join(", ")}); ${fix}`);
  }
  for (const [name, drizzleIndex] of declared) {
    if (actual.has(name)) continue;
    // A rename usually leaves an undeclared SQL index on the same columns: name it, so the fix is one edit.
    const twin = [...actual].find(([n, a]) => !declared.has(n) && a.columns.join() === drizzleIndex.columns.join())?.[0];
    const hint = !twin
      ? ""
      : twin.endsWith("_pkey")
        ? `; SQL has ${twin} on the same columns: name it so (primaryKey({ name: "${twin}", ... }))`
        : `; SQL has ${twin} on the same columns: use that name`;
    problems.push(`index ${name} on ${table} is declared in src/db/schema.ts but no migration creates it${hint}`);
  }
  return problems;
}

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

  it("every table in the public schema is declared in src/db/schema.ts, and every declared table exists", async () => {
    const db = pool();
    try {
      const { rows } = await db.query<{ tablename: string }>("SELECT tablename FROM pg_tables WHERE schemaname = 'public'");
      const inSql = new Set(rows.map((r) => r.tablename).filter((t) => !(t in NOT_IN_DRIZZLE)));
      const inDrizzle = new Set(tables.map((t) => getTableConfig(t).name));
      const problems = [
        ...[...inSql].filter((t) => !inDrizzle.has(t)).map((t) => `table ${t} exists in SQL (migrations/) but not in src/db/schema.ts: declare it there (or list it in NOT_IN_DRIZZLE with a reason)`),
        ...[...inDrizzle].filter((t) => !inSql.has(t)).map((t) => `table ${t} is declared in src/db/schema.ts but no migration creates it`),
      ];
      expect(problems).toEqual([]);
    } finally {
      await db.end();
    }
  });

  it("the drizzle schema and the SQL migrations agree on every index and unique constraint", async () => {
    const db = pool();
    try {
      const { rows } = await db.query<{ table_name: string; index_name: string; is_unique: boolean; method: string; partial: boolean; columns: string[] }>(
        ACTUAL_INDEXES,
      );
      // A table missing on one side is the table test's finding; its indexes would only repeat it here.
      const sqlTables = new Set((await db.query<{ tablename: string }>("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")).rows.map((r) => r.tablename));
      const actual = new Map<string, Map<string, IndexShape>>();
      for (const r of rows) {
        if (r.table_name in NOT_IN_DRIZZLE) continue;
        const byName = actual.get(r.table_name) ?? new Map<string, IndexShape>();
        byName.set(r.index_name, { unique: r.is_unique, method: r.method, partial: r.partial, columns: r.columns });
        actual.set(r.table_name, byName);
      }
      // The guard against a vacuous pass: the keys the design relies on are among what was read.
      expect(actual.get("conversations")?.has("conversations_direct_key_uq")).toBe(true);
      // Search indexes keyed by conversation first: a conversation's search reads its own entries, not every
      // conversation's matches for the term (migration 0012).
      expect(actual.get("messages")?.get("messages_conversation_search_idx")).toMatchObject({ method: "gin", columns: ["conversation_id", "search"] });
      expect(actual.get("messages")?.get("messages_conversation_trgm_idx")).toMatchObject({ method: "gin", columns: ["conversation_id", "(expression) gin_trgm_ops"] });
      const problems: string[] = [];
      for (const table of tables) {
        const name = getTableConfig(table).name;
        if (!sqlTables.has(name)) continue;
        const declared = declaredIndexes(table);
        problems.push(...declared.problems, ...compareIndexes(name, declared.indexes, actual.get(name) ?? new Map()));
      }
      expect(problems).toEqual([]);
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
      const { rows } = await db.query<{ name: string }>("SELECT name FROM migrations ORDER BY name");
      expect(rows.map((r) => r.name)).toContain("0001_init.sql");
    } finally {
      await db.end();
    }
  });

  it("refuses a migration whose file changed after it was applied, and names it", async () => {
    const db = pool();
    try {
      const { rows } = await db.query<{ checksum: string }>("SELECT checksum FROM migrations WHERE name = '0002_realtime_ticket_exp.sql'");
      await db.query("UPDATE migrations SET checksum = 'edited' WHERE name = '0002_realtime_ticket_exp.sql'");
      try {
        const err = await runMigrations({
          databaseUrl: process.env.STACK_DATABASE_URL!,
          bridge: process.env.STACK_PG_BRIDGE!,
          dir: path.join(ROOT, "migrations"),
        }).then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(err).toBeInstanceOf(MigrationChangedError);
        expect((err as MigrationChangedError).file).toBe("0002_realtime_ticket_exp.sql");
      } finally {
        await db.query("UPDATE migrations SET checksum = $1 WHERE name = '0002_realtime_ticket_exp.sql'", [rows[0].checksum]);
      }
    } finally {
      await db.end();
    }
  });

  it("keeps the record of a database whose bookkeeping table still has its old name (schema_migrations)", async () => {
    const db = pool();
    try {
      await db.query("ALTER TABLE migrations RENAME TO schema_migrations");
      const result = await runMigrations({
        databaseUrl: process.env.STACK_DATABASE_URL!,
        bridge: process.env.STACK_PG_BRIDGE!,
        dir: path.join(ROOT, "migrations"),
      });
      expect(result.applied).toEqual([]);
      const { rows } = await db.query<{ old: string | null; now: string | null }>(
        "SELECT to_regclass('public.schema_migrations')::text AS old, to_regclass('public.migrations')::text AS now",
      );
      expect(rows[0]).toEqual({ old: null, now: "migrations" });
    } finally {
      await db.query("ALTER TABLE IF EXISTS schema_migrations RENAME TO migrations").catch(() => {});
      await db.end();
    }
  });

  it("uses an index for keyset history and the full-text and trigram indexes for search", async () => {
    const db = pool();
    const client = await db.connect();
    try {
      // SET LOCAL in a transaction: the embedded PGlite is one session shared by every socket, so a plain SET would
      // reach the rest of the suite.
      await client.query("BEGIN");
      await client.query("SET LOCAL enable_seqscan = off");
      // Without a sort: for an unknown conversation (an estimate of one row) any index on conversation_id plus a sort
      // costs the same, and a clean-clone CI run on PostgreSQL 15 once picked the client-id index. What matters is that
      // the keyset index can serve the page in order.
      await client.query("SET LOCAL enable_sort = off");
      const history = await client.query<{ "QUERY PLAN": string }>(
        "EXPLAIN SELECT id FROM messages WHERE conversation_id = $1 AND seq < $2 ORDER BY seq DESC LIMIT 51",
        [crypto.randomUUID(), 1000],
      );
      expect(history.rows.map((r) => r["QUERY PLAN"]).join("\n")).toMatch(/messages_conversation_seq_uq/);
      const search = await client.query<{ "QUERY PLAN": string }>(
        "EXPLAIN SELECT id FROM messages WHERE search @@ plainto_tsquery('simple', $1)",
        ["hello"],
      );
      expect(search.rows.map((r) => r["QUERY PLAN"]).join("\n")).toMatch(/messages_conversation_search_idx/);
      // The substring match, without accents (migration 0015), in the query's own form (src/db/queries/search.ts).
      const substring = new PgDialect().sqlToQuery(sql`EXPLAIN SELECT id FROM messages WHERE coalesce(search_text, content) ILIKE ${substringPattern("cafe")}`);
      const fragment = await client.query<{ "QUERY PLAN": string }>(substring.sql, substring.params);
      expect(fragment.rows.map((r) => r["QUERY PLAN"]).join("\n")).toMatch(/messages_conversation_trgm_idx/);
    } finally {
      await client.query("ROLLBACK").catch(() => {});
      client.release();
      await db.end();
    }
  });

  it("the room's search filter ignores every accent Postgres's unaccent ignores (never stricter than Postgres)", async () => {
    const db = pool();
    try {
      // Latin-1 Supplement and Latin Extended-A/B letters: what unaccent rewrites, the room's fold must also match.
      const { rows } = await db.query<{ c: string; plain: string }>(
        "SELECT chr(cp) AS c, lower(public.chat_unaccent(chr(cp))) AS plain FROM generate_series(192, 591) cp WHERE chr(cp) ~ '[[:alpha:]]'",
      );
      expect(rows.length).toBeGreaterThan(300);
      const stricter = rows.filter(({ c, plain }) => !mayMatch(`x${c}y`, `x${plain}y`) || !mayMatch(`x${plain}y`, `x${c}y`)).map((r) => `${r.c}→${r.plain}`);
      expect(stricter).toEqual([]);
    } finally {
      await db.end();
    }
  });

  it("a message insert merges at most 256 kB of pending search-index entries (an ack never waits for a 4 MB merge)", async () => {
    const db = pool();
    const user = crypto.randomUUID();
    const conversation = crypto.randomUUID();
    try {
      await db.query("INSERT INTO users (id, kaha_id) VALUES ($1, $2)", [user, `gin-${user}`]);
      await db.query("INSERT INTO conversations (id, type, name, created_by) VALUES ($1, 'group', 'gin', $2)", [conversation, user]);
      // 600 messages are about 90 pages of trigram entries: with the default 4 MB limit all of them stay pending for
      // a later insert to merge; with 256 kB each insert that crosses 32 pages merges the list.
      await db.query(
        `INSERT INTO messages (id, conversation_id, seq, sender_id, client_message_id, type, content, created_at, event_seq)
         SELECT gen_random_uuid(), $1, g, $2, 'gin-' || g, 'text', 'message ' || g || ': the quick brown fox jumps over the lazy dog', now(), g
           FROM generate_series(1, 600) g`,
        [conversation, user],
      );
      for (const index of ["messages_conversation_trgm_idx", "messages_conversation_search_idx"]) {
        const { rows } = await db.query<{ pages: string }>("SELECT gin_clean_pending_list($1::regclass) AS pages", [index]);
        expect(Number(rows[0].pages), index).toBeLessThanOrEqual(256 / 8 + 2);
      }
    } finally {
      await db.query("DELETE FROM conversations WHERE id = $1", [conversation]).catch(() => {});
      await db.query("DELETE FROM users WHERE id = $1", [user]).catch(() => {});
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
