import type { Message } from "../../src/client";
import { messageBody, textRuns } from "./attachments";
import { h, replace } from "./dom";

const external = { target: "_blank", rel: "noopener noreferrer" } as const;

/**
 * A bubble's content: text as text (its web addresses as links), an image as a picture opening full size, a file as
 * a named link. An image or file message showed its URL as text. Links only ever come from safeUrl (http(s)); nothing
 * is ever set as markup. `loaded` is told when a picture has loaded (and grown).
 */
export function renderBody(m: Message, loaded: (img: HTMLImageElement) => void): HTMLElement {
  const body = messageBody(m);
  switch (body.kind) {
    case "deleted":
      return h("p", { class: "text", text: "This message was deleted" });
    case "image": {
      const img = h("img", { class: "msg-image", attrs: { src: body.url, alt: `Image: ${body.name}`, loading: "lazy", referrerpolicy: "no-referrer" } });
      const link = h("a", { class: "text attachment", attrs: { href: body.url, ...external } }, img);
      img.addEventListener("load", () => loaded(img));
      // A picture that cannot be shown (gone, not an image) is still reachable by its link, named.
      img.addEventListener("error", () => replace(link, `Image: ${body.name} (could not be shown)`), { once: true });
      return link;
    }
    case "file":
      return h("a", { class: "text attachment file", attrs: { href: body.url, ...external, dir: "auto" }, text: `File: ${body.name}` });
    case "bad-link":
      return h("p", { class: "text" }, h("span", { class: "attachment-note", text: `${body.label} ` }), h("span", { attrs: { dir: "auto" }, text: body.text }));
    default:
      // Each text sets its own direction (Arabic, Hebrew): in the page's left-to-right, a right-to-left message was
      // aligned left with its punctuation at the wrong end.
      return h(
        "p",
        { class: "text", attrs: { dir: "auto" } },
        ...textRuns(body.text).map((r) => (r.url ? h("a", { attrs: { href: r.url, ...external }, text: r.text }) : r.text)),
      );
  }
}
