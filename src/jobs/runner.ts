import type { Config } from "../lib/config";
import { errorReason } from "../lib/errors";
import type { Logger } from "../lib/log";
import { metrics } from "../lib/metrics";
import type { Db } from "../db/client";
import { claimJob, finishJob, releaseJob } from "../db/queries/maintenance";

/**
 * A job: one bounded unit of maintenance work run by the Cron Trigger (src/worker/scheduled.ts) or by hand
 * (`POST /operations/jobs/{job}/run`). Every run is recorded in `job_runs` (last run, duration, rows, details,
 * resume cursor) and in one structured log line `{"msg":"job finished","job":...}`.
 */
export interface JobContext {
  env: Env;
  config: Config;
  db: Db;
  /** The clock the job's rules use (cutoffs); tests pass any instant. */
  now: Date;
  /** Real time (ms) after which the job starts no new batch; it always completes at least one. */
  deadline: number;
  /** Where the previous run stopped (null: from the start). */
  cursor: unknown;
  log: Logger;
}

export interface JobOutcome {
  /** Rows (or objects) the run handled, for job_runs.rows. */
  rows: number;
  details?: Record<string, unknown>;
  /** Saved for the next run; undefined keeps the stored one, null clears it. */
  cursor?: unknown;
  /** true: stopped on its time budget with work left; the next Cron run continues without waiting for the interval. */
  more?: boolean;
  /**
   * The run stopped on this error after doing what `rows`, `details` and `cursor` say: a failed run, recorded with
   * its progress. A job that throws instead is recorded with none (0 rows, the previous run's cursor).
   */
  error?: string;
}

export interface JobDefinition {
  name: string;
  /** Minimum time between runs (a run that reported `more` is continued at once). */
  intervalMs: number;
  run(ctx: JobContext): Promise<JobOutcome>;
}

export interface RunOptions {
  env: Env;
  config: Config;
  db: Db;
  log: Logger;
  now?: Date;
  /** Wall-clock budget; defaults to JOB_TIME_BUDGET_MS. */
  budgetMs?: number;
  /** Ignore the job's interval (a manual run). */
  force?: boolean;
  /** A run older than this is presumed dead (default: the time budget plus 10 min for its last batch). */
  leaseMs?: number;
}

export type JobReport =
  | { job: string; status: "skipped"; reason: "not due or running elsewhere" }
  | { job: string; status: "ok" | "failed"; rows: number; durationMs: number; more: boolean; details: Record<string, unknown> };

/** How long a run's last batch, started before its deadline, may take before the run is presumed dead. */
const LAST_BATCH_MS = 10 * 60_000;

export async function runJob(def: JobDefinition, options: RunOptions): Promise<JobReport> {
  const now = options.now ?? new Date();
  const log = options.log.child({ job: def.name });
  const budgetMs = options.budgetMs ?? options.config.JOB_TIME_BUDGET_MS;
  const claim = await claimJob(options.db, def.name, now, {
    // Past the budget and the last batch it started before its deadline. A fixed 10 minutes was less than the
    // longest budget the configuration accepts (JOB_TIME_BUDGET_MS up to 10 min): the Cron run after such a run's
    // tenth minute took its lease and ran the job beside it.
    leaseMs: options.leaseMs ?? budgetMs + LAST_BATCH_MS,
    minIntervalMs: def.intervalMs,
    force: options.force ?? false,
  });
  if (!claim) return { job: def.name, status: "skipped", reason: "not due or running elsewhere" };
  const started = Date.now();
  let outcome: JobOutcome;
  let failure: string | undefined;
  try {
    outcome = await def.run({
      env: options.env,
      config: options.config,
      db: options.db,
      now,
      deadline: started + budgetMs,
      cursor: claim.cursor,
      log,
    });
    if (outcome.error !== undefined) failure = outcome.error.slice(0, 300);
  } catch (err) {
    failure = errorReason(err).slice(0, 300);
    outcome = { rows: 0, details: {} };
  }
  const durationMs = Date.now() - started;
  const more = outcome.more ?? false;
  const details = { ...outcome.details, ok: failure === undefined, more, ...(failure ? { error: failure } : {}) };
  // A run that outlived its lease: another runner took the job over, and its record is left as it is.
  const leaseLost = () =>
    log.warn("job lease lost: another run took the job over; this run's end was not recorded", { rows: outcome.rows, durationMs, ok: failure === undefined });
  try {
    const held = await finishJob(options.db, def.name, claim, {
      finishedAt: new Date(now.getTime() + durationMs),
      durationMs,
      rows: outcome.rows,
      details,
      cursor: failure && outcome.error === undefined ? undefined : outcome.cursor,
    });
    if (!held) leaseLost();
  } catch (err) {
    const error = errorReason(err).slice(0, 200);
    log.error("job bookkeeping failed", { error });
    await releaseJob(options.db, def.name, claim, {
      finishedAt: new Date(now.getTime() + durationMs),
      durationMs,
      error: `the run's end could not be recorded: ${error.replace(/\u0000/g, "")}`,
    }).then(
      (held) => {
        if (!held) leaseLost();
      },
      (e: Error) => log.error("job lease not released", { error: e.message?.slice(0, 200) }),
    );
  }
  metrics.count("job_runs_total", 1, { job: def.name, ok: failure === undefined });
  const fields = { rows: outcome.rows, durationMs, more, ok: failure === undefined, ...flat(details) };
  if (failure) log.error("job finished", fields);
  else log.info("job finished", fields);
  return { job: def.name, status: failure ? "failed" : "ok", rows: outcome.rows, durationMs, more, details };
}

/** Scalar details for the log line (objects are summarised as JSON, capped). */
function flat(details: Record<string, unknown>): Record<string, string | number | boolean | null> {
  const out: Record<string, string | number | boolean | null> = {};
  for (const [k, v] of Object.entries(details)) {
    if (v === null || typeof v === "string" || typeof v === "number" || typeof v === "boolean") out[k] = v;
    else if (v !== undefined) out[k] = JSON.stringify(v).slice(0, 300);
  }
  return out;
}

/** True while the job may start another batch. */
export const hasTime = (ctx: Pick<JobContext, "deadline">) => Date.now() < ctx.deadline;
