import { errorReason } from "../lib/errors";
import type { Context } from "hono";
import { decodeJwt } from "jose";
import { isUuid } from "../lib/ids";
import { metrics } from "../lib/metrics";
import { createRedis, withTimeout } from "../lib/redis";
import { openDb } from "../db/client";
import { appendAudit } from "../db/queries/audit";
import type { AppEnv } from "../worker/env";

/**
 * Authentication failures go to the audit log's global chain (no conversation) as `auth.failed`, with the reason,
 * the client IP, method and path, and — as target — the user id the token *claimed* (unverified; only when it is a
 * UUID). The token itself is never stored or logged.
 *
 * Best effort and off the response path: the write runs under waitUntil on its own short-lived connection. So that
 * a flood of bad tokens cannot turn into a flood of serialised audit transactions, at most AUDIT_PER_IP rows per IP
 * and AUDIT_GLOBAL rows overall are written per minute (Redis counters); the rest is only counted
 * (`audit_auth_failures_suppressed_total`). Every failure is counted in `auth_failures_total{reason}`.
 */

export const AUDIT_PER_IP_PER_MINUTE = 20;
export const AUDIT_GLOBAL_PER_MINUTE = 600;

/** A small fixed set for metric labels (reasons may contain attacker-chosen text). */
export function reasonClass(reason: string): string {
  const r = reason.toLowerCase();
  if (r.includes("missing")) return "missing";
  if (r.includes("expired")) return "expired";
  if (r.includes("signature")) return "signature";
  if (r.includes("algorithm") || r.includes("alg")) return "algorithm";
  if (r.includes("malformed") || r.includes("jws_invalid") || r.includes("jwt_invalid")) return "malformed";
  if (r.includes("claim")) return "claims";
  if (r.includes("ticket")) return "ticket";
  return "other";
}

/**
 * Request text as jsonb can store it: Postgres refuses `\u0000` and unpaired surrogates in jsonb, and the entry was
 * lost with the whole insert. A path with `%00` (Hono decodes it) let a token guesser leave no trace.
 */
export function storable(text: string): string {
  return text.replace(/\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, "\ufffd");
}

function claimedUserId(authorization: string | undefined): string | null {
  const token = authorization?.match(/^Bearer\s+(\S+)\s*$/i)?.[1];
  if (!token) return null;
  try {
    const id = decodeJwt(token).id;
    return typeof id === "string" && isUuid(id) ? id.toLowerCase() : null;
  } catch {
    return null;
  }
}

export function auditAuthFailure(c: Context<AppEnv>, reason: string): void {
  const cls = reasonClass(reason);
  metrics.count("auth_failures_total", 1, { reason: cls });
  let config;
  try {
    config = c.get("config");
  } catch {
    return;
  }
  if (!config) return;
  const ip = c.req.header("cf-connecting-ip")?.slice(0, 45) ?? null;
  const entry = {
    conversationId: null,
    actorId: null,
    action: "auth.failed",
    targetId: claimedUserId(c.req.header("authorization")),
    details: {
      reason: storable(reason.slice(0, 200)),
      reasonClass: cls,
      ip,
      method: c.req.method,
      path: storable(c.req.path.slice(0, 200)),
      userAgent: storable(c.req.header("user-agent")?.slice(0, 200) ?? "") || null,
      requestId: c.get("requestId"),
    },
    at: new Date().toISOString(),
  };
  const cfg = config;
  const log = c.get("log");
  const work = (async () => {
    if (!(await withinAuditBudget(cfg, ip))) {
      metrics.count("audit_auth_failures_suppressed_total");
      return;
    }
    const handle = openDb({ databaseUrl: cfg.DATABASE_URL, bridge: cfg.PG_BRIDGE }, 1);
    try {
      await withTimeout(appendAudit(handle.db, [entry]), 10_000, "auth failure audit");
    } finally {
      await handle.end();
    }
  })().catch((err: unknown) => log?.warn("auth failure audit not written", { error: errorReason(err).slice(0, 200) }));
  try {
    c.executionCtx.waitUntil(work);
  } catch {
    // No execution context: the promise runs on regardless.
  }
}

async function withinAuditBudget(config: AppEnv["Variables"]["config"], ip: string | null): Promise<boolean> {
  const minute = Math.floor(Date.now() / 60_000);
  const keys = [`audit:authfail:all:${minute}`, ...(ip ? [`audit:authfail:ip:${ip}:${minute}`] : [])];
  try {
    const p = createRedis(config).pipeline();
    for (const k of keys) p.incr(k).expire(k, 120);
    const results = (await withTimeout(p.exec(), 500, "audit budget")) as unknown[];
    const all = Number(results[0]);
    const perIp = ip ? Number(results[2]) : 0;
    return all <= AUDIT_GLOBAL_PER_MINUTE && perIp <= AUDIT_PER_IP_PER_MINUTE;
  } catch {
    return true; // Redis down: still write (a security event beats a budget)
  }
}
