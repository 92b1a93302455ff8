import type { ChatRest } from "./rest";
import { RealtimeSocket, type Frame, type SocketOptions } from "./socket";
import type { PresenceUpdate, UserEvents } from "./types";

export interface UserSocketOptions extends SocketOptions {
  /**
   * Tell senders a message reached this device when its `notification` arrives (the conversation need not be open),
   * so they see "delivered". Marks are coalesced per conversation. Default true.
   */
  autoDeliver?: boolean;
}

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
  private deliverTimer: ReturnType<typeof setTimeout> | undefined;
  /** What the app last said (setPresence): a new socket starts `online`, so `away` is said again on each connect. */
  private presence: "online" | "away" = "online";

  constructor(rest: ChatRest, wsBase: string, options: UserSocketOptions = {}) {
    super(rest, wsBase, options);
    this.autoDeliver = options.autoDeliver ?? true;
  }

  /** Tells the senders that this device received the conversation's messages up to `seq`. */
  markDelivered(conversationId: string, seq: number): void {
    if (seq > (this.undelivered.get(conversationId) ?? 0)) this.undelivered.set(conversationId, seq);
    this.deliverTimer ??= setTimeout(() => {
      this.deliverTimer = undefined;
      this.flushDelivered();
    }, 200);
  }

  private flushDelivered(): void {
    for (const [conversationId, seq] of this.undelivered) {
      if (!this.sendFrame("mark_delivered", { conversationId, seq })) return;
      this.undelivered.delete(conversationId);
    }
  }

  /** `away` when the user is idle, `online` when back. */
  setPresence(status: "online" | "away"): void {
    this.presence = status;
    this.sendFrame("set_presence", { status });
  }

  /** Current presence of users who share a conversation with you (others are left out). */
  async getPresence(userIds: string[]): Promise<PresenceUpdate[]> {
    if (userIds.length === 0) return [];
    const reply = await this.request("get_presence", { userIds: [...new Set(userIds)].slice(0, 200) }, "presence_state");
    return (reply.data?.presences ?? []) as PresenceUpdate[];
  }

  protected path(): string {
    return "/ws";
  }

  protected override onClosed(): void {
    if (this.deliverTimer !== undefined) clearTimeout(this.deliverTimer);
    this.deliverTimer = undefined;
  }

  protected probe(): Promise<void> {
    return this.rest.me().then(() => undefined);
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
      case "unread_count":
      case "conversation_created":
      case "conversation_updated":
      case "conversation_removed":
        this.emit(frame.type, d);
        return;
      case "presence_update":
        this.emit("presence", d);
        return;
      case "presence_state":
        for (const p of (d?.presences ?? []) as PresenceUpdate[]) this.emit("presence", p);
        return;
      default:
        return;
    }
  }
}
