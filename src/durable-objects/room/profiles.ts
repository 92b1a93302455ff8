import type { Config } from "../../lib/config";
import type { Profile } from "../../protocol/resources";
import { createProfileProvider, profileOptionsFromConfig } from "../../profiles/provider";
import type { ProfileProvider } from "../../profiles/types";

/**
 * Profiles for live broadcasts. One provider per object, backed by the isolate's in-memory LRU, so a send costs
 * a map lookup; a miss is one batched lookup (Redis, then the service) for every participant at once.
 */
export class RoomProfiles {
  private provider: ProfileProvider | undefined;
  private readonly known = new Map<string, Profile>();

  constructor(
    private readonly config: () => Config,
    private readonly participantIds: () => string[],
    private readonly waitUntil: (work: Promise<unknown>) => void,
  ) {}

  /** Synchronous best effort (typing frames must not wait): the last profile this object saw. */
  cached(userId: string): Profile | undefined {
    return this.known.get(userId);
  }

  async user(userId: string, kahaId?: string): Promise<Profile> {
    this.provider ??= createProfileProvider({ ...profileOptionsFromConfig(this.config()), memory: true, waitUntil: this.waitUntil });
    const ids = [...new Set([userId, ...this.participantIds()])];
    const set = await this.provider.load({ userIds: ids });
    if (this.known.size > 1000) this.known.clear();
    for (const id of ids) this.known.set(id, set.user(id));
    return set.user(userId, kahaId);
  }
}
