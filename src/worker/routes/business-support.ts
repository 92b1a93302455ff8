import type { Context } from "hono";
import { findBusinessConversation, isRegisteredAdmin, activeRole } from "../../db/queries/business";
import type { ConversationRow } from "../../db/queries/conversations";
import type { ConversationFacts, OpenPlacement } from "../../durable-objects/business/api";
import { badRequest, forbidden, HttpError, notFound, type RpcResult } from "../../lib/errors";
import { callObject } from "../rooms";
import { isUuid } from "../../lib/ids";
import type { Role } from "../../protocol/resources";
import type { AppEnv } from "../env";
import { isServiceToken } from "../middleware/auth";

/** The business's desk (Durable Object): one per business id. */
export function deskStub(c: Context<AppEnv>, businessId: string) {
  const ns = c.env.BUSINESS_DESK;
  return ns.get(ns.idFromName(businessId));
}

export const callDesk = <T>(work: () => Promise<RpcResult<T>>): Promise<T> => callObject(work, "Business desk");

/**
 * A business, agent or user id from a business route's path. These name identities of the external platform, not
 * this service's resources, and a body that names one with a malformed id is a 400 (contract §1): so is the path.
 * A malformed admin id answered 404 "Agent not found", and a malformed business id 404 "Business not found", though
 * no business is ever "not found" here (a well-formed unknown one is an empty business).
 */
export function identityParam(raw: string, name: "businessId" | "agentId" | "userId"): string {
  if (!isUuid(raw)) throw badRequest([`${name}: must be a UUID`]);
  return raw.toLowerCase();
}

/** Contract §5: a token with role "admin", or a user registered as an admin of this business. */
export async function isBusinessAdmin(c: Context<AppEnv>, businessId: string): Promise<boolean> {
  return isServiceToken(c.get("user")) || isRegisteredAdmin(c.get("httpDb")(), businessId, c.get("user").id);
}

export async function requireBusinessAdmin(c: Context<AppEnv>, businessId: string): Promise<void> {
  if (!(await isBusinessAdmin(c, businessId))) throw forbidden("Only an admin of this business can do this");
}

export interface BusinessConversationAccess {
  conversation: ConversationRow;
  businessId: string;
  /** The caller's active role in it, if they take part. */
  role: Role | undefined;
  admin: boolean;
}

/**
 * A business conversation the caller may see: as an active participant (its customer, its current agent) or as an
 * admin of its business. Anything else, malformed ids included, is the same 404.
 */
export async function requireBusinessConversation(c: Context<AppEnv>, rawId: string): Promise<BusinessConversationAccess> {
  if (!isUuid(rawId)) throw notFound("Conversation");
  const db = c.get("httpDb")();
  const conversation = await findBusinessConversation(db, rawId.toLowerCase());
  if (!conversation?.businessId) throw notFound("Conversation");
  const businessId = conversation.businessId;
  const [role, admin] = await Promise.all([activeRole(db, conversation.id, c.get("user").id), isBusinessAdmin(c, businessId)]);
  if (!role && !admin) throw notFound("Conversation");
  return { conversation, businessId, role, admin };
}

export const factsOf = (conversation: ConversationRow): ConversationFacts => ({
  customerId: conversation.customerId ?? conversation.createdBy,
  category: conversation.category,
  assignedAgentId: conversation.assignedAgentId,
});

/**
 * POST /conversations/business hands the conversation to its business's desk: assigned at once when an agent is
 * free (preferred agent, skill for the category, least busy, round robin), otherwise queued. A repeat request for
 * the open conversation only reads where it stands. A new conversation is announced by the creating request (its
 * agent by the desk instead when a repeat request got there first: `agentAnnounced`). A new one's category was
 * written with it (createBusiness): a repeat request that reads it between its insert and the desk call has it too.
 */
export async function handOverToDesk(
  c: Context<AppEnv>,
  input: { conversationId: string; businessId: string; customerId: string; created: boolean; category?: string; preferredAgentId?: string },
): Promise<OpenPlacement> {
  let facts: ConversationFacts = { customerId: input.customerId, category: input.category ?? null, assignedAgentId: null };
  if (!input.created) {
    const existing = await findBusinessConversation(c.get("db")(), input.conversationId);
    if (existing) facts = factsOf(existing);
  }
  return callDesk(() =>
    deskStub(c, input.businessId).open({
      businessId: input.businessId,
      conversationId: input.conversationId,
      ...facts,
      preferredAgentId: input.preferredAgentId ?? null,
      notify: !input.created,
    }),
  );
}

/**
 * The assigned agent of an open business conversation leaving it themselves: the desk unassigns them (their
 * participation ends, audited) and serves the conversation again from the front of the queue. true when the desk
 * did it (the leave is complete and announced); false when the caller does not hold the conversation, so the plain
 * leave applies. The agent of a closed one takes the plain leave too, after the desk is asked to close it (a 409
 * that frees the slot it may still hold: a close that committed unheard by the desk kept it for good).
 */
export async function releaseToDesk(c: Context<AppEnv>, conversation: ConversationRow, agentId: string): Promise<boolean> {
  const businessId = conversation.businessId;
  if (conversation.type !== "business" || !businessId) return false;
  if (conversation.status !== "open") {
    if (conversation.assignedAgentId !== agentId) return false;
    const facts = factsOf(conversation);
    // Repair only: a desk that cannot be reached does not keep the agent in the conversation.
    await callDesk(() => deskStub(c, businessId).close({ businessId, conversationId: conversation.id, actorId: agentId, facts })).catch(() => undefined);
    return false;
  }
  const placement = await callDesk(() => deskStub(c, businessId).release({ businessId, conversationId: conversation.id, agentId, facts: factsOf(conversation) })).catch(
    closedMeanwhile(null),
  );
  return placement !== null;
}

/**
 * The customer of an open business conversation leaving it ends it: the desk closes it (reason "customer left",
 * audited) and frees the agent's slot for the queue, as POST /business/conversations/{id}/close would. Their next
 * POST /conversations/business opens a new conversation. A closed one goes to the desk too: a leave retried after
 * its close committed unheard by the desk (a timeout after the commit) is the last call that can free the slot.
 */
export async function closeForLeavingCustomer(c: Context<AppEnv>, conversation: ConversationRow, customerId: string): Promise<void> {
  const businessId = conversation.businessId;
  if (conversation.type !== "business" || !businessId) return;
  const closing = callDesk(() =>
    deskStub(c, businessId).close({ businessId, conversationId: conversation.id, actorId: customerId, reason: "customer left", facts: factsOf(conversation) }),
  );
  // For one already closed that is repair only: a desk that cannot be reached does not keep the customer in it.
  await closing.catch(conversation.status === "open" ? closedMeanwhile(undefined) : () => undefined);
}

/** The desk's 409 for a conversation closed meanwhile: no slot is left to free, so the plain leave goes ahead. */
function closedMeanwhile<T>(fallback: T): (err: unknown) => T {
  return (err) => {
    if (err instanceof HttpError && err.status === 409) return fallback;
    throw err;
  };
}
