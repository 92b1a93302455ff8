import { Pool, neon, neonConfig, type PoolClient } from "@neondatabase/serverless";
import { drizzle, type NeonDatabase } from "drizzle-orm/neon-serverless";
import { drizzle as drizzleHttp, type NeonHttpDatabase } from "drizzle-orm/neon-http";
import { sqlState } from "../lib/errors";
import type { PgDatabase, PgQueryResultHKT } from "drizzle-orm/pg-core";

/**
 * Without the schema: drizzle's relational API (`db.query.*`) is not used, and handing it the schema made every
 * request walk every table to build its relational config (about 4% of a list request's CPU).
 */
export type Db = NeonDatabase & { $client: Pool };
/**
 * Statements sent one at a time over HTTPS (Neon's query endpoint): no connection to open, so the first statement of
 * a Worker request waits one round trip instead of a WebSocket, TLS and a Postgres start-up. No interactive
 * transactions, and no `$client.query`: a request that needs those uses its `Db`.
 */
export type HttpDb = NeonHttpDatabase;
/** A raw statement's result as both drivers give it: its rows (fields and counts differ between them). */
export interface RowsResultHKT extends PgQueryResultHKT {
  type: RowsResult<this["row"]>;
}
interface RowsResult<Row> {
  rows: Row[];
}
/** What both kinds of access share: the query builders and `execute`, for a query that may run either way. */
export type AnyDb = PgDatabase<RowsResultHKT>;

export interface DbOptions {
  databaseUrl: string;
  /** host:port of the local WebSocket-to-TCP bridge; unset in production (Neon serves WebSockets itself). */
  bridge?: string;
}

let bridgeConfigured: string | undefined;

/**
 * neonConfig is module-global; it is set once per isolate from configuration. With no bridge the driver keeps
 * Neon's defaults (TLS WebSockets to the Neon proxy, pipelined connect).
 */
function configureDriver(bridge: string | undefined): void {
  if (!bridge || bridgeConfigured === bridge) return;
  neonConfig.wsProxy = (host, port) => `${bridge}/v2?address=${host}:${port}`;
  neonConfig.useSecureWebSocket = false;
  neonConfig.pipelineTLS = false;
  neonConfig.pipelineConnect = false;
  // The bridge also serves Neon's HTTP query endpoint (scripts/local/pg-http.ts), without TLS.
  neonConfig.fetchEndpoint = () => `http://${bridge}/sql`;
  bridgeConfigured = bridge;
}

export interface DbHandle {
  db: Db;
  pool: Pool;
  end(): Promise<void>;
}

/**
 * Pooled connections close after a second unused. An open connection is an outgoing WebSocket, and an outgoing
 * WebSocket keeps a Durable Object in memory: with pg's default of 10 s per connection, an idle room never
 * hibernated (test/workers/hibernation.serial.test.ts). Bursts still reuse connections.
 */
const IDLE_CLOSE_MS = 1000;

export function openDb(options: DbOptions, maxConnections = 4): DbHandle {
  configureDriver(options.bridge);
  const pool = new Pool({ connectionString: options.databaseUrl, max: maxConnections, connectionTimeoutMillis: 5000, idleTimeoutMillis: IDLE_CLOSE_MS });
  // An idle client that errors (server restart) must not become an unhandled rejection that kills the isolate.
  pool.on("error", () => {});
  connectWithoutRestamp(pool);
  let ended = false;
  return {
    db: drizzle({ client: pool }),
    pool,
    end: async () => {
      if (ended) return;
      ended = true;
      await pool.end().catch(() => {});
    },
  };
}

/**
 * `pool.connect()` without a callback (drizzle's transactions use it) rejects through pg-pool's promisify, which
 * calls `Error.captureStackTrace` on the error, and on workerd's errors that call throws an empty internal error.
 * What the driver hands over when the WebSocket cannot open (Postgres or its proxy down) is not even an Error but
 * the socket's ErrorEvent, which Hono does not pass to the error handler: such a request died with no response
 * (test/workers/auth-provision.serial.test.ts). Here the callback form is used, and the failure becomes an Error.
 */
function connectWithoutRestamp(pool: Pool): void {
  const connect = pool.connect.bind(pool) as (callback: (err: Error | undefined, client: PoolClient | undefined, release: unknown) => void) => void;
  const promised = () =>
    new Promise<PoolClient>((resolve, reject) => connect((err, client) => (err || !client ? reject(asError(err ?? "no client")) : resolve(client))));
  pool.connect = ((callback?: Parameters<typeof connect>[0]) => (callback ? connect(callback) : promised())) as Pool["connect"];
}

const httpDbs = new Map<string, HttpDb>();

/**
 * How long one statement over HTTP may take, answer included. Without it a request waited as long as Postgres did
 * (test/workers/db-timeout.serial.test.ts): an app saw a request that never ended instead of the 503 it retries on.
 * The same bound as a room's database work (conversation-room.ts pgOr503); these statements take milliseconds.
 */
const HTTP_QUERY_TIMEOUT_MS = 8000;

function fetchWithDeadline(input: RequestInfo | URL, init?: RequestInit): Promise<Response> {
  return fetch(input, init?.signal ? init : { ...init, signal: AbortSignal.timeout(HTTP_QUERY_TIMEOUT_MS) });
}

/**
 * One-statement access over HTTP; nothing to close. It holds no I/O object (each query is a fetch of the request
 * that runs it), so one per database serves every request of the isolate.
 */
export function openHttpDb(options: DbOptions): HttpDb {
  configureDriver(options.bridge);
  let db = httpDbs.get(options.databaseUrl);
  if (!db) {
    // Module-global like the rest of neonConfig; the driver turns the abort into a NeonDbError (a 503).
    neonConfig.fetchFunction = fetchWithDeadline;
    db = drizzleHttp({ client: neon(options.databaseUrl) });
    httpDbs.set(options.databaseUrl, db);
  }
  return db;
}

/**
 * A Durable Object's pool: opened on first use and kept for the object's life, so the queries of a burst share
 * connections (idle ones still close after IDLE_CLOSE_MS, and the object can hibernate). `reset()` after a failure
 * makes the next use open a new pool rather than reuse a connection that may be broken.
 */
export class ObjectDb {
  private handle: DbHandle | undefined;

  constructor(
    private readonly options: () => DbOptions,
    private readonly maxConnections: number,
  ) {}

  get db(): Db {
    this.handle ??= openDb(this.options(), this.maxConnections);
    return this.handle.db;
  }

  reset(): void {
    const handle = this.handle;
    this.handle = undefined;
    void handle?.end();
  }
}

/** An Error for anything thrown: the driver rejects with a WebSocket ErrorEvent when a connection cannot open. */
export function asError(thrown: unknown): Error {
  if (thrown instanceof Error) return thrown;
  const message = (thrown as { message?: unknown } | null)?.message;
  return new Error(typeof message === "string" && message ? message : String(thrown), { cause: thrown });
}

/** Postgres error codes we translate; anything that is not a server error is treated as "database unavailable". */
export const pgErrorCode = sqlState;

export const isUniqueViolation = (err: unknown) => pgErrorCode(err) === "23505";
