import type { Message } from "../../src/client";
import type { App } from "./app";
import { h, setText } from "./dom";
import { sendsOnEnter } from "./keys";
import { lengthProblem, noteAfterInput, type ComposerNote } from "./not-sent";
import { replyQuote } from "./reply";

/**
 * What became of a message handed over to be sent: taken (undefined: the box is emptied), kept in the box with a note
 * now, or kept with the note the promise brings (none: nothing to say).
 */
export type SendOutcome = undefined | ComposerNote | Promise<ComposerNote | undefined>;

/** What the composer needs from its conversation. */
export interface ComposerHost {
  readonly app: App;
  readonly id: string;
  send(text: string, replyToId: string | null): SendOutcome;
  /** Someone is writing (or stopped). */
  typing(active: boolean): void;
}

/**
 * The box a message is written in, with its note (too long, not sent) and the message it answers (Reply). Its draft,
 * reply included, comes from the app's drafts on creation.
 */
export class Composer {
  readonly input: HTMLTextAreaElement;
  readonly form: HTMLFormElement;
  /** Under the messages, above the reply bar. */
  readonly error: HTMLElement;
  readonly replyBar: HTMLElement;
  private readonly replyText: HTMLElement;
  private readonly sendButton: HTMLButtonElement;
  /** The message the composer's next message answers (Reply), shown above the box until sent or cancelled. */
  private to: Message | undefined;
  /** What the composer's note is about, to know whether it still holds as the text changes. */
  private note: ComposerNote | undefined;

  constructor(private readonly host: ComposerHost) {
    this.error = h("p", { class: "form-error composer-error", attrs: { role: "alert" } });
    this.input = h("textarea", {
      attrs: { id: "composer-input", rows: 1, placeholder: "Write a message…", autocomplete: "off", "aria-describedby": "composer-hint", dir: "auto" },
      on: {
        input: () => this.onInput(),
        keydown: (e) => {
          if (e.key === "Escape" && this.to) {
            e.preventDefault();
            e.stopPropagation();
            this.cancelReply(true);
          } else if (sendsOnEnter(e)) {
            e.preventDefault();
            this.submit();
          }
        },
        blur: () => this.host.typing(false),
      },
    });
    this.replyText = h("span", { class: "reply-text", attrs: { id: "reply-text", dir: "auto" } });
    this.replyBar = h(
      "div",
      { class: "reply-bar", attrs: { hidden: true } },
      this.replyText,
      h("button", { class: "ghost small", attrs: { type: "button", "aria-label": "Cancel reply" }, text: "×", on: { click: () => this.cancelReply(true) } }),
    );
    this.input.value = host.app.drafts.take(host.id);
    const replyTo = host.app.drafts.takeReply(host.id);
    if (replyTo) this.startReply(replyTo, false);
    this.sendButton = h("button", { class: "primary", attrs: { type: "submit" }, text: "Send" });
    this.form = h(
      "form",
      { class: "composer", on: { submit: (e) => (e.preventDefault(), this.submit()) } },
      h("label", { class: "vh", attrs: { for: "composer-input" }, text: "Message" }),
      this.input,
      this.sendButton,
      h("p", { class: "vh", attrs: { id: "composer-hint" }, text: "Enter sends, Shift+Enter adds a line." }),
    );
  }

  get text(): string {
    return this.input.value;
  }

  get replyTo(): Message | undefined {
    return this.to;
  }

  /** On the page now: a draft put back is sized (it measured nothing before), and the box gets the focus. */
  shown(): void {
    if (this.input.value) this.autosize();
    this.input.focus();
  }

  focus(): void {
    this.input.focus();
  }

  /** A closed conversation takes no messages. */
  setClosed(closed: boolean): void {
    this.input.disabled = closed;
    this.sendButton.disabled = closed;
    this.input.placeholder = closed ? "This conversation is closed" : "Write a message…";
  }

  setOffline(offline: boolean): void {
    this.input.toggleAttribute("data-offline", offline);
  }

  /** A message changed (edited, deleted, loaded again): the reply bar follows it when it is the one answered. */
  messageChanged(m: Message): void {
    if (this.to?.id === m.id && this.to !== m) {
      this.to = m;
      this.showReplyTo();
    }
  }

  private onInput(): void {
    this.autosize();
    if (this.note) this.showNote(noteAfterInput(this.note, this.input.value, this.to?.id ?? null), false);
    this.host.typing(Boolean(this.input.value.trim()));
  }

  /**
   * Reply: the next message answers this one. The app showed replies from other clients but could not write one.
   * (Escape or × cancels.)
   */
  startReply(m: Message, focus = true): void {
    this.to = m;
    this.showReplyTo();
    this.replyBar.hidden = false;
    this.input.setAttribute("aria-describedby", "composer-hint reply-text");
    if (focus) this.input.focus();
  }

  /** The bar's quote, redrawn when the message answered changes (a reply kept from a visit before) or is renamed. */
  showReplyTo(): void {
    if (this.to) setText(this.replyText, replyQuote(this.to, this.host.app.me, this.host.app.dir, "Replying to"));
  }

  private cancelReply(focus: boolean): void {
    this.to = undefined;
    this.replyBar.hidden = true;
    this.input.setAttribute("aria-describedby", "composer-hint");
    if (focus) this.input.focus();
  }

  /** `again`: said again though unchanged (Send pressed again); as the text is typed, only a change is said. */
  private showNote(note: ComposerNote | undefined, again = true): void {
    this.note = note;
    const text = note?.text ?? "";
    if (again || this.error.textContent !== text) this.error.textContent = text;
  }

  private autosize(): void {
    this.input.style.height = "auto";
    this.input.style.height = `${Math.min(this.input.scrollHeight, 160)}px`;
  }

  private submit(): void {
    const text = this.input.value;
    if (!text.trim()) return;
    // Kept in the box, so the writer can shorten it: the SDK would refuse it, and the text would be gone.
    const tooLong = lengthProblem(text);
    this.showNote(tooLong ? { text: tooLong, about: "length" } : undefined);
    if (tooLong) return;
    const outcome = this.host.send(text, this.to?.id ?? null);
    if (outcome instanceof Promise) {
      void outcome.then((note) => note && this.showNote(note));
      return;
    }
    if (outcome) return this.showNote(outcome);
    this.cancelReply(false);
    this.input.value = "";
    this.autosize();
    this.input.focus();
  }
}
