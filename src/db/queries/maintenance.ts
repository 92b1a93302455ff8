import { and, asc, desc, eq, isNull, lt, sql } from "drizzle-orm";
import type { Db } from "../client";
import { auditLog, conversations, jobRuns } from "../schema";
import { appendAudit } from "./audit";

/**
 * Job bookkeeping in `job_runs` (one row per job: its last run). The row doubles as a lease, so two invocations
 * (a Cron run and a manual run, or overlapping Cron runs) never run the same job at once.
 */

export interface JobClaim {
  /** Where the previous run stopped (null: start fresh). */
  cursor: unknown;
  /** This claim's own token: the run's end is recorded only while the row still carries it (finishJob, releaseJob). */
  token: string;
}

export interface ClaimOptions {
  /** A run whose lease is older than this is presumed dead and may be taken over. */
  leaseMs: number;
  /** Minimum time between two runs, unless the previous run asked for more (details.more) or failed. */
  minIntervalMs: number;
  /** Ignore the interval (a manual run); the lease still applies. */
  force: boolean;
}

const iso = (d: Date) => d.toISOString();

/** Takes the job's lease, or answers undefined when it is running elsewhere or not due yet. */
export async function claimJob(db: Db, job: string, now: Date, options: ClaimOptions): Promise<JobClaim | undefined> {
  const staleBefore = iso(new Date(now.getTime() - options.leaseMs));
  const dueBefore = iso(new Date(now.getTime() - options.minIntervalMs));
  // Not the start time: a takeover's clock (another isolate, a test's `now`) can repeat the one it replaces.
  const token = crypto.randomUUID();
  const result = await db.execute<{ cursor: unknown }>(sql`
    INSERT INTO job_runs (job, started_at, finished_at, rows, details, lease_token)
    VALUES (${job}, ${iso(now)}::timestamptz, NULL, 0, '{}'::jsonb, ${token}::uuid)
    ON CONFLICT (job) DO UPDATE SET started_at = EXCLUDED.started_at, finished_at = NULL, lease_token = EXCLUDED.lease_token
    WHERE (job_runs.finished_at IS NOT NULL OR job_runs.started_at < ${staleBefore}::timestamptz)
      AND (${options.force}::boolean
           OR job_runs.finished_at IS NULL
           OR job_runs.finished_at <= ${dueBefore}::timestamptz
           OR job_runs.details->>'more' = 'true'
           OR job_runs.details->>'ok' = 'false')
    RETURNING cursor`);
  const row = result.rows[0];
  return row ? { cursor: row.cursor ?? null, token } : undefined;
}

export interface JobFinish {
  finishedAt: Date;
  durationMs: number;
  rows: number;
  details: Record<string, unknown>;
  /** undefined keeps the stored cursor; null clears it. */
  cursor?: unknown;
}

/**
 * Records the end of the run that holds `claim`. Answers false, writing nothing, when the run no longer holds it: it
 * outlived its lease and another runner took the job over, whose record (and resume cursor) this run must not replace.
 */
export async function finishJob(db: Db, job: string, claim: Pick<JobClaim, "token">, f: JobFinish): Promise<boolean> {
  const keepCursor = f.cursor === undefined;
  const cursor = f.cursor === undefined || f.cursor === null ? null : JSON.stringify(f.cursor);
  const result = await db.execute(sql`
    UPDATE job_runs SET finished_at = ${iso(f.finishedAt)}::timestamptz, duration_ms = ${Math.round(f.durationMs)},
      rows = ${Math.round(f.rows)}, details = ${JSON.stringify(f.details)}::jsonb,
      cursor = CASE WHEN ${keepCursor}::boolean THEN cursor ELSE ${cursor}::jsonb END
    WHERE job = ${job} AND finished_at IS NULL AND lease_token = ${claim.token}::uuid`);
  return (result.rowCount ?? 0) > 0;
}

/**
 * Ends a run whose full end write failed: only the end time and a failure (so the next run is due at once, from the
 * stored cursor), nothing from the run that could have been what Postgres refused. Without it the row keeps the
 * lease until it goes stale. Only this run's claim (its token): a run that took over a stale lease keeps it. Answers
 * false when the claim was no longer this run's.
 */
export async function releaseJob(
  db: Db,
  job: string,
  claim: Pick<JobClaim, "token">,
  f: { finishedAt: Date; durationMs: number; error: string },
): Promise<boolean> {
  const result = await db.execute(sql`
    UPDATE job_runs SET finished_at = ${iso(f.finishedAt)}::timestamptz, duration_ms = ${Math.round(f.durationMs)}, rows = 0,
      details = jsonb_build_object('ok', false, 'more', false, 'error', ${f.error}::text)
    WHERE job = ${job} AND finished_at IS NULL AND lease_token = ${claim.token}::uuid`);
  return (result.rowCount ?? 0) > 0;
}

export interface JobRunView {
  job: string;
  startedAt: string;
  finishedAt: string | null;
  durationMs: number | null;
  rows: number;
  running: boolean;
  ok: boolean | null;
  details: Record<string, unknown>;
}

export async function listJobRuns(db: Db): Promise<JobRunView[]> {
  const rows = await db.select().from(jobRuns).orderBy(asc(jobRuns.job));
  return rows.map((r) => ({
    job: r.job,
    startedAt: r.startedAt.toISOString(),
    finishedAt: r.finishedAt ? r.finishedAt.toISOString() : null,
    durationMs: r.durationMs ?? null,
    rows: r.rows,
    running: r.finishedAt === null,
    ok: typeof r.details?.ok === "boolean" ? (r.details.ok as boolean) : null,
    details: r.details ?? {},
  }));
}

/** Ids read most right now: senders of recent messages and businesses of recently active business conversations. */
export async function hotProfileIds(db: Db, since: Date, limit: number): Promise<{ userIds: string[]; businessIds: string[] }> {
  const users = await db.execute<{ id: string }>(sql`
    SELECT sender_id AS id FROM messages WHERE created_at >= ${iso(since)}::timestamptz
    GROUP BY sender_id ORDER BY count(*) DESC LIMIT ${limit}`);
  const businesses = await db.execute<{ id: string }>(sql`
    SELECT DISTINCT business_id AS id FROM conversations
    WHERE business_id IS NOT NULL AND last_activity >= ${iso(since)}::timestamptz LIMIT ${limit}`);
  return { userIds: users.rows.map((r) => r.id), businessIds: businesses.rows.map((r) => r.id) };
}

export interface AuditEntryView {
  id: number;
  conversationId: string | null;
  actorId: string | null;
  action: string;
  targetId: string | null;
  details: Record<string, unknown>;
  createdAt: string;
  prevHash: string | null;
  hash: string;
}

/** One chain's entries, newest first, keyset by id (`before` exclusive); null = the global chain. */
export async function auditEntries(
  db: Db,
  conversationId: string | null,
  q: { before?: number; limit: number },
): Promise<{ entries: AuditEntryView[]; nextBefore: number | null }> {
  const chain = conversationId === null ? isNull(auditLog.conversationId) : eq(auditLog.conversationId, conversationId);
  const rows = await db
    .select()
    .from(auditLog)
    .where(q.before !== undefined ? and(chain, lt(auditLog.id, q.before)) : chain)
    .orderBy(desc(auditLog.id))
    .limit(q.limit + 1);
  const page = rows.slice(0, q.limit);
  return {
    entries: page.map((r) => ({
      id: r.id,
      conversationId: r.conversationId,
      actorId: r.actorId,
      action: r.action,
      targetId: r.targetId,
      details: r.details ?? {},
      createdAt: r.createdAt.toISOString(),
      prevHash: r.prevHash,
      hash: r.hash,
    })),
    nextBefore: rows.length > q.limit ? page[page.length - 1].id : null,
  };
}

export interface RetentionSettings {
  conversationId: string;
  type: string;
  retentionDays: number | null;
  legalHold: boolean;
  archivedUpToSeq: number;
}

export async function retentionSettings(db: Db, conversationId: string): Promise<RetentionSettings | undefined> {
  const rows = await db
    .select({
      id: conversations.id,
      type: conversations.type,
      retentionDays: conversations.retentionDays,
      legalHold: conversations.legalHold,
      archivedUpToSeq: conversations.archivedUpToSeq,
    })
    .from(conversations)
    .where(eq(conversations.id, conversationId))
    .limit(1);
  const r = rows[0];
  return r
    ? { conversationId: r.id, type: r.type, retentionDays: r.retentionDays, legalHold: r.legalHold, archivedUpToSeq: Number(r.archivedUpToSeq) }
    : undefined;
}

/**
 * Changes a conversation's retention override and legal hold; the audit entry commits with the change. A change that
 * changes nothing (the same settings sent again: a retried request, a script run twice) writes nothing, and no entry:
 * the log is read as the record of what changed, and an entry per repeat buried the real changes among them.
 */
export async function updateRetentionSettings(
  db: Db,
  conversationId: string,
  change: { retentionDays?: number | null; legalHold?: boolean },
  actorId: string,
): Promise<RetentionSettings | undefined> {
  return db.transaction(async (tx) => {
    const current = await tx
      .select({
        type: conversations.type,
        retentionDays: conversations.retentionDays,
        legalHold: conversations.legalHold,
        archivedUpToSeq: conversations.archivedUpToSeq,
      })
      .from(conversations)
      .where(eq(conversations.id, conversationId))
      .for("update");
    const now = current[0];
    if (!now) return undefined;
    const before = [{ retentionDays: now.retentionDays, legalHold: now.legalHold }];
    const same = (change.retentionDays === undefined || change.retentionDays === now.retentionDays) && (change.legalHold === undefined || change.legalHold === now.legalHold);
    if (same) return { conversationId, type: now.type, retentionDays: now.retentionDays, legalHold: now.legalHold, archivedUpToSeq: Number(now.archivedUpToSeq) };
    const set: { retentionDays?: number | null; legalHold?: boolean } = {};
    if (change.retentionDays !== undefined) set.retentionDays = change.retentionDays;
    if (change.legalHold !== undefined) set.legalHold = change.legalHold;
    const saved = await tx.update(conversations).set(set).where(eq(conversations.id, conversationId)).returning();
    const after = saved[0];
    await appendAudit(tx, [
      {
        conversationId,
        actorId,
        action: "admin.retention_changed",
        targetId: conversationId,
        details: { before: before[0], after: { retentionDays: after.retentionDays, legalHold: after.legalHold } },
      },
    ]);
    return {
      conversationId,
      type: after.type,
      retentionDays: after.retentionDays,
      legalHold: after.legalHold,
      archivedUpToSeq: Number(after.archivedUpToSeq),
    };
  });
}
