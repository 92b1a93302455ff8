import { and, asc, eq, gt, isNotNull, isNull, sql } from "drizzle-orm";
import { sha256Hex } from "../lib/ids";
import type { Db } from "../db/client";
import { auditHashInput } from "../db/queries/audit";
import { auditLog } from "../db/schema";
import type { Anchor } from "../db/queries/audit-anchors";

/**
 * Recomputes the hash chains of the audit log (src/db/queries/audit.ts: one chain per conversation, one global
 * chain for entries without a conversation) and reports the first broken row of each chain.
 *
 * A row is intact when its prev_hash is the stored hash of the row before it in its chain and its hash equals
 * sha256(auditHashInput(prev_hash, row)). The purge job (src/jobs/purge.ts) removes the previous content of
 * soft-deleted messages after the grace period: such a row keeps its original hash (so the links hold) and carries
 * `details.redacted`; the same transaction appends an `audit.redacted` entry to the chain that registers the hash of
 * the redacted row. A redacted row is intact when it matches that registered hash; the registration is itself
 * covered by the chain, so editing a redacted row, or its registration, is still detected.
 *
 * Used by `npm run audit:verify` (scripts/verify-audit.ts, Node) and `POST /operations/audit/verify`.
 */

/**
 * `anchored_entry_missing` / `_changed`: the chain no longer holds, as it was, the entry its anchor recorded
 * (audit-anchor.ts): its newest entries were removed, or it was rewritten from some entry on.
 */
export type BreakReason = "prev_hash_mismatch" | "hash_mismatch" | "unregistered_redaction" | "anchored_entry_missing" | "anchored_entry_changed";

export interface ChainBreak {
  conversationId: string | null;
  /** audit_log.id of the first broken row of the chain. */
  id: number;
  reason: BreakReason;
}

export interface VerifyReport {
  ok: boolean;
  chains: number;
  rows: number;
  redactedRows: number;
  /** false when maxRows stopped the verification early. */
  complete: boolean;
  /** Chains checked against their anchor (audit-anchor.ts); a chain anchored by no run yet has none. */
  anchoredChains: number;
  /** true when the anchors could not be read (Redis down): only the chains' own consistency was checked. */
  anchorsUnavailable: boolean;
  /** The first broken row of each broken chain, in chain order. */
  broken: ChainBreak[];
  firstBroken: ChainBreak | null;
  /**
   * true when nothing in scope was there to verify (no row, no anchor): `ok` then means "no break found" in nothing,
   * which a moderator read as "intact" for a conversation id with no entries at all.
   */
  empty: boolean;
}

export type AuditRow = typeof auditLog.$inferSelect;

export const REDACTION_ACTION = "audit.redacted";

export function entryOf(row: Pick<AuditRow, "conversationId" | "actorId" | "action" | "targetId" | "details" | "createdAt">) {
  return {
    conversationId: row.conversationId,
    actorId: row.actorId,
    action: row.action,
    targetId: row.targetId,
    details: row.details ?? {},
    at: row.createdAt.toISOString(),
  };
}

export async function rowHash(prevHash: string | null, row: Parameters<typeof entryOf>[0]): Promise<string> {
  return sha256Hex(auditHashInput(prevHash, entryOf(row)));
}

const isRedacted = (details: unknown) => !!details && typeof details === "object" && "redacted" in (details as object);

function registrations(details: unknown): { id: number; redactedHash: string }[] {
  const rows = (details as { rows?: unknown } | null)?.rows;
  if (!Array.isArray(rows)) return [];
  return rows
    .filter((r): r is { id: unknown; redactedHash: unknown } => !!r && typeof r === "object")
    .map((r) => ({ id: Number(r.id), redactedHash: String(r.redactedHash) }))
    .filter((r) => Number.isInteger(r.id));
}

/** Verifies one chain, row by row in id order. */
export class ChainVerifier {
  private lastHash: string | null = null;
  private readonly pending = new Map<number, string>();
  private readonly registered = new Map<number, string>();
  private first: ChainBreak | undefined;
  rows = 0;
  redactedRows = 0;
  private anchorSeen = false;

  constructor(
    readonly conversationId: string | null,
    private readonly anchor?: Anchor,
  ) {}

  private breakAt(id: number, reason: BreakReason): void {
    if (!this.first || id < this.first.id) this.first = { conversationId: this.conversationId, id, reason };
  }

  async add(row: AuditRow): Promise<void> {
    this.rows++;
    if (this.anchor && row.id === this.anchor.id) {
      this.anchorSeen = true;
      if (row.hash !== this.anchor.hash) this.breakAt(row.id, "anchored_entry_changed");
    }
    if ((row.prevHash ?? null) !== this.lastHash) this.breakAt(row.id, "prev_hash_mismatch");
    const h = await rowHash(row.prevHash ?? null, row);
    if (h !== row.hash) {
      const registered = this.registered.get(row.id);
      if (!isRedacted(row.details)) this.breakAt(row.id, "hash_mismatch");
      else if (registered === undefined) this.pending.set(row.id, h);
      else if (registered === h) this.redactedRows++;
      else this.breakAt(row.id, "hash_mismatch");
    }
    if (row.action === REDACTION_ACTION && h === row.hash) {
      for (const r of registrations(row.details)) {
        const seen = this.pending.get(r.id);
        if (seen === undefined) {
          this.registered.set(r.id, r.redactedHash);
          continue;
        }
        this.pending.delete(r.id);
        if (seen === r.redactedHash) this.redactedRows++;
        else this.breakAt(r.id, "hash_mismatch");
      }
    }
    this.lastHash = row.hash;
  }

  finish(): ChainBreak | undefined {
    for (const id of this.pending.keys()) this.breakAt(id, "unregistered_redaction");
    if (this.anchor && !this.anchorSeen) this.breakAt(this.anchor.id, "anchored_entry_missing");
    return this.first;
  }
}

export interface VerifyOptions {
  /** One conversation's chain. */
  conversationId?: string;
  /** Only the global chain (entries without a conversation, e.g. auth failures). */
  globalOnly?: boolean;
  /** Stop after this many rows (the report says complete: false). */
  maxRows?: number;
  pageSize?: number;
  /** The anchors of these chains (audit-anchor.ts readAnchors); asked once per page. Without it none are checked. */
  anchors?: (chains: (string | null)[]) => Promise<Map<string | null, Anchor>>;
}

export async function verifyAuditChains(db: Db, options: VerifyOptions = {}): Promise<VerifyReport> {
  const pageSize = options.pageSize ?? 1000;
  const maxRows = options.maxRows ?? Number.POSITIVE_INFINITY;
  const broken: ChainBreak[] = [];
  let chains = 0;
  let rows = 0;
  let redactedRows = 0;
  let complete = true;
  let current: ChainVerifier | undefined;
  let anchoredChains = 0;
  let anchorsUnavailable = false;
  const anchors = new Map<string | null, Anchor>();
  /** The anchors of the chains this page starts: one Redis round trip per page, none per row. */
  const loadAnchors = async (page: AuditRow[]) => {
    if (!options.anchors || anchorsUnavailable) return;
    const chains = [...new Set(page.map((r) => r.conversationId))].filter((c) => !current || c !== current.conversationId);
    try {
      for (const [chain, anchor] of await options.anchors(chains)) anchors.set(chain, anchor);
    } catch {
      anchorsUnavailable = true;
    }
  };

  const close = () => {
    if (!current) return;
    const b = current.finish();
    if (b) broken.push(b);
    redactedRows += current.redactedRows;
    current = undefined;
  };
  const feed = async (row: AuditRow) => {
    if (!current || current.conversationId !== row.conversationId) {
      close();
      const anchor = anchors.get(row.conversationId);
      anchors.delete(row.conversationId);
      if (anchor) anchoredChains++;
      current = new ChainVerifier(row.conversationId, anchor);
      chains++;
    }
    await current.add(row);
    rows++;
  };

  // The one conversation's chain, or the global chain, paged by id.
  {
    const where = options.conversationId !== undefined ? eq(auditLog.conversationId, options.conversationId) : isNull(auditLog.conversationId);
    let afterId = 0;
    for (;;) {
      if (rows >= maxRows) {
        // At the cap exactly as the chain ends is still complete.
        const next = await db.select({ id: auditLog.id }).from(auditLog).where(and(where, gt(auditLog.id, afterId))).limit(1);
        complete = next.length === 0;
        break;
      }
      const take = Math.min(pageSize, maxRows - rows);
      const page = await db.select().from(auditLog).where(and(where, gt(auditLog.id, afterId))).orderBy(asc(auditLog.id)).limit(take);
      await loadAnchors(page);
      for (const row of page) await feed(row);
      if (page.length < take) break;
      afterId = page[page.length - 1].id;
    }
    // A chain cut by maxRows is not judged on its missing tail (pending redactions may be registered later).
    if (complete) close();
    else current = undefined;
  }

  // Then every conversation chain, paged by (conversation_id, id) on audit_log_conversation_idx.
  if (options.conversationId === undefined && !options.globalOnly && complete) {
    let after: { conversationId: string; id: number } | undefined;
    const remaining = () =>
      after
        ? and(isNotNull(auditLog.conversationId), sql`(${auditLog.conversationId}, ${auditLog.id}) > (${after.conversationId}::uuid, ${after.id})`)
        : isNotNull(auditLog.conversationId);
    for (;;) {
      if (rows >= maxRows) {
        const next = await db.select({ id: auditLog.id }).from(auditLog).where(remaining()).limit(1);
        complete = next.length === 0;
        break;
      }
      const take = Math.min(pageSize, maxRows - rows);
      const page = await db.select().from(auditLog).where(remaining()).orderBy(asc(auditLog.conversationId), asc(auditLog.id)).limit(take);
      await loadAnchors(page);
      for (const row of page) await feed(row);
      if (page.length < take) break;
      const last = page[page.length - 1];
      after = { conversationId: last.conversationId!, id: last.id };
    }
    // A chain cut by maxRows is not judged on its missing tail (pending redactions may be registered later).
    if (complete) close();
    else current = undefined;
  }

  // A chain removed whole has no row to start its verifier: its anchor is all that is left of it.
  if (options.conversationId !== undefined && chains === 0 && options.anchors && !anchorsUnavailable) {
    try {
      const anchor = (await options.anchors([options.conversationId])).get(options.conversationId);
      if (anchor) {
        anchoredChains++;
        broken.push({ conversationId: options.conversationId, id: anchor.id, reason: "anchored_entry_missing" });
      }
    } catch {
      anchorsUnavailable = true;
    }
  }
  return {
    ok: broken.length === 0,
    chains,
    rows,
    redactedRows,
    complete,
    anchoredChains,
    anchorsUnavailable,
    broken,
    firstBroken: broken[0] ?? null,
    empty: rows === 0 && broken.length === 0,
  };
}
