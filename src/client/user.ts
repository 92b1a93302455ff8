import { errorFromFrame } from "./errors";
import type { ChatRest } from "./rest";
import { ViewVersions } from "./seq";
import { RealtimeSocket, type Frame, type SocketOptions } from "./socket";
import type { Conversation, PresenceUpdate, UserEvents } from "./types";

export interface UserSocketOptions extends SocketOptions {
  /**
   * Tell senders a message reached this device when its `notification` arrives (the conversation need not be open),
   * so they see "delivered". Marks are coalesced per conversation. Default true.
   */
  autoDeliver?: boolean;
}

/** A mark_delivered frame sent on the current connection that the server has not been seen to receive. */
interface SentMark {
  conversationId: string;
  seq: number;
  /** Its place among the frames of this socket (ids come from one counter: `d7` went before `hb8`). */
  order: number;
}

const frameOrder = (id: string | undefined): number => Number(/(\d+)$/.exec(id ?? "")?.[1] ?? Number.NaN);

/** Users whose last presence_update is kept to order get_presence replies against (the oldest is forgotten first). */
const PRESENCE_KEPT = 5000;

/** User ids one get_presence may carry (the server's frame schema). */
const PRESENCE_ASK_MAX = 200;

/** The ids the server's frame schema takes (zod's guid): every user id is one (contract §1). */
const USER_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** A mark the room could not take now (unavailable, rate limited) is sent again after this long (ms). */
const MARK_RETRY_MS = 2000;

/**
 * The user's own socket: notifications of new messages in any conversation, unread counts, presence of contacts and
 * conversation list changes. Reconnects like the conversation socket; after a reconnect the server sends the
 * current unread counts again (events missed while away are not replayed: refresh lists on `state` → open with
 * `reconnected: true`).
 */
export class UserSocket extends RealtimeSocket<UserEvents> {
  private readonly autoDeliver: boolean;
  /** Highest seq per conversation not yet marked delivered (kept across a reconnect). */
  private readonly undelivered = new Map<string, number>();
  private readonly views = new ViewVersions();
  /**
   * Marks sent on this connection, by frame id, until a later heartbeat is answered (frames arrive in order). The
   * server answers a mark only when it fails: one written to a connection that was already dead simply vanished,
   * and the sender never saw "delivered". Those still here when the socket drops are sent again on the next one.
   */
  private readonly unconfirmed = new Map<string, SentMark>();
  private deliverTimer: ReturnType<typeof setTimeout> | undefined;
  /** What the app last said (setPresence): a new socket starts `online`, so `away` is said again on each connect. */
  private presence: "online" | "away" = "online";
  /**
   * Each user's last presence_update and lastIdNumber when it arrived: a get_presence reply (answered in time or
   * late) is newer only than the updates that arrived before its request went out. At most PRESENCE_KEPT users.
   */
  private readonly presenceSeen = new Map<string, { update: PresenceUpdate; after: number }>();

  constructor(rest: ChatRest, wsBase: string, options: UserSocketOptions = {}) {
    super(rest, wsBase, options);
    this.autoDeliver = options.autoDeliver ?? true;
  }

  /** Tells the senders that this device received the conversation's messages up to `seq`. */
  markDelivered(conversationId: string, seq: number): void {
    this.want(conversationId, seq);
    this.scheduleDelivered(200);
  }

  private want(conversationId: string, seq: number): void {
    if (seq > (this.undelivered.get(conversationId) ?? 0)) this.undelivered.set(conversationId, seq);
  }

  private scheduleDelivered(ms: number): void {
    this.deliverTimer ??= setTimeout(() => {
      this.deliverTimer = undefined;
      this.flushDelivered();
    }, ms);
  }

  private flushDelivered(): void {
    for (const [conversationId, seq] of this.undelivered) {
      // With an id: a failure is answered with it, and the mark can be tried again.
      const id = this.nextId("d");
      this.undelivered.delete(conversationId);
      this.unconfirmed.set(id, { conversationId, seq, order: frameOrder(id) });
      if (this.sendFrame("mark_delivered", { conversationId, seq }, id)) continue;
      this.unconfirmed.delete(id);
      this.want(conversationId, seq);
      return;
    }
  }

  protected override onDisconnected(): void {
    // Maybe never received: wanted again (a repeat is harmless, marks never move backwards).
    for (const m of this.unconfirmed.values()) this.want(m.conversationId, m.seq);
    this.unconfirmed.clear();
  }

  /** `away` when the user is idle, `online` when back. */
  setPresence(status: "online" | "away"): void {
    this.presence = status;
    this.sendFrame("set_presence", { status });
  }

  /**
   * Current presence of users who share a conversation with you (others, and ids that are not UUIDs, are left out).
   * Any number of users. Asked while the socket is still connecting, the question goes once it is open, and one out
   * when the connection drops is asked again on the next (all within 10 s; a close for good fails it as `closed`).
   * Each answer carries the id as you wrote it: the server compares ids without case and answers in lowercase (as do
   * `presence` events and every id the server sends), and an app that asked in uppercase could not match the answers
   * to its users.
   */
  async getPresence(userIds: string[]): Promise<PresenceUpdate[]> {
    // Spellings the app used, by the server's form: asking "AB" and "ab" is one question with two answers.
    const asked = new Map<string, string[]>();
    for (const id of new Set(userIds)) {
      // No user has such an id, so it shares no conversation: left out, as such users are. Sent, it made the server
      // refuse the whole request, and the 199 other contacts asked with it were never answered.
      if (typeof id !== "string" || !USER_ID.test(id)) continue;
      const key = id.toLowerCase();
      asked.set(key, [...(asked.get(key) ?? []), id]);
    }
    const unique = [...asked.keys()];
    // The server takes PRESENCE_ASK_MAX ids a request: the ids past them were cut off, and an app with more contacts
    // never learnt whether the rest were online.
    const parts: string[][] = [];
    for (let i = 0; i < unique.length; i += PRESENCE_ASK_MAX) parts.push(unique.slice(i, i + PRESENCE_ASK_MAX));
    const answers = (await Promise.all(parts.map((ids) => this.askPresence(ids)))).flat();
    return answers.flatMap((p) => (asked.get(p.userId.toLowerCase()) ?? [p.userId]).map((userId) => ({ ...p, userId })));
  }

  private async askPresence(userIds: string[]): Promise<PresenceUpdate[]> {
    // A question: a drop before the reply asks it again on the next connection (within the timeout).
    const reply = await this.request("get_presence", { userIds }, "presence_state", { askAgain: true });
    const asked = frameOrder(reply.id);
    return ((reply.data?.presences ?? []) as PresenceUpdate[]).map((p) => this.overtaking(p.userId, asked) ?? p);
  }

  /**
   * The presence_update of `userId` that arrived after the request numbered `asked` went out, if any: the server
   * pushes a change as it happens, and one pushed while it worked the reply out overtakes the reply, which then held
   * the older state (a contact who had just gone offline shown online, with no later update to correct it).
   */
  private overtaking(userId: string, asked: number): PresenceUpdate | undefined {
    const seen = this.presenceSeen.get(userId);
    // A reply whose id is not ours (NaN) is older than anything seen: no update is put back in time by it.
    return seen && !(seen.after < asked) ? { ...seen.update } : undefined;
  }

  private notePresence(update: PresenceUpdate): void {
    this.presenceSeen.delete(update.userId);
    this.presenceSeen.set(update.userId, { update, after: this.lastIdNumber });
    if (this.presenceSeen.size > PRESENCE_KEPT) this.presenceSeen.delete(this.presenceSeen.keys().next().value!);
  }

  protected path(): string {
    return "/ws";
  }

  protected override onClosed(): void {
    if (this.deliverTimer !== undefined) clearTimeout(this.deliverTimer);
    this.deliverTimer = undefined;
  }

  protected probe(signal: AbortSignal): Promise<void> {
    return this.rest.me({ signal }).then(() => undefined);
  }

  /** Error frames reached no one before (a refused mark, rate limiting): the app hears of them now. */
  private onErrorFrame(frame: Frame): void {
    const error = errorFromFrame(frame.data);
    const mark = frame.id !== undefined ? this.unconfirmed.get(frame.id) : undefined;
    if (mark) this.unconfirmed.delete(frame.id!);
    if (mark && error.isRetryable) {
      // The room could not take it now: the sender would never see "delivered" for it.
      this.want(mark.conversationId, mark.seq);
      this.scheduleDelivered(MARK_RETRY_MS);
      return;
    }
    this.emit("error", error);
  }

  protected onFrame(frame: Frame): void {
    const d = frame.data;
    switch (frame.type) {
      case "connected":
        // Before the app hears of the open (and may set presence itself): a user idle when the network dropped showed
        // `online` to their contacts after every reconnect, although the app had said `away` (or said it while down).
        if (this.presence === "away") this.sendFrame("set_presence", { status: "away" });
        this.emit("connected", d);
        this.markOpen();
        this.flushDelivered();
        return;
      case "notification":
        if (this.autoDeliver) this.markDelivered(d.conversationId as string, (d.message as { seq: number }).seq);
        this.emit(frame.type, d);
        return;
      case "conversation_created":
        // Noted, never dropped for its version: being back in the conversation is what it says.
        this.views.note(d.conversation as Conversation);
        this.emit(frame.type, d);
        return;
      case "conversation_updated":
        if (this.views.note(d.conversation as Conversation)) this.emit(frame.type, d);
        return;
      case "unread_count":
      case "conversation_removed":
        this.emit(frame.type, d);
        return;
      case "presence_update":
        this.notePresence(d as PresenceUpdate);
        this.emit("presence", d);
        return;
      case "presence_state": {
        // The reply to a get_presence that timed out (or a state the server sent of itself, without an id): told
        // as it was, it put back in time a user whose newer presence_update the app already had.
        const asked = frame.id === undefined ? Infinity : frameOrder(frame.id);
        for (const p of (d?.presences ?? []) as PresenceUpdate[]) if (!this.overtaking(p.userId, asked)) this.emit("presence", p);
        return;
      }
      case "heartbeat_ack": {
        const answered = frameOrder(frame.id);
        for (const [id, m] of this.unconfirmed) if (m.order < answered) this.unconfirmed.delete(id);
        return;
      }
      case "error":
        return this.onErrorFrame(frame);
      default:
        return;
    }
  }
}
