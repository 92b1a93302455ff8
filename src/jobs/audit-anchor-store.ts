import type { Redis } from "@upstash/redis/cloudflare";
import { withTimeout } from "../lib/redis";
import type { Anchor } from "../db/queries/audit-anchors";

/**
 * Where the `audit.anchor` job (audit-anchor.ts) keeps each chain's anchor: one field per chain of one Redis hash,
 * "id:hash". Read by verification in the Worker and by `npm run audit:verify` in Node.
 */
export const ANCHORS_KEY = "audit:anchors";
const GLOBAL_FIELD = "global";
/**
 * The audit log id the job has anchored up to, kept beside the anchors (not a uuid, so never a chain's field): Redis
 * that loses the anchors loses it with them, and the job then starts over from the oldest entry.
 */
export const CURSOR_FIELD = "cursor";

/**
 * How far the job has read past CURSOR_FIELD, "id:since:xmax" (audit-anchor.ts): entries up to `id` were read, by
 * snapshots none older than transaction horizon `since`, the newest of them taken when `xmax` was the next
 * transaction id. Entries up to `id` that committed later than that are still to be looked for.
 */
export const SCANNED_FIELD = "scanned";

export interface Scanned {
  id: number;
  since: string;
  xmax: string;
}

const XID8 = /^\d{1,20}$/;

export function parseScanned(value: unknown): Scanned | undefined {
  if (typeof value !== "string") return undefined;
  const [id, since, xmax] = value.split(":");
  const n = Number(id);
  return Number.isSafeInteger(n) && n > 0 && XID8.test(since ?? "") && XID8.test(xmax ?? "") ? { id: n, since, xmax } : undefined;
}

export const formatScanned = (s: Scanned): string => `${s.id}:${s.since}:${s.xmax}`;

export const anchorField = (conversationId: string | null): string => conversationId ?? GLOBAL_FIELD;

function parseAnchor(value: unknown): Anchor | undefined {
  if (typeof value !== "string") return undefined;
  const [id, hash] = value.split(":");
  const n = Number(id);
  return Number.isSafeInteger(n) && n > 0 && hash ? { id: n, hash } : undefined;
}

/** The anchors of these chains, in one round trip (HMGET). */
export async function readAnchors(redis: Pick<Redis, "hmget">, chains: (string | null)[]): Promise<Map<string | null, Anchor>> {
  const anchors = new Map<string | null, Anchor>();
  if (chains.length === 0) return anchors;
  // The client's automatic deserialisation leaves "id:hash" a string (it is not JSON).
  const values = await withTimeout(redis.hmget<Record<string, unknown>>(ANCHORS_KEY, ...chains.map(anchorField)), 3000, "audit anchors");
  for (const chain of chains) {
    const anchor = parseAnchor(values?.[anchorField(chain)]);
    if (anchor) anchors.set(chain, anchor);
  }
  return anchors;
}

