import type { Profile } from "../protocol/resources";

/** A profile for an id the profile service has never answered for: a name derived from the kahaId when known. */
export function placeholderProfile(id: string, kind: "user" | "business", kahaId?: string): Profile {
  // "unknown:<id>" marks a user provisioned by id before their first login: not a name anyone chose.
  const named = kahaId && !kahaId.startsWith("unknown:") ? kahaId : undefined;
  return { id, name: named ?? `${kind === "business" ? "Business" : "User"} ${id.slice(0, 8)}`, avatarUrl: null, kind };
}
