import { createMiddleware } from "hono/factory";
import { getConfig } from "../../lib/config";
import { createLogger } from "../../lib/log";
import { asError, openDb, openHttpDb, type DbHandle, type HttpDb } from "../../db/client";
import type { Context } from "hono";
import type { AppEnv } from "../env";
import { isUuidParam } from "../params";

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,100}$/;
const CONVERSATION_ROUTE = /\/conversations\/:id(\/|$)/;

/**
 * The conversation a request addressed, from the route the router matched (read after the handler ran, when the
 * request's route index points at it): only routes declared as `/conversations/:id...`, only a well-formed id.
 */
function conversationIdOf(c: Context<AppEnv>): string | undefined {
  try {
    if (!CONVERSATION_ROUTE.test(c.req.routePath)) return undefined;
    const id = c.req.param("id");
    return id && isUuidParam(id) ? id.toLowerCase() : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Request id, config, logger and a lazily opened database for every request; security headers on every response.
 * Handlers read them with `c.get(name)`: Hono's `c.var` builds a new object of all variables on every access, and a
 * page request read it about ten times.
 */
export const requestContext = createMiddleware<AppEnv>(async (c, next) => {
  const incoming = c.req.header("x-request-id");
  const requestId = incoming && REQUEST_ID.test(incoming) ? incoming : crypto.randomUUID();
  c.set("requestId", requestId);
  const log = createLogger({ requestId, method: c.req.method, path: c.req.path });
  c.set("log", log);
  const started = Date.now();
  let handle: DbHandle | undefined;
  const after: (() => Promise<unknown>)[] = [];
  c.set("afterResponse", (work) => void after.push(work));
  try {
    const config = getConfig(c.env);
    c.set("config", config);
    // One connection per request: a request cannot keep connections for the next, so each one its queries open in
    // parallel is a new Neon connection (WebSocket, TLS, startup), dearer than the round trip they would wait for.
    // The conversation list opened three (test/workers/request-connections.serial.test.ts).
    c.set("db", () => {
      handle ??= openDb({ databaseUrl: config.DATABASE_URL, bridge: config.PG_BRIDGE }, 1);
      return handle.db;
    });
    let httpDb: HttpDb | undefined;
    c.set("httpDb", () => (httpDb ??= openHttpDb({ databaseUrl: config.DATABASE_URL, bridge: config.PG_BRIDGE })));
    await next();
  } catch (err) {
    // Hono hands only Errors to the error handler; anything else thrown would end the request with no response.
    throw asError(err);
  } finally {
    c.header("X-Request-Id", requestId);
    c.header("X-Content-Type-Options", "nosniff");
    // Answers are per caller (tokens, tickets, their conversations): no shared or browser cache keeps them.
    if (!c.res.headers.has("Cache-Control")) c.header("Cache-Control", "no-store");
    // Contract §1 names the charset; Hono's c.json() sends the bare media type.
    if (c.res.headers.get("content-type") === "application/json") c.header("Content-Type", "application/json; charset=utf-8");
    if (handle || after.length > 0) {
      const tail = (async () => {
        for (const work of after) {
          await work().catch((err: unknown) => log.warn("after the response", { error: asError(err).message.slice(0, 200) }));
        }
        await handle?.end();
      })();
      try {
        c.executionCtx.waitUntil(tail);
      } catch {
        await tail;
      }
    }
    if (c.req.path !== "/health") {
      log.info("request", { status: c.res.status, latencyMs: Date.now() - started, userId: c.get("user")?.id, conversationId: conversationIdOf(c) });
    }
  }
});
