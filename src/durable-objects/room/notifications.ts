import type { Message } from "../../protocol/resources";

export interface Recipient {
  userId: string;
  isMuted: boolean;
  /** Their read mark as the room holds it when the batch goes. */
  lastReadSeq: number;
}

export interface NotificationDeps {
  recipients(): Recipient[];
  /**
   * The message as the room holds it when its batch goes out; undefined once deleted. A notification follows the
   * commit (or the write-through deadline), and the sender may have deleted or edited the message meanwhile.
   */
  current(message: Message): Message | undefined;
  /** One call per recipient per batch: the user's session gets every message of the batch at once. */
  deliver(userId: string, batch: { conversationId: string; messages: Message[]; muted: boolean }): Promise<void>;
  /** Keeps the object alive until the batch is out (ctx.waitUntil). */
  keepAlive(work: Promise<void>): void;
  onFailed(failed: number, recipients: number): void;
}

/**
 * New-message notifications for the participants' user sessions. While one batch is on its way, later messages
 * queue and go out together: a busy room costs one RPC per recipient per round trip, not one per message. Order is
 * kept (a batch only starts when the previous one is done). Notifications are best effort: a user session also
 * recomputes badges from Postgres when a device connects.
 */
export class NotificationBatcher {
  private queue: Message[] = [];
  private draining = false;

  constructor(private readonly deps: NotificationDeps) {}

  push(message: Message): void {
    this.queue.push(message);
    if (this.draining) return;
    this.draining = true;
    // A task of its own: the ack the sender is waiting for goes out first.
    this.deps.keepAlive(new Promise((resolve) => setTimeout(resolve, 0)).then(() => this.drain()));
  }

  private async drain(): Promise<void> {
    try {
      while (this.queue.length > 0) {
        const batch = this.queue.splice(0);
        await this.send(batch);
      }
    } finally {
      this.draining = false;
    }
  }

  private async send(queued: Message[]): Promise<void> {
    // Read when the batch goes, not when it was queued: a deleted message's text must not reach anyone's lock screen.
    const batch = queued.flatMap((m) => this.deps.current(m) ?? []);
    if (batch.length === 0) return;
    const conversationId = batch[0].conversationId;
    const recipients = this.deps.recipients();
    const calls: Promise<void>[] = [];
    for (const r of recipients) {
      // A message the user read meanwhile (on a device with the conversation open: it gets new_message before the
      // commit this batch waited for) would notify, and count on the badge of, every other device for nothing.
      const theirs = batch.filter((m) => m.senderId !== r.userId && m.seq > r.lastReadSeq);
      if (theirs.length > 0) calls.push(this.deps.deliver(r.userId, { conversationId, messages: theirs, muted: r.isMuted }));
    }
    const failed = (await Promise.allSettled(calls)).filter((c) => c.status === "rejected").length;
    if (failed) this.deps.onFailed(failed, calls.length);
  }
}
