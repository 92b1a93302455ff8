import type { Profile } from "../protocol/resources";

/**
 * A profile for an id the profile service has never answered for: a name derived from the kahaId when known, and
 * `placeholder: true`. Without the flag an app could not tell it from a real name, and a message sent while the
 * service was down renamed its sender to their kahaId in apps that already knew their name.
 */
export function placeholderProfile(id: string, kind: "user" | "business", kahaId?: string): Profile {
  // "unknown:<id>" marks a user provisioned by id before their first login: not a name anyone chose.
  const named = kahaId && !kahaId.startsWith("unknown:") ? kahaId : undefined;
  return { id, name: named ?? `${kind === "business" ? "Business" : "User"} ${id.slice(0, 8)}`, avatarUrl: null, kind, placeholder: true };
}
