import { backoffDelay } from "./backoff";
import { CONTENT_MAX_CHARS, CONTENT_MAX_RAW_UNITS, contentLength, FRAME_MAX_BYTES, frameBytes, normalContent } from "./content";
import { ChatApiError, errorFromFrame } from "./errors";
import { randomId } from "./ids";
import { Outbox, type OutboxEntry } from "./outbox";
import type { ChatRest } from "./rest";
import { SeqBuffer, VersionSet, ViewVersions } from "./seq";
import { RealtimeSocket, type Frame, type SocketOptions } from "./socket";
import { TypingThrottle, type TypingOptions } from "./typing";
import type { Conversation, ConversationEvents, Message, MessageType, Participant, ReadyData, TypingEvent } from "./types";

export { CONTENT_MAX_CHARS } from "./content";

export interface ConversationSocketOptions extends SocketOptions {
  /**
   * Resume from this seq on the first connect (e.g. the last seq of the history page you rendered): everything after
   * it is replayed before live messages. Default: start live from the conversation's current last seq.
   */
  afterSeq?: number;
  /** Tell the server that received messages were delivered (mark_delivered, batched). Default true. */
  autoDeliver?: boolean;
  /** Typing throttle: start_typing at most every `refreshMs` (2 s), stop after `idleMs` (3 s) without keystrokes. */
  typing?: TypingOptions;
  /** An unacknowledged message is sent again after this long on the same connection (ms). Default 15 000. */
  ackTimeoutMs?: number;
  /** A replay that does not finish within this long is abandoned and the socket replaced (ms). Default 30 000. */
  resumeTimeoutMs?: number;
  /**
   * Messages sent per second at most; the rest of the outbox waits. Default 80: the room closes a socket that writes
   * more than WS_MAX_FRAMES_PER_SECOND (default 200) frames in a second, and its window need not line up with ours.
   */
  sendsPerSecond?: number;
}

export interface SendOptions {
  type?: Exclude<MessageType, "system">;
  replyToId?: string | null;
  /** Your own idempotency key; generated when omitted. */
  clientMessageId?: string;
}

interface Waiter {
  resolve: (m: Message) => void;
  reject: (e: ChatApiError) => void;
}

/** The send_message frame's data for an entry (one place: the size checked before sending is the size sent). */
function sendMessageData(entry: Pick<OutboxEntry, "content" | "clientMessageId" | "type" | "replyToId">): Record<string, unknown> {
  const data: Record<string, unknown> = { content: entry.content, clientMessageId: entry.clientMessageId };
  if (entry.type !== "text") data.type = entry.type;
  if (entry.replyToId) data.replyToId = entry.replyToId;
  return data;
}

/**
 * The reply as the server keeps it: a UUID in lower case (its schema lowercases), none for an empty one (not sent).
 * Compared as written, the same reply in another case was refused locally with a 409 the server would not give.
 */
const replyKey = (replyToId: string | null | undefined): string | null => (replyToId ? replyToId.toLowerCase() : null);

/** The same message as the server compares it for a reused clientMessageId (normalised content, type, reply). */
const sameMessage = (a: Pick<OutboxEntry, "content" | "type" | "replyToId">, b: Pick<OutboxEntry, "content" | "type" | "replyToId">): boolean =>
  a.type === b.type && replyKey(a.replyToId) === replyKey(b.replyToId) && normalContent(a.content) === normalContent(b.content);

/** The longest frame id this socket gives (`m` and a counter), so the size checked is never below the size sent. */
const LONGEST_FRAME_ID = `m${Number.MAX_SAFE_INTEGER}`;

/** A clientMessageId as long as the ones randomId gives, when the caller has none yet. */
const ID_OF_RANDOM_LENGTH = "00000000-0000-4000-8000-000000000000";

/**
 * The UTF-8 size of the frame that would send this message, as send() checks it: over FRAME_MAX_BYTES, send() refuses
 * it (413 too_large). An app keeping a refused text to be shortened can tell, as it changes, when it fits again.
 */
export function sendFrameBytes(content: string, options: SendOptions = {}): number {
  const entry = { content, clientMessageId: options.clientMessageId ?? ID_OF_RANDOM_LENGTH, type: options.type ?? "text", replyToId: options.replyToId ?? null };
  return frameBytes(JSON.stringify({ type: "send_message", data: sendMessageData(entry), id: LONGEST_FRAME_ID }));
}

/**
 * Server closes that one frame can cause (invalid data, too big, the server failing on it). Sent again on every
 * reconnect, such a message closed every connection and held the rest of the outbox back for ever.
 */
const FRAME_FAULT_CLOSES: ReadonlySet<number> = new Set([1007, 1009, 1011]);

/** Sends of a message the server fails on (an `internal` error frame) before it is given up (send_failed). */
const FAILED_TRIES = 3;

const versionOf = (m: Message) => `${m.editedAt ?? ""}|${m.deletedAt ?? ""}|${m.content.length}`;

/** The later state of one message: a deletion is final, otherwise the later edit wins (ties: the copy seen last). */
const newerOf = (held: Message, seen: Message): Message => {
  if (held.deletedAt) return held;
  if (seen.deletedAt) return seen;
  return (seen.editedAt ?? "") >= (held.editedAt ?? "") ? seen : held;
};

/**
 * The socket of one conversation: messages in seq order exactly once (across reconnects: resume from the last seq
 * seen), an outbox that re-sends unacknowledged messages with their clientMessageId, typing, receipts and presence.
 */
export class ConversationSocket extends RealtimeSocket<ConversationEvents> {
  private seq: SeqBuffer<Message> | undefined;
  private readonly versions = new VersionSet();
  private readonly views = new ViewVersions(1);
  private readonly queue = new Outbox();
  private readonly waiters = new Map<string, Waiter[]>();
  private readonly typingThrottle: TypingThrottle;
  private readonly typingNow = new Set<string>();
  private readonly members = new Map<string, Participant>();
  private readonly autoDeliver: boolean;
  private readonly ackTimeoutMs: number;
  private readonly resumeTimeoutMs: number;
  private readonly sendsPerSecond: number;
  /** This second's sends: start (epoch ms) and count. */
  private sendWindow = { start: 0, count: 0 };
  private me: string | undefined;
  private resuming = false;
  private resumeTimer: ReturnType<typeof setTimeout> | undefined;
  private flushTimer: ReturnType<typeof setTimeout> | undefined;
  private readTarget = 0;
  private readSent = 0;
  private deliveredTarget = 0;
  private deliveredSent = 0;
  private deliverTimer: ReturnType<typeof setTimeout> | undefined;
  private readyData: ReadyData | undefined;
  /**
   * After a close one frame may have caused (FRAME_FAULT_CLOSES) with a message unacknowledged: that message and the
   * close (code and reason). The same close again with the same message out names it (messages go one at a time).
   */
  private suspect: { clientMessageId: string; close: string } | undefined;

  constructor(
    rest: ChatRest,
    wsBase: string,
    readonly conversationId: string,
    private readonly resolveUserId: () => Promise<string | undefined>,
    options: ConversationSocketOptions = {},
  ) {
    super(rest, wsBase, options);
    if (options.afterSeq !== undefined) this.seq = new SeqBuffer<Message>(options.afterSeq);
    this.autoDeliver = options.autoDeliver ?? true;
    this.ackTimeoutMs = options.ackTimeoutMs ?? 15_000;
    this.resumeTimeoutMs = options.resumeTimeoutMs ?? 30_000;
    this.sendsPerSecond = Math.max(1, options.sendsPerSecond ?? 80);
    this.typingThrottle = new TypingThrottle((type) => void this.sendFrame(type, {}), options.typing);
  }

  /** The highest seq received with nothing missing before it (0 before the first connect). */
  get lastSeq(): number {
    return this.seq?.lastSeq ?? 0;
  }

  /** The current user's id, once known. */
  get userId(): string | undefined {
    return this.me;
  }

  /** Participants with their read and delivery marks, kept current by receipts and membership events. */
  get participants(): Participant[] {
    return [...this.members.values()].map((p) => ({ ...p }));
  }

  /** Other users typing now (server view; the server never tells a user of their own typing, on any device). */
  get typingUsers(): string[] {
    return [...this.typingNow];
  }

  /** The last `ready` frame (conversation head and your marks at connect time). */
  get ready(): ReadyData | undefined {
    return this.readyData;
  }

  /** Messages not yet acknowledged by the server, oldest first. */
  outbox(): OutboxEntry[] {
    return this.queue.list();
  }

  /**
   * Sends a message. It goes to the outbox first and stays there until the server acknowledges it — across drops and
   * reconnects, re-sent with the same clientMessageId so it is stored once. Messages go one at a time, so they are
   * stored in the order written. Resolves with the stored message; rejects with a ChatApiError when the server
   * refuses it (4xx, or fails on it three times), when the clientMessageId is still pending with another message
   * (409), or when the socket is closed.
   */
  send(content: string, options: SendOptions = {}): Promise<Message> {
    // Characters as the server counts them (code points after its normalisation), not UTF-16 units: 2,500 emoji are
    // 2,500, and the \r of CRLF text is not counted.
    const length = contentLength(content);
    if (length === 0 || length > CONTENT_MAX_CHARS) {
      return Promise.reject(
        new ChatApiError({
          statusCode: 400,
          message: length === 0 ? "content: must not be empty" : `content: at most ${CONTENT_MAX_CHARS} characters`,
          code: "bad_request",
        }),
      );
    }
    // Under the character limit once trimmed, but over what the server reads as written: it was sent, refused by the
    // server's schema, and reported as send_failed with a message about 16000 characters the user never saw.
    if (content.length > CONTENT_MAX_RAW_UNITS) {
      return Promise.reject(
        new ChatApiError({
          statusCode: 400,
          message: `content: at most ${CONTENT_MAX_RAW_UNITS} characters as written, blank lines, spaces and control characters included`,
          code: "bad_request",
        }),
      );
    }
    if (this.state === "closed") {
      return Promise.reject(new ChatApiError({ statusCode: 0, message: "The conversation socket is closed", code: "closed" }));
    }
    const clientMessageId = options.clientMessageId ?? randomId();
    const entry = { clientMessageId, content, type: options.type ?? "text", replyToId: options.replyToId ?? null } as const;
    // Control characters count nothing as content (the server strips them) but six bytes each as JSON: a message of
    // 11,000 of them passed the length check, and its frame over the server's limit closed the socket (1009) on
    // every reconnect, with every later message queued behind it.
    const bytes = sendFrameBytes(content, entry);
    if (bytes > FRAME_MAX_BYTES) {
      return Promise.reject(
        new ChatApiError({
          statusCode: 413,
          message: `content: the message is ${bytes} bytes as a frame, over the ${FRAME_MAX_BYTES}-byte limit (each control character takes 6)`,
          code: "too_large",
        }),
      );
    }
    const pending = this.queue.get(clientMessageId);
    // The server answers 409 to a reused id with another message: attached to the pending entry, the caller got the
    // old message's result as if theirs had been stored.
    if (pending && !sameMessage(pending, entry)) {
      return Promise.reject(
        new ChatApiError({
          statusCode: 409,
          message: "clientMessageId was already used for a different message (still in the outbox)",
          code: "conflict",
          error: "conflict",
        }),
      );
    }
    const promise = new Promise<Message>((resolve, reject) => {
      const list = this.waiters.get(clientMessageId) ?? [];
      list.push({ resolve, reject });
      this.waiters.set(clientMessageId, list);
    });
    this.queue.add({ ...entry, createdAt: new Date().toISOString() });
    // The server ends the sender's typing when the message arrives.
    this.typingThrottle.reset();
    this.emitOutbox();
    this.flushOutbox();
    return promise;
  }

  /** Call on every keystroke in the composer: start_typing at most every 2 s, stop_typing after 3 s idle. */
  typing(): void {
    if (this.isLive) this.typingThrottle.keystroke();
  }

  /** The user stopped typing (cleared the input, left the view). */
  stopTyping(): void {
    this.typingThrottle.stop();
  }

  /** Moves your read mark to `seq` (default: the last message received). Marks never move backwards. */
  markRead(seq: number = this.lastSeq): void {
    if (seq > this.readTarget) this.readTarget = seq;
    this.flushMarks();
  }

  /** Tells the other participants you received messages up to `seq`. Done automatically unless autoDeliver is false. */
  markDelivered(seq: number): void {
    if (seq > this.deliveredTarget) this.deliveredTarget = seq;
    this.flushMarks();
  }

  /** Asks the server to replay everything after the last seq received (done automatically after drops and gaps). */
  resume(): void {
    this.requestResume();
  }

  // ── RealtimeSocket hooks ───────────────────────────────────────────────────────────────────────────────

  protected path(): string {
    return `/conversations/${encodeURIComponent(this.conversationId)}/ws`;
  }

  protected override query(): Record<string, string> {
    // Known position: the server replays what we missed before going live, so nothing falls in between.
    if (!this.seq) return {};
    this.startResumeWait();
    return { afterSeq: String(this.seq.lastSeq) };
  }

  protected override async beforeConnect(): Promise<void> {
    if (!this.me) this.me = await this.resolveUserId();
  }

  protected probe(signal: AbortSignal): Promise<void> {
    return this.rest.getConversation(this.conversationId, { signal }).then(() => undefined);
  }

  protected override onDisconnected(code?: number, reason?: string): void {
    this.stopLocalTimers();
    this.noteClose(code, reason);
    // Whatever was in flight is sent again on the next connection (same clientMessageId: stored once).
    this.queue.connectionChanged();
    for (const userId of [...this.typingNow]) this.setTyping(userId, false);
  }

  /**
   * A server close one frame may have caused, with a message unacknowledged: the same close again with the same
   * message out fails it (send_failed), and the rest of the outbox goes on. Sent again on every reconnect, such a
   * message closed every connection and held the rest of the outbox back for ever.
   */
  private noteClose(code: number | undefined, reason: string | undefined): void {
    const culprit = this.queue.inFlight()[0]?.clientMessageId;
    if (code === undefined || !FRAME_FAULT_CLOSES.has(code) || culprit === undefined) return;
    const close = `${code} ${reason ?? ""}`;
    if (this.suspect?.clientMessageId !== culprit || this.suspect.close !== close) {
      this.suspect = { clientMessageId: culprit, close };
      return;
    }
    this.suspect = undefined;
    const error = new ChatApiError({
      statusCode: code === 1009 ? 413 : code === 1011 ? 500 : 400,
      message: `The server closed the connection twice on this message (${code}${reason ? ` ${reason}` : ""}): not sent again`,
      code: code === 1009 ? "too_large" : "refused",
    });
    this.queue.remove(culprit);
    this.settle(culprit, undefined, error);
    this.emit("send_failed", { clientMessageId: culprit, error });
    this.emitOutbox();
  }

  private setTyping(userId: string, isTyping: boolean, profile?: TypingEvent["profile"]): void {
    if (isTyping) this.typingNow.add(userId);
    else this.typingNow.delete(userId);
    this.emit("typing", { conversationId: this.conversationId, userId, isTyping, ...(profile ? { profile } : {}), typing: [...this.typingNow] });
  }

  /** Timers of this conversation's own (resume wait, typing, marks): none may outlive a socket or a close. */
  private stopLocalTimers(): void {
    this.stopResumeWait();
    this.typingThrottle.reset();
    if (this.flushTimer !== undefined) clearTimeout(this.flushTimer);
    if (this.deliverTimer !== undefined) clearTimeout(this.deliverTimer);
    this.flushTimer = this.deliverTimer = undefined;
  }

  protected override onClosed(reason: string, cause?: ChatApiError): void {
    // A close before any socket was attached skips onDisconnected: the resume wait armed for the first URL stayed.
    this.stopLocalTimers();
    for (const entry of this.queue.list()) {
      this.queue.remove(entry.clientMessageId);
      const error = new ChatApiError({ statusCode: 0, message: `Not acknowledged before the socket closed: ${reason}`, code: "closed", cause });
      this.settle(entry.clientMessageId, undefined, error);
      // Closed for good by the server (removed, credentials refused) or after giving up: an app that draws failures
      // from send_failed dropped the message on the emptied outbox without a word. A close by the app is the app's own.
      if (cause) this.emit("send_failed", { clientMessageId: entry.clientMessageId, error });
    }
    this.emitOutbox();
  }

  protected onFrame(frame: Frame): void {
    const d = frame.data;
    switch (frame.type) {
      case "ready":
        return this.onReady(d as ReadyData);
      case "resumed":
        return this.onResumed(d as { fromSeq: number; toSeq: number; complete?: boolean });
      case "new_message":
        return this.accept(d.message as Message);
      case "message_ack":
        return this.onAck(d.clientMessageId as string, d.message as Message);
      case "message_updated": {
        const m = d.message as Message;
        // Held back behind a gap: told before the message itself, the change was then undone by its older copy.
        if (this.changeHeld(m.seq, (held) => newerOf(held, m))) return;
        if (this.versions.add(m.id, versionOf(m))) this.emit("message_updated", { message: m });
        return;
      }
      case "message_deleted":
        if (this.changeHeld(d.seq, (held) => newerOf(held, { ...held, content: "", deletedAt: held.deletedAt ?? new Date().toISOString() }))) return;
        if (this.versions.add(d.messageId as string, "deleted")) this.emit("message_deleted", { messageId: d.messageId, seq: d.seq });
        return;
      case "typing_start":
      case "typing_stop": {
        this.setTyping(d.userId, frame.type === "typing_start", d.profile);
        return;
      }
      case "message_read": {
        const p = this.members.get(d.userId);
        // The read time goes with the seq it was taken for: an older mark arriving late must not rewind it.
        const ahead = d.lastReadSeq > (p?.lastReadSeq ?? 0) || p?.lastReadAt === null;
        if (p) this.members.set(d.userId, { ...p, lastReadSeq: Math.max(p.lastReadSeq, d.lastReadSeq), lastReadAt: ahead ? (d.readAt ?? p.lastReadAt) : p.lastReadAt });
        this.emit("receipt", { kind: "read", conversationId: this.conversationId, userId: d.userId, seq: d.lastReadSeq, at: d.readAt });
        return;
      }
      case "message_delivered": {
        const p = this.members.get(d.userId);
        if (p) this.members.set(d.userId, { ...p, lastDeliveredSeq: Math.max(p.lastDeliveredSeq, d.lastDeliveredSeq) });
        this.emit("receipt", { kind: "delivered", conversationId: this.conversationId, userId: d.userId, seq: d.lastDeliveredSeq });
        return;
      }
      case "presence_update":
        return this.emit("presence", d);
      case "participant_joined":
      case "participant_updated": {
        const p = d.participant as Participant;
        this.members.set(p.userId, p);
        return this.emit(frame.type, { participant: p });
      }
      case "participant_left":
        this.members.delete(d.userId);
        return this.emit("participant_left", { userId: d.userId });
      case "conversation_updated":
        // Pushes of changes in quick succession can arrive out of order: an older view is not passed on.
        if (!this.views.note(d.conversation as Conversation)) return;
        return this.emit("conversation_updated", { conversation: d.conversation });
      case "messages_archived":
        // Seqs up to the mark are never replayed: waiting for them would hold back everything after them.
        if (this.seq && d.upToSeq > this.seq.lastSeq) {
          this.emit("messages_archived", { conversationId: d.conversationId, upToSeq: d.upToSeq });
          for (const m of this.seq.reset(d.upToSeq)) this.deliver(m);
          return;
        }
        return this.emit("messages_archived", { conversationId: d.conversationId, upToSeq: d.upToSeq });
      case "error":
        return this.onErrorFrame(frame);
      default:
        return; // heartbeat_ack and frames newer than this SDK
    }
  }

  // ── Frames ─────────────────────────────────────────────────────────────────────────────────────────────

  private onReady(data: ReadyData): void {
    this.readyData = data;
    const before = new Map(this.members);
    this.members.clear();
    for (const p of data.participants) this.members.set(p.userId, p);
    this.tellMovedMarks(before);
    // Any listener of what follows may close us: the rest of this frame is then not told (the app closed first).
    if (this.isClosed) return;
    // Who types now, told as changes: a drop told the app everyone stopped, and those still typing start again.
    const typing = new Set(data.typing);
    for (const userId of [...this.typingNow]) if (!typing.has(userId) && !this.isClosed) this.setTyping(userId, false);
    for (const userId of typing) if (!this.typingNow.has(userId) && !this.isClosed) this.setTyping(userId, true);
    if (this.isClosed) return;
    // The server's view of our marks: anything newer we wanted is sent again. Not the higher of it and what we sent:
    // a mark written to a connection that was already dead never arrived, and kept as sent it was never repeated
    // (the sender never saw "read", other devices kept the badge). A repeat is harmless: marks never move backwards.
    this.readSent = data.you.lastReadSeq;
    this.deliveredSent = data.you.lastDeliveredSeq ?? 0;
    this.marksWithin(data.lastSeq);
    this.emit("ready", data);
    if (this.isClosed) return;
    if (!this.seq) this.seq = new SeqBuffer<Message>(data.lastSeq);
    // A position past the server's newest (an afterSeq from stale state): the server replays from its newest, and
    // every message up to our old position would otherwise be dropped here as already seen.
    else if (this.seq.lastSeq > data.lastSeq) this.seq.reset(data.lastSeq);
    // A replay follows: it has resumeTimeoutMs, and one slower than the connect timeout was abandoned (and started over).
    if (!this.resuming) this.goLive();
    else this.markAccepted();
  }

  /**
   * Read and delivered marks that moved while the socket was down, told as the receipts the dead socket missed (the
   * replay carries messages, not receipts): an app that draws ticks from `receipt` kept showing "delivered" for a
   * message read meanwhile until the next receipt. Nothing is told on the first connect: `ready` is the start.
   */
  private tellMovedMarks(before: Map<string, Participant>): void {
    for (const p of this.members.values()) {
      const old = before.get(p.userId);
      if (!old || this.isClosed) continue;
      if (p.lastReadSeq > old.lastReadSeq) {
        const at = p.lastReadAt ?? new Date().toISOString();
        this.emit("receipt", { kind: "read", conversationId: this.conversationId, userId: p.userId, seq: p.lastReadSeq, at });
      }
      if (p.lastDeliveredSeq > old.lastDeliveredSeq && !this.isClosed) {
        this.emit("receipt", { kind: "delivered", conversationId: this.conversationId, userId: p.userId, seq: p.lastDeliveredSeq });
      }
    }
  }

  private onResumed(data: { fromSeq: number; toSeq: number; complete?: boolean }): void {
    this.stopResumeWait();
    this.emit("resumed", { fromSeq: data.fromSeq, toSeq: data.toSeq });
    // A very long absence is replayed in parts; a gap left over is asked for again.
    if (data.complete !== false) this.marksWithin(data.toSeq);
    if (data.complete === false || this.seq?.hasGap) return this.requestResume();
    if (this.state !== "open") return this.goLive();
    this.flushMarks();
    this.flushOutbox();
  }

  private goLive(): void {
    this.markOpen();
    this.flushMarks();
    this.flushOutbox();
  }

  /** Applies a change to a message held back behind a gap (delivered later as it is then); false when none is. */
  private changeHeld(seq: number, change: (held: Message) => Message): boolean {
    const held = typeof seq === "number" ? this.seq?.heldAt(seq) : undefined;
    return held !== undefined && this.seq!.replaceHeld(seq, change(held));
  }

  private accept(message: Message): void {
    if (!this.seq) this.seq = new SeqBuffer<Message>(message.seq - 1);
    // A replay's copy of a message held back from a live frame: the newer of the two is delivered.
    if (this.changeHeld(message.seq, (held) => newerOf(held, message))) return;
    const { deliver } = this.seq.offer(message.seq, message);
    for (const m of deliver) this.deliver(m);
    if (this.seq.hasGap && !this.resuming) this.requestResume();
  }

  /** A getter, not a narrowed `state` check: a listener called in between may have closed the socket. */
  private get isClosed(): boolean {
    return this.state === "closed";
  }

  private deliver(m: Message): void {
    // Closed by a listener of an earlier message of the same batch (a replay, a filled gap): the app heard of the
    // rest after its close(), and a delivered mark was armed on a closed socket.
    if (this.isClosed) return;
    const own = this.me !== undefined ? m.senderId === this.me : m.clientMessageId !== null && this.queue.has(m.clientMessageId);
    if (own && m.clientMessageId && this.queue.has(m.clientMessageId)) {
      // Our message came back on the socket: stored, whether or not its ack arrives.
      this.queue.remove(m.clientMessageId);
      this.settle(m.clientMessageId, m);
      this.emit("message_ack", { clientMessageId: m.clientMessageId, message: m });
      this.emitOutbox();
      if (!this.isClosed) this.flushOutbox();
    }
    this.versions.add(m.id, versionOf(m));
    this.emit("new_message", { message: m, own });
    if (!own && this.autoDeliver && !this.isClosed) this.scheduleDelivered(m.seq);
  }

  private onAck(clientMessageId: string, message: Message): void {
    if (this.queue.has(clientMessageId)) {
      this.queue.remove(clientMessageId);
      this.settle(clientMessageId, message);
      this.emit("message_ack", { clientMessageId, message });
      this.emitOutbox();
      // One at a time: the next one goes now, not at the next flush tick.
      if (!this.isClosed) this.flushOutbox();
    }
    // The ack can overtake the broadcast (which is held back during a replay): deliver through the same seq filter.
    this.accept(message);
  }

  private onErrorFrame(frame: Frame): void {
    const error = errorFromFrame(frame.data);
    const entry = frame.id ? this.queue.byFrameId(frame.id) : undefined;
    if (!entry) return this.emit("error", error);
    // Refused for good (invalid, conflict, not allowed): retrying cannot help. One the server fails on (internal) gets
    // a few tries: sent one at a time, a message it always failed on held back every message after it for ever.
    if (error.isClientError || (!error.isRetryable && entry.attempts >= FAILED_TRIES)) {
      this.queue.remove(entry.clientMessageId);
      this.settle(entry.clientMessageId, undefined, error);
      this.emit("send_failed", { clientMessageId: entry.clientMessageId, error });
      this.emitOutbox();
      if (!this.isClosed) this.flushOutbox();
      return;
    }
    // Transient (rate limited, storage unavailable): keep it and try again later. One delay for both: two random
    // draws let the flush come before the retry time, and the message then waited up to a second more. The delay
    // grows with the refusals on this connection only (a reconnect starts over; see Outbox.connectionChanged).
    const delayMs = backoffDelay((entry.refusals ?? 0) + 1);
    this.queue.retryLater(entry.clientMessageId, Date.now(), delayMs);
    this.scheduleFlush(delayMs + 10);
  }

  // ── Outbox, marks, resume ──────────────────────────────────────────────────────────────────────────────

  private flushOutbox(): void {
    if (!this.isLive || this.resuming) return;
    const now = Date.now();
    if (now - this.sendWindow.start >= 1000) this.sendWindow = { start: now, count: 0 };
    const entry = this.queue.next(now, this.ackTimeoutMs);
    if (entry) {
      // A burst over the room's frame limit got the socket closed (1008) and the rest of the outbox waited for the
      // reconnect: what does not fit in this second goes in the next one.
      if (this.sendWindow.count >= this.sendsPerSecond) return this.scheduleFlush(this.sendWindow.start + 1000 - now);
      const frameId = this.nextId("m");
      if (!this.sendFrame("send_message", sendMessageData(entry), frameId)) return;
      this.sendWindow.count++;
      this.queue.markSent(entry.clientMessageId, now, frameId);
    }
    // At the retry time of a message held back, when sooner: the next tick replaced the retry's own timer (a send
    // meanwhile flushes too), and the message went up to a second after its time.
    const held = this.queue.heldUntil();
    if (this.queue.size > 0) this.scheduleFlush(held !== undefined && held > now ? Math.min(1000, held - now + 10) : 1000);
  }

  private scheduleFlush(ms: number): void {
    if (this.flushTimer !== undefined) clearTimeout(this.flushTimer);
    this.flushTimer = setTimeout(() => {
      this.flushTimer = undefined;
      this.flushOutbox();
    }, ms);
  }

  private settle(clientMessageId: string, message?: Message, error?: ChatApiError): void {
    const list = this.waiters.get(clientMessageId);
    this.waiters.delete(clientMessageId);
    for (const w of list ?? []) {
      if (message) w.resolve(message);
      else w.reject(error!);
    }
  }

  private emitOutbox(): void {
    this.emit("outbox", { pending: this.queue.list() });
  }

  private scheduleDelivered(seq: number): void {
    if (seq > this.deliveredTarget) this.deliveredTarget = seq;
    if (this.deliverTimer !== undefined) return;
    this.deliverTimer = setTimeout(() => {
      this.deliverTimer = undefined;
      this.flushMarks();
    }, 200);
  }

  private flushMarks(): void {
    if (!this.isLive || this.resuming) return;
    if (this.readTarget > this.readSent && this.sendFrame("mark_as_read", { seq: this.readTarget })) {
      this.readSent = this.readTarget;
      // Read implies delivered.
      this.deliveredSent = Math.max(this.deliveredSent, this.readTarget);
    }
    if (this.deliveredTarget > this.deliveredSent && this.sendFrame("mark_delivered", { seq: this.deliveredTarget })) {
      this.deliveredSent = this.deliveredTarget;
    }
  }

  /**
   * A mark past the server's newest seq (its data was reset, or the app marked a seq that never existed) starts over
   * from the server's mark: kept, it was sent again on every connect and every real mark after it was held back as
   * "not newer", so the other side never saw "read" again.
   */
  private marksWithin(newest: number): void {
    if (!Number.isSafeInteger(newest)) return;
    // The server holds a mark past its newest at its newest; the last mark it told us (ready) is a safe floor, and
    // sending one it already has again is harmless (marks never move backwards).
    const you = this.readyData?.you;
    if (this.readTarget > newest) this.readTarget = this.readSent = Math.min(you?.lastReadSeq ?? 0, newest);
    if (this.deliveredTarget > newest) this.deliveredTarget = this.deliveredSent = Math.min(you?.lastDeliveredSeq ?? 0, newest);
  }

  private requestResume(): void {
    if (!this.seq || this.resuming) return;
    if (!this.sendFrame("resume", { afterSeq: this.seq.lastSeq }, this.nextId("resume"))) return;
    this.startResumeWait();
  }

  private startResumeWait(): void {
    this.resuming = true;
    if (this.resumeTimer !== undefined) clearTimeout(this.resumeTimer);
    this.resumeTimer = setTimeout(() => {
      this.resumeTimer = undefined;
      // No "resumed": the server could not replay (its database down, say). Start over on a new socket.
      if (this.resuming) this.drop("resume timed out");
    }, this.resumeTimeoutMs);
  }

  private stopResumeWait(): void {
    this.resuming = false;
    if (this.resumeTimer !== undefined) clearTimeout(this.resumeTimer);
    this.resumeTimer = undefined;
  }
}
