import type { MessageType } from "./types";

/** A message the server has not acknowledged yet. Kept in memory only (nothing is persisted). */
export interface OutboxEntry {
  clientMessageId: string;
  content: string;
  type: Exclude<MessageType, "system">;
  replyToId: string | null;
  /** When the app asked to send it (ISO-8601). */
  createdAt: string;
  /** How many times a send_message frame carried it. */
  attempts: number;
  /** Epoch ms of the last transmission on the current connection; undefined: not sent on it yet. */
  sentAt?: number;
  /** Frame id of the last transmission (an error frame names it). */
  frameId?: string;
  /** Epoch ms before which it must not be sent again (after a transient refusal). */
  notBefore?: number;
  /** Transient refusals on the current connection: the retry delay grows with them. */
  refusals?: number;
}

/**
 * The ordered list of unacknowledged messages. An entry leaves only when the server acknowledged it (message_ack,
 * or its own new_message seen on the socket) or refused it for good (a 4xx); retries reuse its clientMessageId, so the
 * server stores it once however often it is sent.
 */
export class Outbox {
  private readonly entries = new Map<string, OutboxEntry>();

  get size(): number {
    return this.entries.size;
  }

  list(): OutboxEntry[] {
    return [...this.entries.values()].map((e) => ({ ...e }));
  }

  has(clientMessageId: string): boolean {
    return this.entries.has(clientMessageId);
  }

  get(clientMessageId: string): OutboxEntry | undefined {
    return this.entries.get(clientMessageId);
  }

  add(entry: Omit<OutboxEntry, "attempts">): OutboxEntry {
    const existing = this.entries.get(entry.clientMessageId);
    if (existing) return existing;
    const e: OutboxEntry = { ...entry, attempts: 0 };
    this.entries.set(e.clientMessageId, e);
    return e;
  }

  remove(clientMessageId: string): OutboxEntry | undefined {
    const e = this.entries.get(clientMessageId);
    this.entries.delete(clientMessageId);
    return e;
  }

  byFrameId(frameId: string): OutboxEntry | undefined {
    for (const e of this.entries.values()) if (e.frameId === frameId) return e;
    return undefined;
  }

  /**
   * A new connection: nothing has been sent on it yet, and nothing refused on it. The reason of a refusal (a rate
   * window, a room that was unavailable) need not hold on a fresh connection: a message held back after many refusals
   * waited out its retry delay (up to 30 s) after the reconnect, and the next refusal's delay started there.
   */
  connectionChanged(): void {
    for (const e of this.entries.values()) {
      e.sentAt = undefined;
      e.frameId = undefined;
      e.notBefore = undefined;
      e.refusals = undefined;
    }
  }

  /**
   * The entry to transmit now, if any: the oldest, when it was never sent on this connection or is unacknowledged
   * for ackTimeoutMs, and not held back after a transient refusal. One at a time: a message sent while the one before
   * it was unacknowledged was stored first when the room refused that one for the moment, and the conversation showed
   * the user's messages out of the order they were written.
   */
  next(now: number, ackTimeoutMs: number): OutboxEntry | undefined {
    const head = this.entries.values().next().value;
    if (!head || (head.notBefore !== undefined && head.notBefore > now)) return undefined;
    return head.sentAt === undefined || now - head.sentAt >= ackTimeoutMs ? head : undefined;
  }

  /** Epoch ms before which the oldest entry must not be sent (held back after a transient refusal), if it is. */
  heldUntil(): number | undefined {
    return this.entries.values().next().value?.notBefore;
  }

  /** Entries sent on this connection and not acknowledged yet, oldest first. */
  inFlight(): OutboxEntry[] {
    return [...this.entries.values()].filter((e) => e.sentAt !== undefined).map((e) => ({ ...e }));
  }

  markSent(clientMessageId: string, now: number, frameId: string): void {
    const e = this.entries.get(clientMessageId);
    if (!e) return;
    e.attempts++;
    e.sentAt = now;
    e.frameId = frameId;
    e.notBefore = undefined;
  }

  /** A transient refusal (rate limited, unavailable): send again after `delayMs`. */
  retryLater(clientMessageId: string, now: number, delayMs: number): void {
    const e = this.entries.get(clientMessageId);
    if (!e) return;
    e.refusals = (e.refusals ?? 0) + 1;
    e.sentAt = undefined;
    e.frameId = undefined;
    e.notBefore = now + delayMs;
  }
}
