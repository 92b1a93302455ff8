import { z, type OpenAPIHono } from "@hono/zod-openapi";
import { errorSchema } from "../protocol/resources";
import type { AppEnv } from "./env";
import { requireAuth, requireAuthAsMember, requireAuthToRead } from "./middleware/auth";

/** Spread into createRoute: the bearer check runs before validation, and the document shows the requirement. */
export const secured = {
  security: [{ bearerAuth: [] }],
  middleware: [requireAuth],
};

/** `secured`, for routes on a conversation the caller is in: the user's row exists, so provisioning waits for nothing. */
export const securedMember = {
  security: [{ bearerAuth: [] }],
  middleware: [requireAuthAsMember],
};

/** `secured`, for routes that only read the caller's memberships: provisioning waits until the response is out. */
export const securedReader = {
  security: [{ bearerAuth: [] }],
  middleware: [requireAuthToRead],
};

const ERROR_DESCRIPTIONS = {
  400: "Invalid input",
  401: "Missing or invalid token",
  403: "Authenticated but not allowed",
  404: "Unknown, or not visible to the caller",
  409: "Conflicts with the current state",
  413: "Request body too large",
  415: "The body is not JSON (Content-Type must be application/json)",
  426: "Not a WebSocket upgrade",
  429: "Rate limited (writes); retry after the Retry-After header's seconds",
  503: "A dependency is down; retry after the Retry-After header's seconds",
} as const;

/** Contract §1: 429 and 503 say when to come back; every answer names its request. Declared for generated clients. */
const RETRY_AFTER = {
  "Retry-After": { description: "Seconds to wait before retrying", schema: { type: "integer" as const, minimum: 1 } },
};
const REQUEST_ID = { "X-Request-Id": { description: "The request's id (also in error bodies): quote it when reporting a problem", schema: { type: "string" as const } } };

/** The contract's error shape for the listed statuses, for the document. */
export function errorResponses<S extends keyof typeof ERROR_DESCRIPTIONS>(...statuses: S[]) {
  const out = {} as Record<S, { description: string; content: { "application/json": { schema: typeof errorSchema } } }>;
  for (const s of statuses) out[s] = { description: ERROR_DESCRIPTIONS[s], content: { "application/json": { schema: errorSchema } } };
  return out;
}

/** A path parameter documented as a UUID but checked by the handler, so a malformed id is a 404 like an unknown one. */
export const pathId = (name: string) => z.string().toLowerCase().openapi({ param: { name, in: "path" }, format: "uuid" });

export const jsonBody = <T extends z.ZodType>(schema: T, required = true) => ({
  body: { required, content: { "application/json": { schema } } },
});

/**
 * For a route that takes no body: none, an empty one or `{}`. A body with fields is a 400, never ignored: a client
 * sending what looks like an option (`{conversationIds}` on mark-all-read) got the broader action it did not ask for.
 */
export const noBody = () => jsonBody(z.strictObject({}), false);

export const json = <T extends z.ZodType>(description: string, schema: T) => ({
  description,
  content: { "application/json": { schema } },
});

/**
 * Statuses any route with a body (413, 415) or any secured route can answer, whatever it does: the rate limiter counts
 * every write (429), and the token's user is provisioned in Postgres, so a database that is down is a 503 anywhere
 * (contract §1, §2). Added to the document once here rather than to every route; a route's own description of a
 * status wins.
 */
export function documentSharedRefusals(app: OpenAPIHono<AppEnv>): void {
  for (const def of app.openAPIRegistry.definitions) {
    if (def.type !== "route") continue;
    // A route that takes a body answers 415 for one sent as anything but JSON (the validator's media-type gate), and
    // 413 for one over the app-wide 64 KiB limit (documented only on sends and edits before).
    if (def.route.request?.body) def.route.responses = { ...errorResponses(413, 415), ...def.route.responses };
    // The per-IP limit counts writes without a token too (POST /auth/dev-login), so 429 is not the secured routes' alone.
    if (def.route.method !== "get") def.route.responses = { ...errorResponses(429), ...def.route.responses };
    if (!def.route.security?.length) continue;
    const shared = def.route.method === "get" ? errorResponses(503) : errorResponses(429, 503);
    def.route.responses = { ...shared, ...def.route.responses };
  }
  documentResponseHeaders(app);
}

/**
 * Headers every answer carries (contract §1): X-Request-Id on all of them, Retry-After on 429 and 503, also where a
 * route describes those statuses itself (the readiness check's 503, the profile cache's).
 */
function documentResponseHeaders(app: OpenAPIHono<AppEnv>): void {
  for (const def of app.openAPIRegistry.definitions) {
    if (def.type !== "route") continue;
    for (const [status, response] of Object.entries(def.route.responses)) {
      if ("$ref" in response) continue;
      const retry = status === "429" || status === "503" ? RETRY_AFTER : {};
      response.headers = { ...REQUEST_ID, ...retry, ...(response.headers as Record<string, unknown> | undefined) } as typeof response.headers;
    }
  }
}
