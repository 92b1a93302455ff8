import { z } from "zod";
import type { Profile } from "../protocol/resources";
import { normaliseId, type ProfileKind } from "./keys";

/** The batch endpoint's envelope (contract §7). Items are checked one by one so one bad record costs one profile. */
export const batchResponseSchema = z
  .object({
    users: z.array(z.unknown()).optional(),
    businesses: z.array(z.unknown()).optional(),
  })
  .refine((body) => body.users !== undefined || body.businesses !== undefined, {
    message: "neither users nor businesses in the response",
  });

// The avatar is checked on its own (cleanAvatarUrl): a malformed one costs the avatar, never the name.
const rawProfileSchema = z.looseObject({
  uuid: z.string().min(1).max(128),
  name: z.string(),
  avatar_url: z.unknown().optional(),
});

const MAX_NAME_LENGTH = 200;
// Names end up in UIs and logs: control characters (including bidi overrides) have no business there.
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

function cleanName(name: string): string | undefined {
  const cleaned = name.normalize("NFC").replace(CONTROL, "").trim();
  if (cleaned === "") return undefined;
  return [...cleaned].slice(0, MAX_NAME_LENGTH).join("");
}

function cleanAvatarUrl(value: unknown): string | null {
  if (typeof value !== "string" || value === "") return null;
  try {
    const url = new URL(value);
    return url.protocol === "https:" || url.protocol === "http:" ? url.toString() : null;
  } catch {
    return null;
  }
}

/** One record of the profile service as the contract's Profile, or undefined when it is unusable. */
export function normaliseProfile(raw: unknown, kind: ProfileKind): Profile | undefined {
  const parsed = rawProfileSchema.safeParse(raw);
  if (!parsed.success) return undefined;
  const name = cleanName(parsed.data.name);
  const id = normaliseId(parsed.data.uuid);
  if (!name || id === "") return undefined;
  return { id, name, avatarUrl: cleanAvatarUrl(parsed.data.avatar_url), kind };
}

/**
 * The id a record is about, even when the record is unusable (an empty or null name): the service did answer for
 * that id, but with nothing to show, which is no reason to forget the name it gave before.
 */
export function recordId(raw: unknown): string | undefined {
  if (typeof raw !== "object" || raw === null) return undefined;
  const parsed = rawProfileSchema.shape.uuid.safeParse((raw as { uuid?: unknown }).uuid);
  const id = parsed.success ? normaliseId(parsed.data) : "";
  return id === "" ? undefined : id;
}
