import type { Config } from "../lib/config";
import { errorReason } from "../lib/errors";
import type { Logger } from "../lib/log";
import { openDb } from "../db/client";
import { outboxSweepJob, presenceReconcileJob, profileRefreshJob, ticketsJob } from "./maintenance";
import { auditAnchorJob } from "./audit-anchor";
import { purgeJob } from "./purge";
import { archiveJob } from "./retention";
import { runJob, type JobDefinition, type JobReport } from "./runner";

/** Every scheduled job, in the order a Cron run takes them (cheap and urgent first). */
export function scheduledJobs(config: Config): JobDefinition[] {
  return [
    ticketsJob(),
    outboxSweepJob(),
    presenceReconcileJob(),
    archiveJob(),
    purgeJob(),
    profileRefreshJob({ cacheTtlSeconds: config.PROFILE_CACHE_TTL }),
    auditAnchorJob(),
  ];
}

export function findJob(config: Config, name: string): JobDefinition | undefined {
  return scheduledJobs(config).find((j) => j.name === name);
}

/**
 * Runs the due jobs one after another on one database pool. A failing job is recorded and logged and does not stop
 * the others.
 */
export async function runScheduledJobs(env: Env, config: Config, log: Logger, options: { now?: Date; force?: boolean } = {}): Promise<JobReport[]> {
  const handle = openDb({ databaseUrl: config.DATABASE_URL, bridge: config.PG_BRIDGE }, 2);
  const reports: JobReport[] = [];
  try {
    for (const job of scheduledJobs(config)) {
      try {
        reports.push(await runJob(job, { env, config, db: handle.db, log, now: options.now, force: options.force }));
      } catch (err) {
        // The bookkeeping itself failed (Postgres down): nothing was claimed; try the next job.
        const error = errorReason(err).slice(0, 200);
        log.error("job not run", { job: job.name, error });
        reports.push({ job: job.name, status: "failed", rows: 0, durationMs: 0, more: false, details: { error } });
      }
    }
  } finally {
    await handle.end();
  }
  return reports;
}
