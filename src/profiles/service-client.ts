import type { Profile } from "../protocol/resources";
import { profileKey, type ProfileRef } from "./keys";
import { batchResponseSchema, normaliseProfile, recordId } from "./normalise";

export interface ProfileServiceConfig {
  url: string;
  token: string;
  timeoutMs: number;
  /** Ids per kind per call; the service is asked once per load unless a load names more than this. */
  chunkSize: number;
}

export type ServiceFailureKind = "timeout" | "http" | "network" | "invalid";

export class ProfileServiceError extends Error {
  constructor(
    readonly kind: ServiceFailureKind,
    message: string,
  ) {
    super(message);
    this.name = "ProfileServiceError";
  }
}

export interface BatchOutcome {
  /** Profiles by cache key. */
  found: Map<string, Profile>;
  /** Keys the service gave an answer for (found, or known to be absent); other keys failed. */
  answered: Set<string>;
  /**
   * Answered keys whose record was there but unusable (an empty or null name): not a profile, and not proof that the
   * id is unknown either. Callers keep a good copy they hold rather than record a miss over it.
   */
  unusable: Set<string>;
  /** Set when at least one call failed. */
  failure?: ProfileServiceError;
  calls: number;
}

/** Asks the batch endpoint for refs: one call, or one per chunk (users and businesses share a call) above chunkSize. */
export async function fetchProfileBatch(config: ProfileServiceConfig, refs: ProfileRef[]): Promise<BatchOutcome> {
  const users = refs.filter((r) => r.kind === "user");
  const businesses = refs.filter((r) => r.kind === "business");
  const size = Math.max(1, config.chunkSize);
  const chunks: { users: ProfileRef[]; businesses: ProfileRef[] }[] = [];
  for (let i = 0; i < Math.max(users.length, businesses.length); i += size) {
    chunks.push({ users: users.slice(i, i + size), businesses: businesses.slice(i, i + size) });
  }
  const outcome: BatchOutcome = { found: new Map(), answered: new Set(), unusable: new Set(), calls: chunks.length };
  const settled = await Promise.allSettled(chunks.map((chunk) => callBatch(config, chunk.users, chunk.businesses)));
  settled.forEach((result, i) => {
    const chunk = chunks[i];
    if (result.status === "rejected") {
      outcome.failure ??=
        result.reason instanceof ProfileServiceError ? result.reason : new ProfileServiceError("network", String(result.reason));
      return;
    }
    const wanted = new Set([...chunk.users, ...chunk.businesses].map((r) => r.key));
    // Records for ids nobody asked about are ignored: they must not land in the cache under a requested key.
    for (const profile of result.value.profiles) {
      const key = profileKey(profile.kind, profile.id);
      if (wanted.has(key)) outcome.found.set(key, profile);
    }
    for (const key of result.value.unusable) if (wanted.has(key) && !outcome.found.has(key)) outcome.unusable.add(key);
    for (const key of wanted) outcome.answered.add(key);
  });
  return outcome;
}

/**
 * The batch endpoint under PROFILE_SERVICE_URL, written with or without a trailing slash. Shared with the readiness
 * check (routes/health.ts), which asked `//api/batch/profiles` of a URL ending in "/" and found the service down.
 */
export function batchProfilesUrl(serviceUrl: string): string {
  return `${serviceUrl.replace(/\/+$/, "")}/api/batch/profiles`;
}

async function callBatch(
  config: ProfileServiceConfig,
  users: ProfileRef[],
  businesses: ProfileRef[],
): Promise<{ profiles: Profile[]; unusable: string[] }> {
  let timedOut = false;
  const controller = new AbortController();
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort();
  }, config.timeoutMs);
  try {
    const res = await fetch(batchProfilesUrl(config.url), {
      method: "POST",
      headers: { authorization: `Bearer ${config.token}`, "content-type": "application/json", accept: "application/json" },
      body: JSON.stringify({ user_uuids: users.map((r) => r.id), business_uuids: businesses.map((r) => r.id) }),
      signal: controller.signal,
    });
    if (!res.ok) {
      await res.body?.cancel();
      throw new ProfileServiceError("http", `profile service answered ${res.status}`);
    }
    const text = await res.text();
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw new ProfileServiceError("invalid", "profile service answered with a body that is not JSON");
    }
    const body = batchResponseSchema.safeParse(json);
    if (!body.success) throw new ProfileServiceError("invalid", "profile service answered with an unexpected shape");
    const out = { profiles: [] as Profile[], unusable: [] as string[] };
    const take = (raw: unknown, kind: Profile["kind"]) => {
      const p = normaliseProfile(raw, kind);
      if (p) return void out.profiles.push(p);
      const id = recordId(raw);
      if (id) out.unusable.push(profileKey(kind, id));
    };
    for (const raw of body.data.users ?? []) take(raw, "user");
    for (const raw of body.data.businesses ?? []) take(raw, "business");
    return out;
  } catch (err) {
    if (timedOut) throw new ProfileServiceError("timeout", `profile service did not answer within ${config.timeoutMs} ms`);
    if (err instanceof ProfileServiceError) throw err;
    throw new ProfileServiceError("network", `profile service unreachable: ${(err as Error).message ?? String(err)}`);
  } finally {
    clearTimeout(timer);
  }
}
