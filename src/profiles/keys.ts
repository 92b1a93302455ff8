import type { Profile } from "../protocol/resources";
import type { ProfileRequest } from "./types";

export type ProfileKind = Profile["kind"];

export interface ProfileRef {
  kind: ProfileKind;
  /** Lower-cased: the profile service, Postgres and tokens may disagree on case, the cache must not. */
  id: string;
  /** The Redis (and in-memory) key. */
  key: string;
}

/** Bump the version when the stored entry shape changes, so old entries are ignored rather than misread. */
export const PROFILE_KEY_PREFIX = "profile:v1";

// Longer strings are no id anyone issues; keeping them out keeps keys and service bodies bounded.
const MAX_ID_LENGTH = 128;

export function normaliseId(id: string): string {
  return id.trim().toLowerCase();
}

export function profileKey(kind: ProfileKind, id: string): string {
  return `${PROFILE_KEY_PREFIX}:${kind}:${normaliseId(id)}`;
}

export function profileRef(kind: ProfileKind, id: string): ProfileRef {
  const norm = normaliseId(id);
  return { kind, id: norm, key: `${PROFILE_KEY_PREFIX}:${kind}:${norm}` };
}

/**
 * Where the id's invalidation generation lives: a token the last invalidation wrote. A cached entry is valid only
 * under the generation it was fetched under, so an answer the service gave before an invalidation never becomes
 * the cached profile after it, whenever its write-back lands.
 */
export function generationKey(ref: ProfileRef): string {
  return `${PROFILE_KEY_PREFIX}:generation:${ref.kind}:${ref.id}`;
}

/** Users first, then businesses; duplicates (after normalisation), empty and oversized ids dropped. */
export function refsOf(request: ProfileRequest): ProfileRef[] {
  const out: ProfileRef[] = [];
  const seen = new Set<string>();
  const add = (kind: ProfileKind, ids: Iterable<string> | undefined) => {
    for (const raw of ids ?? []) {
      if (typeof raw !== "string") continue;
      const id = normaliseId(raw);
      if (id === "" || id.length > MAX_ID_LENGTH) continue;
      const ref = profileRef(kind, id);
      if (seen.has(ref.key)) continue;
      seen.add(ref.key);
      out.push(ref);
    }
  };
  add("user", request.userIds);
  add("business", request.businessIds);
  return out;
}
