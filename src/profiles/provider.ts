import type { Profile } from "../protocol/resources";
import { placeholderProfile } from "./placeholder";
import type { ProfileProvider, ProfileRequest, ProfileSet } from "./types";

export interface ProfileServiceConfig {
  url: string;
  token: string;
  timeoutMs: number;
}

interface RawProfile {
  uuid?: unknown;
  name?: unknown;
  avatar_url?: unknown;
}

function normalise(raw: RawProfile, kind: "user" | "business"): Profile | undefined {
  if (typeof raw.uuid !== "string" || typeof raw.name !== "string") return undefined;
  return { id: raw.uuid.toLowerCase(), name: raw.name, avatarUrl: typeof raw.avatar_url === "string" ? raw.avatar_url : null, kind };
}

/** One batched call to the profile service per lookup (no cache yet). */
export function createProfileProvider(service: ProfileServiceConfig): ProfileProvider {
  return {
    async load(request: ProfileRequest): Promise<ProfileSet> {
      const userIds = [...new Set(request.userIds ?? [])];
      const businessIds = [...new Set(request.businessIds ?? [])];
      const found = new Map<string, Profile>();
      if (userIds.length + businessIds.length > 0) {
        try {
          const res = await fetch(`${service.url}/api/batch/profiles`, {
            method: "POST",
            headers: { authorization: `Bearer ${service.token}`, "content-type": "application/json" },
            body: JSON.stringify({ user_uuids: userIds, business_uuids: businessIds }),
            signal: AbortSignal.timeout(service.timeoutMs),
          });
          if (res.ok) {
            const body = (await res.json()) as { users?: RawProfile[]; businesses?: RawProfile[] };
            for (const raw of body.users ?? []) {
              const p = normalise(raw, "user");
              if (p) found.set(`user:${p.id}`, p);
            }
            for (const raw of body.businesses ?? []) {
              const p = normalise(raw, "business");
              if (p) found.set(`business:${p.id}`, p);
            }
          }
        } catch {
          // Profiles never fail a request: placeholders below.
        }
      }
      return {
        user: (id, kahaId) => found.get(`user:${id}`) ?? placeholderProfile(id, "user", kahaId),
        business: (id) => found.get(`business:${id}`) ?? placeholderProfile(id, "business"),
      };
    },
    async invalidate() {},
  };
}
