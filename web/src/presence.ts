import type { PresenceStatus, PresenceUpdate } from "../../src/client";

export interface Seen {
  status: PresenceStatus;
  lastSeen: string | null;
}

/**
 * Other users' presence as the app shows it: from pushes (presence_update) and from reads (get_presence, on connect
 * and after each reconnect). A read answered after a push of a later change (a peer going offline while the read was
 * under way) put the older state back: the dot said Online until that peer's next change.
 */
export class PresenceBook {
  private readonly seen = new Map<string, Seen>();
  private readonly reads = new Set<Set<string>>();

  get(userId: string): Seen | undefined {
    return this.seen.get(userId);
  }

  status(userId: string): PresenceStatus {
    return this.seen.get(userId)?.status ?? "offline";
  }

  /** A pushed change, the newest news of that user. True when what is shown changes. */
  push(update: PresenceUpdate): boolean {
    for (const pushed of this.reads) pushed.add(update.userId);
    return this.set(update);
  }

  /** Starts a read; its answer applies to the users no push named meanwhile. */
  read(): { apply(answer: readonly PresenceUpdate[]): boolean; end(): void } {
    const pushed = new Set<string>();
    this.reads.add(pushed);
    return {
      apply: (answer) => {
        let changed = false;
        for (const update of answer) if (!pushed.has(update.userId)) changed = this.set(update) || changed;
        return changed;
      },
      end: () => void this.reads.delete(pushed),
    };
  }

  private set(update: PresenceUpdate): boolean {
    const held = this.seen.get(update.userId);
    const lastSeen = update.lastSeen ?? held?.lastSeen ?? null;
    if (held && held.status === update.status && held.lastSeen === lastSeen) return false;
    this.seen.set(update.userId, { status: update.status, lastSeen });
    return true;
  }
}
