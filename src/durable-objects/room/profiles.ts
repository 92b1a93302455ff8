import type { Config } from "../../lib/config";
import type { Profile } from "../../protocol/resources";
import { createProfileProvider } from "../../profiles/provider";
import { placeholderProfile } from "../../profiles/placeholder";

const FRESH_MS = 60_000;

/**
 * Profiles used in live broadcasts, kept in the object's memory for a minute: a send costs a map lookup, and a
 * miss costs one batched lookup (through the Redis cache) for every participant at once.
 */
export class RoomProfiles {
  private entries = new Map<string, { profile: Profile; at: number }>();
  private inflight: Promise<void> | undefined;

  constructor(
    private readonly config: () => Config,
    private readonly participantIds: () => string[] = () => [],
  ) {}

  cached(userId: string, kahaId?: string): Profile | undefined {
    const hit = this.entries.get(userId);
    if (hit && Date.now() - hit.at < FRESH_MS) return hit.profile;
    return kahaId ? undefined : hit?.profile;
  }

  async user(userId: string, kahaId?: string): Promise<Profile> {
    const hit = this.cached(userId, kahaId);
    if (hit) return hit;
    await this.load([userId, ...this.participantIds()], kahaId ? { [userId]: kahaId } : {});
    return this.entries.get(userId)?.profile ?? placeholderProfile(userId, "user", kahaId);
  }

  private async load(ids: string[], kahaIds: Record<string, string>): Promise<void> {
    if (this.inflight) return this.inflight;
    const config = this.config();
    const provider = createProfileProvider({
      serviceUrl: config.PROFILE_SERVICE_URL,
      serviceToken: config.PROFILE_SERVICE_TOKEN,
      timeoutMs: Math.min(config.PROFILE_SERVICE_TIMEOUT, 2000),
      cacheTtlSeconds: config.PROFILE_CACHE_TTL,
      redis: { url: config.UPSTASH_REDIS_REST_URL, token: config.UPSTASH_REDIS_REST_TOKEN },
    });
    this.inflight = (async () => {
      const set = await provider.load({ userIds: ids });
      const now = Date.now();
      for (const id of new Set(ids)) this.entries.set(id, { profile: set.user(id, kahaIds[id]), at: now });
      if (this.entries.size > 2000) this.entries.clear();
    })().finally(() => {
      this.inflight = undefined;
    });
    return this.inflight;
  }
}
