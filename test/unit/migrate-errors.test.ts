import { spawn } from "node:child_process";
import { mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { explainForDev, MigrationChangedError, nodePool, runMigrations } from "../../scripts/lib/migrate";
import { ROOT, startStack } from "../../scripts/lib/stack";
import { startPgBridge } from "../../scripts/local/pg-bridge";
import { startEmbeddedPostgres } from "../../scripts/local/pg-server";
import { freePort } from "../../scripts/local/ports";
import { NEWEST_MIGRATION } from "../../src/db/queries/schema-version";

describe("the schema the Worker checks for in /health/detailed", () => {
  it("is the newest migration file (a new migration updates NEWEST_MIGRATION too)", async () => {
    const files = (await readdir(path.join(ROOT, "migrations"))).filter((f) => f.endsWith(".sql")).sort();
    expect(NEWEST_MIGRATION).toBe(files.at(-1));
  });
});

describe("npm run dev on a local database that predates an edited migration", () => {
  it("says which folder to delete to start the embedded database over: the whole local state, not the database alone", () => {
    // Deleting only .data/pg, as it used to say, kept the Durable Objects' state in .data/wrangler: a business desk
    // went on counting assignments of conversations the new database never had (an agent "at their maximum" for good).
    const err = explainForDev(new MigrationChangedError("0006_user_online.sql"), "/home/me/edge-chat/.data") as Error;
    expect(err.message).toContain("Migration 0006_user_online.sql was changed after it was applied");
    expect(err.message).toContain("delete /home/me/edge-chat/.data and run `npm run dev` again");
    expect(err.message).toContain("Durable Objects");
  });

  it("says the same when the embedded database's files cannot be opened (another PGlite version, or damaged)", async () => {
    // PGlite said only "PGlite failed to initialize properly", and npm run dev printed that alone.
    const data = await mkdtemp(path.join(os.tmpdir(), "edge-chat-pgdata-"));
    try {
      await mkdir(path.join(data, "pg"));
      await writeFile(path.join(data, "pg", "PG_VERSION"), "15\n");
      const failed = await startEmbeddedPostgres({ dataDir: path.join(data, "pg"), port: 0 }).catch((e: unknown) => e);
      const err = explainForDev(failed, data) as Error;
      expect(err.message).toContain(`could not open its data in ${path.join(data, "pg")}`);
      expect(err.message).toContain(`delete ${data} and run \`npm run dev\` again`);
    } finally {
      await rm(data, { recursive: true, force: true });
    }
  });

  it("gives no such advice for a database of your own (DATABASE_URL), or for other failures", () => {
    const changed = new MigrationChangedError("0006_user_online.sql");
    expect(explainForDev(changed, undefined)).toBe(changed);
    const other = new Error("Migration 0007_x.sql failed: syntax error");
    expect(explainForDev(other, "/tmp/data")).toBe(other);
  });
});

describe("npm run migrate that cannot reach Postgres", () => {
  const dir = path.join(ROOT, "migrations");

  it("without PG_BRIDGE, says it tried Neon's proxy and names PG_BRIDGE for a Postgres of your own", async () => {
    const port = await freePort();
    // The driver goes to Neon's WebSocket proxy on the URL's host (port 443), never to the port in the URL.
    const err = (await runMigrations({ databaseUrl: `postgres://me:secret@127.0.0.1:${port}/chat`, dir }).catch((e: unknown) => e)) as Error;
    expect(err.message).toContain("through Neon's WebSocket proxy on 127.0.0.1");
    expect(err.message).toContain("set PG_BRIDGE");
    expect(err.message).not.toContain("secret");
  });

  it("names DATABASE_URL and the form it takes when the value is not a Postgres URL", async () => {
    // The driver said only "Invalid URL"; an http:// value (Neon's HTTP endpoint) went on to a proxy error.
    for (const databaseUrl of ["ep-cool-name.neon.tech/chat", "https://ep-cool-name.neon.tech/sql"]) {
      const err = (await runMigrations({ databaseUrl, dir }).catch((e: unknown) => e)) as Error;
      expect(err.message).toContain("DATABASE_URL is not a Postgres connection URL: expected postgres://user:password@host:5432/database");
    }
  });

  it("with PG_BRIDGE, names the bridge it could not reach", async () => {
    const port = await freePort();
    const err = (await runMigrations({ databaseUrl: "postgres://me:secret@127.0.0.1:5433/chat", bridge: `127.0.0.1:${port}`, dir }).catch(
      (e: unknown) => e,
    )) as Error;
    expect(err.message).toContain(`PG_BRIDGE=127.0.0.1:${port}`);
    expect(err.message).toContain("npm run dev");
  });

  it("npm run dev with a DATABASE_URL on another machine says the bridge reaches this machine only, and what to do", async () => {
    // It said "Could not reach the Postgres bridge ... Is it running?": the bridge was running and had refused the host.
    const log: string[] = [];
    const ports = { pg: 0, bridge: 0, redis: 0, profiles: 0 };
    const err = (await startStack({ databaseUrl: "postgres://me:secret@db.example.internal:5432/chat", dataDir: "memory://", ports, log: (l) => log.push(l) }).catch(
      (e: unknown) => e,
    )) as Error;
    expect(err.message).toContain("DATABASE_URL names db.example.internal");
    expect(err.message).toContain("connects to this machine (127.0.0.1, localhost, ::1) only");
    expect(err.message).toContain("unset DATABASE_URL for the embedded database");
    expect(err.message).not.toContain("secret");
  });

  it("with a bridge that is up, names the Postgres behind it (npm run dev with a DATABASE_URL of your own that is down)", async () => {
    const bridge = await startPgBridge({ port: 0 });
    const port = await freePort();
    try {
      const err = (await runMigrations({ databaseUrl: `postgres://me:secret@127.0.0.1:${port}/chat`, bridge: `127.0.0.1:${bridge.port}`, dir }).catch(
        (e: unknown) => e,
      )) as Error;
      expect(err.message).toContain(`Postgres at 127.0.0.1:${port}`);
      expect(err.message).toContain("DATABASE_URL");
      expect(err.message).not.toContain("Could not reach the Postgres bridge");
    } finally {
      await bridge.close();
    }
  });
});

describe.skipIf(!process.env.STACK_DATABASE_URL)("npm run migrate on a database migrated by newer code (against the stack's Postgres)", () => {
  it("names the applied migrations it has no file for in a warning, and does not fail", { timeout: 90_000 }, async () => {
    const databaseUrl = process.env.STACK_DATABASE_URL!;
    const bridge = process.env.STACK_PG_BRIDGE!;
    const pool = nodePool(databaseUrl, bridge, 1);
    // As a newer deploy would have left it (or a file renamed after it ran).
    const newer = `9999_newer_${crypto.randomUUID().slice(0, 8)}.sql`;
    await pool.query("INSERT INTO migrations (name, checksum) VALUES ($1, 'from a newer deploy')", [newer]);
    try {
      const warnings: string[] = [];
      const result = await runMigrations({ databaseUrl, bridge, dir: path.join(ROOT, "migrations"), warn: (line) => warnings.push(line) });
      expect(result.applied).toEqual([]);
      expect(result.unknown).toContain(newer);
      expect(warnings.join("\n")).toContain(newer);
      // The script end to end: the warning on stderr, exit 0.
      const run = await new Promise<{ code: number; out: string; err: string }>((resolve) => {
        const child = spawn(process.execPath, [path.join(ROOT, "node_modules/tsx/dist/cli.mjs"), "scripts/migrate.ts"], {
          cwd: ROOT,
          env: { ...process.env, DATABASE_URL: databaseUrl, PG_BRIDGE: bridge },
        });
        let out = "";
        let err = "";
        child.stdout.on("data", (d) => (out += d));
        child.stderr.on("data", (d) => (err += d));
        child.on("exit", (code) => resolve({ code: code ?? 1, out, err }));
      });
      expect(run.err, run.out + run.err).toContain(`migration(s) this code does not know: ${newer}`);
      expect(run.out).toContain("applied that this code does not know");
      expect(run.code, run.out + run.err).toBe(0);
    } finally {
      await pool.query("DELETE FROM migrations WHERE name = $1", [newer]);
      await pool.end();
    }
  });
});
