import { Attention } from "./attention";
import { ChatApiError, ChatClient, type Conversation, type ConversationSocket, type Message, type OutboxEntry, type PresenceUpdate, type UserSocket } from "../../src/client";
import { h, replace, srOnly } from "./dom";
import { closeDialogs, confirmDialog } from "./confirm";
import { ConversationView } from "./conversation-view";
import { DayChange } from "./day-change";
import { Drafts, type DraftStore } from "./drafts";
import { Directory, conversationTitle, directPeer, initials, laterMessage, mergeConversation, pageTitle, preview, presenceLabel, shortTime, titleUnread } from "./format";
import { ListPages } from "./list-pages";
import { ListReloads, toDrop } from "./list-refresh";
import { openNewConversationDialog } from "./new-conversation";
import { PresenceBook } from "./presence";
import type { Session } from "./session";

/** A message the server refused for good: shown as "Not sent" until the user dismisses it. */
export interface FailedMessage {
  clientMessageId: string;
  content: string;
  /** The message it answers: a retry is the same reply. */
  replyToId?: string | null;
  error: ChatApiError;
}

const LIST_PAGE = 100;
const LIST_RETRY_FIRST_MS = 2_000;
const LIST_RETRY_MAX_MS = 60_000;
const ROUTE = /^#\/c\/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/i;

/** The signed-in app: conversation list (left), the open conversation (right; one at a time on phones). */
export class App {
  readonly chat: ChatClient;
  readonly me: string;
  readonly dir = new Directory();
  readonly presence = new PresenceBook();
  /** What was being written in each conversation left (see Drafts): kept over a reload of the tab, gone at sign-out. */
  readonly drafts: Drafts;
  private readonly conversations = new Map<string, Conversation>();
  private readonly rows = new Map<string, HTMLLIElement>();
  private readonly user: UserSocket;
  private view: ConversationView | undefined;
  /** Sockets of conversations left with messages still unsent, by conversation id: kept until the outbox drains. */
  private readonly unsent = new Map<string, ConversationSocket>();
  /**
   * Refused messages not dismissed yet, by conversation id, for this session: a refusal on a socket kept after its
   * view went (keepUntilSent) had no view to show it, and the message vanished. Every visit shows them as failed.
   */
  private readonly failed = new Map<string, FailedMessage[]>();
  /**
   * Conversations being fetched because a push named one the list does not hold, each with whether a removal came
   * meanwhile: a burst of messages asked for it once per message, and an answer read before a removal put it back.
   */
  private readonly fetching = new Map<string, { removed: boolean }>();
  private activeId: string | undefined;
  /**
   * The open conversation's title, for the tab's. The list (with the unread count) and the open conversation's header
   * each wrote the whole title: the tab showed whichever was drawn last, the count or the conversation.
   */
  private openTitle: string | undefined;
  /** The conversation the user was just put out of while it was open, to say so on the empty pane. */
  private removedTitle: string | undefined;
  private unreadTotal = 0;
  /**
   * The newest server time seen (conversation activity, message times), for the list's clean-up: the browser's clock
   * may be hours off, and against it a conversation that arrived during a reload was dropped (clock ahead) or one the
   * user was removed from stayed (clock behind).
   */
  private serverNow = "";
  private readonly reloads = new ListReloads();
  private readonly pages = new ListPages<Conversation>();
  private listRetry: ReturnType<typeof setTimeout> | undefined;
  private listRetryMs = LIST_RETRY_FIRST_MS;
  private readonly shell: HTMLElement;
  private readonly list: HTMLUListElement;
  /** The list's last row while older conversations remain on the server: reached by scrolling, or pressed. */
  private readonly moreRow: HTMLLIElement;
  private readonly moreButton: HTMLButtonElement;
  private readonly listStatus: HTMLElement;
  private readonly pane: HTMLElement;
  private readonly connection: HTMLElement;
  private readonly meName: HTMLElement;
  private readonly signOutButton: HTMLButtonElement;
  private readonly onHash = () => void this.route();
  /** Closing or reloading the tab drops the outbox (it lives in memory): the browser asks first, as Sign out does. */
  private readonly onUnload = (e: BeforeUnloadEvent) => {
    if (this.unsentCount() > 0) e.preventDefault();
  };
  /** The page goes (reload, closed, navigated away): what is being written in the open conversation is kept. */
  private readonly onPageHide = () => this.view?.keepDraft();
  /** Someone at the page: presence follows it, and only then do arriving messages count as read. */
  readonly attention = new Attention();
  /** Today's times show no date: at midnight they are redrawn (the list's, the open conversation's). */
  private readonly days = new DayChange(() => {
    this.renderList();
    this.view?.redrawTimes();
  });
  private stopped = false;

  constructor(
    private readonly root: HTMLElement,
    readonly session: Session,
    private readonly onSignOut: () => void,
  ) {
    this.me = session.userId.toLowerCase();
    this.drafts = new Drafts(tabStorage(), `edge-chat.drafts.${this.me}`);
    this.chat = new ChatClient({ baseUrl: "", token: session.token, userId: this.me });
    this.connection = h("span", { class: "conn", attrs: { role: "status" }, text: "Connecting…" });
    this.meName = h("span", { class: "me-name", text: session.kahaId });
    this.list = h("ul", { class: "conv-list", attrs: { "aria-labelledby": "conv-heading" }, on: { scroll: () => this.onListScroll() } });
    this.moreButton = h("button", { class: "ghost small", attrs: { type: "button" }, text: "Load more conversations", on: { click: () => void this.loadMore(true) } });
    this.moreRow = h("li", { class: "conv-more" }, this.moreButton);
    this.listStatus = h("p", { class: "list-status", attrs: { role: "status" }, text: "Loading conversations…" });
    const newButton = h("button", {
      class: "primary small",
      attrs: { type: "button", "aria-haspopup": "dialog" },
      text: "New",
      on: { click: () => openNewConversationDialog(this, newButton) },
    });
    newButton.setAttribute("aria-label", "New conversation");
    this.pane = h("main", { class: "pane", attrs: { id: "main", tabindex: -1 } });
    this.signOutButton = h("button", { class: "ghost small", attrs: { type: "button" }, text: "Sign out", on: { click: () => void this.askSignOut() } });
    this.shell = h(
      "div",
      { class: "app", data: { view: "list" } },
      h("a", { class: "skip-link", attrs: { href: "#main" }, text: "Skip to conversation", on: { click: (e) => this.skipToMain(e) } }),
      h(
        "header",
        { class: "topbar" },
        h("h1", { class: "brand", text: "Edge Chat" }),
        h("div", { class: "topbar-right" }, this.connection, this.meName, this.signOutButton),
      ),
      h(
        "nav",
        { class: "sidebar", attrs: { "aria-label": "Conversations" } },
        h("div", { class: "sidebar-head" }, h("h2", { attrs: { id: "conv-heading" }, text: "Conversations" }), newButton),
        this.listStatus,
        this.list,
      ),
      this.pane,
    );
    this.user = this.chat.user();
    // A name learned anywhere (a message, a typer, a member list) renames the rows that show it, and the top bar's own.
    this.dir.onNames((changed) => {
      if (this.stopped) return;
      this.renderList();
      if (changed.has(this.me)) this.meName.textContent = this.dir.accountLabel(this.me, session.kahaId);
    });
  }

  async start(): Promise<void> {
    replace(this.root, this.shell);
    this.showEmptyPane();
    this.wireUserSocket();
    window.addEventListener("hashchange", this.onHash);
    window.addEventListener("beforeunload", this.onUnload);
    window.addEventListener("pagehide", this.onPageHide);
    this.attention.start();
    this.attention.onChange((present) => this.user.setPresence(present ? "online" : "away"));
    // Back at the page (a laptop woken the next morning): its midnight timer may not have fired yet.
    this.attention.onChange(() => this.days.check());
    this.days.start();
    void this.chat.me().then(
      (me) => {
        this.dir.set(this.me, me.profile);
        this.meName.textContent = this.dir.accountLabel(this.me, this.session.kahaId);
      },
      (err: unknown) => this.handleAuthError(err),
    );
    await this.refreshList();
    await this.route();
  }

  stop(): void {
    this.stopped = true;
    window.removeEventListener("hashchange", this.onHash);
    window.removeEventListener("beforeunload", this.onUnload);
    window.removeEventListener("pagehide", this.onPageHide);
    clearTimeout(this.listRetry);
    this.attention.stop();
    this.days.stop();
    // A question left open would sit over the sign-in page, acting for the user who is gone.
    closeDialogs();
    this.view?.destroy();
    for (const socket of this.unsent.values()) socket.close("signed out");
    this.unsent.clear();
    this.user.close();
  }

  // ── Unsent messages of conversations no longer on screen ─────────────────────────────────────────────

  /**
   * A conversation view went away with messages in its outbox (offline, say). Closing the socket would lose them, so
   * it stays up — reconnecting like any other — until the server has acknowledged every one, then closes.
   */
  keepUntilSent(socket: ConversationSocket): void {
    const id = socket.conversationId;
    this.unsent.get(id)?.close("replaced");
    this.unsent.set(id, socket);
    // The outbox only shrinks from here: what a refusal names is one of these.
    const entries = new Map(socket.outbox().map((e) => [e.clientMessageId, e]));
    const release = () => {
      offOutbox();
      offState();
      offFailed();
      if (this.unsent.get(id) === socket) this.unsent.delete(id);
    };
    const offOutbox = socket.on("outbox", ({ pending }) => {
      if (pending.length > 0) return;
      release();
      socket.close("sent everything");
    });
    // Closed for good (removed from the conversation, signed out): nothing more can be sent on it.
    const offState = socket.on("state", ({ state }) => state === "closed" && release());
    // Refused (the conversation closed meanwhile, say): told before the outbox event that may release the socket.
    const offFailed = socket.on("send_failed", ({ clientMessageId, error }) => {
      const entry = entries.get(clientMessageId);
      if (entry) this.noteFailed(id, { clientMessageId, content: entry.content, replyToId: entry.replyToId, error });
    });
  }

  /** Refused messages of a conversation, oldest first, until dismissed. */
  failedMessages(conversationId: string): readonly FailedMessage[] {
    return this.failed.get(conversationId) ?? [];
  }

  noteFailed(conversationId: string, f: FailedMessage): void {
    const list = this.failed.get(conversationId) ?? [];
    if (list.some((x) => x.clientMessageId === f.clientMessageId)) return;
    this.failed.set(conversationId, [...list, f]);
  }

  dismissFailed(conversationId: string, clientMessageId: string): void {
    const list = (this.failed.get(conversationId) ?? []).filter((x) => x.clientMessageId !== clientMessageId);
    if (list.length > 0) this.failed.set(conversationId, list);
    else this.failed.delete(conversationId);
  }

  /**
   * The unsent messages of a conversation being opened again, taken from the socket that was draining them (which
   * closes). The new view's socket re-sends them with the same clientMessageId, so each is stored once.
   */
  takeUnsent(conversationId: string): OutboxEntry[] {
    const socket = this.unsent.get(conversationId);
    if (!socket) return [];
    this.unsent.delete(conversationId);
    const entries = socket.outbox();
    socket.close("handed to a new view");
    return entries;
  }

  // ── Conversation list ────────────────────────────────────────────────────────────────────────────────

  async refreshList(): Promise<void> {
    clearTimeout(this.listRetry);
    this.listRetry = undefined;
    // Every time the app holds was seen before asking: one stamped later arrived while the request was under way.
    const reload = this.reloads.begin(this.serverNow);
    try {
      // As many pages as the user had read: a later page's conversation renamed or left while offline stayed stale.
      const page = await this.pages.reload((cursor) => this.chat.listConversations({ limit: LIST_PAGE, ...(cursor === undefined ? {} : { cursor }) }));
      if (this.stopped) return;
      for (const id of toDrop(this.conversations.values(), page, reload)) {
        if (this.activeId === id) this.leaveRemoved(id);
        this.conversations.delete(id);
        this.failed.delete(id);
      }
      for (const c of page.conversations) this.upsert(c, false);
      this.listRetryMs = LIST_RETRY_FIRST_MS;
      this.listStatus.textContent = "";
      this.renderList();
      // The open conversation's header reads the list's copy too: a business chat closed while the app was offline
      // still said "Business chat" and took messages (each then refused) after the reconnect's reload.
      this.view?.refreshHeader();
      void this.loadPresence();
    } catch (err) {
      if (this.handleAuthError(err)) return;
      // Asked again until it loads: only a reconnect of the user socket asked again, and a list that failed as the
      // app started (its socket's first open is no reconnect) stayed empty until the page was reloaded.
      this.listStatus.textContent = `Could not load conversations (${(err as Error).message}). Trying again…`;
      if (!this.stopped && this.listRetry === undefined) {
        this.listRetry = setTimeout(() => void this.refreshList(), this.listRetryMs);
        this.listRetryMs = Math.min(this.listRetryMs * 2, LIST_RETRY_MAX_MS);
      }
    } finally {
      reload.end();
    }
  }

  /**
   * Adds or replaces a conversation (keeping the caller's own fields when a shared view comes in). A view older than
   * the one held (reads and pushes of changes in quick succession answer in any order) keeps the newer name, members
   * and status.
   */
  upsert(c: Conversation, render = true): void {
    const old = this.conversations.get(c.id);
    const merged = old ? mergeConversation(old, c) : c;
    this.conversations.set(c.id, merged);
    // The server just vouched for it: a list page being read meanwhile may predate the user's add.
    this.reloads.arrive(c.id);
    this.sawServerTime(merged.lastActivity);
    this.sawServerTime(merged.lastMessage?.createdAt);
    // Names from this copy, and only from one at least as new as the copy held: the merged copy carried the held
    // participants' profiles, and put a name learned before back over a rename learned since (from a message).
    if (!old || c.version >= old.version) this.dir.learn(c);
    if (render) this.renderList();
  }

  private sawServerTime(iso: string | undefined): void {
    if (iso && iso > this.serverNow) this.serverNow = iso;
  }

  conversation(id: string): Conversation | undefined {
    return this.conversations.get(id);
  }

  /** A message seen on any socket: preview, activity order. */
  noteMessage(conversationId: string, m: Message): void {
    const c = this.conversations.get(conversationId);
    if (!c) return;
    this.dir.learnMessage(m);
    this.sawServerTime(m.createdAt);
    const last = laterMessage(c.lastMessage, m);
    this.conversations.set(conversationId, {
      ...c,
      lastMessage: last,
      lastSeq: Math.max(c.lastSeq, m.seq),
      lastActivity: last && last.createdAt > c.lastActivity ? last.createdAt : c.lastActivity,
    });
    this.renderList();
  }

  /** The user's own mute flag, changed here: nothing else of the held copy is news (see upsert). */
  setMuted(conversationId: string, isMuted: boolean): void {
    const c = this.conversations.get(conversationId);
    if (!c || c.isMuted === isMuted) return;
    this.conversations.set(conversationId, { ...c, isMuted });
    this.renderList();
  }

  setUnread(conversationId: string, n: number): void {
    const c = this.conversations.get(conversationId);
    if (!c || c.unreadCount === n) return;
    this.conversations.set(conversationId, { ...c, unreadCount: n });
    this.renderList();
  }

  /** A pushed presence change (user socket or a conversation socket). */
  setPresence(update: PresenceUpdate): void {
    if (!this.presence.push(update)) return;
    this.renderList();
    this.view?.refreshHeader();
  }

  private renderList(): void {
    const sorted = [...this.conversations.values()].sort((a, b) => (a.lastActivity < b.lastActivity ? 1 : a.lastActivity > b.lastActivity ? -1 : 0));
    const focusedId = (document.activeElement as HTMLElement | null)?.closest?.<HTMLElement>(".conv-list li")?.dataset.id;
    let previous: HTMLLIElement | undefined;
    for (const c of sorted) {
      const row = this.rows.get(c.id) ?? h("li", { data: { id: c.id } });
      this.rows.set(c.id, row);
      this.fillRow(row, c);
      const expectedPosition = previous ? previous.nextSibling : this.list.firstChild;
      if (expectedPosition !== row) this.list.insertBefore(row, expectedPosition);
      previous = row;
    }
    for (const [id, row] of this.rows) {
      if (!this.conversations.has(id)) {
        row.remove();
        this.rows.delete(id);
      }
    }
    if (!this.pages.hasMore) this.moreRow.remove();
    else if (this.list.lastChild !== this.moreRow) this.list.append(this.moreRow);
    if (sorted.length === 0 && !this.listStatus.textContent) this.listStatus.textContent = "No conversations yet. Start one with “New”.";
    else if (sorted.length > 0 && this.listStatus.textContent?.startsWith("No conversations")) this.listStatus.textContent = "";
    if (focusedId && document.activeElement === document.body) this.rows.get(focusedId)?.querySelector("a")?.focus();
    const total = titleUnread(sorted, this.view?.isReading() ? this.activeId : undefined);
    this.unreadTotal = total;
    // An answer that lands after sign-out must not rename the sign-in page.
    if (!this.stopped) document.title = pageTitle(total, this.openTitle);
  }

  /** The open conversation's title changed (or none is open): the tab follows. */
  showTitle(conversation: string | undefined): void {
    this.openTitle = conversation;
    if (!this.stopped) document.title = pageTitle(this.unreadTotal, conversation);
  }

  private fillRow(row: HTMLLIElement, c: Conversation): void {
    const title = conversationTitle(c, this.me, this.dir);
    const peer = directPeer(c, this.me);
    const status = peer ? this.presence.status(peer) : undefined;
    const unread = c.id === this.activeId && this.view?.isReading() ? 0 : c.unreadCount;
    const last = c.lastMessage;
    const who = last && !last.deletedAt ? (last.senderId === this.me ? "You: " : c.type === "group" ? `${this.dir.name(last.senderId)}: ` : "") : "";
    // Rebuild only what changed: a focused link that is not replaced keeps its focus (and screen readers stay quiet).
    const signature = JSON.stringify([title, status, unread, who, preview(last), shortTime(last?.createdAt ?? c.lastActivity), c.isMuted, c.id === this.activeId]);
    if (row.dataset.sig === signature) return;
    row.dataset.sig = signature;
    const link = h(
      "a",
      {
        class: "conv-link",
        attrs: { href: `#/c/${c.id}`, "aria-current": c.id === this.activeId ? "page" : undefined },
        data: { type: c.type },
      },
      h(
        "span",
        { class: `avatar ${c.type}`, attrs: { "aria-hidden": "true" } },
        initials(title),
        status ? h("span", { class: `dot ${status}`, attrs: { title: presenceLabel[status] } }) : null,
      ),
      h(
        "span",
        { class: "conv-main" },
        h(
          "span",
          { class: "conv-top" },
          h("span", { class: "conv-name", attrs: { dir: "auto" }, text: title }),
          status ? srOnly(`, ${presenceLabel[status]}`) : null,
          h("time", { class: "conv-time", attrs: { datetime: c.lastActivity }, text: shortTime(last?.createdAt ?? c.lastActivity) }),
        ),
        h(
          "span",
          { class: "conv-bottom" },
          srOnly(". "),
          h("span", { class: "conv-preview", attrs: { dir: "auto" }, text: `${who}${preview(last)}` }),
          unread > 0 ? h("span", { class: "badge" }, srOnly(". "), String(unread > 99 ? "99+" : unread), srOnly(" unread")) : null,
          c.isMuted ? h("span", { class: "muted-flag", text: "muted" }) : null,
        ),
      ),
    );
    replace(row, link);
    row.classList.toggle("unread", unread > 0);
  }

  /** The end of the list scrolled into view: the next page comes without a click. */
  private onListScroll(): void {
    const l = this.list;
    if (this.pages.hasMore && l.scrollHeight - l.scrollTop - l.clientHeight < 120) void this.loadMore(false);
  }

  /** Reads the list's next page (older conversations); pressed, focus goes to the first conversation it brought. */
  private async loadMore(fromButton: boolean): Promise<void> {
    if (this.pages.busy || !this.pages.hasMore) return;
    // Not disabled: a disabled button drops the keyboard focus to the page.
    this.moreButton.setAttribute("aria-busy", "true");
    this.moreButton.textContent = "Loading more conversations…";
    const before = new Set(this.conversations.keys());
    try {
      const found = await this.pages.next((cursor) => this.chat.listConversations({ limit: LIST_PAGE, cursor }), (id) => this.conversations.has(id));
      if (this.stopped) return;
      for (const c of found) this.upsert(c, false);
      this.moreButton.textContent = "Load more conversations";
      this.renderList();
      void this.loadPresence();
      const first = fromButton ? found.find((c) => !before.has(c.id)) : undefined;
      if (first) this.rows.get(first.id)?.querySelector("a")?.focus();
    } catch (err) {
      if (this.handleAuthError(err)) return;
      this.moreButton.textContent = "Could not load more conversations. Try again";
    } finally {
      this.moreButton.removeAttribute("aria-busy");
    }
  }

  private async loadPresence(): Promise<void> {
    const peers = new Set<string>();
    for (const c of this.conversations.values()) for (const p of c.participants) if (p.userId !== this.me) peers.add(p.userId);
    if (peers.size === 0 || this.user.state !== "open") return;
    const read = this.presence.read();
    try {
      read.apply(await this.user.getPresence([...peers]));
      this.renderList();
      this.view?.refreshHeader();
    } catch {
      // presence is decoration; the next change is pushed anyway
    } finally {
      read.end();
    }
  }

  // ── User socket ──────────────────────────────────────────────────────────────────────────────────────

  private wireUserSocket(): void {
    const u = this.user;
    u.on("state", (s) => {
      this.connection.textContent =
        s.state === "open" ? "Online" : s.state === "offline" ? "Offline" : s.state === "closed" ? "Disconnected" : "Connecting…";
      this.connection.dataset.state = s.state;
      if (s.state === "open") {
        if (s.reconnected) void this.refreshList();
        else void this.loadPresence();
        if (!this.attention.isPresent()) u.setPresence("away");
      }
    });
    u.on("error", (e) => void this.handleAuthError(e));
    u.on("notification", ({ conversationId, message }) => {
      if (!this.conversations.has(conversationId)) {
        this.fetchUnknown(conversationId);
        return;
      }
      this.noteMessage(conversationId, message);
    });
    u.on("unread_count", ({ conversationId, unreadCount }) => {
      if (this.conversations.has(conversationId)) this.setUnread(conversationId, unreadCount);
      // A connect sends zeros too, for conversations the list may not hold: nothing to show for those.
      else if (unreadCount > 0) this.fetchUnknown(conversationId);
    });
    u.on("presence", (p) => this.setPresence(p));
    u.on("conversation_created", ({ conversation }) => {
      this.upsert(conversation);
      void this.loadPresence();
    });
    u.on("conversation_updated", ({ conversation }) => {
      // The user socket's view is this user's own: its count and mute flag (a mute from another device) stand.
      this.upsert(conversation);
      this.view?.refreshHeader();
    });
    u.on("conversation_removed", ({ conversationId }) => this.dropConversation(conversationId));
  }

  /** The user left a conversation here: gone from the list now, not when the server's push comes. */
  left(conversationId: string): void {
    this.dropConversation(conversationId);
  }

  private dropConversation(conversationId: string): void {
    const fetch = this.fetching.get(conversationId);
    if (fetch) fetch.removed = true;
    // Once: the server's push of a leave made here comes before the app has gone back to the list.
    if (this.activeId === conversationId && this.conversations.has(conversationId)) this.leaveRemoved(conversationId);
    this.conversations.delete(conversationId);
    this.reloads.remove(conversationId);
    this.pages.removed(conversationId);
    this.failed.delete(conversationId);
    this.renderList();
  }

  private fetchUnknown(id: string): void {
    if (this.fetching.has(id)) return;
    const fetch = { removed: false };
    this.fetching.set(id, fetch);
    void this.chat
      .getConversation(id)
      .then(
        (c) => {
          if (fetch.removed) return;
          this.upsert(c);
          void this.loadPresence();
        },
        () => {},
      )
      .finally(() => this.fetching.delete(id));
  }

  // ── Routing ──────────────────────────────────────────────────────────────────────────────────────────

  private async route(): Promise<void> {
    if (this.stopped) return;
    const m = ROUTE.exec(location.hash);
    const id = m?.[1].toLowerCase();
    if (id === this.activeId) return;
    const previous = this.activeId;
    this.view?.destroy();
    this.view = undefined;
    this.openTitle = undefined;
    this.activeId = id;
    this.shell.dataset.view = id ? "conversation" : "list";
    if (!id) {
      this.showEmptyPane(this.removedTitle);
      this.removedTitle = undefined;
      this.renderList();
      // Back on phones: return focus to the conversation we came from.
      if (previous) this.rows.get(previous)?.querySelector("a")?.focus();
      return;
    }
    let c = this.conversations.get(id);
    if (!c) {
      try {
        c = await this.chat.getConversation(id);
        this.upsert(c, false);
      } catch (err) {
        if (this.handleAuthError(err)) return;
        replace(
          this.pane,
          h("div", { class: "empty" }, h("h2", { text: "Conversation not available" }), h("p", { text: (err as ChatApiError).message }), h("a", { attrs: { href: "#/" }, text: "Back to conversations" })),
        );
        return;
      }
      if (this.activeId !== id) return;
    }
    this.view = new ConversationView(this, c);
    replace(this.pane, this.view.el);
    this.renderList();
    void this.view.start();
  }

  /**
   * The open conversation is no longer the user's (removed, left on another device): back to the list, saying so. It
   * vanished, and the pane said "No conversation selected" as if the user had closed it.
   */
  private leaveRemoved(id: string): void {
    const c = this.conversations.get(id);
    this.removedTitle = c ? conversationTitle(c, this.me, this.dir) : "this conversation";
    location.hash = "#/";
  }

  private showEmptyPane(removed?: string): void {
    replace(
      this.pane,
      removed === undefined
        ? h("div", { class: "empty" }, h("h2", { text: "No conversation selected" }), h("p", { text: "Pick a conversation from the list, or start a new one." }))
        : h(
            "div",
            { class: "empty", attrs: { role: "status" } },
            h("h2", { text: "You are no longer in this conversation" }),
            h("p", { text: `You left or were removed from “${removed}”.` }),
          ),
    );
  }

  private skipToMain(e: Event): void {
    e.preventDefault();
    const target = this.pane.querySelector<HTMLElement>("#composer-input") ?? this.pane;
    target.focus();
  }

  /** Opens a conversation that was just created or found. */
  open(c: Conversation): void {
    this.upsert(c);
    void this.loadPresence();
    location.hash = `#/c/${c.id}`;
  }

  /** A 401 means the demo token expired or the server's secret changed: back to sign-in. */
  handleAuthError(err: unknown): boolean {
    if (err instanceof ChatApiError && err.statusCode === 401) {
      this.signOut();
      return true;
    }
    return false;
  }

  /** Messages written but not on the server yet (offline, say), on screen or still draining: sign-out drops them. */
  private unsentCount(): number {
    let n = this.view?.unsentCount() ?? 0;
    for (const socket of this.unsent.values()) n += socket.outbox().length;
    return n;
  }

  /** The Sign out button: it dropped unsent messages without a word; now the user is asked first. */
  private async askSignOut(): Promise<void> {
    const n = this.unsentCount();
    if (n > 0) {
      const messages = `${n} unsent message${n === 1 ? "" : "s"}`;
      const ok = await confirmDialog(`Sign out with ${messages}?`, "They have not reached the server yet. Signing out drops them; stay signed in and they are sent once the connection is back.", "Sign out");
      if (!ok) return this.signOutButton.focus();
    }
    this.signOut(true);
  }

  /**
   * `forget`: the user chose to sign out, and the drafts kept in the tab over reloads go with them. An expired token
   * (a 401) keeps them for the same user's next sign-in in this tab; another user's are under another key.
   */
  private signOut(forget = false): void {
    // Twice (a 401 while the question was open, two 401s at once) would show the sign-in page twice.
    if (this.stopped) return;
    this.stop();
    if (forget) this.drafts.clear();
    this.onSignOut();
  }
}

/** The tab's sessionStorage, where the browser allows it (a disabled one throws on access). */
function tabStorage(): DraftStore | undefined {
  try {
    return window.sessionStorage;
  } catch {
    return undefined;
  }
}
