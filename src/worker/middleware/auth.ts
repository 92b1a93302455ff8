import type { Context } from "hono";
import { createMiddleware } from "hono/factory";
import { verifyToken, type AuthUser } from "../../lib/jwt";
import type { Config } from "../../lib/config";
import { provisionUser } from "../../db/queries/users";
import type { AppEnv } from "../env";
import { HttpError } from "../../lib/errors";
import { auditAuthFailure } from "../../jobs/auth-audit";

export function jwtSettings(config: Config) {
  return {
    secret: config.JWT_SECRET,
    jwksUrl: config.JWKS_URL,
    issuer: config.JWT_ISSUER,
    audience: config.JWT_AUDIENCE,
    requireExp: config.JWT_REQUIRE_EXP,
  };
}

export function bearerToken(header: string | undefined): string | undefined {
  const match = header?.match(/^Bearer\s+([A-Za-z0-9._~+/=-]+)\s*$/i);
  return match?.[1];
}

export async function authenticate(header: string | undefined, config: Config): Promise<AuthUser> {
  const token = bearerToken(header);
  if (!token) throw new HttpError(401, "Missing bearer token");
  return verifyToken(token, jwtSettings(config));
}

/** The request's bearer token, verified; a failure is logged and audited before it is thrown. */
export async function authenticateRequest(c: Context<AppEnv>): Promise<AuthUser> {
  try {
    return await authenticate(c.req.header("authorization"), c.get("config"));
  } catch (err) {
    // A 503 (the identity provider's keys unreachable) is no failed sign-in: not audited, not counted.
    if (err instanceof HttpError && err.status !== 401) throw err;
    const reason = (err as { reason?: string }).reason ?? (err as Error).message;
    c.get("log").warn("auth failed", { reason });
    auditAuthFailure(c, reason); // [operations] best effort, under waitUntil
    throw err;
  }
}

/**
 * Verifies the bearer token and provisions the user on first use (per isolate). `background`: for routes on a
 * conversation the caller must already be in. A participant always has a users row (a foreign key), so there the
 * upsert only fills in a placeholder's kaha id, and it need not hold the request: on a new isolate it cost a
 * Postgres connection and a round trip before a send even reached its room, and it failed while Postgres was down.
 * `after`: for routes that only read the caller's memberships (a user without a row has none, and gets the same
 * answer). The upsert waits until the response is out: the request's pool has one connection, and the list, an
 * app's first request, would otherwise wait behind it on every isolate that had not seen the user yet.
 */
function authenticated(provision: "first" | "background" | "after") {
  return createMiddleware<AppEnv>(async (c, next) => {
    const user = await authenticateRequest(c);
    c.set("user", user);
    await provisionCaller(c, user, provision);
    await next();
  });
}

/** The caller's users row, once per isolate: before the request goes on, beside it, or after it (see authenticated). */
export async function provisionCaller(c: Context<AppEnv>, user: AuthUser, when: "first" | "background" | "after"): Promise<void> {
  if (when === "after") return c.get("afterResponse")(() => provisionUser(c.get("httpDb"), user.id, user.kahaId));
  const provisioning = provisionUser(c.get("httpDb"), user.id, user.kahaId);
  if (when === "first") return provisioning;
  c.executionCtx.waitUntil(provisioning.catch((err: Error) => c.get("log").warn("user provisioning failed", { error: err.message?.slice(0, 200) })));
}

export const requireAuth = authenticated("first");
export const requireAuthAsMember = authenticated("background");
export const requireAuthToRead = authenticated("after");

export const isServiceToken = (user: AuthUser) => user.role === "admin";
