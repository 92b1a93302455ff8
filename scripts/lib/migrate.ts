import { readdir, readFile } from "node:fs/promises";
import { createHash } from "node:crypto";
import path from "node:path";
import { Pool, neonConfig } from "@neondatabase/serverless";
import WebSocket from "ws";
import type { EmbeddedDataError } from "../local/pg-server.js";

export interface MigrateOptions {
  databaseUrl: string;
  /** host:port of the local WebSocket bridge; without it the driver uses Neon's own WebSocket proxy. */
  bridge?: string;
  dir: string;
  log?: (line: string) => void;
  /** Warnings (applied migrations this code does not know); default: `log`. */
  warn?: (line: string) => void;
}

/**
 * The driver's own word for a DATABASE_URL that is not one was "Invalid URL" (or nothing, for an http:// one): it
 * named neither the variable nor the form. The value is not echoed: it may hold a password.
 */
export function assertDatabaseUrl(databaseUrl: string): void {
  let protocol = "";
  try {
    protocol = new URL(databaseUrl).protocol;
  } catch {
    // reported below
  }
  if (protocol !== "postgres:" && protocol !== "postgresql:") {
    throw new Error(
      "DATABASE_URL is not a Postgres connection URL: expected postgres://user:password@host:5432/database " +
        "(Neon's connection string has that form; special characters in the password must be percent-encoded).",
    );
  }
}

/** Node side of the Neon driver: same driver and bridge the Worker uses. */
export function nodePool(databaseUrl: string, bridge: string | undefined, max = 4): Pool {
  assertDatabaseUrl(databaseUrl);
  neonConfig.webSocketConstructor = WebSocket;
  if (bridge) {
    neonConfig.wsProxy = (host, port) => `${bridge}/v2?address=${host}:${port}`;
    neonConfig.useSecureWebSocket = false;
    neonConfig.pipelineTLS = false;
    neonConfig.pipelineConnect = false;
  }
  const pool = new Pool({ connectionString: databaseUrl, max });
  pool.on("error", () => {});
  return pool;
}

/** An applied migration whose file no longer matches the checksum recorded when it ran. */
export class MigrationChangedError extends Error {
  constructor(readonly file: string) {
    super(`Migration ${file} was changed after it was applied; add a new migration file instead.`);
    this.name = "MigrationChangedError";
  }
}

/**
 * The same failure as `npm run dev` meets it on its embedded database: that database holds only local data, so
 * starting it over is the quicker way out (a checkout that moved to a history with a rewritten migration).
 * `devDataDir` is the whole local state (DEV_DATA_DIR: the database in pg/, wrangler's Durable Object storage in
 * wrangler/), and both go: the objects' state refers to the database's rows. Told to delete pg/ alone, a developer
 * kept rooms, sessions and business desks that remembered the old data (a desk kept counting its agents' chats in
 * conversations the new database never had, and refused them new ones).
 */
export function explainForDev(err: unknown, devDataDir: string | undefined): unknown {
  // By name: importing pg-server here would load PGlite into `npm run migrate` and audit:verify.
  if ((err as EmbeddedDataError | null)?.name === "EmbeddedDataError" && err instanceof Error && devDataDir) {
    return new Error(
      `${err.message}\n  It was written by another PGlite version, or left damaged. It holds only local development data: ` +
        `delete ${devDataDir} and run \`npm run dev\` again to start it over (the whole folder: the Durable Objects' ` +
        `state kept there refers to the database's rows).`,
    );
  }
  if (!(err instanceof MigrationChangedError) || !devDataDir) return err;
  return new Error(
    `${err.message}\n  If you did not edit it, your local database predates a change to that file. It holds only local ` +
      `development data: delete ${devDataDir} and run \`npm run dev\` again to start it over (the whole folder: the ` +
      `Durable Objects' state kept there refers to the database's rows).`,
  );
}

/**
 * A connection that failed before Postgres answered (no SQLSTATE) names the endpoint that failed and the variable
 * that chooses it. The driver's own text was only "connect ECONNREFUSED 127.0.0.1:443": without PG_BRIDGE it goes to
 * Neon's WebSocket proxy on the URL's host, port 443, whatever port the URL names, so a DATABASE_URL of a local
 * Postgres failed with a port nobody had written. A WebSocket that could not open at all (the driver's ErrorEvent)
 * is the proxy or bridge; one the bridge opened and then closed is the Postgres behind it. Postgres's own refusals
 * (a wrong password, a missing database) pass through as they are.
 */
export function explainConnectFailure(err: unknown, databaseUrl: string, bridge: string | undefined): Error {
  const code = (err as { code?: unknown } | null)?.code;
  if (err instanceof Error && typeof code === "string" && /^[0-9A-Z]{5}$/.test(code)) return err;
  const reason = (err as { message?: unknown } | null)?.message;
  const text = typeof reason === "string" && reason ? reason : String(err);
  const socketNotOpened = !(err instanceof Error);
  let server = "the DATABASE_URL server";
  try {
    const url = new URL(databaseUrl);
    server = `${url.hostname}:${url.port || 5432}`;
  } catch {
    // An unparsable URL: the generic name will do.
  }
  if (bridge && socketNotOpened) {
    return new Error(
      `Could not reach the Postgres bridge PG_BRIDGE=${bridge} (${text}). Is it running? \`npm run dev\` starts one ` +
        `(127.0.0.1:5434 unless PG_BRIDGE_PORT says otherwise); against Neon, leave PG_BRIDGE unset.`,
    );
  }
  if (bridge) {
    return new Error(
      `Could not connect to Postgres at ${server} through the bridge PG_BRIDGE=${bridge} (${text}). Is that server ` +
        `up, and does DATABASE_URL name it?`,
    );
  }
  return new Error(
    `Could not connect through Neon's WebSocket proxy on ${server.replace(/:\d+$/, "")} (wss, port 443: ${text}). ` +
      `Without PG_BRIDGE the Neon driver connects only through that proxy. For a Postgres that is not Neon (a local ` +
      `one, say), set PG_BRIDGE to the host:port of a WebSocket-to-TCP bridge in front of it (\`npm run dev\` starts ` +
      `one on 127.0.0.1:5434).`,
  );
}

const LOCK_KEY = 727_274_001;

/**
 * The warning for migrations the database has applied that this checkout has no file for: a newer deploy ran against
 * it (this code is older than its schema), or a file was renamed after it ran (its new name would run it again). Not
 * an error: rolling back to an older build against the same database is a normal thing to do.
 */
export function unknownMigrationsWarning(names: string[]): string {
  return (
    `⚠ The database has ${names.length} applied migration(s) this code does not know: ${names.join(", ")}. ` +
    `A newer deploy may have migrated it (this code is older than its schema), or a migration file was renamed ` +
    `after it ran. Nothing was changed for them.`
  );
}

/**
 * Applies migrations/*.sql in name order, each in its own transaction, recording name and checksum in the
 * `migrations` table. Idempotent; an advisory lock serialises concurrent runners; an edited, already-applied
 * file is an error (write a new migration instead); applied ones with no file here are named in a warning
 * (`unknown`).
 */
export async function runMigrations(options: MigrateOptions): Promise<{ applied: string[]; skipped: number; unknown: string[] }> {
  const log = options.log ?? (() => {});
  const files = (await readdir(options.dir)).filter((f) => f.endsWith(".sql")).sort();
  const pool = nodePool(options.databaseUrl, options.bridge, 1);
  const client = await pool.connect().catch(async (err: unknown) => {
    await pool.end().catch(() => {});
    throw explainConnectFailure(err, options.databaseUrl, options.bridge);
  });
  const applied: string[] = [];
  let skipped = 0;
  let unknown: string[] = [];
  try {
    await client.query(`SELECT pg_advisory_lock(${LOCK_KEY})`);
    // Databases set up before the table took the name the foundation issue gives it keep their record.
    await client.query(
      `DO $$ BEGIN
         IF to_regclass('public.schema_migrations') IS NOT NULL AND to_regclass('public.migrations') IS NULL THEN
           ALTER TABLE schema_migrations RENAME TO migrations;
         END IF;
       END $$`,
    );
    await client.query(
      `CREATE TABLE IF NOT EXISTS migrations (name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`,
    );
    const done = new Map<string, string>();
    for (const row of (await client.query<{ name: string; checksum: string }>(`SELECT name, checksum FROM migrations`)).rows) {
      done.set(row.name, row.checksum);
    }
    unknown = [...done.keys()].filter((name) => !files.includes(name)).sort();
    if (unknown.length > 0) (options.warn ?? log)(unknownMigrationsWarning(unknown));
    for (const file of files) {
      const sqlText = await readFile(path.join(options.dir, file), "utf8");
      const checksum = createHash("sha256").update(sqlText).digest("hex");
      const previous = done.get(file);
      if (previous !== undefined) {
        if (previous !== checksum) {
          throw new MigrationChangedError(file);
        }
        skipped++;
        continue;
      }
      const started = Date.now();
      log(`  applying ${file} ...`);
      await client.query("BEGIN");
      try {
        await client.query(sqlText);
        await client.query(`INSERT INTO migrations (name, checksum) VALUES ($1, $2)`, [file, checksum]);
        await client.query("COMMIT");
      } catch (err) {
        await client.query("ROLLBACK").catch(() => {});
        throw new Error(`Migration ${file} failed: ${(err as Error).message}`);
      }
      log(`  applied ${file} in ${Date.now() - started} ms`);
      applied.push(file);
    }
  } finally {
    // Also after a failure: the embedded PGlite is one session for every connection, so closing ours would not
    // release the lock there.
    await client.query(`SELECT pg_advisory_unlock(${LOCK_KEY})`).catch(() => {});
    client.release();
    await pool.end();
  }
  return { applied, skipped, unknown };
}
