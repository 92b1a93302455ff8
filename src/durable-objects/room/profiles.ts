import type { Config } from "../../lib/config";
import { DEFAULT_MEMORY_OPTIONS, MemoryCache } from "../../lib/memory-cache";
import type { Profile } from "../../protocol/resources";
import { withSenderProfiles, type KahaIds } from "../../profiles/enrich";
import { placeholderProfile } from "../../profiles/placeholder";
import { createProfileProvider, profileOptionsFromConfig, type CachedProfileProvider } from "../../profiles/provider";
import type { ProfileProvider, ProfileRequest, ProfileSet } from "../../profiles/types";

/** A typing frame waits at most this long for a profile this object has not seen; later it goes without one. */
export const TYPING_PROFILE_WAIT_MS = 1000;

/**
 * A socket's `ready` waits at most this long for members' profiles the isolate's cache lacks; members still missing
 * then go without `profile`. Room for one capped Redis read (300 ms) and a quick service answer: opening a
 * conversation must not hang on a slow profile service.
 */
export const READY_PROFILE_WAIT_MS = 500;

/**
 * A send or an edit waits at most this long for its sender's profile; then the message goes with the placeholder
 * REST would show (named after the kahaId), and the lookup goes on to fill the cache. Without a bound a slow
 * profile service held every send for up to its timeout (5 s).
 */
export const SEND_PROFILE_WAIT_MS = 2000;

/**
 * A resume's replay waits at most this long for its senders' profiles (as long as `ready` waits, for the same
 * reason); then it goes with the isolate's fresh copies and placeholders named after the kahaId. The socket's live
 * frames are held until the replay is out, so a slow service held the whole conversation back after a reconnect.
 */
export const REPLAY_PROFILE_WAIT_MS = 500;

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
  // The members lookup in flight: sockets of a group opening together share it (one Redis read, one service call).
  private readonly kahaIds = new MemoryCache<string>(DEFAULT_MEMORY_OPTIONS);
  private membersLoading: { ids: ReadonlySet<string>; profiles: Promise<Map<string, Profile>> } | undefined;

  constructor(private readonly deps: RoomProfileDeps) {}

  private profiles(): CachedProfileProvider {
    this.provider ??= createProfileProvider({ ...profileOptionsFromConfig(this.deps.config()), memory: true, waitUntil: this.deps.waitUntil });
    return this.provider;
  }

  /** The object's provider, for views built beside it (room/previews.ts): the same cached copies. */
  shared(): ProfileProvider {
    return this.profiles();
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

  /** For a message the room writes now: the sender's profile, or their placeholder after SEND_PROFILE_WAIT_MS. */
  async sender(userId: string, kahaId?: string): Promise<Profile> {
    const hit = this.cached(userId);
    if (hit) return hit;
    const loading = this.user(userId, kahaId);
    this.deps.waitUntil(loading.catch(() => undefined));
    return (await bounded(loading, SEND_PROFILE_WAIT_MS)) ?? placeholderProfile(userId, "user", kahaId);
  }

  /**
   * Messages with `sender`, in one profile lookup for all their senders (a replay of hundreds costs one call), waited
   * for at most REPLAY_PROFILE_WAIT_MS. After that: this isolate's fresh copies, else placeholders named after the
   * kahaId (a bounded query, remembered); the lookup goes on and fills the cache for the next replay.
   */
  async senders<M extends { senderId: string }>(messages: readonly M[]): Promise<(M & { sender: Profile })[]> {
    const loading = withSenderProfiles(messages, (request) => this.load(request), this.deps.kahaIdsOf);
    this.deps.waitUntil(loading.catch(() => undefined));
    const done = await bounded(loading, REPLAY_PROFILE_WAIT_MS);
    if (done) return done;
    const unresolved = [...new Set(messages.map((m) => m.senderId))].filter((id) => this.cached(id) === undefined);
    const kahaIds = await this.kahaIdsOf(unresolved);
    return messages.map((m) => ({ ...m, sender: this.cached(m.senderId) ?? placeholderProfile(m.senderId, "user", kahaIds.get(m.senderId)) }));
  }

  /**
   * For typing_start: the cached profile, or one lookup waited for at most TYPING_PROFILE_WAIT_MS (undefined after
   * that; the lookup still fills the cache for the next frame). A service that cannot answer gives the placeholder.
   */
  async typer(userId: string, kahaId?: string): Promise<Profile | undefined> {
    const hit = this.cached(userId);
    if (hit) return hit;
    const loading = this.user(userId, kahaId);
    this.deps.waitUntil(loading.catch(() => undefined));
    return bounded(loading, TYPING_PROFILE_WAIT_MS);
  }

  /**
   * For a `ready` frame: every member's fresh profile in the isolate's cache, and the others from one lookup (shared with
   * concurrent connects) waited for at most `waitMs`. Members the lookup has not answered by then are left out; the
   * lookup still fills the cache for the next socket. Stale copies and placeholders count as answers here (they are
   * what REST shows too), but are not remembered, so the next socket asks again.
   */
  async members(userIds: readonly string[], waitMs = READY_PROFILE_WAIT_MS): Promise<Map<string, Profile>> {
    const out = new Map<string, Profile>();
    const missing: string[] = [];
    for (const id of userIds) {
      const hit = this.cached(id);
      if (hit) out.set(id, hit);
      else missing.push(id);
    }
    if (missing.length === 0) return out;
    const found = await bounded(this.loadMembers(missing), waitMs);
    for (const id of missing) {
      const profile = found?.get(id);
      if (profile) out.set(id, profile);
    }
    return out;
  }

  /**
   * Remembered: placeholders are not (the service is asked again), so without this every connect while the service
   * is down, or with a member it does not know, would query Postgres for the same names. A failed query names none.
   */
  private async kahaIdsOf(userIds: string[]): Promise<KahaIds> {
    const out = new Map<string, string>();
    const unknown = userIds.filter((id) => {
      const kahaId = this.kahaIds.get(id);
      if (kahaId !== undefined) out.set(id, kahaId);
      return kahaId === undefined;
    });
    if (unknown.length === 0) return out;
    const found = await this.deps.kahaIdsOf(unknown).catch(() => undefined);
    for (const [id, kahaId] of found ?? []) {
      this.kahaIds.set(id, kahaId);
      out.set(id, kahaId);
    }
    return out;
  }

  private loadMembers(ids: string[]): Promise<Map<string, Profile>> {
    const flying = this.membersLoading;
    if (flying && ids.every((id) => flying.ids.has(id))) return flying.profiles;
    const profiles = (async () => {
      const set = await this.load({ userIds: ids });
      // Placeholders are named after the kahaId, as REST names them: one bounded query, only for ids left unresolved.
      const unresolved = ids.filter((id) => !set.hasUser(id));
      const kahaIds = await this.kahaIdsOf(unresolved);
      return new Map(ids.map((id) => [id, set.user(id, kahaIds.get(id))]));
    })();
    const entry = { ids: new Set(ids), profiles };
    this.membersLoading = entry;
    const settled = profiles.finally(() => {
      if (this.membersLoading === entry) this.membersLoading = undefined;
    });
    this.deps.waitUntil(settled.catch(() => undefined));
    return profiles;
  }
}

/** The work's result, or undefined once `ms` have passed (the timer is cleared either way: no wake-up is left behind). */
async function bounded<T>(work: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), ms);
  });
  try {
    return await Promise.race([work.catch(() => undefined), timeout]);
  } finally {
    if (timer !== undefined) clearTimeout(timer);
  }
}
