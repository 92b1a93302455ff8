import type { CachedProfileProvider, RefreshResult } from "./provider";
import type { ProfileRequest } from "./types";

/**
 * For a scheduled job: refetch the given (hot) ids in one call and rewrite the cache, so readers keep hitting fresh
 * entries and never wait on the service. Never rejects; the result says what happened.
 */
export async function refreshHotProfiles(provider: CachedProfileProvider, ids: ProfileRequest): Promise<RefreshResult> {
  try {
    return await provider.refresh(ids);
  } catch (err) {
    return { requested: 0, refreshed: 0, unknown: 0, ok: false, reason: err instanceof Error ? err.message : String(err) };
  }
}
