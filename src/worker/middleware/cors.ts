import type { MiddlewareHandler } from "hono";
import { cors } from "hono/cors";
import { normalizeOrigin } from "../../lib/origin";
import type { AppEnv } from "../env";

const headers = cors({
  // Only reached for an origin already found in ALLOWED_ORIGINS (below).
  origin: (origin) => origin,
  allowMethods: ["GET", "POST", "PUT", "PATCH", "DELETE"],
  allowHeaders: ["Authorization", "Content-Type", "X-Request-Id"],
  // Errors name their request id, and 429/503 say when to come back: a browser app can read neither unless exposed.
  exposeHeaders: ["X-Request-Id", "Retry-After"],
  maxAge: 600,
});

/**
 * Web apps on the origins in ALLOWED_ORIGINS may call the REST API from the browser, as the same list lets them open
 * WebSockets. Tokens travel in the Authorization header, never in cookies, so there is no credentials mode. Placed
 * before the rate limit and auth: a preflight carries no token and must not spend the caller's budget.
 * Other requests pass untouched: no Origin (mobile apps, servers), an origin not listed (no header is the refusal),
 * and WebSocket upgrades, which CORS does not cover (routes/realtime.ts checks their Origin).
 */
export const allowedOriginsCors: MiddlewareHandler<AppEnv> = async (c, next) => {
  const origin = c.req.header("origin");
  if (!origin || c.req.header("upgrade") || !c.get("config").ALLOWED_ORIGINS.includes(normalizeOrigin(origin) ?? "")) return next();
  return headers(c, next);
};
