import type { Message } from "../../src/client";
import { h } from "./dom";
import { fullTime, messageTime } from "./format";
import { renderBody } from "./message-body";

/** What a stored message's bubble shows besides the message, and what its buttons do. */
export interface BubbleOptions {
  /** The sender as shown ("You" for mine). */
  sender: string;
  own: boolean;
  /** The first message unread on opening: "New messages" above it. */
  firstUnread: boolean;
  /** What it answers (see the view's replyLine). */
  replyLine: HTMLElement | null;
  mayDelete: boolean;
  edit(button: HTMLButtonElement): void;
  reply(): void;
  delete(button: HTMLButtonElement): void;
  /** A picture in it has loaded (and grown). */
  imageLoaded(img: HTMLImageElement): void;
}

/** Buttons are no news: kept out of what the messages' live region reads when they come or go. */
export function actionsBox(): HTMLElement {
  return h("div", { class: "actions", attrs: { "aria-live": "off" } });
}

export function deleteButton(onClick: (button: HTMLButtonElement) => void): HTMLButtonElement {
  const del = h("button", { class: "link small danger delete", attrs: { type: "button", "aria-label": "Delete message" }, text: "Delete" });
  del.addEventListener("click", () => onClick(del));
  return del;
}

/** A stored message as drawn in the history: meta line, reply quote, body, ticks on mine, and its buttons. */
export function messageBubble(m: Message, o: BubbleOptions): HTMLLIElement {
  const { own } = o;
  const deleted = m.deletedAt !== null;
  const actions = actionsBox();
  // An image's or a file's content is its address: not text to edit.
  if (own && !deleted && m.type === "text") {
    const edit = h("button", { class: "link small", attrs: { type: "button", "aria-label": "Edit message" }, text: "Edit" });
    edit.addEventListener("click", () => o.edit(edit));
    actions.append(edit);
  }
  if (!deleted) {
    const reply = h("button", { class: "link small", attrs: { type: "button", "aria-label": "Reply to message" }, text: "Reply" });
    reply.addEventListener("click", () => o.reply());
    actions.prepend(reply);
  }
  if (o.mayDelete) actions.append(deleteButton(o.delete));
  return h(
    "li",
    {
      class: `msg ${own ? "own" : "other"}${deleted ? " deleted" : ""}`,
      attrs: { id: `msg-${m.seq}`, tabindex: -1 },
      data: own ? { seq: String(m.seq) } : { seq: String(m.seq), sender: m.senderId },
    },
    o.firstUnread ? h("p", { class: "unread-divider", text: "New messages" }) : null,
    h(
      "div",
      { class: "bubble" },
      h(
        "div",
        { class: "meta" },
        h("span", { class: "sender", attrs: { dir: "auto" }, text: o.sender }),
        h("time", { attrs: { datetime: m.createdAt, title: fullTime(m.createdAt) }, text: messageTime(m.createdAt) }),
        m.editedAt && !deleted ? h("span", { class: "edited", text: "(edited)" }) : null,
      ),
      o.replyLine,
      renderBody(m, o.imageLoaded),
      own && !deleted ? h("span", { class: "ticks", attrs: { role: "img" } }) : null,
    ),
    actions.childElementCount ? actions : null,
  );
}

/** The ticks on one of my messages: sent, delivered (to everyone else) or read (by everyone else). */
export function showTicks(ticks: HTMLElement, state: "sent" | "delivered" | "read"): void {
  if (ticks.dataset.state === state) return;
  ticks.dataset.state = state;
  ticks.className = `ticks ${state}`;
  ticks.textContent = state === "sent" ? "✓" : "✓✓";
  ticks.setAttribute("aria-label", state === "read" ? "Read" : state === "delivered" ? "Delivered" : "Sent");
  ticks.title = ticks.getAttribute("aria-label")!;
}
