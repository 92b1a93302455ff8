import { OpenAPIHono, createRoute, z } from "@hono/zod-openapi";
import { createMiddleware } from "hono/factory";
import { errorReason, HttpError, unavailable } from "../../lib/errors";
import { AuthError, verifyToken } from "../../lib/jwt";
import { auditAuthFailure } from "../../jobs/auth-audit";
import { errorSchema } from "../../protocol/resources";
import { uuidField } from "../../protocol/requests";
import { invalidateResult } from "../../protocol/responses";
import { bearerToken, jwtSettings } from "../middleware/auth";
import { profileProvider } from "../profiles";
import type { AppEnv } from "../env";

const MAX_IDS = 500;
const uuids = z.array(uuidField).max(MAX_IDS);

const invalidateBody = z
  .strictObject({ user_uuids: uuids.optional(), business_uuids: uuids.optional() })
  .meta({ id: "ProfileInvalidation" });

/** Constant-time equality (over digests, so lengths leak nothing either): the service token is a shared secret. */
async function sameSecret(given: string, expected: string): Promise<boolean> {
  const enc = new TextEncoder();
  const [a, b] = await Promise.all([
    crypto.subtle.digest("SHA-256", enc.encode(given)),
    crypto.subtle.digest("SHA-256", enc.encode(expected)),
  ]);
  const x = new Uint8Array(a);
  const y = new Uint8Array(b);
  let diff = 0;
  for (let i = 0; i < x.length; i++) diff |= x[i] ^ y[i];
  return diff === 0;
}

/** The profile service (its own token) or an admin JWT; checked before the body, so strangers learn nothing from 400s. */
const requireInvalidator = createMiddleware<AppEnv>(async (c, next) => {
  const config = c.get("config");
  const token = bearerToken(c.req.header("authorization"));
  // Failures are audited and counted like every other sign-in: guesses at the service token must leave a trace.
  if (!token) {
    auditAuthFailure(c, "missing bearer token");
    throw new HttpError(401, "Missing bearer token");
  }
  if (await sameSecret(token, config.PROFILE_SERVICE_TOKEN)) return next();
  const user = await verifyToken(token, jwtSettings(config)).catch((err: unknown) => {
    if (err instanceof AuthError) auditAuthFailure(c, err.reason);
    throw err;
  });
  if (user.role !== "admin") throw new HttpError(403, "Only the profile service or an admin may invalidate profiles");
  await next();
});

const errorResponse = (description: string) => ({ description, content: { "application/json": { schema: errorSchema } } });

export const profiles = new OpenAPIHono<AppEnv>().openapi(
  createRoute({
    method: "post",
    path: "/invalidate",
    tags: ["profiles"],
    summary: "Drop cached profiles after they changed at the profile service",
    description: `Bearer: the profile service token (PROFILE_SERVICE_TOKEN) or a JWT with role "admin". At most ${MAX_IDS} ids per list.`,
    security: [{ bearerAuth: [] }],
    middleware: [requireInvalidator] as const,
    request: { body: { required: true, content: { "application/json": { schema: invalidateBody } } } },
    responses: {
      200: {
        description: "Cached entries removed (ids that were not cached count 0)",
        content: { "application/json": { schema: invalidateResult } },
      },
      400: errorResponse("Invalid body"),
      401: errorResponse("No or invalid token"),
      403: errorResponse("A valid token without the admin role"),
      503: errorResponse("The cache is unreachable; retry (Retry-After)"),
    },
  }),
  async (c) => {
    const body = c.req.valid("json");
    let invalidated: number;
    try {
      invalidated = await profileProvider(c).evict({ userIds: body.user_uuids, businessIds: body.business_uuids });
    } catch (err) {
      // Silently dropping an invalidation would leave a changed profile cached for a day: make the caller retry.
      c.get("log").warn("profile invalidation failed", { error: errorReason(err).slice(0, 200) });
      throw unavailable("Profile cache unavailable", 5);
    }
    return c.json({ invalidated }, 200);
  },
);
