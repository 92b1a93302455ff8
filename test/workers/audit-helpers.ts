import { expect } from "vitest";
import { env } from "cloudflare:test";
import { sql } from "drizzle-orm";
import { appendAudit } from "../../src/db/queries/audit";
import { auditAnchorJob } from "../../src/jobs/audit-anchor";
import { runJob, type JobReport } from "../../src/jobs/runner";
import { getConfig } from "../../src/lib/config";
import { createLogger } from "../../src/lib/log";
import { withDb } from "./fixtures";
import { api, newUser } from "./helpers";

export const config = getConfig(env);

/**
 * The anchor job as the Cron Trigger runs it (every chain with entries since its last run), until it has caught up.
 * Another file's Cron run may hold the job's lease meanwhile: then this waits for it.
 */
export async function anchorRun(): Promise<JobReport> {
  const until = Date.now() + 30_000;
  for (;;) {
    const report = await withDb((db) => runJob(auditAnchorJob(), { env, config, db, log: createLogger({ test: "audit-anchor" }), force: true }));
    if (report.status === "ok" && !report.more) return report;
    if (report.status === "failed" || Date.now() > until) throw new Error(`anchor run: ${JSON.stringify(report)}`);
    if (report.status === "skipped") await new Promise((r) => setTimeout(r, 200));
  }
}

export async function chainOf(n: number) {
  const conversationId = crypto.randomUUID();
  await withDb((db) => appendAudit(db, Array.from({ length: n }, (_, i) => ({ conversationId, actorId: null, action: `test.entry${i}`, details: { n: i } }))));
  const ids = await withDb((db) => db.execute<{ id: string }>(sql`SELECT id FROM audit_log WHERE conversation_id = ${conversationId}::uuid ORDER BY id`));
  return { conversationId, ids: ids.rows.map((r) => Number(r.id)) };
}

export async function verify(conversationId: string) {
  const service = await newUser("svc", "admin");
  const res = await api("POST", "/operations/audit/verify", { token: service.token, body: { conversationId } });
  expect(res.status).toBe(200);
  return res.body;
}
