import type { Message } from "../../src/client";
import type { App } from "./app";
import { h } from "./dom";

export const PAGE = 50;

/** What loading older pages needs from the conversation. */
export interface PagesHost {
  readonly app: App;
  readonly id: string;
  /** The conversation's newest seq as known: where the archive starts when no history was shown. */
  lastSeq(): number;
  isGone(): boolean;
  /** The list of stored messages (busy while a page loads). */
  readonly log: HTMLElement;
  readonly scroller: HTMLElement;
  /** Draws a page's messages. */
  draw(messages: readonly Message[]): void;
  /** Focuses a drawn message (nothing when it is not drawn). */
  focus(seq: number): void;
  showBanner(text: string): void;
}

/**
 * Older messages on scroll-back or "Load older messages": pages of the history, then of the archive, until "This is
 * the beginning of the conversation".
 */
export class OlderPages {
  readonly button: HTMLButtonElement;
  /** "This is the beginning of the conversation." */
  readonly start: HTMLElement;
  private oldest = Infinity;
  private more = false;
  /**
   * Where older pages come from. History ends at the archive mark (the retention job moved what is below it), and
   * seqs are dense from 1: a history whose first message is above seq 1 goes on in the archive. The view said "This
   * is the beginning of the conversation" there, and the archived messages could not be reached.
   */
  private from: "history" | "archive" = "history";
  private loading: Promise<void> | undefined;

  constructor(private readonly host: PagesHost) {
    this.button = h("button", { class: "ghost small older", attrs: { type: "button", hidden: true }, text: "Load older messages", on: { click: () => void this.load(true) } });
    this.start = h("p", { class: "history-start", attrs: { hidden: true }, text: "This is the beginning of the conversation." });
  }

  /** The oldest seq drawn (Infinity while none is). */
  get oldestSeq(): number {
    return this.oldest;
  }

  get hasMore(): boolean {
    return this.more;
  }

  /** A message was drawn. */
  seen(seq: number): void {
    if (seq < this.oldest) this.oldest = seq;
  }

  /** The newest page was drawn on opening: older ones follow if it said so, or if the archive goes on below it. */
  firstPage(hasMore: boolean): void {
    this.more = hasMore;
    this.continueIntoArchive();
    this.updateEdge();
  }

  /** No history was drawn (it failed to load): everything up to the live socket's newest seq is older. */
  startBelow(lastSeq: number): void {
    this.oldest = lastSeq + 1;
    this.more = lastSeq > 0;
  }

  /** Loads the page before the oldest message shown, keeping the visible messages where they are. */
  load(fromButton: boolean): Promise<void> {
    const { app, id, scroller, log } = this.host;
    const fromArchive = this.from === "archive";
    if (!this.more || this.loading || (!fromArchive && !Number.isFinite(this.oldest))) return this.loading ?? Promise.resolve();
    this.button.textContent = "Loading older messages…";
    this.button.disabled = true;
    this.loading = (async () => {
      try {
        log.setAttribute("aria-busy", "true");
        // The archive's newest page when nothing is shown (every message was archived).
        const before = Number.isFinite(this.oldest) ? this.oldest : undefined;
        const page = fromArchive ? await app.chat.listArchivedMessages(id, { before, limit: PAGE }) : await app.chat.listMessages(id, { before: this.oldest, limit: PAGE });
        if (this.host.isGone()) return;
        const height = scroller.scrollHeight;
        const top = scroller.scrollTop;
        this.host.draw(page.messages);
        this.more = page.hasMore && page.messages.length > 0;
        if (!fromArchive) this.continueIntoArchive();
        scroller.scrollTop = top + (scroller.scrollHeight - height);
        if (fromButton) this.host.focus(page.messages.at(-1)?.seq ?? -1);
      } catch (err) {
        this.host.showBanner(`Could not load older messages: ${(err as Error).message}`);
      } finally {
        log.removeAttribute("aria-busy");
        this.loading = undefined;
        this.button.disabled = false;
        this.button.textContent = "Load older messages";
        this.updateEdge();
      }
    })();
    return this.loading;
  }

  /** At the end of the history: below its first message (or below the newest seq, when it had none) is the archive. */
  private continueIntoArchive(): void {
    if (this.more || this.from === "archive") return;
    const first = Number.isFinite(this.oldest) ? this.oldest : this.host.lastSeq() + 1;
    if (first <= 1) return;
    this.from = "archive";
    this.more = true;
  }

  private updateEdge(): void {
    this.button.hidden = !this.more;
    this.start.hidden = this.more;
  }
}
