import { z } from "zod";

/**
 * Response shapes of the operations routes (archive aside, see responses.ts): audit log, audit chain verification, job
 * runs and retention settings. Shared by the Worker and the SDK, plain zod like business.ts.
 */

export const auditEntrySchema = z.object({
  id: z.number().int(),
  conversationId: z.string().nullable(),
  actorId: z.string().nullable(),
  action: z.string(),
  targetId: z.string().nullable(),
  details: z.record(z.string(), z.unknown()),
  createdAt: z.string(),
  prevHash: z.string().nullable(),
  hash: z.string(),
});
/** Newest first; pass `nextBefore` as `before` for the next page. */
export const auditPageSchema = z.object({ entries: z.array(auditEntrySchema), nextBefore: z.number().int().nullable() });

export const chainBreakSchema = z.object({
  conversationId: z.string().nullable(),
  id: z.number().int(),
  reason: z.enum(["prev_hash_mismatch", "hash_mismatch", "unregistered_redaction", "anchored_entry_missing", "anchored_entry_changed"]),
});
export const verifyReportSchema = z.object({
  ok: z.boolean(),
  chains: z.number().int(),
  rows: z.number().int(),
  redactedRows: z.number().int(),
  complete: z.boolean(),
  /** Chains checked against the anchor the `audit.anchor` job keeps outside Postgres. */
  anchoredChains: z.number().int(),
  /** The anchors could not be read (Redis down): only each chain's own consistency was checked. */
  anchorsUnavailable: z.boolean(),
  broken: z.array(chainBreakSchema),
  firstBroken: chainBreakSchema.nullable(),
  /** Nothing in scope to verify (no entry, no anchor): ok is then no evidence that anything is intact. */
  empty: z.boolean(),
});

export const retentionSchema = z.object({
  conversationId: z.string(),
  type: z.string(),
  /** null: the default of the conversation type. */
  retentionDays: z.number().int().nullable(),
  legalHold: z.boolean(),
  archivedUpToSeq: z.number().int(),
});

export const jobRunSchema = z.object({
  job: z.string(),
  startedAt: z.string(),
  finishedAt: z.string().nullable(),
  durationMs: z.number().int().nullable(),
  rows: z.number().int(),
  running: z.boolean(),
  ok: z.boolean().nullable(),
  details: z.record(z.string(), z.unknown()),
});
export const jobRunsResult = z.object({ jobs: z.array(jobRunSchema) });
/** A run's report: its fields depend on the job. */
export const jobReport = z.object({ job: z.string(), status: z.string() }).passthrough();

export type AuditEntry = z.infer<typeof auditEntrySchema>;
export type AuditPage = z.infer<typeof auditPageSchema>;
export type AuditChainBreak = z.infer<typeof chainBreakSchema>;
export type AuditVerifyReport = z.infer<typeof verifyReportSchema>;
export type RetentionSettings = z.infer<typeof retentionSchema>;
export type JobRun = z.infer<typeof jobRunSchema>;
export type JobRuns = z.infer<typeof jobRunsResult>;
export type JobReport = z.infer<typeof jobReport>;
