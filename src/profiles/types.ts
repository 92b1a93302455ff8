import type { Profile } from "../protocol/resources";

export interface ProfileRequest {
  userIds?: Iterable<string>;
  businessIds?: Iterable<string>;
}

/** The answer to one batched lookup: always returns a profile (cached, fresh, stale or a placeholder). */
export interface ProfileSet {
  user(id: string, kahaId?: string): Profile;
  business(id: string): Profile;
  /** True when a cache or the service answered for this user (fresh or stale); false when user() is a placeholder. */
  hasUser(id: string): boolean;
}

export interface ProfileProvider {
  load(request: ProfileRequest): Promise<ProfileSet>;
  invalidate(request: ProfileRequest): Promise<void>;
}
