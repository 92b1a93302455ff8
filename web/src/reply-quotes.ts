import type { Message } from "../../src/client";
import type { App } from "./app";
import { h, setText } from "./dom";
import { replyQuote } from "./reply";

/** What the quotes above replies need from their conversation. */
export interface QuotesHost {
  readonly app: App;
  readonly id: string;
  /** A message loaded here, by id. */
  loaded(id: string): Message | undefined;
  /** The seq of a message loaded here, by id. */
  seqOf(id: string): number | undefined;
  jumpTo(seq: number): void;
  isGone(): boolean;
  /** Where the quotes are drawn (stored messages and those still Sending… or Not sent). */
  readonly root: HTMLElement;
}

/** The line above each reply saying what it answers, fetching (once) a message answered that is not loaded here. */
export class ReplyQuotes {
  /** Messages answered by a reply drawn here but not loaded themselves (an older page): fetched once, by id. */
  private readonly targets = new Map<string, Message | "fetching">();

  constructor(private readonly host: QuotesHost) {}

  /** True when a reply drawn here answers this message, not loaded when it was drawn. */
  awaits(id: string): boolean {
    return this.targets.has(id);
  }

  /** What a reply answers, above its text; pressed, it shows that message (loading older pages to reach it). */
  line(m: Pick<Message, "replyToId" | "deletedAt">): HTMLElement | null {
    const { app } = this.host;
    const id = m.replyToId;
    if (!id || m.deletedAt) return null;
    const target = this.target(id);
    return h("button", {
      class: "reply-quote",
      attrs: { type: "button", dir: "auto" },
      data: { replyTo: id },
      text: replyQuote(target, app.me, app.dir),
      on: {
        click: () => {
          const seq = this.host.seqOf(id) ?? this.target(id)?.seq;
          if (seq !== undefined) this.host.jumpTo(seq);
        },
      },
    });
  }

  /** The message a reply answers, as loaded here or fetched; starts the fetch when it is neither. */
  private target(id: string): Message | undefined {
    if (this.host.seqOf(id) !== undefined) return this.host.loaded(id);
    const fetched = this.targets.get(id);
    if (fetched === "fetching") return undefined;
    if (fetched) return fetched;
    this.targets.set(id, "fetching");
    void this.host.app.chat.getMessage(this.host.id, id).then(
      (target) => {
        this.targets.set(id, target);
        if (!this.host.isGone()) this.refresh(id);
      },
      // Not found (or not readable): the quote keeps saying "an earlier message".
      () => {},
    );
    return undefined;
  }

  /** Redraws the quotes of replies to one message (or all, after names changed). */
  refresh(id?: string): void {
    const { app } = this.host;
    for (const quote of this.host.root.querySelectorAll<HTMLElement>(".reply-quote")) {
      const to = quote.dataset.replyTo;
      if (to && (id === undefined || to === id)) setText(quote, replyQuote(this.target(to), app.me, app.dir));
    }
  }
}
