import type { Message } from "../../src/client";

/** Where drafts outlive a reload of the tab: sessionStorage (this tab only, and gone with it). */
export type DraftStore = Pick<Storage, "getItem" | "setItem" | "removeItem">;

type Pairs<V> = [string, V][];
const pairs = <V>(raw: unknown, ok: (v: unknown) => v is V): Pairs<V> =>
  Array.isArray(raw) ? raw.filter((p): p is [string, V] => Array.isArray(p) && p.length === 2 && typeof p[0] === "string" && ok(p[1])) : [];
const isText = (v: unknown): v is string => typeof v === "string";
const isEdits = (v: unknown): v is [number, string][] => Array.isArray(v) && v.every((e) => Array.isArray(e) && typeof e[0] === "number" && typeof e[1] === "string");
const isMessage = (v: unknown): v is Message => typeof v === "object" && v !== null && typeof (v as Message).id === "string" && typeof (v as Message).seq === "number";

/**
 * What was written in a conversation's composer and not sent, by conversation id, for this signed-in tab. Every visit
 * makes the conversation's composer anew: opening another conversation (or going back to the list, on a phone)
 * threw away what was being written. With a store (the tab's sessionStorage, under a key of the user's), it also
 * outlives a reload of the page, which threw away everything being written; sign-out forgets it (clear).
 */
export class Drafts {
  private readonly texts = new Map<string, string>();
  private readonly edits = new Map<string, Map<number, string>>();
  private readonly replies = new Map<string, Message>();

  constructor(
    private readonly store?: DraftStore,
    private readonly key = "edge-chat.drafts",
  ) {
    let saved: { texts?: unknown; edits?: unknown; replies?: unknown } | undefined;
    try {
      const raw = store?.getItem(key);
      saved = raw ? (JSON.parse(raw) as typeof saved) : undefined;
    } catch {
      saved = undefined;
    }
    if (!saved || typeof saved !== "object") return;
    for (const [id, text] of pairs(saved.texts, isText)) this.texts.set(id, text);
    for (const [id, edits] of pairs(saved.edits, isEdits)) this.edits.set(id, new Map(edits));
    for (const [id, to] of pairs(saved.replies, isMessage)) this.replies.set(id, to);
  }

  /** Forgets every draft, here and in the store (signed out: the next user of the tab must not find them). */
  clear(): void {
    this.texts.clear();
    this.edits.clear();
    this.replies.clear();
    try {
      this.store?.removeItem(this.key);
    } catch {
      // storage unavailable: nothing was kept there
    }
  }

  private save(): void {
    if (!this.store) return;
    const state = { texts: [...this.texts], edits: [...this.edits].map(([id, m]) => [id, [...m]]), replies: [...this.replies] };
    try {
      if (this.texts.size + this.edits.size + this.replies.size === 0) this.store.removeItem(this.key);
      else this.store.setItem(this.key, JSON.stringify(state));
    } catch {
      // storage full or disabled: the drafts last until the page is reloaded, as before
    }
  }

  /** Kept as written (lines and all); a box left empty or blank forgets the conversation's draft. */
  keep(conversationId: string, text: string): void {
    if (text.trim()) this.texts.set(conversationId, text);
    else this.texts.delete(conversationId);
    this.save();
  }

  /** The draft to put back in the box, once: the box holds it from then on. */
  take(conversationId: string): string {
    const text = this.texts.get(conversationId) ?? "";
    if (this.texts.delete(conversationId)) this.save();
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
    this.save();
  }

  /** The reply to resume, once: the composer holds it from then on. */
  takeReply(conversationId: string): Message | undefined {
    const to = this.replies.get(conversationId);
    if (this.replies.delete(conversationId)) this.save();
    return to;
  }

  /**
   * Edits of messages open when the conversation was left, by seq, with the text as it stood: leaving threw the edit
   * away (drafts covered the composer only). Replaces what was kept for the conversation.
   */
  keepEdits(conversationId: string, edits: ReadonlyMap<number, string>): void {
    if (edits.size > 0) this.edits.set(conversationId, new Map(edits));
    else this.edits.delete(conversationId);
    this.save();
  }

  /** The edits to open again, once: the view holds them from then on. */
  takeEdits(conversationId: string): Map<number, string> {
    const edits = this.edits.get(conversationId) ?? new Map<number, string>();
    if (this.edits.delete(conversationId)) this.save();
    return edits;
  }
}
