import type { Message } from "../../src/client";

/**
 * What was written in a conversation's composer and not sent, by conversation id, for this signed-in tab. Every visit
 * makes the conversation's composer anew: opening another conversation (or going back to the list, on a phone)
 * threw away what was being written.
 */
export class Drafts {
  private readonly texts = new Map<string, string>();
  private readonly edits = new Map<string, Map<number, string>>();
  private readonly replies = new Map<string, Message>();

  /** Kept as written (lines and all); a box left empty or blank forgets the conversation's draft. */
  keep(conversationId: string, text: string): void {
    if (text.trim()) this.texts.set(conversationId, text);
    else this.texts.delete(conversationId);
  }

  /** The draft to put back in the box, once: the box holds it from then on. */
  take(conversationId: string): string {
    const text = this.texts.get(conversationId) ?? "";
    this.texts.delete(conversationId);
    return text;
  }

  /**
   * The message the composer's next message answers (Reply pressed, not sent or cancelled): the text came back on the
   * next visit, and the reply it was written as did not, so it went out as a message on its own. Kept even with no
   * text yet.
   */
  keepReply(conversationId: string, to: Message | undefined): void {
    if (to) this.replies.set(conversationId, to);
    else this.replies.delete(conversationId);
  }

  /** The reply to resume, once: the composer holds it from then on. */
  takeReply(conversationId: string): Message | undefined {
    const to = this.replies.get(conversationId);
    this.replies.delete(conversationId);
    return to;
  }

  /**
   * Edits of messages open when the conversation was left, by seq, with the text as it stood: leaving threw the edit
   * away (drafts covered the composer only). Replaces what was kept for the conversation.
   */
  keepEdits(conversationId: string, edits: ReadonlyMap<number, string>): void {
    if (edits.size > 0) this.edits.set(conversationId, new Map(edits));
    else this.edits.delete(conversationId);
  }

  /** The edits to open again, once: the view holds them from then on. */
  takeEdits(conversationId: string): Map<number, string> {
    const edits = this.edits.get(conversationId) ?? new Map<number, string>();
    this.edits.delete(conversationId);
    return edits;
  }
}
