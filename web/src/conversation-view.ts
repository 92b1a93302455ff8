import { randomId, type Conversation, type ConversationEvents, type ConversationSocket, type Listener, type Message, type Participant, type StateChange } from "../../src/client";
import type { App, FailedMessage } from "./app";
import { h, setText } from "./dom";
import { confirmDialog } from "./confirm";
import { ConversationHeader } from "./conversation-header";
import { laterMessage, mergeConversation, messageTime, typingText, withNewerCopy } from "./format";
import { openEditor } from "./message-editor";
import { PendingMessages, type Draft } from "./pending-messages";
import { composerNote, notSentAlert, sendOrRefusal } from "./not-sent";
import { Composer, type SendOutcome } from "./composer";
import { firstUnread } from "./receipts";
import { DeliveryStatus } from "./delivery-status";
import { ARRIVALS_KEPT, arrivalText } from "./announce";
import { actionsBox, deleteButton, messageBubble } from "./message-bubble";
import { ConversationSearch } from "./conversation-search";
import { ReplyQuotes } from "./reply-quotes";
import { OlderPages, PAGE } from "./older-pages";
import { UnloadedChanges } from "./unloaded-changes";

/**
 * One conversation: history (newest page first, older pages on scroll-back), live messages over the SDK's
 * conversation socket (which resumes from the last seq after any drop), typing, delivery ticks, "seen by", edit,
 * delete and search. Every user string is set as text.
 */
export class ConversationView {
  readonly el: HTMLElement;
  private socket: ConversationSocket | undefined;
  private readonly id: string;
  private readonly me: string;
  private readonly messages = new Map<number, Message>();
  private readonly nodes = new Map<number, HTMLLIElement>();
  /** Seq of each message drawn, by id: what a reply's replyToId names. */
  private readonly seqOf = new Map<string, number>();
  /** Edits and deletes of messages not loaded here, for when their page comes. */
  private readonly unloadedChanges = new UnloadedChanges();
  /** Edits open when this conversation was last left (see Drafts): opened again as their messages are drawn. */
  private readonly resumeEdits: Map<number, string>;
  private readonly status: DeliveryStatus;
  private participants: Participant[];
  private readonly older: OlderPages;
  /**
   * The first message that was unread on opening, marked "New messages" for the visit. Opening went to the newest
   * message: with more unread than a screen holds, the reader landed past the ones they had not seen.
   */
  private unreadFrom: number | undefined;
  private typing: string[] = [];
  private destroyed = false;
  private readSent = 0;
  private closedReason: string | undefined;
  /** Written before the socket existed (history still loading): handed to its outbox as soon as it does. */
  private early: Draft[] = [];
  /** This view's listeners on the socket: removed when the view goes, since the socket may outlive it. */
  private readonly unsubscribe: (() => void)[] = [];

  private readonly header: ConversationHeader;
  private readonly banner: HTMLElement;
  private readonly scroller: HTMLElement;
  private readonly log: HTMLOListElement;
  private readonly pending: PendingMessages;
  private readonly typingLine: HTMLElement;
  private readonly notSentAnnouncer: HTMLElement;
  /** Where newly arrived messages are announced, one line each; present from the start, as a live region must be. */
  private readonly arrivals: HTMLElement;
  private readonly jumpButton: HTMLButtonElement;
  private readonly composer: Composer;
  private readonly search: ConversationSearch;
  private readonly quotes: ReplyQuotes;

  constructor(
    private readonly app: App,
    private conversation: Conversation,
  ) {
    this.id = conversation.id;
    this.me = app.me;
    this.participants = conversation.participants;
    this.status = new DeliveryStatus(conversation.participants);

    this.banner = h("p", { class: "banner", attrs: { role: "status", hidden: true } });
    // Not a live region (see arrivalText): history pages inserted at the top were announced as new messages.
    this.log = h("ol", { class: "messages", attrs: { role: "log", "aria-live": "off", "aria-label": "Messages" } });
    this.arrivals = h("div", { class: "vh arrivals", attrs: { "aria-live": "polite", "aria-relevant": "additions", "aria-atomic": "false" } });
    this.pending = new PendingMessages({
      app,
      id: this.id,
      replyLine: (replyToId) => this.quotes.line({ replyToId, deletedAt: null }),
      showNewest: () => this.scrollToBottom(false),
      refusal: () => (this.socket?.state === "closed" ? { reason: this.closedReason } : undefined),
      resend: (f) => this.resend(f),
      focusComposer: () => this.composer.focus(),
    });
    this.scroller = h(
      "div",
      { class: "scroller", attrs: { tabindex: 0, "aria-label": "Message history" }, on: { scroll: () => this.onScroll() } },
      this.log,
      this.pending.list,
    );
    this.older = new OlderPages({
      app,
      id: this.id,
      lastSeq: () => this.conversation.lastSeq,
      isGone: () => this.destroyed,
      log: this.log,
      scroller: this.scroller,
      draw: (messages) => {
        for (const m of messages) this.upsertMessage(m);
      },
      focus: (seq) => this.nodes.get(seq)?.focus(),
      showBanner: (text) => this.showBanner(text),
    });
    this.scroller.prepend(this.older.button, this.older.start);
    this.quotes = new ReplyQuotes({
      app,
      id: this.id,
      loaded: (id) => {
        const seq = this.seqOf.get(id);
        return seq === undefined ? undefined : this.messages.get(seq);
      },
      seqOf: (id) => this.seqOf.get(id),
      jumpTo: (seq) => void this.jumpTo(seq),
      isGone: () => this.destroyed,
      root: this.scroller,
    });
    this.typingLine = h("p", { class: "typing", attrs: { "aria-live": "polite" } });
    this.jumpButton = h("button", { class: "jump primary small", attrs: { type: "button", hidden: true }, text: "New messages ↓", on: { click: () => this.scrollToBottom(true) } });
    // Present from the start: an alert region added with its text is not announced everywhere.
    this.notSentAnnouncer = h("p", { class: "vh not-sent-alert", attrs: { role: "alert" } });
    this.composer = new Composer({ app, id: this.id, send: (text, replyToId) => this.send(text, replyToId), typing: (active) => (active ? this.socket?.typing() : this.socket?.stopTyping()) });
    this.resumeEdits = app.drafts.takeEdits(this.id);
    this.search = new ConversationSearch({ app, id: this.id, jumpTo: (seq) => void this.jumpTo(seq), showBanner: (text) => this.showBanner(text) });
    this.header = new ConversationHeader(
      {
        app,
        id: this.id,
        isGone: () => this.destroyed,
        muted: (isMuted) => {
          this.conversation = { ...this.conversation, isMuted };
          this.refreshHeader();
        },
        showBanner: (text) => this.showBanner(text),
      },
      this.search.form,
    );

    this.el = h(
      "section",
      { class: "conversation", attrs: { "aria-labelledby": "conv-title" }, on: { keydown: (e) => this.onKey(e) } },
      this.header.el,
      this.banner,
      this.search.panel,
      this.scroller,
      this.jumpButton,
      this.typingLine,
      this.composer.error,
      this.notSentAnnouncer,
      this.arrivals,
      this.composer.replyBar,
      this.composer.form,
    );
    this.refreshHeader();
  }

  /** True while the newest messages are on screen and someone is at the page: they count as read. */
  isReading(): boolean {
    return !this.destroyed && this.app.attention.isPresent() && this.atBottom();
  }

  async start(): Promise<void> {
    this.unsubscribe.push(this.app.attention.onChange((present) => present && this.maybeMarkRead()));
    this.unsubscribe.push(this.app.dir.onNames((changed) => this.namesChanged(changed)));
    this.composer.shown();
    let lastSeq: number | undefined;
    // Refused on an earlier visit, or on the socket kept after it: still there to dismiss (they vanished).
    for (const f of this.app.failedMessages(this.id)) this.pending.markFailed(f);
    this.log.setAttribute("aria-busy", "true");
    try {
      const page = await this.app.chat.listMessages(this.id, { limit: PAGE });
      if (this.destroyed) return;
      // The list's count, kept current by the user socket; nothing has marked this visit's messages read yet.
      const unread = this.app.conversation(this.id)?.unreadCount ?? this.conversation.unreadCount;
      this.unreadFrom = firstUnread(page.messages, unread, this.me, page.hasMore);
      for (const m of page.messages) this.upsertMessage(m);
      lastSeq = page.messages.at(-1)?.seq ?? 0;
      this.older.firstPage(page.hasMore);
      this.scrollToBottom(false);
      this.showFirstUnread();
    } catch (err) {
      if (this.destroyed || this.app.handleAuthError(err)) return;
      this.showBanner(`Could not load messages (${(err as Error).message}). They load as soon as the connection is back.`);
    } finally {
      this.log.removeAttribute("aria-busy");
    }
    // Resume from the newest message rendered: anything sent since arrives before live traffic, nothing twice.
    // Without history (it failed to load), start live and fetch the page before the head once connected.
    const socket = this.app.chat.conversation(this.id, lastSeq === undefined ? {} : { afterSeq: lastSeq });
    if (lastSeq === undefined) {
      this.unsubscribe.push(socket.once("ready", (r) => {
        this.older.startBelow(r.lastSeq);
        void this.older.load(false).then(() => this.scrollToBottom(false));
      }));
    }
    this.socket = socket;
    this.wire(socket);
    // Unsent messages from an earlier visit go first, with their clientMessageId: stored once even if the old
    // socket got them through meanwhile.
    for (const e of this.app.takeUnsent(this.id)) {
      socket.send(e.content, { clientMessageId: e.clientMessageId, type: e.type, replyToId: e.replyToId }).catch(() => {});
    }
    for (const e of this.early.splice(0)) this.handOver(socket, e);
    // The newest page is on screen: mark it read (sent once the socket is live).
    this.maybeMarkRead();
  }

  /** Messages written here that the server does not have yet. */
  unsentCount(): number {
    return (this.socket?.outbox().length ?? 0) + this.early.length;
  }

  /** What is being written here (composer, reply, open editors), kept for the next visit or a reload of the page. */
  keepDraft(): void {
    this.app.drafts.keep(this.id, this.composer.text);
    this.app.drafts.keepReply(this.id, this.composer.replyTo);
    // Open editors as they stand, and those whose message was never drawn on this visit (an older page).
    const edits = new Map(this.resumeEdits);
    for (const [seq, node] of this.nodes) {
      const area = node.querySelector<HTMLTextAreaElement>(".edit-form textarea");
      if (area) edits.set(seq, area.value);
    }
    this.app.drafts.keepEdits(this.id, edits);
  }

  destroy(): void {
    this.destroyed = true;
    this.keepDraft();
    for (const off of this.unsubscribe.splice(0)) off();
    let socket = this.socket;
    if (!socket) {
      // Left while the history was loading: what was written already still goes out.
      if (this.early.length === 0) return;
      socket = this.app.chat.conversation(this.id);
      // This socket replaces the one still draining an earlier visit's outbox (keepUntilSent closes that one, which
      // dropped its messages): they go first on this one, with their clientMessageId.
      for (const e of this.app.takeUnsent(this.id)) {
        socket.send(e.content, { clientMessageId: e.clientMessageId, type: e.type, replyToId: e.replyToId }).catch(() => {});
      }
      for (const e of this.early.splice(0)) this.handOver(socket, e);
    }
    socket.stopTyping();
    // Closing would drop what is still in the outbox: the app keeps the socket until the server has it all.
    if (socket.outbox().length > 0) this.app.keepUntilSent(socket);
    else socket.close("left the conversation");
  }

  // ── Socket events ────────────────────────────────────────────────────────────────────────────────────

  private wire(socket: ConversationSocket): void {
    const s = {
      on: <K extends keyof ConversationEvents>(type: K, fn: Listener<ConversationEvents[K]>) => void this.unsubscribe.push(socket.on(type, fn)),
    };
    const onState = (st: StateChange) => {
      if (st.state === "open") {
        this.showBanner(undefined);
        this.maybeMarkRead();
      } else if (st.state === "offline") this.showBanner("You are offline. Messages you write are kept and sent when the connection is back.");
      else if (st.state === "closed") {
        this.closedReason = st.reason;
        if (!this.destroyed) this.showBanner(`Disconnected: ${st.reason ?? "the connection was closed"}`);
      } else if (st.previous === "open" || st.attempt > 0) this.showBanner("Reconnecting…");
      this.composer.setOffline(st.state !== "open");
    };
    s.on("state", onState);
    // The socket starts connecting (or finds the browser offline) before anyone listens.
    onState({ state: socket.state, previous: "idle", attempt: 0 });
    s.on("ready", (r) => {
      const role = this.myRole();
      this.participants = r.participants;
      for (const p of r.participants) this.status.set(p.userId, p.lastReadSeq, p.lastDeliveredSeq);
      this.app.dir.learnParticipants(r.participants);
      this.refreshHeader();
      // A role change between the view's first read and this socket's ready came in no participant_updated: the
      // messages drawn with the old role kept (or lacked) Delete on others' messages.
      if (this.myRole() !== role) this.refreshDeleteButtons();
      this.refreshStatuses();
    });
    s.on("new_message", ({ message }) => {
      const stick = this.atBottom();
      // A copy of one already shown (history overlapping the replay) is no news. Announced after the upsert, which
      // learns the sender's name from the message.
      const fresh = !this.messages.has(message.seq);
      this.upsertMessage(message);
      if (fresh) this.announce(arrivalText(message, this.me, this.app.dir));
      this.app.noteMessage(this.id, message);
      // Not for every message of mine: one sent from another device, or the acknowledgement of one queued offline,
      // pulled a reader of older messages down to the newest. One just sent here is at the bottom already.
      if (stick) this.scrollToBottom(false);
      else this.jumpButton.hidden = false;
      this.maybeMarkRead();
    });
    // The list's preview is a copy of the last message: an edit or delete of it changes the preview too (it kept the
    // old or deleted text until the list was reloaded). noteMessage takes it only when it is the newest there.
    s.on("message_updated", ({ message }) => {
      // An edit of a message not loaded here comes with its page: drawn now, it sat above the loaded window and moved
      // the scroll-back point past the messages between, which then never loaded.
      if (this.messages.has(message.seq)) this.upsertMessage(message);
      else this.unloadedChanges.edited(message);
      this.app.noteMessage(this.id, message);
    });
    s.on("message_deleted", ({ seq }) => {
      const m = this.messages.get(seq);
      if (!m) this.unloadedChanges.deleted(seq, new Date().toISOString());
      if (!m || m.deletedAt) return;
      const tombstone = { ...m, content: "", deletedAt: new Date().toISOString() };
      this.upsertMessage(tombstone);
      this.app.noteMessage(this.id, tombstone);
    });
    s.on("typing", (t) => {
      this.app.dir.learnTyping(t);
      this.typing = t.typing.filter((u) => u !== this.me);
      this.renderTyping();
    });
    s.on("receipt", (r) => {
      if (r.kind === "read") this.status.set(r.userId, r.seq, 0);
      else this.status.set(r.userId, 0, r.seq);
      this.refreshStatuses();
    });
    s.on("presence", (p) => this.app.setPresence(p));
    s.on("participant_joined", () => this.reloadConversation());
    s.on("participant_left", () => this.reloadConversation());
    s.on("participant_updated", () => this.reloadConversation());
    s.on("conversation_updated", ({ conversation }) => {
      if (conversation.version < this.conversation.version) return; // a read of a later change came first
      this.conversation = { ...mergeConversation(this.conversation, conversation), unreadCount: this.conversation.unreadCount, isMuted: this.conversation.isMuted };
      this.refreshHeader();
    });
    s.on("outbox", ({ pending }) => this.pending.render(pending));
    s.on("send_failed", ({ clientMessageId, error }) => {
      const p = this.pending.drawn(clientMessageId);
      if (!p) return;
      const failed = { ...p, error };
      // Kept by the app too, so leaving and coming back still shows it.
      this.app.noteFailed(this.id, failed);
      this.pending.markFailed(failed);
      this.notSentAnnouncer.textContent = notSentAlert(failed.content, error);
    });
    s.on("error", (e) => {
      if (!this.app.handleAuthError(e)) console.warn("conversation socket:", e.message);
    });
  }

  private reloadConversation(): void {
    void this.app.chat.getConversation(this.id).then(
      (read) => {
        // Left meanwhile (a removal navigates away): the answer, read while a member, put the group back in the list.
        if (this.destroyed) return;
        this.app.upsert(read);
        // As the list holds it: a push of a later change may have come while this read was answered.
        const c = this.app.conversation(this.id) ?? read;
        const role = this.myRole();
        this.conversation = c;
        this.participants = c.participants;
        // A member who joins starts with marks at the newest message: without them they counted as having read
        // nothing, and every Read tick and "Seen by" went back to Sent.
        for (const p of c.participants) this.status.set(p.userId, p.lastReadSeq, p.lastDeliveredSeq);
        this.refreshHeader();
        // Delete on others' messages depends on my role (made admin, or no longer).
        if (this.myRole() !== role) this.refreshDeleteButtons();
        this.refreshStatuses();
      },
      () => {},
    );
  }

  // ── Messages ─────────────────────────────────────────────────────────────────────────────────────────

  private upsertMessage(incoming: Message): void {
    const m = this.unloadedChanges.apply(incoming);
    this.app.dir.learnMessage(m);
    const known = this.messages.get(m.seq);
    this.messages.set(m.seq, m);
    this.seqOf.set(m.id, m.seq);
    this.composer.messageChanged(m);
    // The quotes of replies to it follow an edit or a delete of it.
    if (known ? known.content !== m.content || known.deletedAt !== m.deletedAt : this.quotes.awaits(m.id)) this.quotes.refresh(m.id);
    const old = this.nodes.get(m.seq);
    // The same version again (history overlapping the live stream): nothing to redraw.
    if (old && known && known.id === m.id && known.content === m.content && known.editedAt === m.editedAt && known.deletedAt === m.deletedAt) return;
    const node = this.renderMessage(m);
    if (old) {
      // Keep an edit in progress rather than wiping the user's text; unless the message is gone (deleted elsewhere),
      // when the editor only led to a failed Save.
      const editor = old.querySelector(".edit-form");
      if (editor && !m.deletedAt) return;
      if (editor) {
        const hadFocus = editor.contains(document.activeElement);
        this.showBanner("The message you were editing was deleted.");
        old.replaceWith(node);
        if (hadFocus) node.focus();
      } else old.replaceWith(node);
    } else {
      const after = [...this.nodes.keys()].filter((s) => s > m.seq).sort((a, b) => a - b)[0];
      this.log.insertBefore(node, after === undefined ? null : this.nodes.get(after)!);
    }
    this.nodes.set(m.seq, node);
    this.older.seen(m.seq);
    this.refreshStatuses();
    this.resumeEdit(m);
  }

  /** An edit left open on an earlier visit, opened again with its text once its message is drawn. */
  private resumeEdit(m: Message): void {
    const text = this.resumeEdits.get(m.seq);
    if (text === undefined) return;
    this.resumeEdits.delete(m.seq);
    if (m.deletedAt) return this.showBanner("The message you were editing was deleted.");
    const trigger = this.nodes.get(m.seq)?.querySelector<HTMLButtonElement>("button[aria-label='Edit message']");
    // Focus goes to it only if the user has not moved on (the composer got the focus on opening, and is empty).
    const focus = document.activeElement === this.composer.input && !this.composer.text;
    if (trigger) this.startEdit(m.seq, trigger, { text, focus });
  }

  /**
   * After a role change: Delete added to or taken from others' messages, and nothing else touched. Every message was
   * drawn anew, inside the live region, and a screen reader read the whole history out again.
   */
  private refreshDeleteButtons(): void {
    for (const [seq, node] of this.nodes) {
      const m = this.messages.get(seq);
      // An edit in progress keeps its node; it is redrawn when the edit ends.
      if (!m || m.senderId === this.me || node.querySelector(".edit-form")) continue;
      const shown = node.querySelector<HTMLButtonElement>(".actions .delete");
      const wanted = this.mayDelete(m);
      if (wanted && !shown) {
        let actions = node.querySelector<HTMLElement>(".actions");
        if (!actions) {
          actions = actionsBox();
          node.querySelector(".bubble")?.after(actions);
        }
        actions.append(deleteButton((button) => void this.remove(this.messages.get(m.seq) ?? m, button)));
      } else if (!wanted && shown) {
        const actions = shown.parentElement;
        shown.remove();
        if (actions && actions.childElementCount === 0) actions.remove();
      }
    }
  }

  private mayDelete(m: Message): boolean {
    return m.deletedAt === null && (m.senderId === this.me || this.myRole() === "admin");
  }

  /**
   * Names changed (a rename, a name that became known): the senders of the bubbles drawn, the typing line, the header
   * and "Seen by" follow. Bubbles kept each sender's name as it was when the message arrived, so one person showed
   * under two names.
   */
  private namesChanged(changed: ReadonlySet<string>): void {
    for (const node of this.nodes.values()) {
      const sender = node.dataset.sender;
      const span = sender && changed.has(sender) ? node.querySelector(".meta .sender") : null;
      if (span && sender) setText(span, this.app.dir.name(sender));
    }
    if (this.typing.some((u) => changed.has(u))) this.renderTyping();
    this.quotes.refresh();
    this.composer.showReplyTo();
    this.refreshHeader();
    this.refreshStatuses();
  }

  private renderMessage(m: Message): HTMLLIElement {
    const own = m.senderId === this.me;
    return messageBubble(m, {
      own,
      // From the directory, which the message's own sender profile has just updated: one name per person.
      sender: own ? "You" : this.app.dir.name(m.senderId),
      firstUnread: m.seq === this.unreadFrom,
      replyLine: this.quotes.line(m),
      mayDelete: this.mayDelete(m),
      edit: (button) => this.startEdit(m.seq, button),
      reply: () => this.composer.startReply(this.messages.get(m.seq) ?? m),
      delete: (button) => void this.remove(this.messages.get(m.seq) ?? m, button),
      imageLoaded: (img) => {
        // Keeps the newest message in view when a picture above it grows as it loads.
        const s = this.scroller;
        if (s.scrollHeight - s.scrollTop - s.clientHeight - img.offsetHeight < 48) s.scrollTop = s.scrollHeight;
      },
    });
  }

  private myRole(): string | undefined {
    return this.participants.find((p) => p.userId === this.me)?.role;
  }

  /** Ticks on my messages (sent, delivered, read) and "Seen by" under the last message each participant has read. */
  private refreshStatuses(): void {
    this.status.draw({ me: this.me, dir: this.app.dir, participants: this.participants, messages: this.messages, nodes: this.nodes, log: this.log });
  }

  // ── Sending ──────────────────────────────────────────────────────────────────────────────────────────

  /** A message from the composer, to the socket's outbox (or kept until the socket exists). */
  private send(text: string, replyToId: string | null): SendOutcome {
    // Closed for good (no longer a participant): the SDK refuses at once, with no send_failed, and the text was lost.
    if (this.socket?.state === "closed") return { text: `Not sent: ${this.closedReason ?? "the connection was closed"}`, about: "other" };
    if (this.socket) {
      // Refused by the SDK on the spot (too large as a frame, say): no Sending… line, no send_failed, so the text
      // stays in the box with the reason. Later failures show on the pending message (send_failed).
      const refused = sendOrRefusal(this.socket, text, randomId(), replyToId);
      if (refused) return refused.then((error) => (error && !this.destroyed ? composerNote(error) : undefined));
    } else {
      // Not on the server yet: shown as Sending… now (it showed nothing, as if sent), and its node is kept when the
      // socket's outbox takes it over under the same clientMessageId.
      this.early.push({ clientMessageId: randomId(), content: text, replyToId });
      this.pending.render(this.early);
    }
    return undefined;
  }

  private resend(f: FailedMessage): void {
    if (this.socket) this.socket.send(f.content, { clientMessageId: f.clientMessageId, replyToId: f.replyToId ?? null }).catch(() => {});
    else if (!this.early.some((e) => e.clientMessageId === f.clientMessageId)) {
      this.early.push({ clientMessageId: f.clientMessageId, content: f.content, replyToId: f.replyToId });
      this.pending.render(this.early);
    }
  }

  /**
   * A message written before the socket existed, already shown as Sending…: refused by the SDK on the spot, it is
   * Not sent (kept by the app for the next visit when the view is gone). It vanished at the next outbox change.
   */
  private handOver(socket: ConversationSocket, e: Draft): void {
    void sendOrRefusal(socket, e.content, e.clientMessageId, e.replyToId ?? null)?.then((error) => {
      if (!error) return;
      const failed = { clientMessageId: e.clientMessageId, content: e.content, replyToId: e.replyToId, error };
      this.app.noteFailed(this.id, failed);
      if (this.destroyed) return;
      this.pending.markFailed(failed);
      this.notSentAnnouncer.textContent = notSentAlert(e.content, error);
    });
  }

  // ── Edit, delete ─────────────────────────────────────────────────────────────────────────────────────

  private startEdit(seq: number, trigger: HTMLButtonElement, resumed?: { text: string; focus: boolean }): void {
    const node = this.nodes.get(seq);
    const m = this.messages.get(seq);
    if (!node || !m || node.querySelector(".edit-form")) return;
    openEditor(node.querySelector<HTMLElement>(".text")!, {
      seq,
      original: m.content,
      resumed,
      save: async (content) => {
        const updated = await this.app.chat.editMessage(this.id, m.id, content);
        // A later edit or a delete may have come on the socket before this answer: the later version stays.
        this.messages.set(seq, laterMessage(this.messages.get(seq), updated)!);
      },
      closed: () => {
        const again = this.nodes.get(seq);
        // The message may have been re-rendered meanwhile (an edit from elsewhere): re-apply the latest version.
        const latest = this.messages.get(seq);
        if (latest && again === node) {
          const fresh = this.renderMessage(latest);
          node.replaceWith(fresh);
          this.nodes.set(seq, fresh);
          this.refreshStatuses();
          fresh.querySelector<HTMLButtonElement>("button[aria-label='Edit message']")?.focus();
        } else trigger.focus();
      },
    });
  }

  private async remove(m: Message, trigger: HTMLButtonElement): Promise<void> {
    const ok = await confirmDialog("Delete this message?", "Everyone in the conversation will see that it was deleted.", "Delete");
    if (!ok) return trigger.focus();
    try {
      await this.app.chat.deleteMessage(this.id, m.id);
      const current = this.messages.get(m.seq);
      if (current && !current.deletedAt) this.upsertMessage({ ...current, content: "", deletedAt: new Date().toISOString() });
      this.nodes.get(m.seq)?.focus();
    } catch (err) {
      this.showBanner(`Could not delete: ${(err as Error).message}`);
      trigger.focus();
    }
  }

  // ── History, scrolling, read marks ───────────────────────────────────────────────────────────────────

  private atBottom(): boolean {
    const s = this.scroller;
    return s.scrollHeight - s.scrollTop - s.clientHeight < 48;
  }

  private scrollToBottom(focusLatest: boolean): void {
    this.scroller.scrollTop = this.scroller.scrollHeight;
    this.jumpButton.hidden = true;
    if (focusLatest) this.composer.focus();
    this.maybeMarkRead();
  }

  /** Puts the first unread message at the top when it is above the screen (the newest are then below, unread). */
  private showFirstUnread(): void {
    const node = this.unreadFrom === undefined ? undefined : this.nodes.get(this.unreadFrom);
    if (!node) return;
    const above = this.scroller.getBoundingClientRect().top - node.getBoundingClientRect().top;
    if (above <= 0) return;
    this.scroller.scrollTop -= above + 8;
    this.jumpButton.hidden = this.atBottom();
  }

  private onScroll(): void {
    if (this.atBottom()) {
      this.jumpButton.hidden = true;
      this.maybeMarkRead();
    }
    if (this.scroller.scrollTop < 80) void this.older.load(false);
  }

  private maybeMarkRead(): void {
    if (!this.socket || !this.isReading()) return;
    const last = this.socket.lastSeq;
    if (last > this.readSent) {
      this.readSent = last;
      this.socket.markRead(last);
    }
    this.app.setUnread(this.id, 0);
  }

  /** Scrolls to a message, loading older pages until it is there, or until a page fails to load (said in the banner). */
  private async jumpTo(seq: number): Promise<void> {
    // A failed page leaves oldestSeq where it was: asking again at once repeated the failure 50 times in a row.
    for (let before = Infinity; !this.nodes.has(seq) && this.older.hasMore && this.older.oldestSeq < before; ) {
      before = this.older.oldestSeq;
      await this.older.load(false);
    }
    const node = this.nodes.get(seq);
    if (!node) return;
    node.scrollIntoView({ block: "center" });
    node.classList.add("highlight");
    setTimeout(() => node.classList.remove("highlight"), 2000);
    node.focus();
  }

  /** The day changed: times drawn as today's (time of day only) get their date, in bubbles and search results. */
  redrawTimes(): void {
    for (const el of this.el.querySelectorAll<HTMLTimeElement>(".meta time")) setText(el, messageTime(el.dateTime));
    this.refreshHeader();
  }

  // ── Header, typing, banner ───────────────────────────────────────────────────────────────────────────

  refreshHeader(): void {
    // Closing is final, and the list's copy (the user socket's push) may be the first to say so: this socket may have
    // been connecting when it was announced.
    // A rename (or close) the list learned and this view did not: after a reconnect only the list reads it again.
    this.conversation = withNewerCopy(this.conversation, this.app.conversation(this.id));
    const closed = this.conversation.status === "closed" || this.app.conversation(this.id)?.status === "closed";
    const c = { ...this.conversation, participants: this.participants, ...(closed ? { status: "closed" as const } : {}) };
    const muted = this.app.conversation(this.id)?.isMuted ?? this.conversation.isMuted;
    const title = this.header.render(c, muted);
    // A reload answered after the view went would name a conversation no longer on screen.
    if (!this.destroyed) this.app.showTitle(title);
    this.composer.setClosed(closed);
    if (closed) this.socket?.stopTyping();
  }

  private renderTyping(): void {
    const text = typingText(this.typing, this.app.dir);
    if (this.typingLine.textContent !== text) this.typingLine.textContent = text;
  }

  private announce(text: string): void {
    this.arrivals.append(h("p", { text }));
    while (this.arrivals.childElementCount > ARRIVALS_KEPT) this.arrivals.firstElementChild?.remove();
  }

  private showBanner(text: string | undefined): void {
    this.banner.hidden = !text;
    this.banner.textContent = text ?? "";
  }

  private onKey(e: KeyboardEvent): void {
    if (e.key === "Escape" && this.search.isOpen) {
      e.preventDefault();
      this.search.close();
    }
  }
}
