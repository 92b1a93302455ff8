import { OpenAPIHono, createRoute, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { forbidden, HttpError, notFound } from "../../lib/errors";
import { randomToken } from "../../lib/ids";
import { normalizeOrigin } from "../../lib/origin";
import type { AuthUser } from "../../lib/jwt";
import { consumeTicket, createTicket, restoreTicket, type SpentTicket } from "../../db/queries/tickets";
import { READY_PROFILE_WAIT_MS } from "../../durable-objects/room/profiles";
import { CONVERSATION_HEADER, IDENTITY_HEADER } from "../../durable-objects/room/realtime";
import { authenticateRequest, provisionCaller, requireAuth } from "../middleware/auth";
import { auditAuthFailure } from "../../jobs/auth-audit";
import { intParam, isUuidParam } from "../params";
import { objectUnavailable, roomStub } from "../rooms";
import { ticketResult } from "../../protocol/responses";
import type { AppEnv } from "../env";
import { errorResponses, noBody, pathId } from "../openapi";

/** Upgrades from another site are refused unless its origin is allowed; the service's own pages always are. */
function checkOrigin(c: Context<AppEnv>): void {
  const origin = c.req.header("origin");
  if (!origin) return;
  let own = false;
  try {
    // Scheme, host and port: a page on http:// is another origin than the service on https://, though the host is one.
    own = new URL(origin).origin === new URL(c.req.url).origin;
  } catch {
    throw forbidden("Origin not allowed");
  }
  if (!own && !c.get("config").ALLOWED_ORIGINS.includes(normalizeOrigin(origin) ?? "")) throw forbidden("Origin not allowed");
}

/** Who upgrades, and the ticket it spent (none with a header token). */
interface UpgradeIdentity {
  user: AuthUser;
  ticket?: SpentTicket;
}

/**
 * Header token (non-browser clients) or a single-use ticket (browsers); tokens never travel in URLs. `background`:
 * a conversation's socket, whose room admits members only, and a member has a users row already (see requireAuth).
 */
async function upgradeIdentity(c: Context<AppEnv>, provision: "first" | "background"): Promise<UpgradeIdentity> {
  if (c.req.header("upgrade")?.toLowerCase() !== "websocket") throw new HttpError(426, "Expected a WebSocket upgrade");
  checkOrigin(c);
  const ticket = c.req.query("ticket");
  if (ticket) {
    const spent = /^[0-9a-f]{48}$/.test(ticket) ? await consumeTicket(c.get("httpDb")(), ticket) : undefined;
    if (!spent) {
      auditAuthFailure(c, "invalid or expired ticket");
      throw new HttpError(401, "Invalid or expired ticket");
    }
    c.set("user", spent.user);
    return { user: spent.user, ticket: spent };
  }
  const user = await authenticateRequest(c);
  await provisionCaller(c, user, provision);
  c.set("user", user);
  return { user };
}

function identityHeaders(user: AuthUser, extra: Record<string, string> = {}): Headers {
  const headers = new Headers({ upgrade: "websocket", ...extra });
  headers.set(IDENTITY_HEADER, JSON.stringify({ id: user.id, kahaId: user.kahaId, role: user.role, exp: user.exp }));
  return headers;
}

/** Refusals the client is told to retry (Retry-After): the ticket that met one must still open its retry's socket. */
const transientRefusal = (status: number) => status === 429 || status >= 500;

/**
 * A Durable Object's refusal (404, 429, ...) becomes the contract's error shape, keeping its Retry-After (429, 503).
 * A ticket spent on a transient refusal is put back: the client used to need a new one for its retry, and issuing
 * it is charged to the same upgrade budget that a 429 says is exhausted.
 */
async function forwardUpgrade(
  c: Context<AppEnv>,
  stub: { fetch(req: Request): Promise<Response> },
  identity: UpgradeIdentity,
  headers: Headers,
  what: string,
): Promise<Response> {
  const spent = identity.ticket;
  const giveBack = async () => {
    if (spent) await restoreTicket(c.get("httpDb")(), spent).catch((e: Error) => c.get("log").warn("ticket not restored", { error: e.message?.slice(0, 200) }));
  };
  let res: Response;
  try {
    res = await stub.fetch(new Request(c.req.url, { headers }));
  } catch (err) {
    await giveBack();
    // The object restarting (a deploy) or overloaded: a 500 told the client's reconnect logic it had hit a bug.
    throw objectUnavailable(err, what) ?? err;
  }
  if (res.status === 101) return res;
  if (transientRefusal(res.status)) await giveBack();
  const body = (await res.json().catch(() => ({}))) as { message?: string };
  const retryAfter = res.headers.get("retry-after");
  throw new HttpError(res.status, body.message ?? "Upgrade refused", retryAfter ? { "Retry-After": retryAfter } : {});
}

export const realtime = new OpenAPIHono<AppEnv>().openapi(
  createRoute({
    method: "post",
    path: "/tickets",
    tags: ["realtime"],
    summary: "A single-use ticket (60 s, or until the token's exp if sooner) for a browser WebSocket: connect with ?ticket=...",
    security: [{ bearerAuth: [] }],
    middleware: [requireAuth] as const,
    // A ticket opens either socket: a field asking for more (a conversation, a lifetime) is a 400, not ignored.
    request: noBody(),
    responses: {
      200: {
        description: "Ticket",
        content: { "application/json": { schema: ticketResult } },
      },
      ...errorResponses(400, 401),
    },
  }),
  async (c) => {
    const ticket = randomToken(24);
    const expiresAt = await createTicket(c.get("httpDb")(), ticket, c.get("user"));
    return c.json({ ticket, expiresAt: expiresAt.toISOString() }, 200);
  },
);

/**
 * Checked before the ticket is spent. A position that is not a seq (a client's lost state: "NaN", "undefined") was
 * ignored, and the socket went live without the replay the client asked for: what it missed never came.
 */
const conversationSocketQuery = z.object({
  afterSeq: intParam(0).openapi({ type: "integer", description: "Replay everything after this seq before going live" }),
});

/** The conversation socket's `{id}`: any text passes (the handler answers 404 for a malformed one, as for an unknown one). */
const conversationSocketParams = z.object({ id: pathId("id") });

/** `refusals`: the statuses an upgrade can answer before the socket opens (the contract's error shape). */
const upgradeDoc = (
  path: string,
  summary: string,
  query: typeof conversationSocketQuery | undefined,
  refusals: Partial<ReturnType<typeof errorResponses>>,
  description?: string,
  params?: typeof conversationSocketParams,
) =>
  createRoute({
    method: "get",
    path,
    tags: ["realtime"],
    summary,
    ...(description ? { description } : {}),
    // Either one (contract §2): browsers, which cannot set the header on an upgrade, connect with a ticket alone. The
    // document required the bearer token, so a client or gateway built from it refused ticket-only upgrades.
    security: [{ bearerAuth: [] }, { ticket: [] }],
    // A path template's parameters must be declared: without it the document was invalid (`{id}` undefined).
    request: { ...(params ? { params } : {}), ...(query ? { query } : {}) },
    responses: {
      101: { description: "Switching protocols: the socket speaks the frames of contract §6" },
      ...refusals,
    },
  });

/** `GET /conversations/{id}/ws`: the conversation's room. */
export const conversationSocket = new OpenAPIHono<AppEnv>().openapi(
  upgradeDoc(
    "/{id}/ws",
    "Conversation socket: messages, typing, receipts of one conversation",
    conversationSocketQuery,
    // 400: afterSeq is not a seq; 403: an Origin outside ALLOWED_ORIGINS; 404: not a member (or no such
    // conversation); 429: too many sockets.
    errorResponses(400, 401, 403, 404, 426, 429),
    `The first frame is \`ready {conversationId, lastSeq, participants, typing, you, protocolVersion}\`. Its participants carry \`profile\` (a Profile, \`stale: true\` when served from cache while the profile service fails) when the room has it or gets it within ${READY_PROFILE_WAIT_MS} ms; a slow profile service never holds the frame longer. \`typing\` lists the other participants typing now; \`typing_start\` / \`typing_stop\` go to the other participants' sockets only, never to any socket of the typist.`,
    conversationSocketParams,
  ),
  async (c) => {
    const id = c.req.param("id") ?? "";
    const identity = await upgradeIdentity(c, "background");
    if (!isUuidParam(id)) throw notFound("Conversation");
    const headers = identityHeaders(identity.user, { [CONVERSATION_HEADER]: id.toLowerCase() });
    return forwardUpgrade(c, roomStub(c, id.toLowerCase()), identity, headers, "Conversation") as never;
  },
);

/** `GET /ws`: the caller's user session (presence, unread counts, notifications). */
export const userSocket = new OpenAPIHono<AppEnv>().openapi(
  upgradeDoc("/", "User socket: presence, unread counts and notifications across conversations", undefined, errorResponses(401, 403, 426, 429)),
  async (c) => {
    // The session's presence write updates the user's row: it must exist first.
    const identity = await upgradeIdentity(c, "first");
    const ns = c.env.USER_SESSION;
    return forwardUpgrade(c, ns.get(ns.idFromName(identity.user.id)), identity, identityHeaders(identity.user), "User session") as never;
  },
);
