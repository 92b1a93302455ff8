import type { OutboxEntry } from "../../src/client";
import type { App, FailedMessage } from "./app";
import { h } from "./dom";
import { mayRetry } from "./not-sent";

/** A message written here and not stored yet: its text and the message it answers. */
export type Draft = Pick<OutboxEntry, "clientMessageId" | "content"> & { replyToId?: string | null };

/** What the list of messages being sent needs from its conversation. */
export interface PendingHost {
  readonly app: App;
  readonly id: string;
  /** The line saying what a reply answers (null when it answers nothing). */
  replyLine(replyToId: string | null): HTMLElement | null;
  /** A message just written: the newest messages are shown. */
  showNewest(): void;
  /** Why nothing can be sent now (the socket closed for good: `reason` is its own), or undefined when it can. */
  refusal(): { reason: string | undefined } | undefined;
  /** Sends a refused message again, under its clientMessageId. */
  resend(f: FailedMessage): void;
  focusComposer(): void;
}

/** Messages not stored yet (Sending…) or refused (Not sent, with Retry or Dismiss), below the stored ones. */
export class PendingMessages {
  readonly list: HTMLOListElement;
  /** By clientMessageId, with their text. */
  private readonly nodes = new Map<string, { node: HTMLLIElement; content: string; replyToId?: string | null }>();

  constructor(private readonly host: PendingHost) {
    this.list = h("ol", { class: "messages pending-list", attrs: { "aria-label": "Messages being sent" } });
  }

  /** The message drawn under this clientMessageId, if any. */
  drawn(clientMessageId: string): Draft | undefined {
    const p = this.nodes.get(clientMessageId);
    return p && { clientMessageId, content: p.content, replyToId: p.replyToId };
  }

  /** The outbox as it now stands: the messages it no longer holds (stored) go, unless they were refused. */
  render(pending: readonly Draft[]): void {
    const ids = new Set(pending.map((p) => p.clientMessageId));
    for (const [cmid, { node }] of this.nodes) {
      if (!ids.has(cmid) && !node.classList.contains("failed")) {
        node.remove();
        this.nodes.delete(cmid);
      }
    }
    // Only a message just written shows the bottom: every acknowledgement of the rest of a queue pulled a reader of
    // older messages back down.
    const drawn = this.nodes.size;
    for (const p of pending) this.node(p);
    if (this.nodes.size > drawn) this.host.showNewest();
  }

  /** The Sending… node of a message, drawn once. */
  private node(p: Draft): HTMLLIElement {
    const known = this.nodes.get(p.clientMessageId);
    if (known) return known.node;
    const node = h(
      "li",
      { class: "msg own pending", data: { cmid: p.clientMessageId } },
      h(
        "div",
        { class: "bubble" },
        h("div", { class: "meta" }, h("span", { class: "sender", text: "You" }), h("span", { class: "state", text: "Sending…" })),
        // What it answers, as once stored: a reply written offline, or refused, showed as a message on its own.
        this.host.replyLine(p.replyToId ?? null),
        h("p", { class: "text", attrs: { dir: "auto" }, text: p.content }),
      ),
    );
    this.nodes.set(p.clientMessageId, { node, content: p.content, replyToId: p.replyToId });
    this.list.append(node);
    return node;
  }

  markFailed(f: FailedMessage): void {
    const node = this.node(f);
    if (node.classList.contains("failed")) return;
    node.classList.add("failed");
    const state = node.querySelector(".state");
    if (state) state.textContent = `Not sent: ${f.error.message}`;
    const dismiss = () => {
      node.remove();
      this.nodes.delete(f.clientMessageId);
      this.host.app.dismissFailed(this.host.id, f.clientMessageId);
      this.host.focusComposer();
    };
    const actions = h("div", { class: "actions" });
    // Only where a second try can pass (see mayRetry): a refusal of the message itself would only come back.
    if (mayRetry(f.error)) {
      actions.append(h("button", { class: "link small", attrs: { type: "button" }, text: "Retry", on: { click: () => this.retry(f, node, actions) } }));
    }
    actions.append(h("button", { class: "link small", attrs: { type: "button" }, text: "Dismiss", on: { click: dismiss } }));
    node.append(actions);
  }

  /**
   * Sends a refused message again under its clientMessageId: if the first try was stored after all, the server answers
   * with that message instead of storing a second one, and a double click finds it in the outbox already.
   */
  private retry(f: FailedMessage, node: HTMLLIElement, actions: HTMLElement): void {
    const state = node.querySelector(".state");
    const refused = this.host.refusal();
    if (refused) {
      if (state) state.textContent = `Not sent: ${refused.reason ?? f.error.message}`;
      return;
    }
    actions.remove();
    node.classList.remove("failed");
    if (state) state.textContent = "Sending…";
    this.host.app.dismissFailed(this.host.id, f.clientMessageId);
    this.host.resend(f);
    this.host.focusComposer();
  }
}
