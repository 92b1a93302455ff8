import { getConfig } from "../lib/config";
import { createLogger } from "../lib/log";
import { flushMetrics, metrics } from "../lib/metrics";
import { createRedis } from "../lib/redis";
import { runScheduledJobs } from "../jobs";

/**
 * Cron Trigger entry point (wrangler.toml: every 5 minutes). Runs the operations jobs (src/jobs): expired tickets,
 * outbox sweeper, retention archive, purge of deleted content, hot profile refresh. Each job decides whether it is
 * due (job_runs), is bounded in time, and reports in job_runs and one log line; this run ends with a summary line.
 */
export async function runScheduled(controller: ScheduledController, env: Env): Promise<void> {
  const log = createLogger({ job: "scheduled", cron: controller.cron });
  const config = getConfig(env);
  const started = Date.now();
  const reports = await runScheduledJobs(env, config, log);
  const ran = reports.filter((r) => r.status !== "skipped");
  log.info("scheduled run", {
    scheduledTime: controller.scheduledTime,
    durationMs: Date.now() - started,
    ran: ran.map((r) => r.job).join(","),
    failed: reports.filter((r) => r.status === "failed").length,
    skipped: reports.length - ran.length,
  });
  await flushMetrics(createRedis(config), metrics).catch(() => {});
}
