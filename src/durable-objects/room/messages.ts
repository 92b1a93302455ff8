import { badRequest, conflict, forbidden, notFound, unavailable } from "../../lib/errors";
import { metrics } from "../../lib/metrics";
import { messageByClientId, messageById, messagePage, type StoredMessage } from "../../db/queries/messages";
import { archivedMessageById, archivePage } from "../../db/queries/retention";
import { normalizeContent } from "../../domain/content";
import type { Message } from "../../protocol/resources";
import type { ConversationRoom } from "../conversation-room";
import type { Actor, SendInput, SendResult } from "../room-api";
import { contentHash, type RoomMeta } from "./store";

/**
 * Sending, editing, deleting and finding messages: the room's write path. Plain functions over the room (as in
 * realtime.ts); the seq and outbox row come from store.appendMessage in one storage transaction.
 */

/** Strips the storage-only stamp before a message leaves the room. */
export function publicMessage(m: StoredMessage | Message): Message {
  const { eventSeq: _e, ...rest } = m as StoredMessage;
  return rest;
}

export async function sendMessage(room: ConversationRoom, input: SendInput, via: "rest" | "ws"): Promise<SendResult> {
  const meta = await room.ready(input.conversationId);
  room.requireMember(input.actor.id);
  const normal = normalizeContent(input.content);
  if (!normal.ok) throw badRequest(`content: ${normal.reason}`);
  const type = input.type ?? "text";
  const replyToId = input.replyToId ?? null;
  const hash = contentHash(type, normal.content, replyToId);
  const cmid = input.clientMessageId ?? null;

  const appendsAtCheck = room.store.appends;
  if (cmid) {
    const previous = await previousSend(room, meta, input.actor.id, cmid, hash);
    if (previous) return retried(room, previous, hash, input.actor);
  }
  // After the retry check: a message sent before the close still answers its retries.
  if (meta.closed) throw conflict("The conversation is closed");
  if (replyToId) {
    const target = await findMessage(room, replyToId);
    if (!target) throw badRequest("replyToId: must be a message of this conversation");
  }
  const sender = await room.profiles.sender(input.actor.id, input.actor.kahaId);
  // Checked again after the waits above (a slow profile service alone can take seconds): a removal or a close that
  // reached the room meanwhile wins. Before, a member removed during the wait still posted to the group.
  room.requireMember(input.actor.id);
  // The seq is assigned, and the message stored, in one synchronous storage transaction. A concurrent retry
  // that slipped past the check above (another send appended while we awaited) is caught here, atomically.
  const existing = cmid && room.store.appends !== appendsAtCheck ? room.store.clientId(input.actor.id, cmid) : undefined;
  if (existing) return retried(room, existing, hash, input.actor);
  if (room.store.meta()?.closed) throw conflict("The conversation is closed");
  const createdAt = new Date().toISOString();
  const message = room.store.appendMessage(
    (seq) => ({
      id: crypto.randomUUID(),
      conversationId: input.conversationId,
      seq,
      senderId: input.actor.id,
      clientMessageId: cmid,
      type,
      content: normal.content,
      replyToId,
      createdAt,
      editedAt: null,
      deletedAt: null,
      status: "pending",
      eventSeq: seq,
    }),
    hash,
  );
  room.endTyping(input.actor.id);
  room.noteActivity(input.actor.id);
  const outgoing = { ...publicMessage(message), status: "sent" as const, sender };
  // Counted before the broadcast, whose flush then carries it to /metrics.
  metrics.count("messages_sent_total", 1, { via });
  room.broadcast("new_message", { message: outgoing }, message.seq);
  const changesAtAppend = room.store.changes;
  const committed = await room.waitForCommit();
  // Badges and notifications follow the commit (or the deadline): they never count a message Postgres may not
  // get, their RPCs are not on the sender's ack path, and one group commit becomes one batch per recipient.
  room.notifications.push(outgoing);
  return { message: { ...asItIsAfterCommit(room, outgoing, changesAtAppend), status: committed ? "sent" : "pending" }, created: true };
}

/**
 * The sender's answer: the message as it is after the commit wait. An edit or delete can reach it during the wait (the
 * sender's other device, or the sender at once from the broadcast), and an answer with the text as sent came after
 * that change's message_updated or message_deleted: an app that takes the answer as the message put the old or
 * deleted text back. Read only when something was changed meanwhile, so a send costs no storage read.
 */
function asItIsAfterCommit<M extends Message>(room: ConversationRoom, sent: M, changesAtAppend: number): M {
  if (room.store.changes === changesAtAppend) return sent;
  const now = room.store.peekMessage(sent.seq);
  return now ? { ...sent, content: now.content, editedAt: now.editedAt, deletedAt: now.deletedAt } : sent;
}

/** `hash`: the retry's own, taken as the original's when Postgres no longer knows what the original said. */
async function previousSend(room: ConversationRoom, meta: RoomMeta, senderId: string, cmid: string, hash: string) {
  const local = room.store.clientId(senderId, cmid);
  if (local) return local;
  // Ids of messages older than the room's storage, or pruned from it, are only known to Postgres.
  const pgOnlyBelow = Math.max(meta.pgSeqAtInit + 1, meta.clientIdsPrunedBelow);
  if (pgOnlyBelow <= 1) return undefined;
  const found = await room.pgOr503(() => messageByClientId(room.db(), meta.conversationId, senderId, cmid));
  if (!found || found.seq >= pgOnlyBelow) return undefined;
  // rawContent is only for the hash: stored with the row, it went out in the retry's answer and in every later page.
  const { archived, rawContent, ...row } = found;
  // Redacted (a message deleted past the grace period): the sender's id alone settles it, as the message is gone.
  const remembered = { seq: row.seq, contentHash: rawContent === null ? hash : contentHash(row.type, rawContent, row.replyToId) };
  room.store.rememberClientId(senderId, cmid, remembered.seq, remembered.contentHash);
  // The room holds unarchived rows only: `retried` reads an archived original from the archive.
  if (!archived) room.store.cacheCommitted(row);
  return remembered;
}

async function retried(room: ConversationRoom, previous: { seq: number; contentHash: string }, hash: string, actor: Actor): Promise<SendResult> {
  if (previous.contentHash !== hash) throw conflict("clientMessageId was already used for a different message");
  const original = room.store.messageBySeq(previous.seq) ?? (await findMessageBySeqInPg(room, previous.seq));
  if (!original) throw unavailable("Original message not available yet");
  // The retry's sender is the original's (client ids are per sender): the same kahaId names the same placeholder
  // as the first answer when the profile service does not know them.
  const sender = await room.profiles.sender(original.senderId, actor.kahaId);
  return { message: { ...publicMessage(original), sender }, created: false };
}

async function findMessageBySeqInPg(room: ConversationRoom, seq: number): Promise<StoredMessage | undefined> {
  // Moved by the retention job: the original is in the archive (a retry of it answered 503 for good).
  const archived = seq <= room.archivedUpToSeq();
  const page = await room.pgOr503(() =>
    archived
      ? archivePage(room.db(), room.conversationId(), { before: seq + 1, limit: 1 })
      : messagePage(room.db(), room.conversationId(), { after: seq - 1, limit: 1 }),
  );
  const m = page.messages[0];
  return m && m.seq === seq ? { ...m, eventSeq: seq } : undefined;
}

/**
 * Local storage first; a room that holds its whole unarchived history looks no further than the archive. Otherwise
 * Postgres, and an old message read there is cached. Read from the room again after the await: a request that read
 * the same row meanwhile may have changed it here (a delete's tombstone), and the Postgres copy is then stale. An
 * edit that acted on it brought deleted messages back.
 */
export async function findMessage(room: ConversationRoom, id: string): Promise<StoredMessage | undefined> {
  const local = room.store.messageById(id);
  if (local) return local;
  if (room.holdsHistory()) return findArchived(room, id);
  const row = await room.pgOr503(() => messageById(room.db(), room.conversationId(), id));
  if (!row) return findArchived(room, id);
  // A change made meanwhile is in the room (only archiving removes rows): found here if there was one.
  const changed = room.store.messageById(id);
  if (changed) return changed;
  room.store.cacheCommitted(row);
  return row;
}

/**
 * A message the retention job moved: still the sender's to edit or delete (the flush writes changes at or below the
 * archive mark to the archive), and one to reply to or read up to. Not cached: the room holds unarchived rows only.
 */
async function findArchived(room: ConversationRoom, id: string): Promise<StoredMessage | undefined> {
  if (room.archivedUpToSeq() === 0) return undefined;
  const row = await room.pgOr503(() => archivedMessageById(room.db(), room.conversationId(), id));
  return row && (room.store.messageById(id) ?? row);
}

/**
 * The room's row as it is after the lookup's await: requests that waited for the same thing (the room's first load)
 * resume one after another, and a delete that wrote its tombstone in between left the edit holding the copy from
 * before it. Edited from that copy, the deleted message came back with the new text.
 */
function asItIsNow(room: ConversationRoom, found: StoredMessage | undefined): StoredMessage | undefined {
  return found && (room.store.messageById(found.id) ?? found);
}

/**
 * A change's resume stamp: the newest seq when it is written. `ready`'s copy can be older: messages sent while the
 * change looked its message up in Postgres (an old or archived one) came after it, and a client that resumed after
 * one of them was not replayed the change.
 */
function lastSeqNow(room: ConversationRoom): number {
  return room.store.meta()!.lastSeq;
}

export async function editMessage(
room: ConversationRoom,
input: { conversationId: string; actor: Actor; messageId: string; content: string },
): Promise<Message> {
  const meta = await room.ready(input.conversationId);
  room.requireMember(input.actor.id);
  const current = asItIsNow(room, await findMessage(room, input.messageId));
  if (!current) throw notFound("Message");
  room.requireMember(input.actor.id); // again: a removal may have reached the room during the lookup
  if (current.senderId !== input.actor.id) throw forbidden("Only the sender can edit a message");
  if (current.deletedAt) throw conflict("A deleted message cannot be edited");
  const normal = normalizeContent(input.content);
  if (!normal.ok) throw badRequest(`content: ${normal.reason}`);
  // The text it already has (saved without a change, or a PATCH sent again after a timeout): nothing changes, as a
  // rename to the same name records nothing. It used to mark the message edited for everyone and audit a non-change.
  if (normal.content === current.content) {
    const sender = await room.profiles.sender(current.senderId, input.actor.kahaId);
    return { ...publicMessage(current), sender };
  }
  const updated: StoredMessage = { ...current, content: normal.content, editedAt: new Date().toISOString(), eventSeq: lastSeqNow(room) };
  room.store.updateMessage(updated);
  room.previews.changed(updated);
  room.store.queueAudit({
    conversationId: meta.conversationId,
    actorId: input.actor.id,
    action: "message.edited",
    targetId: current.id,
    details: { seq: current.seq, previousContent: current.content },
  });
  const sender = await room.profiles.sender(updated.senderId, input.actor.kahaId);
  const outgoing = { ...publicMessage(updated), status: "sent" as const, sender };
  room.broadcast("message_updated", { message: outgoing });
  const committed = await room.waitForCommit();
  return { ...outgoing, status: committed ? "sent" : "pending" };
}

export async function deleteMessage(room: ConversationRoom, input: { conversationId: string; actor: Actor; messageId: string }): Promise<Message> {
  const meta = await room.ready(input.conversationId);
  room.requireMember(input.actor.id);
  const current = asItIsNow(room, await findMessage(room, input.messageId));
  if (!current) throw notFound("Message");
  // The role as it is after the lookup (a round trip to Postgres for an old message): a demotion or removal that
  // reached the room meanwhile wins. Read before it, a demoted admin still deleted other members' messages.
  const me = room.requireMember(input.actor.id);
  const isGroupAdmin = meta.type === "group" && me.role === "admin";
  if (current.senderId !== input.actor.id && !isGroupAdmin) throw forbidden("Only the sender or a group admin can delete a message");
  if (current.deletedAt) return publicMessage(current);
  const deletedAt = new Date().toISOString();
  const tombstone: StoredMessage = { ...current, content: "", deletedAt, eventSeq: lastSeqNow(room) };
  room.store.updateMessage(tombstone);
  room.previews.changed(tombstone);
  room.store.queueAudit({
    conversationId: meta.conversationId,
    actorId: input.actor.id,
    action: "message.deleted",
    targetId: current.id,
    details: { seq: current.seq, senderId: current.senderId, previousContent: current.content },
  });
  room.broadcast("message_deleted", { messageId: current.id, seq: current.seq });
  await room.waitForCommit();
  room.badgesAfterDelete(current);
  return publicMessage(tombstone);
}
