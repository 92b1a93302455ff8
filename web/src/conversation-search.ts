import type { Message, SearchResult } from "../../src/client";
import type { App } from "./app";
import { h, replace } from "./dom";
import { messageTime } from "./format";
import { searchExcerpt } from "./excerpt";
import { searchSnippet } from "./attachments";

const SEARCH_PAGE = 20;

/** What the search needs from the conversation it searches. */
export interface SearchHost {
  readonly app: App;
  readonly id: string;
  /** Shows a message, loading older pages to reach it. */
  jumpTo(seq: number): void;
  showBanner(text: string): void;
}

/** Search in one conversation: the form (in the header) and the panel of results above the messages. */
export class ConversationSearch {
  readonly form: HTMLFormElement;
  readonly panel: HTMLElement;
  private readonly input: HTMLInputElement;
  /** Bumped by every search: a page (or a "More results" page) of an older search is not shown. */
  private run = 0;

  constructor(private readonly host: SearchHost) {
    this.input = h("input", { attrs: { id: "search-input", type: "search", placeholder: "Search messages", autocomplete: "off", maxlength: 500 } });
    this.panel = h("section", { class: "search-panel", attrs: { hidden: true, "aria-labelledby": "search-title" } });
    this.form = h(
      "form",
      { class: "search", attrs: { role: "search" }, on: { submit: (e) => (e.preventDefault(), void this.search()) } },
      h("label", { class: "vh", attrs: { for: "search-input" }, text: "Search messages" }),
      this.input,
      h("button", { class: "ghost small", attrs: { type: "submit" }, text: "Search" }),
    );
  }

  get isOpen(): boolean {
    return !this.panel.hidden;
  }

  private async search(): Promise<void> {
    const { app, id } = this.host;
    const q = this.input.value.trim();
    if (!q) return;
    const run = ++this.run;
    replace(this.panel, h("p", { attrs: { role: "status" }, text: "Searching…" }));
    this.panel.hidden = false;
    try {
      const first = await app.chat.searchMessages(id, q, { limit: SEARCH_PAGE });
      if (run !== this.run) return;
      const title = h("h3", { attrs: { id: "search-title", tabindex: -1 } });
      const list = h("ol", { class: "search-results" });
      const more = h("button", { class: "ghost small", attrs: { type: "button" }, text: "More results" });
      const close = h("button", { class: "ghost small", attrs: { type: "button" }, text: "Close search", on: { click: () => this.close() } });
      let cursor: string | null = null;
      // Each page is added below the last; the heading counts what is listed, with "+" while more remain.
      const show = (page: SearchResult) => {
        for (const m of page.messages) app.dir.learnMessage(m);
        list.append(...page.messages.map((m) => this.result(m, q)));
        cursor = page.nextCursor;
        const n = list.childElementCount;
        title.textContent = `${n === 0 && !cursor ? "No" : `${n}${cursor ? "+" : ""}`} result${n === 1 && !cursor ? "" : "s"} for “${q}”`;
        more.hidden = !cursor;
      };
      more.addEventListener("click", () => {
        if (!cursor || more.disabled) return;
        more.disabled = true;
        void app.chat
          .searchMessages(id, q, { limit: SEARCH_PAGE, cursor })
          .then((page) => run === this.run && show(page))
          .catch((err: Error) => run === this.run && this.host.showBanner(`Search failed: ${err.message}`))
          .finally(() => (more.disabled = false));
      });
      show(first);
      replace(this.panel, h("div", { class: "search-head" }, title, close), list, more);
      title.focus();
    } catch (err) {
      if (run === this.run) replace(this.panel, h("p", { attrs: { role: "alert" }, text: `Search failed: ${(err as Error).message}` }));
    }
  }

  private result(m: Message, q: string): HTMLLIElement {
    const { app } = this.host;
    return h(
      "li",
      {},
      h(
        "button",
        { class: "result", attrs: { type: "button" }, on: { click: () => this.host.jumpTo(m.seq) } },
        h("span", { class: "meta" }, h("span", { class: "sender", attrs: { dir: "auto" }, text: m.senderId === app.me ? "You" : app.dir.name(m.senderId) }), h("time", { attrs: { datetime: m.createdAt }, text: messageTime(m.createdAt) })),
        h("span", { class: "text", attrs: { dir: "auto" } }, ...highlight(searchSnippet(m), q)),
      ),
    );
  }

  close(): void {
    this.panel.hidden = true;
    replace(this.panel);
    this.input.focus();
  }
}

/** The result's excerpt with what the search matched wrapped in <mark>, built as nodes (never markup). */
function highlight(message: string, q: string): (string | HTMLElement)[] {
  const { text, marks } = searchExcerpt(message, q);
  const out: (string | HTMLElement)[] = [];
  let at = 0;
  for (const [start, end] of marks) {
    if (start > at) out.push(text.slice(at, start));
    out.push(h("mark", { text: text.slice(start, end) }));
    at = end;
  }
  if (at < text.length || out.length === 0) out.push(text.slice(at));
  return out;
}
