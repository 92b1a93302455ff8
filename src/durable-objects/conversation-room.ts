import { DurableObject } from "cloudflare:workers";
import { getConfig, type Config } from "../lib/config";
import { asRpcResult, errorReason, HttpError, migrationsPending, notFound, reportMigrationsPending, unavailable, type RpcResult } from "../lib/errors";
import { createLogger, type Logger } from "../lib/log";
import { createRedis, withTimeout } from "../lib/redis";
import { flushSoon, metrics } from "../lib/metrics";
import { clearOutboxPending, noteOutboxPending } from "../jobs/outbox-registry";
import { ObjectDb } from "../db/client";
import { flushBatch, messagePage, messageRange, newestMessages, unreadCount, type StoredMessage } from "../db/queries/messages";
import { kahaIdsOf } from "../db/queries/participants";
import { loadRoomState } from "../db/queries/room";
import { searchConversation } from "../db/queries/search";
import { backoffMs } from "../domain/backoff";
import { mergePage, overlayChanges, pageSpan, withWaiting } from "../domain/history";
import { ActivityNotes } from "../domain/presence";
import { TYPING_LEASE_MS } from "../domain/typing";
import { LIMITS, type Message, type Participant } from "../protocol/resources";
import { encodeFrame } from "../protocol/frames";
import type { Actor, HistoryPage, HistoryQuery, ReadResult, RoomEvent, RoomMarks, SearchInput, SearchPage, SendInput, SendResult } from "./room-api";
import { MAX_FLIGHTS, OutboxFlusher } from "./room/outbox";
import { RoomStore, type RoomMeta } from "./room/store";
import { Backfill } from "./room/backfill";
import { attachmentOf, WindowRateLimiter, safeClose, sendRaw } from "./room/sockets";
import { RoomProfiles } from "./room/profiles";
import { NotificationBatcher } from "./room/notifications";
import { RoomMembership } from "./room/membership";
import { PreviewNotices } from "./room/previews";
import { sharedConversation } from "./shared-view";
import { handleSocketMessage, holdIfResuming, openRefusal, openSocket, replayFor } from "./room/realtime";
import { deleteMessage, editMessage, findMessage, publicMessage, sendMessage } from "./room/messages";

export { publicMessage };

/**
 * One per conversation: the single writer of its messages (it assigns seq), the holder of its live sockets,
 * typing leases and receipts. Durable state lives in SQLite storage (room/store.ts) and socket attachments, so a
 * wake from hibernation loses nothing; Postgres is written through in batches (room/outbox.ts). The room holds the
 * conversation's unarchived history (room/backfill.ts fills in what was there before it), so reads stay local.
 * RPC methods answer with RpcResult values (lib/errors.ts): expected failures are data, not exceptions.
 */
/** Unread counts over at most this many seqs are counted from the room's rows (see unreadFor). */
const LOCAL_UNREAD_MAX = 1000;
/** Messages newestSentBy passes at most (those sent after a mark-all-read was asked, before its turn). */
const SENT_BY_WALK_MAX = 1000;

export class ConversationRoom extends DurableObject<Env> {
  readonly store: RoomStore;
  readonly flusher: OutboxFlusher;
  readonly profiles: RoomProfiles;
  readonly log: Logger;
  readonly backfill: Backfill;
  // The outbox's flights (MAX_FLIGHTS with messages, one with receipts only), and two more: a flush must not wait
  // behind two slow reads (history, search) of the room.
  private readonly pg = new ObjectDb(() => ({ databaseUrl: this.config.DATABASE_URL, bridge: this.config.PG_BRIDGE }), MAX_FLIGHTS + 3);
  private retryAttempt = 0;
  private registeredPending = false;
  /** The member list: notices, re-reads from Postgres (room/membership.ts). */
  readonly membership = new RoomMembership(this);
  /** Conversation lists told of a changed last message once the change commits (room/previews.ts). */
  readonly previews: PreviewNotices;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.store = new RoomStore(ctx.storage.sql, ctx.storage);
    this.log = createLogger({ object: "ConversationRoom", conversationId: this.store.meta()?.conversationId });
    this.backfill = new Backfill({
      store: this.store,
      archivedUpToSeq: () => this.archivedUpToSeq(),
      noteArchived: (upToSeq) => this.noteArchived(upToSeq),
      read: (from, to) => this.pgOr503(() => messageRange(this.db(), this.conversationId(), from, to)),
      log: this.log,
    });
    this.profiles = new RoomProfiles({
      config: () => this.config,
      participantIds: () => Array.from(this.store.participantsView(), (p) => p.userId),
      waitUntil: (work) => ctx.waitUntil(work),
      // Only for placeholder names: short, so a slow database does not hold back a replay.
      kahaIdsOf: (ids) => withTimeout(kahaIdsOf(this.db(), ids), 1000, "kahaIds"),
    });
    this.previews = new PreviewNotices({
      kv: ctx.storage.kv,
      lastSeq: () => this.store.meta()?.lastSeq ?? 0,
      view: () => this.pgOr503(() => sharedConversation(this.db(), this.profiles.shared(), this.conversationId())),
      tell: async (userIds, conversation) => {
        const told = await Promise.allSettled(userIds.map((id) => this.userSession(id).conversationEvent({ type: "conversation_updated", conversation })));
        const failed = told.filter((r) => r.status === "rejected").length;
        if (failed) this.log.warn("user notify failed", { failed, type: "conversation_updated" });
      },
      keepAlive: (work) => ctx.waitUntil(work),
      log: this.log,
    });
    this.flusher = new OutboxFlusher({
      store: this.store,
      write: (batch, watermarks, audit) =>
        withTimeout(flushBatch(this.db(), this.conversationId(), batch, watermarks, audit), 10_000, "outbox flush"),
      onCommitted: (rows) => {
        this.retryAttempt = 0;
        this.previews.committed(rows);
        if (this.registeredPending && this.store.pendingCount() === 0) {
          this.registeredPending = false;
          ctx.waitUntil(clearOutboxPending(createRedis(this.config), this.conversationId()).catch(() => {}));
        }
      },
      onFailed: (err) => {
        this.resetDb();
        // Once per failure streak, the room registers itself for the sweeper (a safety net beside its own alarm).
        if (!this.registeredPending) {
          this.registeredPending = true;
          ctx.waitUntil(noteOutboxPending(createRedis(this.config), this.conversationId()).catch(() => {}));
        }
        this.log.warn("outbox flush failed", { error: errorReason(err).slice(0, 200), pending: this.store.pendingCount() });
        void this.scheduleAlarm();
      },
    });
  }

  /** The object's state, for the plain modules in room/ (ctx itself is protected). */
  get state(): DurableObjectState {
    return this.ctx;
  }

  get config(): Config {
    return getConfig(this.env);
  }

  db() {
    return this.pg.db;
  }

  resetDb(): void {
    this.pg.reset();
  }

  conversationId(): string {
    const meta = this.store.meta();
    if (!meta) throw new Error("room not initialised");
    return meta.conversationId;
  }

  /** Loads the conversation from Postgres the first time this storage is used; afterwards storage is enough. */
  async ready(conversationId: string): Promise<RoomMeta> {
    const meta = this.store.meta();
    if (meta) {
      if (meta.conversationId !== conversationId) throw notFound("Conversation");
      this.resumeBackfill();
      if (this.membership.due(Date.now())) await this.membership.refresh(conversationId);
      // Read again: other requests ran during the await (a send moved lastSeq, a member list closed the room).
      return this.store.meta() ?? meta;
    }
    // No blockConcurrencyWhile here: its input gate would also hold back replies on a pooled Postgres connection
    // opened by an earlier request, and the load would hang. Requests that arrive while the room loads (a group
    // coming online) share the one load: one Postgres connection, not one per socket.
    if (this.loading?.conversationId !== conversationId) {
      const load = this.load(conversationId).finally(() => {
        if (this.loading?.promise === load) this.loading = undefined;
      });
      this.loading = { conversationId, promise: load };
    }
    const outcome = await this.loading.promise;
    if (outcome === "missing") throw notFound("Conversation");
    if (outcome === "down") throw unavailable("Database unavailable");
    if (outcome instanceof HttpError) throw outcome;
    if (outcome.conversationId !== conversationId) throw notFound("Conversation");
    return outcome;
  }

  private loading: { conversationId: string; promise: Promise<RoomMeta | "missing" | "down" | HttpError> } | undefined;

  /** The first load of this room from Postgres; initialise() is synchronous, so a state already there wins. */
  private async load(conversationId: string): Promise<RoomMeta | "missing" | "down" | HttpError> {
    try {
      const state = await loadRoomState(this.db(), conversationId);
      // A conversation with history adopts its newest page (no query for a new one: most rooms start that way).
      const recent = state && state.maxSeq > state.archivedUpToSeq ? await newestMessages(this.db(), conversationId, LIMITS.pageMax) : [];
      const again = this.store.meta();
      if (again) return again;
      if (!state) return "missing";
      // The adopted rows are held only if they run unbroken up to maxSeq; older ones come with the backfill.
      const oldest = recent[0]?.seq ?? state.maxSeq + 1;
      const unbroken = recent.length === state.maxSeq - oldest + 1 && recent.every((m, i) => m.seq === oldest + i);
      const fresh: RoomMeta = {
        conversationId,
        type: state.type,
        lastSeq: state.maxSeq,
        pgSeqAtInit: state.maxSeq,
        clientIdsPrunedBelow: 0,
        closed: state.closed,
        heldFrom: unbroken ? oldest : state.maxSeq + 1,
      };
      this.store.initialise(fresh, state.participants, state.offline, recent);
      this.noteArchived(state.archivedUpToSeq);
      this.membership.markChecked(Date.now());
      this.resumeBackfill();
      return fresh;
    } catch (err) {
      const pending = migrationsPending(err);
      if (pending) {
        reportMigrationsPending(err, this.log);
        return pending;
      }
      this.resetDb();
      this.log.warn("room init failed", { error: errorReason(err).slice(0, 200) });
      return "down";
    }
  }

  private backfillResumed = false;

  /**
   * Once per instance: a room whose history is not all held yet (started over existing history, or storage from
   * before rooms held it) has the alarm read the rest. Later chunks are chained by the alarm itself.
   */
  private resumeBackfill(): void {
    if (this.backfillResumed) return;
    this.backfillResumed = true;
    if (this.backfill.incomplete()) void this.scheduleAlarm();
  }

  /** Whether every unarchived message is in the room: nothing it is asked about by seq or id needs Postgres. */
  holdsHistory(): boolean {
    return !this.backfill.incomplete();
  }

  participants(): Participant[] {
    return this.store.participants();
  }

  member(userId: string): Participant | undefined {
    return this.store.participant(userId);
  }

  requireMember(userId: string): Participant {
    const p = this.member(userId);
    if (!p) throw notFound("Conversation");
    return p;
  }

  /** Serialises once, sends to every open socket of the room (held back for a socket that is replaying). */
  broadcast(type: string, data: unknown, seq?: number): void {
    this.fanOut(encodeFrame(type, data), this.ctx.getWebSockets(), seq);
  }

  /** As broadcast, but not to `userId`'s own sockets (any device): nobody is shown their own typing. */
  broadcastToOthers(userId: string, type: string, data: unknown): void {
    const own = new Set(this.ctx.getWebSockets(userId));
    this.fanOut(encodeFrame(type, data), this.ctx.getWebSockets().filter((ws) => !own.has(ws)));
  }

  private fanOut(frame: string, sockets: WebSocket[], seq?: number): void {
    for (const ws of sockets) if (!holdIfResuming(ws, frame, seq)) sendRaw(ws, frame);
    metrics.count("fanout_frames_total", sockets.length);
    flushSoon(this.config, (work) => this.ctx.waitUntil(work));
  }

  // ── RPC ────────────────────────────────────────────────────────────────────────────────────────────────────

  async send(input: SendInput): Promise<RpcResult<SendResult>> {
    return asRpcResult(() => sendMessage(this, input, "rest"));
  }

  async edit(input: { conversationId: string; actor: Actor; messageId: string; content: string }): Promise<RpcResult<Message>> {
    return asRpcResult(() => this.editMessage(input));
  }

  async remove(input: { conversationId: string; actor: Actor; messageId: string }): Promise<RpcResult<Message>> {
    return asRpcResult(() => this.deleteMessage(input));
  }

  /** A page as JSON text (see HistoryPage): most pages are read from the room's rows without parsing them. */
  async history(q: HistoryQuery): Promise<RpcResult<HistoryPage>> {
    return asRpcResult(async () => {
      const meta = await this.ready(q.conversationId);
      this.requireMember(q.actor.id);
      const archivedUpToSeq = this.archivedUpToSeq();
      // A page the room holds (every page, once its history is hydrated) comes from its own rows, the newest truth,
      // with no Postgres round trip; a cursor outside the range needs no rows at all. Anything else is read from
      // Postgres: older pages while the backfill has not reached them.
      const span = pageSpan(q, archivedUpToSeq + 1, meta.lastSeq);
      if (span.from > span.to) return { messages: [], hasMore: span.hasMore, lastSeq: meta.lastSeq, archivedUpToSeq };
      const held = this.store.rangeJson(span.from, span.to);
      if (held.length === span.to - span.from + 1) {
        return { messages: held, hasMore: span.hasMore, lastSeq: meta.lastSeq, archivedUpToSeq };
      }
      // Merged over the page: rows pending now, and rows that were pending when the read began (one may commit while
      // the page is read; that read can miss it, and it is no longer pending after). The room keeps committed rows
      // until they are archived, so its rows from the older of the two oldest pending seqs, within the cursor, cover
      // both, once each.
      const oldestPending = () => this.store.pending(1)[0]?.message.seq ?? Number.POSITIVE_INFINITY;
      const pendingAtStart = oldestPending();
      const page = await this.pgOr503(() => messagePage(this.db(), q.conversationId, q));
      // Not below the archive mark: an archived message's edit waits here while its flush fails, and pages end there.
      const from = Math.max(Math.min(pendingAtStart, oldestPending()), (q.after ?? 0) + 1, this.archivedUpToSeq() + 1);
      const to = Math.min(this.store.meta()?.lastSeq ?? meta.lastSeq, (q.before ?? Number.POSITIVE_INFINITY) - 1);
      const local = from <= to ? this.store.range(from, to) : [];
      const merged = mergePage(page, local.map(publicMessage), q);
      const messages = merged.messages.map((m) => ({ json: JSON.stringify(m), senderId: m.senderId }));
      return { messages, hasMore: merged.hasMore, lastSeq: meta.lastSeq, archivedUpToSeq };
    });
  }

  /**
   * Search in this conversation, on the room's pooled connection: from the Worker, every search paid for a new
   * Postgres connection (and a membership query the room answers from memory).
   */
  async search(input: SearchInput): Promise<RpcResult<SearchPage>> {
    return asRpcResult(async () => {
      await this.ready(input.conversationId);
      this.requireMember(input.actor.id);
      const { actor: _actor, ...query } = input;
      // Postgres has not seen changes still pending here (an outage, a retry's backoff): a deleted message would be
      // found by its old text, an edited one shown with it. Those pending when the read began count too: one may
      // commit while the read runs, after its snapshot.
      // An archived message's edit waits here too while its flush fails: the conversation's search never finds the
      // archive (nor did it find that message before the edit).
      const pendingSeqs = () => {
        const mark = this.archivedUpToSeq();
        return this.store.pending(Number.MAX_SAFE_INTEGER).flatMap((p) => (p.message.seq > mark ? [p.message.seq] : []));
      };
      const changed = new Set(pendingSeqs());
      const page = await this.pgOr503(() => searchConversation(this.db(), query));
      for (const seq of pendingSeqs()) changed.add(seq);
      const local = (seq: number) => {
        const m = this.store.messageBySeq(seq);
        return m && publicMessage(m);
      };
      const shown = { ...page, messages: overlayChanges(page.messages, changed, local, query.q) };
      const waiting = [...changed].flatMap((seq) => local(seq) ?? []);
      return withWaiting(shown, waiting, query.q, { beforeSeq: query.beforeSeq, limit: query.limit });
    });
  }

  async getMessage(input: { conversationId: string; actor: Actor; messageId: string }): Promise<RpcResult<Message>> {
    return asRpcResult(async () => {
      await this.ready(input.conversationId);
      this.requireMember(input.actor.id);
      const m = await this.findMessage(input.messageId);
      if (!m) throw notFound("Message");
      return publicMessage(m);
    });
  }

  /** A device of `actor` got messages up to `seq` on its user socket (a notification), the conversation not open. */
  async markDelivered(input: { conversationId: string; actor: Actor; seq: number }): Promise<RpcResult<{ lastDeliveredSeq: number }>> {
    return asRpcResult(async () => {
      await this.ready(input.conversationId);
      this.requireMember(input.actor.id);
      return { lastDeliveredSeq: this.deliveredUpTo(input.actor.id, input.seq) };
    });
  }

  /**
   * `sentBy` (ISO; without a seq or message): up to the newest message sent by then. mark-all-read asks its rooms a
   * few at a time, and a message sent after the user asked, before their turn, was marked read unseen.
   */
  async markRead(input: { conversationId: string; actor: Actor; seq?: number; messageId?: string; sentBy?: string }): Promise<RpcResult<ReadResult>> {
    return asRpcResult(async () => {
      await this.ready(input.conversationId);
      this.requireMember(input.actor.id);
      let target = input.seq;
      if (input.messageId) {
        const m = await this.findMessage(input.messageId);
        if (!m) throw notFound("Message");
        target = m.seq;
      }
      // The newest seq as it is after the lookup's wait (a Postgres round trip for a message the room does not hold):
      // ready's copy, older, lowered a mark up to a message sent meanwhile to the one before it.
      const newest = target === undefined && input.sentBy !== undefined ? this.newestSentBy(input.sentBy) : this.store.meta()!.lastSeq;
      const before = this.member(input.actor.id)?.lastReadSeq ?? 0;
      const p = this.applyWatermark(input.actor.id, { read: Math.min(target ?? newest, newest) }, { holdOwnRead: true });
      this.noteActivity(input.actor.id);
      await this.waitForCommit();
      if (p.lastReadSeq > before) this.answerOwnRead(input.actor.id, p);
      // Another device may have read further during the commit: the answer is the mark as it stands now.
      const unread = await this.currentUnread(input.actor.id, p.lastReadSeq);
      this.ctx.waitUntil(this.userSession(input.actor.id).unreadChanged({ conversationId: input.conversationId, ...unread }));
      const now = this.member(input.actor.id) ?? p;
      return { conversationId: input.conversationId, lastReadSeq: unread.readSeq, lastReadAt: now.lastReadAt, unreadCount: unread.unreadCount };
    });
  }

  /**
   * mark-all-read for a conversation Postgres counts nothing unread in: the room may hold messages its flush has not
   * written yet (a conversation socket shows a message before its commit). Marks read only when the room counts
   * something unread; a room that never loaded holds nothing Postgres lacks, answers undefined and is not loaded.
   */
  async markReadIfUnread(input: { conversationId: string; actor: Actor; sentBy?: string }): Promise<RpcResult<ReadResult | undefined>> {
    const p = this.store.meta()?.conversationId === input.conversationId ? this.member(input.actor.id) : undefined;
    if (!p) return { ok: true, value: undefined };
    if (input.sentBy !== undefined && this.newestSentBy(input.sentBy) <= p.lastReadSeq) return { ok: true, value: undefined };
    const unread = await asRpcResult(() => this.unreadFor(input.actor.id, p.lastReadSeq));
    if (!unread.ok) return unread;
    if (unread.value.unreadCount === 0) return { ok: true, value: undefined };
    return this.markRead(input);
  }

  /**
   * The newest seq sent at or before `at` (ISO), walking back from the newest: only messages sent since are passed
   * (a handful), and the walk is bounded should the caller's clock be far off. A message the room does not hold is older.
   */
  private newestSentBy(at: string): number {
    const limit = Date.parse(at);
    let seq = this.store.meta()!.lastSeq;
    if (Number.isNaN(limit)) return seq;
    for (let walked = 0; seq > 0 && walked < SENT_BY_WALK_MAX; walked++, seq--) {
      const m = this.store.peekMessage(seq);
      if (!m || Date.parse(m.createdAt) <= limit) break;
    }
    return seq;
  }

  /**
   * Every member's read and delivered marks as the room holds them, for the Worker's Postgres answers: the marks the
   * room acknowledged last reach Postgres with a later flush (the outbox's backoff, while Postgres is unreachable).
   * A room that never loaded has acknowledged none: it answers undefined and is not loaded for this.
   */
  async readMarks(conversationId: string): Promise<RpcResult<RoomMarks[] | undefined>> {
    return asRpcResult(async () => {
      if (this.store.meta()?.conversationId !== conversationId) return undefined;
      return Array.from(this.store.participantsView(), ({ userId, lastReadSeq, lastReadAt, lastDeliveredSeq }) => ({
        userId,
        lastReadSeq,
        lastReadAt,
        lastDeliveredSeq,
      }));
    });
  }

  /**
   * The newest seq given, for a member about to be added (their marks start there): messages still waiting for
   * Postgres were sent before the join. A room never loaded has none waiting: undefined, and it is not loaded for this.
   */
  async newestSeq(conversationId: string): Promise<RpcResult<number | undefined>> {
    return asRpcResult(async () => {
      const meta = this.store.meta();
      return meta?.conversationId === conversationId ? meta.lastSeq : undefined;
    });
  }

  async notify(event: RoomEvent): Promise<RpcResult<void>> {
    return asRpcResult(async () => {
      // A room that was never used has nothing to mirror: it will load fresh state on first use. A load in flight
      // may have read Postgres before this change: the event waits for it, then applies.
      if (!this.store.meta()) await this.loading?.promise;
      const meta = this.store.meta();
      if (!meta || meta.conversationId !== event.conversationId) return;
      if (event.kind === "participants") {
        await this.membership.apply(event);
      } else if (event.kind === "conversation_updated") {
        if (event.conversation.status === "closed" && !meta.closed) this.closeRoom();
        // Pushes of changes made in quick succession (two renames) can arrive out of order: the older view, sent
        // last, left every open socket with the old name. The conversation's version orders them.
        const kv = this.ctx.storage.kv;
        if (event.conversation.version < (kv.get<number>("viewVersion") ?? 0)) return;
        kv.put("viewVersion", event.conversation.version);
        this.broadcast("conversation_updated", { conversation: event.conversation });
      } else {
        for (const ws of this.ctx.getWebSockets()) safeClose(ws, 4403, "Conversation removed");
      }
    });
  }

  /** A participant's presence changed (from their user session): tell this room's sockets. */
  async presence(update: { userId: string; status: string; lastSeen: string | null }): Promise<void> {
    // A room not loaded yet reads the user's state from Postgres when it loads (the session wrote it first). A load
    // in flight may have read it before that write, and would keep the old state: the update waits for it.
    if (!this.store.meta()) await this.loading?.promise;
    if (!this.store.meta()) return;
    this.store.setReachable(update.userId, update.status !== "offline");
    // A publish whose audience was read just before the user's removal committed lands after it: the group's
    // members, who no longer share it with them, got their presence. Reachability is kept (a join's notice may
    // still be on its way); only the frame is not sent.
    if (this.ctx.getWebSockets().length === 0 || !this.member(update.userId)) return;
    this.broadcast("presence_update", update);
  }

  /** For the outbox sweeper: flush now if anything is pending. */
  async flushNow(): Promise<{ pending: number }> {
    if (this.store.pendingCount() > 0) await this.flusher.flush().catch(() => {});
    await this.scheduleAlarm();
    return { pending: this.store.pendingCount() };
  }

  /** Test and operations hook: how much is waiting for Postgres. */
  async outboxStatus(): Promise<{ pending: number; lastSeq: number; retryAttempt: number }> {
    return { pending: this.store.pendingCount(), lastSeq: this.store.meta()?.lastSeq ?? 0, retryAttempt: this.retryAttempt };
  }

  /**
   * [operations] The retention job (src/jobs/retention.ts) moved seq <= upToSeq to message_archive: drop the local
   * committed copies (pending rows stay and flush as usual) and tell the sockets. A room never used does nothing.
   */
  async archived(upToSeq: number): Promise<{ notified: number }> {
    const meta = this.store.meta();
    if (!meta || !Number.isInteger(upToSeq) || upToSeq < 1) return { notified: 0 };
    this.noteArchived(upToSeq);
    this.broadcast("messages_archived", { conversationId: meta.conversationId, upToSeq });
    // Archived messages no longer count as unread (REST counts read `messages`): badges that counted them follow.
    this.badgesAfterArchive(upToSeq);
    return { notified: this.ctx.getWebSockets().length };
  }

  /**
   * Seqs up to this one are in the archive (Postgres's mark, read when the room loads and refreshes, and from the
   * job's notice): a client resuming from below it hears messages_archived first (room/realtime.ts).
   */
  archivedUpToSeq(): number {
    // Every page asks; a storage read each time was 5% of a page's CPU.
    this.archivedMemo ??= this.ctx.storage.kv.get<number>("archivedUpToSeq") ?? 0;
    return this.archivedMemo;
  }

  private archivedMemo: number | undefined;

  /** Also drops the room's committed copies of those seqs, so no page or replay the room answers shows them. */
  noteArchived(upToSeq: number): void {
    if (upToSeq <= this.archivedUpToSeq()) return;
    this.ctx.storage.kv.put("archivedUpToSeq", upToSeq);
    this.archivedMemo = upToSeq;
    // Flushed marks not yet written (markFlushed defers them) first: a committed row still marked pending stayed.
    this.store.settle();
    this.ctx.storage.sql.exec("DELETE FROM messages WHERE pending = 0 AND seq <= ?", upToSeq);
  }

  // ── Messages (room/messages.ts) ───────────────────────────────────────────────────────────────────────────

  /** A send from a socket of this room (the REST route comes through the `send` RPC). */
  sendMessage(input: SendInput): Promise<SendResult> {
    return sendMessage(this, input, "ws");
  }

  editMessage(input: { conversationId: string; actor: Actor; messageId: string; content: string }): Promise<Message> {
    return editMessage(this, input);
  }

  deleteMessage(input: { conversationId: string; actor: Actor; messageId: string }): Promise<Message> {
    return deleteMessage(this, input);
  }

  /** Local storage first, then (while the history is not all held) Postgres; a message read there is cached. */
  findMessage(id: string): Promise<StoredMessage | undefined> {
    return findMessage(this, id);
  }

  private readonly activity = new ActivityNotes();

  /** The user sent, typed or read here: their session keeps them from idling `away` (see domain/presence.ts). */
  noteActivity(userId: string): void {
    // No device on the user socket: there is no presence to keep.
    if (this.store.offlineUsers().has(userId)) return;
    if (!this.activity.due(userId, Date.now(), this.config.PRESENCE_AWAY_AFTER * 1000)) return;
    this.ctx.waitUntil(
      this.userSession(userId)
        .activity()
        .catch((err: unknown) => this.log.warn("activity note failed", { error: errorReason(err).slice(0, 200) })),
    );
  }

  private userSession(userId: string) {
    const ns = this.env.USER_SESSION;
    return ns.get(ns.idFromName(userId));
  }

  /**
   * Every reachable participant but the sender hears of new messages on their user socket (flagged when muted),
   * batched. Offline members are skipped: waking each one's session per message is the cost that grows with the
   * room, and their badges are re-derived from Postgres when a device connects.
   */
  readonly notifications = new NotificationBatcher({
    recipients: () => {
      const offline = this.store.offlineUsers();
      return [...this.store.participantsView()].filter((p) => !offline.has(p.userId));
    },
    current: (m) => {
      const now = this.store.peekMessage(m.seq);
      if (!now) return m;
      if (now.deletedAt) return undefined;
      return now.editedAt === m.editedAt ? m : { ...m, content: now.content, editedAt: now.editedAt };
    },
    deliver: (userId, batch) => this.userSession(userId).messageNotifications(batch),
    keepAlive: (work) => this.ctx.waitUntil(work),
    onFailed: (failed, recipients) => this.log.warn("notifications failed", { failed, recipients }),
  });

  /**
   * A deleted message no longer counts as unread: the badges of those reachable members who had not read it follow
   * (the others' are re-derived from Postgres when a device connects).
   */
  badgesAfterDelete(deleted: { seq: number; senderId: string }): void {
    this.refreshBadges((p) => p.userId !== deleted.senderId && p.lastReadSeq < deleted.seq);
  }

  /** Members who had not read up to the archive mark counted archived messages; their open devices' badges follow. */
  badgesAfterArchive(upToSeq: number): void {
    this.refreshBadges((p) => p.lastReadSeq < upToSeq);
  }

  private refreshBadges(affected: (p: Participant) => boolean): void {
    const offline = this.store.offlineUsers();
    for (const p of this.store.participantsView()) {
      if (offline.has(p.userId) || !affected(p)) continue;
      this.ctx.waitUntil(this.readMarked(p.userId, p.lastReadSeq));
    }
  }

  /**
   * A read mark made on a socket, answered to the reader once it is in Postgres (or the write-through deadline has
   * passed, as a message's ack): their own sockets' message_read, then their badge on every device. The app takes
   * either as "read" and may fetch the list or the badge counts next, which read Postgres: answered before the
   * flush committed, they showed the old count again. The other members' receipts go out at once.
   */
  markReadOnSocket(userId: string, seq: number): void {
    const before = this.member(userId)?.lastReadSeq ?? 0;
    const p = this.applyWatermark(userId, { read: Math.min(seq, this.store.meta()!.lastSeq) }, { holdOwnRead: true });
    this.noteActivity(userId);
    // A flush that failed re-arms the alarm (waitForCommit): the answer goes at the deadline either way.
    const committed = this.waitForCommit().catch(() => false);
    if (p.lastReadSeq <= before) return void this.ctx.waitUntil(committed);
    this.ctx.waitUntil(
      committed.then(() => {
        this.answerOwnRead(userId, p);
        return this.readMarked(userId, p.lastReadSeq);
      }),
    );
  }

  /** The reader's own sockets hear of a read held back by applyWatermark's `holdOwnRead`. */
  private answerOwnRead(userId: string, p: Participant): void {
    const data = { userId, conversationId: this.conversationId(), lastReadSeq: p.lastReadSeq, readAt: p.lastReadAt };
    this.fanOut(encodeFrame("message_read", data), this.ctx.getWebSockets(userId));
  }

  /** After a read mark: the user's badge follows, on every device. */
  async readMarked(userId: string, lastReadSeq: number): Promise<void> {
    try {
      const unread = await this.currentUnread(userId, lastReadSeq);
      await this.userSession(userId).unreadChanged({ conversationId: this.conversationId(), ...unread });
    } catch (err) {
      this.log.warn("badge update failed", { error: errorReason(err).slice(0, 200) });
    }
  }

  // ── Receipts ──────────────────────────────────────────────────────────────────────────────────────────────

  /** Delivered up to `seq` (clamped to the newest message), from either socket; written with the next flush. */
  deliveredUpTo(userId: string, seq: number): number {
    const p = this.applyWatermark(userId, { delivered: Math.min(seq, this.store.meta()!.lastSeq) });
    this.flushOutboxSoon();
    return p.lastDeliveredSeq;
  }

  /** A failed flush leaves it to the alarm's retry. */
  flushOutboxSoon(): void {
    void this.flusher.flush().catch(() => this.scheduleAlarm());
  }

  /**
   * Moves a participant's watermarks forward only, stores them for the next flush, broadcasts the change.
   * `holdOwnRead`: the reader's own sockets are not told of a read here; the caller answers them after the commit.
   */
  applyWatermark(userId: string, move: { read?: number; delivered?: number }, options: { holdOwnRead?: boolean } = {}): Participant {
    const p = this.requireMember(userId);
    const next = { ...p };
    const now = new Date().toISOString();
    let readMoved = false;
    let deliveredMoved = false;
    if (move.read !== undefined && move.read > p.lastReadSeq) {
      next.lastReadSeq = move.read;
      next.lastReadAt = now;
      readMoved = true;
    }
    // Reading implies delivery.
    const delivered = Math.max(move.delivered ?? 0, readMoved ? next.lastReadSeq : 0);
    if (delivered > p.lastDeliveredSeq) {
      next.lastDeliveredSeq = delivered;
      deliveredMoved = true;
    }
    if (!readMoved && !deliveredMoved) return p;
    this.store.upsertParticipant(next);
    this.store.setWatermark(userId, {
      lastReadSeq: readMoved ? next.lastReadSeq : undefined,
      lastReadAt: readMoved ? now : undefined,
      lastDeliveredSeq: deliveredMoved ? next.lastDeliveredSeq : undefined,
    });
    const conversationId = this.conversationId();
    if (readMoved) {
      const read = { userId, conversationId, lastReadSeq: next.lastReadSeq, readAt: now };
      if (options.holdOwnRead) this.broadcastToOthers(userId, "message_read", read);
      else this.broadcast("message_read", read);
    }
    if (deliveredMoved) this.broadcast("message_delivered", { userId, conversationId, lastDeliveredSeq: next.lastDeliveredSeq });
    return next;
  }

  /**
   * The user's count for their read mark as it stands when the count is done. The mark can move while a count waits
   * (a commit, a Postgres count): another device reads further. A count for the older mark, as of a newer seq, won
   * in the session (domain/badges.ts orders counts by seq first) and put the messages read meanwhile back on every
   * device's badge, until the next read.
   */
  private async currentUnread(userId: string, fallback: number): Promise<{ unreadCount: number; asOfSeq: number; readSeq: number }> {
    let mark = this.member(userId)?.lastReadSeq ?? fallback;
    for (let attempt = 1; ; attempt++) {
      const unread = await this.unreadFor(userId, mark);
      const now = this.member(userId)?.lastReadSeq ?? mark;
      // A mark that keeps moving has its own counts on the way (every move sends one): this one stops after a few.
      if (now === mark || attempt >= 3) return unread;
      mark = now;
    }
  }

  /** The user's unread count, with the newest seq it covers and the read mark it is for (see domain/badges.ts). */
  private async unreadFor(userId: string, lastReadSeq: number): Promise<{ unreadCount: number; asOfSeq: number; readSeq: number }> {
    const meta = this.store.meta()!;
    const local = (unreadCount: number) => ({ unreadCount, asOfSeq: meta.lastSeq, readSeq: lastReadSeq });
    if (lastReadSeq >= meta.lastSeq) return local(0);
    // Archived seqs count in neither place. A long span is one indexed count in Postgres rather than every row parsed
    // here (the room holds whole histories now: a member who never read a big group would cost it thousands).
    const from = Math.max(lastReadSeq, this.archivedUpToSeq()) + 1;
    if (meta.lastSeq - from < LOCAL_UNREAD_MAX && this.store.holdsAllFrom(from, meta.lastSeq)) {
      return local(this.store.range(from, meta.lastSeq).filter((m) => m.senderId !== userId && !m.deletedAt).length);
    }
    const { count, asOf } = await this.pgOr503(() => unreadCount(this.db(), meta.conversationId, userId, lastReadSeq));
    return { unreadCount: count, asOfSeq: asOf, readSeq: lastReadSeq };
  }

  // ── Typing ────────────────────────────────────────────────────────────────────────────────────────────────

  /**
   * start_typing frames per user (all their sockets) and second. The SDK sends one every 2 s, and one more for each
   * message begun after a send; a client alternating start and stop had every frame relayed to every other member,
   * their "typing…" flickering with each one.
   */
  readonly typingStarts = new WindowRateLimiter<string>();

  /** Typers whose typing_start waits for their profile (room/profiles.ts typer). */
  private readonly typingAnnounces = new Set<string>();

  private isTyping(userId: string): boolean {
    return this.store.typing().some((t) => t.userId === userId && t.expiresAt > Date.now());
  }

  /**
   * The socket each typer last typed on. In memory: after a wake the lease ends when the user's last socket leaves
   * (or expires), as it did before this was kept.
   */
  private readonly typingSockets = new Map<string, WebSocket>();

  startTyping(userId: string, kahaId?: string, from?: WebSocket): void {
    const wasTyping = this.isTyping(userId);
    this.store.setTyping(userId, Date.now() + TYPING_LEASE_MS);
    if (from) this.typingSockets.set(userId, from);
    void this.scheduleAlarm();
    if (wasTyping || this.typingAnnounces.has(userId)) return;
    const cached = this.profiles.cached(userId);
    if (cached) return this.broadcastToOthers(userId, "typing_start", { userId, conversationId: this.conversationId(), profile: cached });
    this.typingAnnounces.add(userId);
    const announce = this.profiles
      .typer(userId, kahaId)
      .then((profile) => {
        // A send or stop_typing may have ended the lease meanwhile: a late typing_start would show someone who stopped.
        if (!this.isTyping(userId)) return;
        this.broadcastToOthers(userId, "typing_start", { userId, conversationId: this.conversationId(), ...(profile ? { profile } : {}) });
      })
      .catch((err: unknown) => this.log.warn("typing announce failed", { error: errorReason(err).slice(0, 200) }))
      .finally(() => this.typingAnnounces.delete(userId));
    this.ctx.waitUntil(announce);
  }

  /** A closed (business) conversation takes no messages: nobody is typing one any more. */
  closeRoom(): void {
    this.store.markClosed();
    for (const t of this.store.typing()) this.endTyping(t.userId);
  }

  endTyping(userId: string): void {
    this.typingSockets.delete(userId);
    if (this.store.clearTyping(userId)) this.broadcastToOthers(userId, "typing_stop", { userId, conversationId: this.conversationId() });
  }

  // ── Durability ────────────────────────────────────────────────────────────────────────────────────────────

  /** Waits for the Postgres commit up to the configured deadline; true when committed. */
  async waitForCommit(): Promise<boolean> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const deadline = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), this.config.WRITE_THROUGH_DEADLINE_MS);
    });
    const committed = await Promise.race([this.flusher.flush().then(() => true, () => false), deadline]);
    if (timer !== undefined) clearTimeout(timer);
    if (!committed) await this.scheduleAlarm();
    return committed;
  }

  async pgOr503<T>(work: () => Promise<T>): Promise<T> {
    try {
      return await withTimeout(work(), 8000, "database");
    } catch (err) {
      if (err instanceof HttpError) throw err;
      const pending = migrationsPending(err);
      if (pending) {
        reportMigrationsPending(err, this.log);
        throw pending;
      }
      this.resetDb();
      this.log.warn("database call failed", { error: errorReason(err).slice(0, 200) });
      throw unavailable("Database unavailable");
    }
  }

  /**
   * One alarm covers everything timed: outbox retry (with backoff), typing expiry, token expiry of sockets, the
   * history backfill's next chunk.
   * `rearm` (from alarm()) always sets it: there getAlarm() may still report the alarm being handled.
   */
  async scheduleAlarm(rearm = false): Promise<void> {
    const now = Date.now();
    const candidates: number[] = [];
    if (this.store.pendingCount() > 0 || this.store.watermarks().length > 0 || this.store.audits().length > 0) {
      candidates.push(now + backoffMs(this.retryAttempt));
    }
    for (const t of this.store.typing()) candidates.push(Math.max(t.expiresAt, now + 10));
    // A socket already closed waits only for its client's answer, which may never come: its expiry is no reason to
    // wake (it re-armed the alarm every 10 ms, each run closing the socket again).
    for (const ws of this.ctx.getWebSockets()) {
      const exp = ws.readyState === WebSocket.OPEN ? attachmentOf(ws)?.exp : undefined;
      if (exp) candidates.push(Math.max(exp * 1000, now + 10));
    }
    const hydrate = this.backfill.dueAt(now);
    if (hydrate !== undefined) candidates.push(hydrate);
    if (candidates.length === 0) return;
    const at = Math.min(...candidates);
    if (rearm) return this.ctx.storage.setAlarm(at);
    const current = await this.ctx.storage.getAlarm();
    if (current === null || current > at || current <= now) await this.ctx.storage.setAlarm(at);
  }

  override async alarm(): Promise<void> {
    const now = Date.now();
    for (const t of this.store.typing()) if (t.expiresAt <= now) this.endTyping(t.userId);
    for (const ws of this.ctx.getWebSockets()) {
      const exp = attachmentOf(ws)?.exp;
      if (exp && exp * 1000 <= now) safeClose(ws, 4401, "Token expired");
    }
    // One backfill chunk per run (started first, so the re-arm below does not count it as due again).
    const hydrate = this.backfill.due(now) ? this.backfill.step() : undefined;
    // Re-arm before waiting on Postgres: a slow flush must not hold back the next typing expiry.
    await this.scheduleAlarm(true);
    let waited = hydrate !== undefined;
    if (this.store.pendingCount() > 0 || this.store.watermarks().length > 0 || this.store.audits().length > 0) {
      waited = true;
      try {
        await this.flusher.flush();
      } catch {
        this.retryAttempt++;
      }
    }
    await hydrate;
    if (waited) await this.scheduleAlarm(true);
  }


  closeUserSockets(userId: string, code: number, reason: string): void {
    for (const ws of this.ctx.getWebSockets(userId)) safeClose(ws, code, reason);
  }

  // ── WebSockets (hibernation API) ──────────────────────────────────────────────────────────────────────────

  override async fetch(request: Request): Promise<Response> {
    try {
      return await openSocket(this, request);
    } catch (err) {
      const http = openRefusal(this, request, err);
      return new Response(JSON.stringify({ statusCode: http.status, message: http.detail }), {
        status: http.status,
        headers: { ...http.headers, "content-type": "application/json" },
      });
    }
  }

  override async webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): Promise<void> {
    await handleSocketMessage(this, ws, message);
  }

  override async webSocketClose(ws: WebSocket, code: number, reason: string): Promise<void> {
    this.socketGone(ws);
    // Complete the closing handshake the client started. The socket already reads CLOSING here, so a readyState
    // check skipped the echo and the client waited for its own timeout (about 10 s, then 1006); after a close we
    // started, this close is a no-op (safeClose swallows it).
    safeClose(ws, code, reason);
  }

  override async webSocketError(ws: WebSocket): Promise<void> {
    this.socketGone(ws);
  }

  private socketGone(ws: WebSocket): void {
    const userId = attachmentOf(ws)?.userId;
    if (!userId || !this.store.meta()) return;
    const others = this.ctx.getWebSockets(userId).filter((s) => s !== ws && s.readyState === WebSocket.OPEN);
    // The device that was typing left: its user's other sockets (the laptop beside the phone) are not typing. The
    // others saw "typing…" until the lease ran out.
    if (others.length === 0 || this.typingSockets.get(userId) === ws) this.endTyping(userId);
  }

  /** Replays what a client missed after `afterSeq` (see room/realtime.ts). */
  replay(afterSeq: number) {
    return replayFor(this, afterSeq);
  }
}
