import type { Context } from "hono";
import { findMembership, type Membership } from "../db/queries/conversations";
import type { Denial } from "../domain/membership";
import { HttpError, notFound } from "../lib/errors";
import { isUuid } from "../lib/ids";
import type { AppEnv } from "./env";

/**
 * The caller's active membership of a conversation. Unknown, malformed and other people's ids all give the same
 * 404, so a response never reveals that a conversation exists.
 */
export async function requireMembership(c: Context<AppEnv>, conversationId: string): Promise<Membership> {
  if (!isUuid(conversationId)) throw notFound("Conversation");
  const membership = await findMembership(c.var.db(), conversationId.toLowerCase(), c.var.user.id);
  if (!membership) throw notFound("Conversation");
  return membership;
}

/** A user id taken from the path: malformed is as unknown as absent. */
export function participantParam(raw: string): string {
  if (!isUuid(raw)) throw notFound("Participant");
  return raw.toLowerCase();
}

export const refusal = (denial: Denial) => new HttpError(denial.status, denial.message);

export function enforce(denial: Denial | null): void {
  if (denial) throw refusal(denial);
}
