import { OpenAPIHono, createRoute } from "@hono/zod-openapi";
import { sql } from "drizzle-orm";
import { errorReason, sqlState } from "../../lib/errors";
import { createRedis, withTimeout } from "../../lib/redis";
import { listJobRuns } from "../../db/queries/maintenance";
import { migrationsApplied, NEWEST_MIGRATION } from "../../db/queries/schema-version";
import { batchProfilesUrl } from "../../profiles/service-client";
import { healthDetailedResult, healthResult, type DependencyCheck } from "../../protocol/responses";
import type { Logger } from "../../lib/log";
import type { AppEnv } from "../env";


/**
 * The route is public: a failure says its kind (timeout, unreachable), not the driver's text, which named the
 * statement, hosts or internals. The text goes to the log.
 */
async function timed(work: () => Promise<unknown>, timeoutMs: number, what: string, log: Logger): Promise<DependencyCheck> {
  const started = Date.now();
  try {
    await withTimeout(work(), timeoutMs, what);
    return { status: "ok", latencyMs: Date.now() - started };
  } catch (err) {
    const message = String((err as Error)?.message ?? err);
    log.warn("health check failed", { dependency: what, error: errorReason(err).slice(0, 200) });
    return { status: "down", latencyMs: Date.now() - started, error: failureKind(err, message, what) };
  }
}

/** A dependency that answered with an error status: reached, unlike "unreachable". */
class AnsweredError extends Error {
  constructor(readonly kind: string) {
    super(kind);
  }
}

/**
 * "unreachable" was said of every failure: a profile service answering 500 or 401, or a Postgres refusing the
 * password, sent the operator to check the network. Still only the kind and a status code: no driver text.
 */
function failureKind(err: unknown, message: string, what: string): string {
  if (message.startsWith(`${what} timed out`)) return "timeout";
  if (err instanceof AnsweredError) return err.kind;
  const code = sqlState(err);
  return code ? `rejected (SQLSTATE ${code})` : "unreachable";
}

/**
 * When this isolate last logged the pending migrations (undefined: not pending as far as it knows). A load balancer
 * probing every few seconds logged the line on every probe, and the log showed little else; now it is logged when the
 * schema falls behind, and again at most once a minute while it stays behind. The body says so on every probe.
 */
let pendingLoggedAt: number | undefined;
const PENDING_LOG_INTERVAL_MS = 60_000;

function notePendingMigrations(pending: boolean, log: Logger, now = Date.now()): void {
  if (!pending) {
    if (pendingLoggedAt !== undefined) log.info("database schema caught up: migrations applied", { applied: NEWEST_MIGRATION });
    pendingLoggedAt = undefined;
    return;
  }
  if (pendingLoggedAt !== undefined && now - pendingLoggedAt < PENDING_LOG_INTERVAL_MS) return;
  pendingLoggedAt = now;
  log.error("database schema behind this code: migrations pending", {
    needs: NEWEST_MIGRATION,
    fix: "run `npm run migrate` with this deploy's DATABASE_URL",
  });
}

export const health = new OpenAPIHono<AppEnv>()
  .openapi(
    createRoute({
      method: "get",
      path: "/",
      tags: ["health"],
      summary: "Liveness (no dependency calls)",
      responses: {
        200: {
          description: "Alive",
          content: {
            "application/json": {
              schema: healthResult,
            },
          },
        },
      },
    }),
    (c) =>
      c.json(
        { status: "ok" as const, service: "edge-chat", version: c.get("config").SERVICE_VERSION, timestamp: new Date().toISOString() },
        200,
      ),
  )
  .openapi(
    createRoute({
      method: "get",
      path: "/detailed",
      tags: ["health"],
      summary: "Readiness with real checks of Postgres, Redis and the profile service",
      responses: {
        200: {
          description: "All dependencies answer (or only non-critical ones are down)",
          content: { "application/json": { schema: healthDetailedResult } },
        },
        503: {
          description: "The database is down, or has not applied this code's migrations (`error: migrations_pending`: run `npm run migrate`)",
          content: { "application/json": { schema: healthDetailedResult } },
        },
      },
    }),
    async (c) => {
      const config = c.get("config");
      const [connected, cache, profileService, jobs, migrated] = await Promise.all([
        // Both ways the service reaches Postgres: a connection (rooms, transactions) and a statement over HTTP.
        timed(() => Promise.all([c.get("db")().execute(sql`select 1`), c.get("httpDb")().execute(sql`select 1`)]), 3000, "database", c.get("log")),
        timed(() => createRedis(config).ping(), 2000, "cache", c.get("log")),
        timed(async () => {
          // Where the profile client asks (a trailing slash in the URL made this `//api/...`, a 404).
          const res = await fetch(batchProfilesUrl(config.PROFILE_SERVICE_URL), {
            method: "POST",
            headers: { authorization: `Bearer ${config.PROFILE_SERVICE_TOKEN}`, "content-type": "application/json" },
            body: JSON.stringify({ user_uuids: [], business_uuids: [] }),
          });
          await res.body?.cancel();
          if (!res.ok) throw new AnsweredError(`answered ${res.status}`);
        }, Math.min(config.PROFILE_SERVICE_TIMEOUT, 3000), "profile service", c.get("log")),
        withTimeout(listJobRuns(c.get("db")()), 3000, "job runs").then(
          (runs) =>
            Object.fromEntries(
              runs.map((r) => [r.job, { lastRunAt: r.startedAt, finishedAt: r.finishedAt, durationMs: r.durationMs, rows: r.rows, running: r.running, ok: r.ok }]),
            ),
          () => undefined,
        ),
        // undefined: not known (the connection check reports why).
        withTimeout(migrationsApplied(c.get("httpDb")()), 3000, "migrations").catch(() => undefined),
      ]);
      let database = connected;
      if (connected.status === "ok" && migrated !== undefined) notePendingMigrations(!migrated, c.get("log"));
      if (connected.status === "ok" && migrated === false) database = { ...connected, status: "down", error: "migrations_pending" };
      const checks = { database, cache, profileService };
      const status = database.status === "down" ? "down" : cache.status === "down" || profileService.status === "down" ? "degraded" : "ok";
      if (status === "down") c.header("Retry-After", "5");
      return c.json({ status, checks, ...(jobs ? { jobs } : {}) } as const, status === "down" ? 503 : 200);
    },
  );
