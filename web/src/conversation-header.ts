import type { Conversation } from "../../src/client";
import type { App } from "./app";
import { confirmDialog } from "./confirm";
import { h, replace } from "./dom";
import { businessState, conversationTitle, directPeer, presenceText } from "./format";
import { memberLines } from "./members";

/** What the header needs from its conversation. */
export interface HeaderHost {
  readonly app: App;
  readonly id: string;
  /** The view went (a confirmation answered after that leaves nothing to do). */
  isGone(): boolean;
  /** The mute the server now has, for the view's copy of the conversation. */
  muted(isMuted: boolean): void;
  showBanner(text: string): void;
}

/** The conversation's header: title, presence or members line, the member list, Mute and Leave group. */
export class ConversationHeader {
  readonly el: HTMLElement;
  private readonly title: HTMLHeadingElement;
  private readonly subtitle: HTMLElement;
  /** Who is in a group or business chat, opened from the header. */
  private readonly members: HTMLDetailsElement;
  private readonly memberList: HTMLUListElement;
  private readonly muteButton: HTMLButtonElement;
  private readonly leaveButton: HTMLButtonElement;

  /** `search`: the search form, between the heading and the buttons. */
  constructor(
    private readonly host: HeaderHost,
    search: HTMLElement,
  ) {
    this.title = h("h2", { class: "conv-title", attrs: { id: "conv-title", tabindex: -1, dir: "auto" } });
    this.subtitle = h("p", { class: "conv-sub" });
    this.memberList = h("ul", { class: "member-list" });
    this.members = h("details", { class: "members", attrs: { hidden: true } }, h("summary", { text: "Members" }), this.memberList);
    this.muteButton = h("button", { class: "ghost small", attrs: { type: "button", "aria-pressed": "false" }, text: "Mute", on: { click: () => void this.toggleMute() } });
    this.leaveButton = h("button", { class: "ghost small", attrs: { type: "button", hidden: true }, text: "Leave group" });
    this.leaveButton.addEventListener("click", () => void this.leave());
    this.el = h(
      "header",
      { class: "conv-head" },
      h("a", { class: "back ghost small", attrs: { href: "#/", "aria-label": "Back to conversations" }, text: "←" }),
      h("div", { class: "conv-heading" }, this.title, this.subtitle, this.members),
      search,
      this.muteButton,
      this.leaveButton,
    );
  }

  /** Draws the conversation as given (its participants and status as the view knows them); returns the title. */
  render(c: Conversation, muted: boolean): string {
    const { app } = this.host;
    const me = app.me;
    const title = conversationTitle(c, me, app.dir);
    this.title.textContent = title;
    const peer = directPeer(c, me);
    if (peer) {
      const seen = app.presence.get(peer);
      const status = seen?.status ?? "offline";
      replace(this.subtitle, h("span", { class: `dot ${status}`, attrs: { "aria-hidden": "true" } }), presenceText(status, seen?.lastSeen));
    } else {
      const online = c.participants.filter((p) => p.userId !== me && app.presence.status(p.userId) === "online").length;
      const state = c.type === "business" ? businessState(c, me, app.dir) : undefined;
      const kind = c.type === "business" ? `Business chat · ${state ? `${state} · ` : ""}` : "";
      this.subtitle.textContent = `${kind}${c.participants.length} members${online ? ` · ${online} online` : ""}`;
      const lines = memberLines(c.participants, me, app.dir, (u) => app.presence.status(u));
      const shown = [...this.memberList.children].map((li) => li.textContent);
      if (lines.join("\n") !== shown.join("\n")) replace(this.memberList, ...lines.map((text) => h("li", { attrs: { dir: "auto" }, text })));
    }
    this.members.hidden = c.type === "direct";
    this.muteButton.setAttribute("aria-pressed", String(muted));
    this.muteButton.textContent = muted ? "Muted" : "Mute";
    this.leaveButton.hidden = c.type !== "group";
    return title;
  }

  /**
   * Leaves a group, once asked. A group could not be left from the app: its messages kept coming for good. The
   * conversation goes from the list at once, the pane saying so (as after a removal).
   */
  private async leave(): Promise<void> {
    const { app, id } = this.host;
    const ok = await confirmDialog("Leave this group?", "You will no longer get its messages. A member can add you back.", "Leave");
    if (!ok || this.host.isGone()) return this.leaveButton.focus();
    try {
      await app.chat.removeParticipant(id, app.me);
      app.left(id);
    } catch (err) {
      if (app.handleAuthError(err)) return;
      this.host.showBanner(`Could not leave the group: ${(err as Error).message}`);
      this.leaveButton.focus();
    }
  }

  private async toggleMute(): Promise<void> {
    const { app, id } = this.host;
    const muted = this.muteButton.getAttribute("aria-pressed") === "true";
    try {
      const r = await app.chat.setMuted(id, !muted);
      app.setMuted(id, r.isMuted);
      this.host.muted(r.isMuted);
    } catch (err) {
      this.host.showBanner(`Could not change mute: ${(err as Error).message}`);
    }
  }
}
