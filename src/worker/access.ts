import type { Context } from "hono";
import type { AnyDb } from "../db/client";
import { findListed, findMembership, type ListedConversation, type Membership } from "../db/queries/conversations";
import type { Denial } from "../domain/membership";
import { HttpError, notFound } from "../lib/errors";
import { isUuid } from "../lib/ids";
import type { AppEnv } from "./env";

/**
 * The caller's active membership of a conversation. Unknown, malformed and other people's ids all give the same
 * 404, so a response never reveals that a conversation exists. The check is one statement over HTTP: a request that
 * goes on to a room, or only reads, opens no Postgres connection for it.
 */
export function requireMembership(c: Context<AppEnv>, conversationId: string): Promise<Membership> {
  return required(c, conversationId, findMembership);
}

/** The same check, with what the conversation's resource shows (participants, last message, unread) in one query. */
export function requireListed(c: Context<AppEnv>, conversationId: string): Promise<ListedConversation> {
  return required(c, conversationId, findListed);
}

async function required<M>(
  c: Context<AppEnv>,
  conversationId: string,
  find: (db: AnyDb, conversationId: string, userId: string) => Promise<M | undefined>,
): Promise<M> {
  if (!isUuid(conversationId)) throw notFound("Conversation");
  const membership = await find(c.get("httpDb")(), conversationId.toLowerCase(), c.get("user").id);
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
