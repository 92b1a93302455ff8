// Neon's HTTP query endpoint (`POST /sql`), for the driver's `neon()` function in local dev/test: the Worker sends
// its one-statement requests this way, as it does to Neon in production. The endpoint runs each statement on a
// pool of ordinary Postgres connections it keeps open, like Neon's own proxy.
// Protocol (what @neondatabase/serverless 1.x sends and reads): body {query, params} or {queries: [...]} (a batch,
// one transaction); headers Neon-Connection-String, Neon-Array-Mode, Neon-Raw-Text-Output and the batch's
// Neon-Batch-Isolation-Level / -Read-Only / -Deferrable. Answer {command, rowCount, rows, fields} (rows as arrays of
// text), {results: [...]} for a batch; a Postgres error is a 400 whose JSON carries its fields.
import type http from "node:http";
import pg from "pg";
import { isRecord, readBody, sendJson, sleep, tryParseJson } from "./http-util.js";

export interface SqlTarget {
  host: string;
  port: number;
}

export interface SqlEndpointDeps {
  /** Where a connection string's host:port goes, or why it may not (a loopback check, a fixed target). */
  route(requested: SqlTarget): { target: SqlTarget } | { refused: string };
  isDown(): boolean;
  delayMs(): number;
  /** Every statement (or batch) sent: one round trip to Postgres, with the start of its text. */
  onQuery(texts: string[]): void;
  onAnswer(ms: number): void;
}

export interface SqlEndpoint {
  handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void>;
  /** Drops the requests in flight (fault injection: a cut). */
  cutAll(): void;
  close(): Promise<void>;
}

interface Statement {
  query: string;
  params: unknown[];
}

/** The fields of a Postgres error the driver copies onto its NeonDbError (its `code` is what the app reads). */
const ERROR_FIELDS = [
  "severity",
  "code",
  "detail",
  "hint",
  "position",
  "internalPosition",
  "internalQuery",
  "where",
  "schema",
  "table",
  "column",
  "dataType",
  "constraint",
  "file",
  "line",
  "routine",
] as const;

const ISOLATION = new Set(["ReadUncommitted", "ReadCommitted", "RepeatableRead", "Serializable"]);
const POOL_SIZE = 10;
// Raw text output: values go back as Postgres printed them, and the driver parses them by type.
const rawText = { getTypeParser: () => (value: string) => value };

function statementOf(raw: unknown): Statement | undefined {
  if (!isRecord(raw) || typeof raw.query !== "string") return undefined;
  const params = raw.params ?? [];
  if (!Array.isArray(params)) return undefined;
  return { query: raw.query, params };
}

function fail(res: http.ServerResponse, status: number, message: string): void {
  if (res.headersSent || res.destroyed) return;
  res.writeHead(status, { "content-type": "text/plain" }).end(`pg-bridge /sql: ${message}\n`);
}

function errorBody(err: unknown): Record<string, unknown> {
  const e = err as Record<string, unknown>;
  const body: Record<string, unknown> = { message: err instanceof Error ? err.message : String(err) };
  for (const field of ERROR_FIELDS) if (e[field] !== undefined) body[field] = e[field];
  return body;
}

export function createSqlEndpoint(deps: SqlEndpointDeps): SqlEndpoint {
  const pools = new Map<string, pg.Pool>();
  const inFlight = new Set<http.ServerResponse>();

  function poolFor(connectionString: string): pg.Pool | string {
    let url: URL;
    try {
      url = new URL(connectionString);
    } catch {
      return "Neon-Connection-String is not a URL";
    }
    const routed = deps.route({ host: url.hostname.replace(/^\[|\]$/g, "").toLowerCase(), port: Number(url.port || 5432) });
    if ("refused" in routed) return routed.refused;
    const user = decodeURIComponent(url.username);
    const database = decodeURIComponent(url.pathname.slice(1)) || user;
    const key = `${routed.target.host}:${routed.target.port}/${database}/${user}`;
    let pool = pools.get(key);
    if (!pool) {
      pool = new pg.Pool({
        host: routed.target.host,
        port: routed.target.port,
        user,
        password: decodeURIComponent(url.password),
        database,
        max: POOL_SIZE,
        idleTimeoutMillis: 10_000,
        // As the driver's own pools: a server that accepts and never answers fails the query instead of holding it.
        connectionTimeoutMillis: 5000,
      });
      // A backend that dies while idle (a server restart) must not crash the bridge; the next query reconnects.
      pool.on("error", () => {});
      // pg emits "error" on a client whose socket breaks even while it is checked out (after failing its query), and
      // the pool listens only while the client is idle: a reset mid-query was an uncaught exception in the process
      // that hosts the bridge (the fault suite's reset-after-COMMIT test). The query's own failure is what we use.
      pool.on("connect", (client) => client.on("error", () => {}));
      pools.set(key, pool);
    }
    return pool;
  }

  async function run(client: pg.PoolClient, s: Statement): Promise<Record<string, unknown>> {
    const r = await client.query({ text: s.query, values: s.params, rowMode: "array", types: rawText });
    return {
      command: r.command,
      rowCount: r.rowCount,
      rows: r.rows,
      fields: r.fields.map((f) => ({ ...f })),
      rowAsArray: true,
    };
  }

  async function execute(req: http.IncomingMessage, pool: pg.Pool, body: Record<string, unknown>): Promise<unknown> {
    const client = await pool.connect();
    let broken = false;
    try {
      if (!Array.isArray(body.queries)) return await run(client, statementOf(body)!);
      const batch = body.queries.map(statementOf) as Statement[];
      const level = String(req.headers["neon-batch-isolation-level"] ?? "");
      const words = [ISOLATION.has(level) ? `ISOLATION LEVEL ${level.replace(/([a-z])([A-Z])/g, "$1 $2").toUpperCase()}` : ""];
      if (req.headers["neon-batch-read-only"] === "true") words.push("READ ONLY");
      if (req.headers["neon-batch-deferrable"] === "true") words.push("DEFERRABLE");
      await client.query(`BEGIN ${words.filter(Boolean).join(" ")}`);
      try {
        const results = [];
        for (const s of batch) results.push(await run(client, s));
        await client.query("COMMIT");
        return { results };
      } catch (err) {
        await client.query("ROLLBACK").catch(() => {
          broken = true;
        });
        throw err;
      }
    } catch (err) {
      // Not a server's answer (the connection broke): the client is not returned to the pool.
      if (!(err instanceof pg.DatabaseError)) broken = true;
      throw err;
    } finally {
      client.release(broken);
    }
  }

  return {
    async handle(req, res) {
      if (req.method !== "POST") return fail(res, 405, "POST a query");
      if (deps.isDown()) return fail(res, 503, "bridge is down (fault injection)");
      inFlight.add(res);
      res.on("close", () => inFlight.delete(res));
      try {
        const body = tryParseJson(await readBody(req));
        const batch = isRecord(body) && Array.isArray(body.queries) ? body.queries : undefined;
        if (!isRecord(body) || (batch ? !batch.every((q) => statementOf(q)) : !statementOf(body))) {
          return fail(res, 400, "body must be {query, params} or {queries: [{query, params}]}");
        }
        if (req.headers["neon-raw-text-output"] !== "true" || req.headers["neon-array-mode"] !== "true") {
          return fail(res, 400, "only Neon-Raw-Text-Output and Neon-Array-Mode answers are served (what the driver asks for)");
        }
        const pool = poolFor(String(req.headers["neon-connection-string"] ?? ""));
        if (typeof pool === "string") return fail(res, 403, pool);
        deps.onQuery((batch ?? [body]).map((q) => String((q as Statement).query)));
        const delay = deps.delayMs();
        if (delay > 0) await sleep(delay);
        const started = performance.now();
        let answer: { status: number; body: unknown };
        try {
          answer = { status: 200, body: await execute(req, pool, body) };
        } catch (err) {
          if (!(err instanceof pg.DatabaseError)) return fail(res, 503, `database unreachable: ${(err as Error).message}`);
          answer = { status: 400, body: errorBody(err) };
        }
        deps.onAnswer(performance.now() - started);
        if (delay > 0) await sleep(delay);
        if (!res.destroyed) sendJson(res, answer.status, answer.body);
      } catch (err) {
        fail(res, 500, (err as Error).message);
      }
    },
    cutAll() {
      for (const res of inFlight) res.destroy();
      inFlight.clear();
    },
    async close() {
      this.cutAll();
      await Promise.all([...pools.values()].map((p) => p.end().catch(() => {})));
      pools.clear();
    },
  };
}
