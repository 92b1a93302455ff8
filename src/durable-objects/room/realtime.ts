import { conflict, errorReason, HttpError, migrationsPending, MIGRATIONS_PENDING_MESSAGE, reportMigrationsPending, unavailable } from "../../lib/errors";
import { editsSince, messagePage } from "../../db/queries/messages";
import {
  CLOSE,
  conversationClientFrame,
  conversationClientTypes,
  encodeFrame,
  errorCodeFor,
  frameTooLarge,
  parseFrame,
  PROTOCOL_VERSION,
  type ConversationClientFrame,
  type EchoedId,
  type ErrorCode,
  type ReadyFrameData,
} from "../../protocol/frames";
import { publicParticipant, type Message } from "../../protocol/resources";
import { HEARTBEAT_TIMEOUT_MS } from "../../domain/presence";
import { typingSeenBy } from "../../domain/typing";
import type { Actor } from "../room-api";
import type { ConversationRoom } from "../conversation-room";
import { attach, attachmentOf, WindowRateLimiter, safeClose, sendRaw, type SocketAttachment } from "./sockets";

/** Identity the Worker attaches to an upgrade it has authenticated (never taken from the client). */
export const IDENTITY_HEADER = "x-chat-identity";
export const CONVERSATION_HEADER = "x-chat-conversation";

const MAX_SOCKETS_PER_USER = 10;
/** Retry-After of an upgrade refused for the socket cap (here and in the user's session). */
export const SOCKET_CAP_RETRY_SECONDS = 5;
const limiter = new WindowRateLimiter<WebSocket>();
const REPLAY_PAGE = 1000;
const REPLAY_MAX_PAGES = 20;

export async function openSocket(room: ConversationRoom, request: Request): Promise<Response> {
  if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") {
    throw new HttpError(426, "Expected a WebSocket upgrade");
  }
  const identity = JSON.parse(request.headers.get(IDENTITY_HEADER) ?? "null") as (Actor & { exp?: number }) | null;
  const conversationId = request.headers.get(CONVERSATION_HEADER);
  if (!identity || !conversationId) throw new HttpError(400, "Missing identity");
  await room.ready(conversationId);
  if (!room.member(identity.id)) await room.membership.recheckFor(conversationId);
  room.requireMember(identity.id);
  // Before the accept, so the frame below still reads lastSeq in the accept's turn. Bounded: a slow profile service
  // costs a connect at most READY_PROFILE_WAIT_MS, and a warm room nothing.
  const profiles = await room.profiles.members(room.participants().map((p) => p.userId));
  // Read again after the wait: a removal or other sockets of this user may have come in meanwhile.
  const me = room.requireMember(identity.id);
  // Open ones only: a socket closed here whose client never answered (its network gone) stays listed until the
  // runtime gives up on it, and such sockets refused the user's reconnects with 429.
  if (openSocketsOf(room, identity.id).length >= MAX_SOCKETS_PER_USER && closeSilent(room, identity.id) >= MAX_SOCKETS_PER_USER) {
    // A slot frees when one of them closes: a client that reconnects in a loop is told to wait (contract §1).
    throw new HttpError(429, `At most ${MAX_SOCKETS_PER_USER} sockets per user and conversation`, { "Retry-After": String(SOCKET_CAP_RETRY_SECONDS) });
  }
  const pair = new WebSocketPair();
  const [client, server] = [pair[0], pair[1]];
  room.state.acceptWebSocket(server, [identity.id]);
  const attachment: SocketAttachment = { userId: identity.id, kahaId: identity.kahaId, exp: identity.exp, connectedAt: Date.now() };
  attach(server, attachment);
  // lastSeq as of the accept, in the same synchronous turn: every later message is broadcast to this socket, and
  // every earlier one is counted here. Read before an await, a send in between was in neither.
  const meta = room.store.meta()!;
  const now = Date.now();
  sendRaw(
    server,
    encodeFrame("ready", {
      conversationId,
      lastSeq: meta.lastSeq,
      participants: room.participants().map((p) => {
        // A member who joined during the wait is in the frame too, with a profile if the room holds one.
        const profile = profiles.get(p.userId) ?? room.profiles.cached(p.userId);
        return publicParticipant(profile ? { ...p, profile } : p, identity.id);
      }),
      typing: typingSeenBy(room.store.typing(), identity.id, now),
      you: { lastReadSeq: me.lastReadSeq, lastDeliveredSeq: me.lastDeliveredSeq },
      protocolVersion: PROTOCOL_VERSION,
    } satisfies ReadyFrameData),
  );
  // Resume on connect: live frames are held from this moment, in the turn of "ready", so nothing falls between it and
  // the replay (held after the alarm's await below, a message sent meanwhile came ahead of the replay, then in it).
  const afterSeq = new URL(request.url).searchParams.get("afterSeq");
  if (afterSeq !== null && /^\d{1,15}$/.test(afterSeq)) {
    const hold = startHolding(server);
    room.state.waitUntil(queueResume(server, () => resume(room, server, Number(afterSeq), undefined, hold)));
  }
  if (identity.exp) await room.scheduleAlarm();
  return new Response(null, { status: 101, webSocket: client });
}

/**
 * What a failed open answers. Refusals (404, 429) and 503s logged where they arose (room init, a database call) pass
 * as they are; anything else was a bare 503 with no line anywhere, so an operator could not tell why clients got it.
 */
export function openRefusal(room: ConversationRoom, request: Request, err: unknown): HttpError {
  if (err instanceof HttpError) return err;
  const pending = migrationsPending(err);
  if (pending) {
    reportMigrationsPending(err, room.log);
    return pending;
  }
  room.log.error("socket open failed", { conversationId: request.headers.get(CONVERSATION_HEADER), error: errorReason(err).slice(0, 200) });
  return unavailable("Room unavailable");
}

function openSocketsOf(room: ConversationRoom, userId: string): WebSocket[] {
  return room.state.getWebSockets(userId).filter((ws) => ws.readyState === WebSocket.OPEN);
}

/**
 * At the cap only: closes the user's sockets not heard from within the heartbeat timeout and answers how many stay
 * open. A client gone without a close (a phone that changed networks) leaves its socket open here for as long as
 * nothing is written to it, and ten of them refused every reconnect with 429. Read from the socket itself, not the
 * cache: this path is rare.
 */
function closeSilent(room: ConversationRoom, userId: string): number {
  const now = Date.now();
  let open = 0;
  for (const ws of openSocketsOf(room, userId)) {
    const att = ws.deserializeAttachment() as SocketAttachment | null;
    if (att && now - (att.heardAt ?? att.connectedAt) > HEARTBEAT_TIMEOUT_MS) safeClose(ws, 1001, "Heartbeat timeout");
    else open++;
  }
  return open;
}

function errorFrame(ws: WebSocket, code: ErrorCode, message: string, id?: EchoedId): void {
  sendRaw(ws, encodeFrame("error", { code, message }, id));
}

export async function handleSocketMessage(room: ConversationRoom, ws: WebSocket, raw: string | ArrayBuffer): Promise<void> {
  if (frameTooLarge(raw)) return safeClose(ws, CLOSE.tooBig, "Frame too large");
  const att = attachmentOf(ws);
  const meta = room.store.meta();
  if (!att || !meta) return safeClose(ws, 1011, "Socket state lost");
  if (att.exp && att.exp * 1000 <= Date.now()) return safeClose(ws, CLOSE.unauthorized, "Token expired");
  if (!limiter.allow(ws, room.config.WS_MAX_FRAMES_PER_SECOND)) {
    errorFrame(ws, "rate_limited", "Too many frames");
    return safeClose(ws, CLOSE.policy, "Rate limited");
  }
  if (!room.member(att.userId)) return safeClose(ws, CLOSE.forbidden, "No longer a participant");
  if (typeof raw !== "string") return errorFrame(ws, "invalid_frame", "Binary frames are not supported; send JSON text");
  const parsed = parseFrame(raw, conversationClientFrame, conversationClientTypes);
  if (!parsed.ok) return errorFrame(ws, parsed.code, parsed.message, parsed.id);
  const frame = parsed.frame;
  try {
    await dispatch(room, ws, att, meta.conversationId, frame);
  } catch (err) {
    const http = err instanceof HttpError ? err : undefined;
    if (!http) room.log.error("frame failed", { type: frame.type, error: errorReason(err).slice(0, 200) });
    const message = http ? (Array.isArray(http.detail) ? http.detail.join("; ") : http.detail) : "Internal error";
    errorFrame(ws, http ? errorCodeFor(http.status) : "internal", message, frame.id);
  }
}

async function dispatch(
  room: ConversationRoom,
  ws: WebSocket,
  att: SocketAttachment,
  conversationId: string,
  frame: ConversationClientFrame,
): Promise<void> {
  const actor: Actor = { id: att.userId, kahaId: att.kahaId };
  switch (frame.type) {
    case "send_message": {
      const { message } = await room.sendMessage({ conversationId, actor, ...frame.data });
      sendRaw(ws, encodeFrame("message_ack", { clientMessageId: frame.data.clientMessageId, message }, frame.id));
      return;
    }
    case "start_typing":
      // The other side would see "typing…" in a conversation that takes no message.
      if (room.store.meta()?.closed) throw conflict("The conversation is closed");
      // Refused, it changes nothing (stop_typing is always taken, so the last word can be "stopped").
      if (!room.typingStarts.allow(att.userId, room.config.WS_TYPING_STARTS_PER_SECOND)) throw new HttpError(429, "Too many start_typing frames; send one every 2 s while typing");
      room.startTyping(att.userId, att.kahaId, ws);
      room.noteActivity(att.userId);
      return;
    case "stop_typing":
      room.endTyping(att.userId);
      return;
    case "mark_as_read":
      room.markReadOnSocket(att.userId, frame.data.seq);
      return;
    case "mark_delivered":
      room.deliveredUpTo(att.userId, frame.data.seq);
      return;
    case "resume": {
      const { afterSeq } = frame.data;
      await queueResume(ws, () => resume(room, ws, afterSeq, frame.id));
      return;
    }
    case "heartbeat":
      // Only heartbeats are noted (one per 25 s): a note per frame would cost every send an attachment write.
      attach(ws, { ...att, heardAt: Date.now() });
      sendRaw(ws, encodeFrame("heartbeat_ack", { timestamp: new Date().toISOString() }, frame.id));
      return;
  }
}

/**
 * Live frames for a socket that is replaying are held back and sent after the replay, minus those the replay
 * already covered, so the client sees every seq once and in order.
 */
const resuming = new WeakMap<WebSocket, { frames: { seq?: number; frame: string }[] }>();

export function holdIfResuming(ws: WebSocket, frame: string, seq?: number): boolean {
  const state = resuming.get(ws);
  if (!state) return false;
  state.frames.push({ seq, frame });
  return true;
}

/**
 * A socket's resumes run one after another, each answered in the order sent: two at once shared the socket's hold,
 * and the first one's end released the second's, so live frames came before the second replay's older messages.
 */
const resumeQueues = new WeakMap<WebSocket, Promise<void>>();

function queueResume(ws: WebSocket, run: () => Promise<void>): Promise<void> {
  const previous = resumeQueues.get(ws) ?? Promise.resolve();
  const next = previous.then(run);
  const tail = next.catch(() => undefined);
  resumeQueues.set(ws, tail);
  // The last one in the queue clears it, so an idle socket keeps no settled promise around.
  void tail.then(() => {
    if (resumeQueues.get(ws) === tail) resumeQueues.delete(ws);
  });
  return next;
}

function startHolding(ws: WebSocket): { frames: { seq?: number; frame: string }[] } {
  const state = { frames: [] as { seq?: number; frame: string }[] };
  resuming.set(ws, state);
  return state;
}

async function resume(
  room: ConversationRoom,
  ws: WebSocket,
  claimed: number,
  id?: string,
  held?: { frames: { seq?: number; frame: string }[] },
): Promise<void> {
  const state = held ?? startHolding(ws);
  // A client past the newest message (stale state) resumes from the newest. Taken as claimed, the live frames held
  // during the replay, up to the claimed seq, were dropped as if the replay had sent them.
  const afterSeq = Math.min(claimed, room.store.meta()?.lastSeq ?? 0);
  // The retention job told only the sockets open at the time; a client that was away learns it here, before the
  // replay, so it stops waiting for seqs that will never come (they are under /archive).
  const archivedUpTo = room.archivedUpToSeq();
  if (afterSeq < archivedUpTo) {
    sendRaw(ws, encodeFrame("messages_archived", { conversationId: room.conversationId(), upToSeq: archivedUpTo }));
  }
  let toSeq = afterSeq;
  let complete = true;
  try {
    const replay = await replayFor(room, afterSeq);
    complete = replay.complete;
    // Frames carry `sender` as live ones do; one profile lookup covers every sender of the replay.
    const messages = await room.profiles.senders(replay.messages);
    for (const m of messages) {
      if (m.seq > afterSeq) {
        sendRaw(ws, encodeFrame("new_message", { message: m }));
        toSeq = Math.max(toSeq, m.seq);
      } else if (m.deletedAt) {
        sendRaw(ws, encodeFrame("message_deleted", { messageId: m.id, seq: m.seq }));
      } else {
        sendRaw(ws, encodeFrame("message_updated", { message: m }));
      }
    }
  } catch (err) {
    // The gap cannot be filled now (Postgres unreachable and not covered locally). Say so and close: the client
    // reconnects with the same afterSeq later; staying open would leave it silently behind.
    resuming.delete(ws);
    logReplayFailure(room, afterSeq, err);
    errorFrame(ws, "unavailable", "Cannot replay missed messages right now; reconnect to retry", id);
    safeClose(ws, 1013, "Try again later");
    return;
  } finally {
    resuming.delete(ws);
  }
  sendRaw(ws, encodeFrame("resumed", { fromSeq: afterSeq + 1, toSeq, complete }, id));
  for (const held of state.frames) {
    if (held.seq !== undefined && held.seq <= toSeq) continue;
    sendRaw(ws, held.frame);
  }
}

/**
 * One line per failed replay, naming it: the client sees only a 1013 close, and a database failure's own line did not
 * say a replay was refused. A missing migration keeps its once-per-isolate report instead.
 */
function logReplayFailure(room: ConversationRoom, afterSeq: number, err: unknown): void {
  if (err instanceof HttpError && err.detail === MIGRATIONS_PENDING_MESSAGE) return;
  const pending = err instanceof HttpError ? undefined : migrationsPending(err);
  if (pending) return reportMigrationsPending(err, room.log);
  const fields = { conversationId: room.store.meta()?.conversationId, afterSeq, error: errorReason(err).slice(0, 200) };
  if (err instanceof HttpError) room.log.warn("replay failed", { ...fields, status: err.status });
  else room.log.error("replay failed", fields);
}

/**
 * A room that holds its whole unarchived history replays from its own rows alone. Otherwise: Postgres has everything
 * committed (including edits of old messages); the room's pending rows are newer still.
 */
export async function replayFor(room: ConversationRoom, afterSeq: number): Promise<{ messages: Message[]; complete: boolean }> {
  const meta = room.store.meta()!;
  // Seqs up to the archive mark are in neither the room nor Postgres's `messages` (the client heard messages_archived).
  const from = Math.max(afterSeq, room.archivedUpToSeq());
  if (room.holdsHistory() && room.store.holdsAllFrom(from + 1, meta.lastSeq)) return replayLocal(room, afterSeq, from, meta.lastSeq);
  const bySeq = new Map<number, Message>();
  let complete = true;
  try {
    const db = () => room.db();
    for (const m of await room.pgOr503(() => editsSince(db(), meta.conversationId, afterSeq, REPLAY_PAGE))) bySeq.set(m.seq, m);
    let cursor = afterSeq;
    for (let page = 0; ; page++) {
      const { messages, hasMore } = await room.pgOr503(() => messagePage(db(), meta.conversationId, { after: cursor, limit: REPLAY_PAGE }));
      for (const m of messages) bySeq.set(m.seq, m);
      if (!hasMore || messages.length === 0) break;
      if (page + 1 >= REPLAY_MAX_PAGES) {
        complete = false;
        break;
      }
      cursor = messages[messages.length - 1].seq;
    }
  } catch (err) {
    // Postgres unreachable: the room's own rows still cover a short absence, if they hold every seq since.
    if (!room.store.holdsAllFrom(afterSeq + 1, room.store.meta()?.lastSeq ?? meta.lastSeq)) throw err;
  }
  for (const m of room.store.changesSince(afterSeq, 10_000)) {
    if (!complete && m.seq > afterSeq + REPLAY_PAGE * REPLAY_MAX_PAGES) continue;
    if (archivedSinceClient(m.seq, afterSeq, from)) continue;
    const { eventSeq: _e, ...message } = m;
    bySeq.set(m.seq, message);
  }
  return { messages: [...bySeq.values()].sort((a, b) => a.seq - b.seq), complete };
}

/**
 * The replay from the room's rows, in the bounds the Postgres one keeps: REPLAY_MAX_PAGES pages of new messages,
 * counted from `from` (afterSeq, or the archive mark above it).
 */
function replayLocal(room: ConversationRoom, afterSeq: number, from: number, lastSeq: number): { messages: Message[]; complete: boolean } {
  const upToSeq = Math.min(lastSeq, from + REPLAY_PAGE * REPLAY_MAX_PAGES);
  // Changes of older messages come first (seq order) and count against the limit: a cut leaves a prefix of the new
  // messages, which the client resumes after (`complete: false`).
  const limit = REPLAY_PAGE * (REPLAY_MAX_PAGES + 1);
  const rows = room.store.changesSince(afterSeq, limit, upToSeq);
  const messages = rows.filter((m) => !archivedSinceClient(m.seq, afterSeq, from)).map(({ eventSeq: _e, ...message }) => message);
  return { messages, complete: upToSeq === lastSeq && rows.length < limit };
}

/**
 * A seq the client never had (above its afterSeq) that is now in the archive (at or below `from`, the mark above
 * afterSeq). The room keeps its copy of an archived message its sender edited or deleted (the change went to the
 * archive through the outbox), and replayed it as a new message after telling the client the archive holds it.
 */
function archivedSinceClient(seq: number, afterSeq: number, from: number): boolean {
  return seq > afterSeq && seq <= from;
}
