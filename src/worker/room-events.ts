import type { Context } from "hono";
import type { RoomEvent, RoomMarks } from "../durable-objects/room-api";
import type { Conversation } from "../protocol/resources";
import type { UserConversationEvent } from "../durable-objects/user-session";
import { findListed } from "../db/queries/conversations";
import { unreadCount } from "../db/queries/messages";
import { laterMarks } from "../domain/marks";
import { listedView, sharedView } from "./conversation-view";
import type { AppEnv } from "./env";
import { callRoom, heldMarks, roomStub } from "./rooms";

/**
 * Tells the conversation's room about a change already committed to Postgres, so it can mirror and broadcast it.
 * The change is already committed (Postgres is the authority), so a failure here is logged rather than turned into
 * an error for a request that did succeed; the room's copy lags until it reloads its participants.
 */
export async function tellRoom(c: Context<AppEnv>, event: RoomEvent): Promise<void> {
  try {
    await callRoom(() => roomStub(c, event.conversationId).notify(event));
  } catch (err) {
    c.get("log").warn("room notify failed", {
      conversationId: event.conversationId,
      kind: event.kind,
      error: err instanceof Error ? err.message.slice(0, 200) : String(err),
    });
  }
}

/**
 * Pushes a conversation event to users' sockets through their UserSession objects. Fire and forget: the answer to
 * the request does not wait for every user's object.
 */
export function tellUsers(c: Context<AppEnv>, userIds: string[], event: UserConversationEvent): void {
  const ns = c.env.USER_SESSION;
  const work = Promise.allSettled(userIds.map((id) => ns.get(ns.idFromName(id)).conversationEvent(event))).then((results) => {
    const failed = results.filter((r) => r.status === "rejected").length;
    if (failed) c.get("log").warn("user notify failed", { failed, type: event.type });
  });
  try {
    c.executionCtx.waitUntil(work);
  } catch {
    // No execution context (tests calling the app directly): the promise still runs.
  }
}

/**
 * A member added or brought back hears of the conversation as they see it: their own unread count and mute flag
 * (one who comes back keeps their marks and flag), which their session's badge starts from.
 */
export async function tellMemberAdded(c: Context<AppEnv>, conversationId: string, userId: string): Promise<void> {
  const joined = await findListed(c.get("db")(), conversationId, userId);
  if (!joined) return;
  const view = await backWithHeldMarks(c, await listedView(c, joined), userId);
  tellCreatedAsSeen(c, userId, view);
  tellMembersOfList(c, view, [userId]);
}

/**
 * The view of one who came back (read from Postgres, then the room told of the return) with the read mark the room
 * holds for them when it is later: they left and came back before the room's flush of their last read, and the
 * messages they had read counted again in their list and badge (nothing recounts them when the flush lands).
 */
export async function backWithHeldMarks(c: Context<AppEnv>, view: Conversation, userId: string): Promise<Conversation> {
  return withHeldMark(c, view, userId, (await heldMarks(c, view.id)).get(userId));
}

/**
 * `view` (the user's own, read from Postgres) with their marks as the room holds them (`mine`) when later, and the
 * unread count for that mark: one Postgres count, only then.
 */
export async function withHeldMark(c: Context<AppEnv>, view: Conversation, userId: string, mine: RoomMarks | undefined): Promise<Conversation> {
  const listed = view.participants.find((p) => p.userId === userId);
  if (!mine || !listed || mine.lastReadSeq <= listed.lastReadSeq) return view;
  const { count, asOf } = await unreadCount(c.get("db")(), view.id, userId, mine.lastReadSeq);
  const participants = view.participants.map((p) => (p.userId === userId ? laterMarks(p, mine) : p));
  return { ...view, unreadCount: count, lastSeq: Math.max(view.lastSeq, asOf), participants };
}

/**
 * The other members' conversation lists show who is in it: after a join or a leave they get the shared view (each
 * session puts in its user's own count and mute flag). Without it their lists kept the old members until a reload.
 */
export function tellMembersOfList(c: Context<AppEnv>, view: Conversation, except: string[]): void {
  const others = view.participants.map((p) => p.userId).filter((id) => !except.includes(id));
  if (others.length > 0) tellUsers(c, others, { type: "conversation_updated", conversation: sharedView(view) });
}

/** tellMembersOfList, as `viewer` (a member now) sees the conversation, after the response: a leave, a role change. */
export function tellMembersLater(c: Context<AppEnv>, conversationId: string, viewer: string | undefined): void {
  if (viewer === undefined) return;
  c.get("afterResponse")(async () => {
    const listed = await findListed(c.get("httpDb")(), conversationId, viewer);
    if (listed) tellMembersOfList(c, await listedView(c, listed), []);
  });
}

/** `conversation_created` with the user's own view, whose unread count (as of its lastSeq) their badge starts from. */
export function tellCreatedAsSeen(c: Context<AppEnv>, userId: string, conversation: Conversation): void {
  const readSeq = conversation.participants.find((p) => p.userId === userId)?.lastReadSeq ?? 0;
  const unread = { unreadCount: conversation.unreadCount, asOfSeq: conversation.lastSeq, readSeq };
  tellUsers(c, [userId], { type: "conversation_created", conversation, unread });
}
