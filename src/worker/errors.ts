import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { ConfigError } from "../lib/config";
import { errorBody, errorReason, HttpError, MIGRATIONS_PENDING_MESSAGE, migrationsPending, reportMigrationsPending } from "../lib/errors";
import { createLogger } from "../lib/log";
import { pgErrorCode } from "../db/client";
import type { AppEnv } from "./env";

// SQLSTATEs caused by a value the client sent (bad text encoding, out-of-range numbers or dates): a 400, not a 500.
const CLIENT_DATA_ERRORS = new Set(["22P02", "22021", "22003", "22001", "2201B", "54001", "22007", "22008"]);

function classify(err: unknown): HttpError {
  if (err instanceof HttpError) return err;
  if (err instanceof HTTPException) {
    // 415 comes from the OpenAPI validator for a body that is not JSON (fetch() with a string body sends text/plain):
    // its "Unsupported Media Type" did not say what to send.
    const message =
      err.status === 413
        ? "Request body too large"
        : err.status === 415
          ? "Content-Type must be application/json"
          : err.message || "Bad request";
    return new HttpError(err.status, message);
  }
  if (err instanceof ConfigError) return new HttpError(503, err.message, { "Retry-After": "30" });
  const pending = migrationsPending(err);
  if (pending) return pending;
  const code = pgErrorCode(err);
  if (code && CLIENT_DATA_ERRORS.has(code)) return new HttpError(400, "Invalid value in request");
  if (code === "40001" || code === "40P01") return new HttpError(503, "Please retry", { "Retry-After": "1" });
  if (code === undefined && looksLikeConnectionFailure(err)) {
    return new HttpError(503, "Database unavailable", { "Retry-After": "5" });
  }
  return new HttpError(500, "Internal server error");
}

/**
 * Through the cause chain: drizzle wraps the driver's error in "Failed query: …", which names no connection. Over
 * HTTP, the driver's error without a SQLSTATE is the transport's (no answer, or the endpoint's own non-400 status).
 */
function looksLikeConnectionFailure(err: unknown): boolean {
  let e: unknown = err;
  for (let depth = 0; depth < 4 && e; depth++) {
    if ((e as { name?: unknown }).name === "NeonDbError") return true;
    const text = String((e as { message?: unknown })?.message ?? e);
    if (/connect|WebSocket|terminated|ECONN|timeout|closed|socket|network/i.test(text)) return true;
    e = typeof e === "object" ? (e as { cause?: unknown }).cause : undefined;
  }
  return false;
}

export function handleError(err: unknown, c: Context<AppEnv>): Response {
  const requestId = c.get("requestId") ?? crypto.randomUUID();
  const http = classify(err);
  const log = c.get("log") ?? createLogger({ requestId });
  if (http.detail === MIGRATIONS_PENDING_MESSAGE) {
    // A Durable Object's answer carries only the message (it logged there); the Worker's own query has the error.
    if (!(err instanceof HttpError)) reportMigrationsPending(err, log);
  } else if (http.status >= 500) {
    log.error("request failed", { status: http.status, error: errorReason(err).slice(0, 300) });
  }
  for (const [k, v] of Object.entries(http.headers)) c.header(k, v);
  c.header("X-Request-Id", requestId);
  c.header("X-Content-Type-Options", "nosniff");
  return c.json(errorBody(http.status, http.detail, requestId), http.status as ContentfulStatusCode);
}
