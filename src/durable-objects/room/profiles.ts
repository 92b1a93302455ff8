import type { Config } from "../../lib/config";
import type { Profile } from "../../protocol/resources";
import { withSenderProfiles, type KahaIds } from "../../profiles/enrich";
import { createProfileProvider, profileOptionsFromConfig, type CachedProfileProvider } from "../../profiles/provider";
import type { ProfileRequest, ProfileSet } from "../../profiles/types";

/** A typing frame waits at most this long for a profile this object has not seen; later it goes without one. */
export const TYPING_PROFILE_WAIT_MS = 1000;

export interface RoomProfileDeps {
  config: () => Config;
  participantIds: () => string[];
  waitUntil: (work: Promise<unknown>) => void;
  /** kahaIds of users, for placeholder names (a bounded database lookup; may reject). */
  kahaIdsOf: (userIds: string[]) => Promise<KahaIds>;
}

/**
 * Profiles for live broadcasts. One provider per object, backed by the isolate's in-memory LRU, so a send costs
 * a map lookup; a miss is one batched lookup (Redis, then the service) for every participant at once.
 * The object keeps no copies of its own: a copy kept 60 s from when it was read out of that LRU (where it may
 * already have been 60 s) would let an invalidation take two minutes, not one, to reach frames.
 */
export class RoomProfiles {
  private provider: CachedProfileProvider | undefined;

  constructor(private readonly deps: RoomProfileDeps) {}

  private profiles(): CachedProfileProvider {
    this.provider ??= createProfileProvider({ ...profileOptionsFromConfig(this.deps.config()), memory: true, waitUntil: this.deps.waitUntil });
    return this.provider;
  }

  private load(request: ProfileRequest): Promise<ProfileSet> {
    return this.profiles().load(request);
  }

  /**
   * Synchronous: the isolate's fresh copy, if any. Placeholders and stale copies never are one: the next lookup
   * tries the service again, so typing frames lose `stale: true` as soon as the service is back.
   */
  cached(userId: string): Profile | undefined {
    return this.profiles().cachedUser(userId);
  }

  /**
   * A sender's profile. While this object holds it fresh, a send costs one map lookup (it used to look up and
   * re-remember every participant on each send: a thousand of them in a big room). Otherwise one batched lookup
   * fills in every participant this object is missing.
   */
  async user(userId: string, kahaId?: string): Promise<Profile> {
    const hit = this.cached(userId);
    if (hit) return hit;
    const missing = this.deps.participantIds().filter((id) => id !== userId && this.cached(id) === undefined);
    const set = await this.load({ userIds: [userId, ...missing] });
    return set.user(userId, kahaId);
  }

  /** Messages with `sender`, in one profile lookup for all their senders (a replay of hundreds costs one call). */
  senders<M extends { senderId: string }>(messages: readonly M[]): Promise<(M & { sender: Profile })[]> {
    return withSenderProfiles(messages, (request) => this.load(request), this.deps.kahaIdsOf);
  }

  /**
   * For typing_start: the cached profile, or one lookup waited for at most TYPING_PROFILE_WAIT_MS (undefined after
   * that; the lookup still fills the cache for the next frame). A service that cannot answer gives the placeholder.
   */
  async typer(userId: string, kahaId?: string): Promise<Profile | undefined> {
    const hit = this.cached(userId);
    if (hit) return hit;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<undefined>((resolve) => {
      timer = setTimeout(() => resolve(undefined), TYPING_PROFILE_WAIT_MS);
    });
    const loading = this.user(userId, kahaId);
    this.deps.waitUntil(loading.catch(() => undefined));
    try {
      return await Promise.race([loading, timeout]);
    } finally {
      if (timer !== undefined) clearTimeout(timer);
    }
  }
}
