// Embedded Postgres for dev/test: PGlite (WASM Postgres) served over the wire protocol, so the app's
// Neon driver can reach it through pg-bridge.ts exactly as it would reach a real server.
import { mkdirSync } from "node:fs";
import path from "node:path";
import { PGlite } from "@electric-sql/pglite";
import { btree_gin } from "@electric-sql/pglite/contrib/btree_gin";
import { pg_trgm } from "@electric-sql/pglite/contrib/pg_trgm";
import { unaccent } from "@electric-sql/pglite/contrib/unaccent";
import { PGLiteSocketServer } from "@electric-sql/pglite-socket";
import { keepBatchesTogether } from "./pglite-batches.js";
import { LOOPBACK_HOST, assertPortFree, portBindError } from "./ports.js";

export interface EmbeddedPostgresOptions {
  /** Directory for the cluster files, or "memory://" for a throwaway database. */
  dataDir: string;
  /** 0 picks a free port. */
  port: number;
  /** Named in the error when the fixed port is taken, e.g. "PG_PORT". */
  portEnvName?: string;
  /** Defaults to 128; the socket server's own default of 1 serialises every client behind the first. */
  maxConnections?: number;
}

export interface EmbeddedPostgresHandle {
  url: string;
  port: number;
  host: string;
  db: PGlite;
  close(): Promise<void>;
}

/**
 * The data directory could not be opened: written by another PGlite version (an `npm install` moved it), or left
 * damaged. PGlite says only "PGlite failed to initialize properly"; `npm run dev` adds where the data is and how to
 * start over (scripts/lib/migrate.ts explainForDev).
 */
export class EmbeddedDataError extends Error {
  constructor(
    readonly dataDir: string,
    cause: unknown,
  ) {
    super(`The embedded PostgreSQL could not open its data in ${dataDir} (${(cause as Error)?.message ?? String(cause)}).`);
    this.name = "EmbeddedDataError";
  }
}

export async function startEmbeddedPostgres(opts: EmbeddedPostgresOptions): Promise<EmbeddedPostgresHandle> {
  // Check before booting PGlite: the WASM start-up takes seconds and would only then hit EADDRINUSE.
  await assertPortFree(opts.port, opts.portEnvName);

  // PGlite creates the data directory itself but not its parents (e.g. a fresh ".data/pg").
  if (!/^[a-z][a-z0-9+-]*:\/\//i.test(opts.dataDir)) mkdirSync(path.dirname(path.resolve(opts.dataDir)), { recursive: true });
  const db = await PGlite.create({ dataDir: opts.dataDir, extensions: { btree_gin, pg_trgm, unaccent } }).catch((err: unknown) => {
    throw new EmbeddedDataError(opts.dataDir, err);
  });
  const server = new PGLiteSocketServer({
    db: keepBatchesTogether(db),
    host: LOOPBACK_HOST,
    port: opts.port,
    maxConnections: Math.max(100, opts.maxConnections ?? 128),
  });
  try {
    await server.start();
  } catch (err) {
    await db.close();
    throw portBindError(err as NodeJS.ErrnoException, opts.port, opts.portEnvName);
  }

  // getServerConn() reports the bound "host:port", which is the only way to learn the port chosen for 0.
  const conn = server.getServerConn();
  const port = Number(conn.slice(conn.lastIndexOf(":") + 1));
  let closed = false;

  return {
    url: `postgres://postgres:postgres@${LOOPBACK_HOST}:${port}/postgres`,
    port,
    host: LOOPBACK_HOST,
    db,
    async close() {
      if (closed) return;
      closed = true;
      await server.stop();
      // stop() detaches handlers without awaiting them; a detach may still ROLLBACK an open transaction,
      // so let those settle before the database goes away.
      await new Promise((r) => setTimeout(r, 20));
      await db.close();
    },
  };
}
