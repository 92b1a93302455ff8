import type { Message } from "../../src/client";

/**
 * Edits and deletes of messages not loaded here, by seq, for when their page comes: a page read before the change
 * and answered after it brought back the deleted message, or the old text, until a reload.
 */
export class UnloadedChanges {
  private readonly changes = new Map<number, { edited?: Message; deletedAt?: string }>();

  edited(m: Message): void {
    this.changes.set(m.seq, { ...this.changes.get(m.seq), edited: m });
  }

  deleted(seq: number, at: string): void {
    this.changes.set(seq, { deletedAt: at });
  }

  /** The message as changed since, when the change is newer than what arrived; the change is then used up. */
  apply(m: Message): Message {
    const change = this.changes.get(m.seq);
    if (!change) return m;
    this.changes.delete(m.seq);
    if (m.deletedAt) return m;
    if (change.deletedAt) return { ...m, content: "", deletedAt: change.deletedAt };
    const edited = change.edited;
    return edited && edited.id === m.id && edited.editedAt !== null && (m.editedAt === null || edited.editedAt > m.editedAt) ? edited : m;
  }
}
