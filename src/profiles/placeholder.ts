import type { Profile } from "../protocol/resources";

/** A profile for an id the profile service has never answered for: a name derived from the kahaId when known. */
export function placeholderProfile(id: string, kind: "user" | "business", kahaId?: string): Profile {
  const base = kahaId && !kahaId.startsWith("unknown:") ? kahaId : kind === "business" ? "Business" : "User";
  return { id, name: kahaId ? base : `${base} ${id.slice(0, 8)}`, avatarUrl: null, kind };
}
