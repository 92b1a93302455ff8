import { OpenAPIHono, createRoute, z } from "@hono/zod-openapi";
import { createMiddleware } from "hono/factory";
import { badRequest, errorReason, forbidden, notFound, unavailable } from "../../lib/errors";
import { flushMetrics, metrics, readMetrics, renderPrometheus, type Sample } from "../../lib/metrics";
import { createRedis, withTimeout } from "../../lib/redis";
import { appendAudit } from "../../db/queries/audit";
import { findMembership } from "../../db/queries/conversations";
import { auditEntries, listJobRuns, retentionSettings, updateRetentionSettings } from "../../db/queries/maintenance";
import { archivePage } from "../../db/queries/retention";
import { isActiveMember } from "../../db/queries/search";
import { findJob } from "../../jobs";
import { readAnchors } from "../../jobs/audit-anchor-store";
import { verifyAuditChains } from "../../jobs/audit-verify";
import { runJob } from "../../jobs/runner";
import { auditPageSchema, jobReport, jobRunsResult, retentionSchema, verifyReportSchema } from "../../protocol/operations";
import { messagePage } from "../../protocol/responses";
import { isServiceToken, requireAuth } from "../middleware/auth";
import { intParam, isUuidParam, limitParam, uuidPath } from "../params";
import { withSenders } from "../profiles";
import type { Logger } from "../../lib/log";
import type { AppEnv } from "../env";
import { errorResponses, noBody } from "../openapi";

/**
 * Operations routes (issue [operations]): the message archive and the audit log of a conversation, audit chain
 * verification, job runs, retention settings, and Prometheus metrics.
 */

const security = [{ bearerAuth: [] }];
const json = <T extends z.ZodType>(schema: T, description: string) => ({
  description,
  content: { "application/json": { schema } },
});

/** Service and admin tokens only (JWT role "admin"); anyone else authenticated gets 403. */
const requireService = createMiddleware<AppEnv>(async (c, next) => {
  if (!isServiceToken(c.get("user"))) throw forbidden("A service token is required");
  await next();
});

const conversationParam = z.object({ id: uuidPath("Conversation") });

const auditQuery = z.object({ limit: limitParam(50), before: intParam(1) });

/** Mounted at /conversations: per-conversation archive and audit log. */
export const conversationOperations = new OpenAPIHono<AppEnv>()
  .openapi(
    createRoute({
      method: "get",
      path: "/{id}/archive",
      tags: ["operations"],
      summary: "Archived messages (older than the retention period): keyset by seq, ascending within a page, newest page first",
      security,
      middleware: [requireAuth] as const,
      request: { params: conversationParam, query: z.object({ limit: limitParam(50), before: intParam(1) }) },
      responses: { 200: json(messagePage, "A page of archived messages"), ...errorResponses(400, 401, 404) },
    }),
    async (c) => {
      const { id: raw } = c.req.valid("param");
      if (!isUuidParam(raw)) throw notFound("Conversation");
      const id = raw.toLowerCase();
      if (!(await isActiveMember(c.get("db")(), id, c.get("user").id))) throw notFound("Conversation");
      const q = c.req.valid("query");
      const page = await archivePage(c.get("db")(), id, { before: q.before, limit: q.limit });
      return c.json({ messages: await withSenders(c, page.messages), hasMore: page.hasMore }, 200);
    },
  )
  .openapi(
    createRoute({
      method: "get",
      path: "/{id}/audit",
      tags: ["operations"],
      summary: "The conversation's audit log, newest first (group admins and service tokens)",
      security,
      middleware: [requireAuth] as const,
      request: { params: conversationParam, query: auditQuery },
      responses: { 200: json(auditPageSchema, "Audit entries; pass nextBefore as before for the next page"), ...errorResponses(400, 401, 403, 404) },
    }),
    async (c) => {
      const { id: raw } = c.req.valid("param");
      if (!isUuidParam(raw)) throw notFound("Conversation");
      const id = raw.toLowerCase();
      const db = c.get("db")();
      if (isServiceToken(c.get("user"))) {
        if (!(await retentionSettings(db, id))) throw notFound("Conversation");
      } else {
        const membership = await findMembership(db, id, c.get("user").id);
        if (!membership) throw notFound("Conversation");
        if (membership.conversation.type !== "group" || membership.me.role !== "admin") {
          throw forbidden("Only group admins and service tokens can read the audit log");
        }
      }
      const q = c.req.valid("query");
      return c.json(await auditEntries(db, id, { before: q.before, limit: q.limit }), 200);
    },
  );

/** Mounted at /operations: service tokens only. */
export const operations = new OpenAPIHono<AppEnv>()
  .openapi(
    createRoute({
      method: "post",
      path: "/audit/verify",
      tags: ["operations"],
      summary: "Recompute audit hash chains and report the first broken row of each (service token; 404 for a conversationId unknown to both the conversations and the audit log)",
      security,
      middleware: [requireAuth, requireService] as const,
      request: {
        body: {
          required: false,
          content: {
            "application/json": {
              schema: z.strictObject({
                conversationId: z.string().uuid().optional(),
                globalOnly: z.boolean().optional(),
                maxRows: z.number().int().min(1).max(200_000).optional(),
              }),
            },
          },
        },
      },
      responses: {
        ...errorResponses(400, 401, 403, 404),
        200: json(verifyReportSchema, "Verification report (ok: false names the broken rows; empty: true, there was nothing in scope to verify)"),
      },
    }),
    async (c) => {
      const body = c.req.valid("json");
      if (body.conversationId !== undefined && body.globalOnly) throw badRequest("use either conversationId or globalOnly, not both");
      const db = c.get("db")();
      const conversationId = body.conversationId?.toLowerCase();
      const report = await verifyAuditChains(db, {
        conversationId,
        globalOnly: body.globalOnly,
        maxRows: body.maxRows ?? 50_000,
        anchors: (chains) => readAnchors(createRedis(c.get("config")), chains),
      });
      // A mistyped id verified nothing and said ok: unknown to both the conversations and the audit log, it is a 404.
      // A conversation that exists with no entries (every one made through the API has its first) stays 200, empty.
      if (conversationId !== undefined && report.empty && !(await retentionSettings(db, conversationId))) throw notFound("Conversation");
      if (!report.ok) c.get("log").warn("audit chain broken", { chains: report.broken.length, firstBrokenId: report.firstBroken?.id });
      return c.json(report, 200);
    },
  )
  .openapi(
    createRoute({
      method: "get",
      path: "/audit",
      tags: ["operations"],
      summary: "The global audit chain (entries without a conversation: auth failures, admin actions), newest first",
      security,
      middleware: [requireAuth, requireService] as const,
      request: { query: auditQuery },
      responses: { 200: json(auditPageSchema, "Audit entries"), ...errorResponses(400, 401, 403) },
    }),
    async (c) => {
      const q = c.req.valid("query");
      return c.json(await auditEntries(c.get("db")(), null, { before: q.before, limit: q.limit }), 200);
    },
  )
  .openapi(
    createRoute({
      method: "get",
      path: "/jobs",
      tags: ["operations"],
      summary: "Last run of every job (service token)",
      security,
      middleware: [requireAuth, requireService] as const,
      responses: { 200: json(jobRunsResult, "Job runs"), ...errorResponses(401, 403) },
    }),
    async (c) => c.json({ jobs: await listJobRuns(c.get("db")()) }, 200),
  )
  .openapi(
    createRoute({
      method: "post",
      path: "/jobs/{job}/run",
      tags: ["operations"],
      summary: "Run one job now, ignoring its interval (service token; audited)",
      security,
      middleware: [requireAuth, requireService] as const,
      // Any text: a name no job has is a 404, however long (it was a 400 over 100 characters, which the document did
      // not list).
      request: { params: z.object({ job: z.string().openapi({ description: "A job's name, as GET /operations/jobs lists it" }) }), ...noBody() },
      responses: { 200: json(jobReport, "The run's report"), ...errorResponses(400, 401, 403, 404) },
    }),
    async (c) => {
      const { job: name } = c.req.valid("param");
      const job = findJob(c.get("config"), name);
      if (!job) throw notFound("Job");
      const db = c.get("db")();
      const report = await runJob(job, { env: c.env, config: c.get("config"), db, log: c.get("log"), force: true });
      // Recorded after the run, as what happened: a run skipped for the lease another run holds did not run.
      const details =
        report.status === "skipped"
          ? { status: report.status, skipped: true, reason: report.reason }
          : { status: report.status, skipped: false, rows: report.rows };
      // An id of its own: a retry of an append that committed after all is skipped, not written twice.
      const entry = { conversationId: null, actorId: c.get("user").id, action: "admin.job_run", targetId: name, details, at: new Date().toISOString(), entryId: crypto.randomUUID() };
      try {
        await appendAudit(db, [entry]);
      } catch (err) {
        // The job has run: a 500 here said it had not, and the operator's retry ran it a second time. The entry is
        // written once the answer is out.
        const log = c.get("log");
        log.error("job run not audited yet; retrying after the response", { job: name, error: errorReason(err).slice(0, 200) });
        c.get("afterResponse")(() => auditLater(() => appendAudit(c.get("db")(), [entry]), log, name));
      }
      return c.json(report, 200);
    },
  )
  .openapi(
    createRoute({
      method: "get",
      path: "/conversations/{id}/retention",
      tags: ["operations"],
      summary: "A conversation's retention override, legal hold and archive mark (service token)",
      security,
      middleware: [requireAuth, requireService] as const,
      request: { params: conversationParam },
      responses: { 200: json(retentionSchema, "Retention settings"), ...errorResponses(401, 403, 404) },
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      const settings = isUuidParam(id) ? await retentionSettings(c.get("db")(), id.toLowerCase()) : undefined;
      if (!settings) throw notFound("Conversation");
      return c.json(settings, 200);
    },
  )
  .openapi(
    createRoute({
      method: "put",
      path: "/conversations/{id}/retention",
      tags: ["operations"],
      summary: "Set a conversation's retention override (days, null = default) and legal hold (service token; audited)",
      security,
      middleware: [requireAuth, requireService] as const,
      request: {
        params: conversationParam,
        body: {
          required: true,
          content: {
            "application/json": {
              schema: z
                .strictObject({ retentionDays: z.number().int().min(1).max(36_500).nullable().optional(), legalHold: z.boolean().optional() })
                .refine((b) => b.retentionDays !== undefined || b.legalHold !== undefined, { message: "set retentionDays or legalHold" }),
            },
          },
        },
      },
      responses: { 200: json(retentionSchema, "The new settings"), ...errorResponses(400, 401, 403, 404) },
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      if (!isUuidParam(id)) throw notFound("Conversation");
      const saved = await updateRetentionSettings(c.get("db")(), id.toLowerCase(), c.req.valid("json"), c.get("user").id);
      if (!saved) throw notFound("Conversation");
      return c.json(saved, 200);
    },
  );

const AUDIT_RETRY_DELAYS_MS = [1000, 4000];

async function auditLater(append: () => Promise<void>, log: Logger, job: string): Promise<void> {
  for (const delay of AUDIT_RETRY_DELAYS_MS) {
    await new Promise((r) => setTimeout(r, delay));
    try {
      return await append();
    } catch (err) {
      log.error("job run audit entry not written", { job, error: errorReason(err).slice(0, 200) });
    }
  }
}

/** Mounted at /metrics: Prometheus text format, service tokens only. */
export const metricsRoute = new OpenAPIHono<AppEnv>().openapi(
  createRoute({
    method: "get",
    path: "/",
    tags: ["operations"],
    summary: "Counters and gauges in the Prometheus text format (service token)",
    security,
    middleware: [requireAuth, requireService] as const,
    responses: {
      200: { description: "Prometheus exposition format 0.0.4", content: { "text/plain": { schema: z.string() } } },
      ...errorResponses(401, 403, 503),
    },
  }),
  async (c) => {
    const redis = createRedis(c.get("config"));
    // This isolate's own batch first, so what it counted is visible at once; other isolates flush on their interval.
    await withTimeout(flushMetrics(redis, metrics), 1000, "metrics flush").catch(() => {});
    let stored;
    try {
      stored = await withTimeout(readMetrics(redis), 2000, "metrics read");
    } catch {
      throw unavailable("Metrics store unavailable");
    }
    const extra: Sample[] = [];
    try {
      for (const run of await listJobRuns(c.get("db")())) {
        const labels = { job: run.job };
        if (run.finishedAt) extra.push({ name: "job_last_run_timestamp_seconds", labels, value: Math.floor(Date.parse(run.finishedAt) / 1000), type: "gauge" });
        if (run.durationMs !== null) extra.push({ name: "job_last_duration_ms", labels, value: run.durationMs, type: "gauge" });
        extra.push({ name: "job_last_rows", labels, value: run.rows, type: "gauge" });
        if (run.ok !== null) extra.push({ name: "job_last_ok", labels, value: run.ok ? 1 : 0, type: "gauge" });
      }
    } catch {
      // Postgres down: the Redis counters are still worth serving.
    }
    return c.text(renderPrometheus(stored, extra), 200, { "content-type": "text/plain; version=0.0.4; charset=utf-8" });
  },
);
