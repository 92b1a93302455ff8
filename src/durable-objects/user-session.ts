import { DurableObject } from "cloudflare:workers";
import { getConfig } from "../lib/config";
import { createLogger, type LogFields } from "../lib/log";
import { ObjectDb, type Db } from "../db/client";
import { backoffMs } from "../domain/backoff";
import { badgeOf, totalUnread, withCount, withMessages, type Badge, type StoredBadge } from "../domain/badges";
import { contactFlags, membershipSummary, publishPresence, type MembershipSummary } from "../db/queries/user-session";
import { unreadCount } from "../db/queries/messages";
import { errorReason, HttpError, MIGRATIONS_PENDING_MESSAGE, migrationsPending, reportMigrationsPending, unavailable, unwrapRpc } from "../lib/errors";
import { aggregatePresence, departedAt, HEARTBEAT_TIMEOUT_MS, nextPresenceCheck, OFFLINE_GRACE_MS, withActivity, type DeviceState, type Presence } from "../domain/presence";
import { encodeFrame, errorCodeFor, frameTooLarge, parseFrame, userClientFrame, userClientTypes, CLOSE, type PresenceStatus } from "../protocol/frames";
import type { Conversation, Message } from "../protocol/resources";
import { IDENTITY_HEADER, SOCKET_CAP_RETRY_SECONDS } from "./room/realtime";
import { WindowRateLimiter, safeClose, sendRaw } from "./room/sockets";
import { sharedConversation } from "./shared-view";
import { createProfileProvider, profileOptionsFromConfig } from "../profiles/provider";
import type { ProfileProvider } from "../profiles/types";

interface UserSocketAttachment extends DeviceState {
  userId: string;
  kahaId: string;
  exp?: number;
}

/**
 * A change to the user's conversation list. `unread`: the user's own count, as of a seq and read mark
 * (domain/badges.ts), or "read" for the session to read it (with the mute flag) when it has devices.
 */
export type UserConversationEvent =
  | { type: "conversation_created"; conversation: Conversation; unread?: { unreadCount: number; asOfSeq: number; readSeq: number } | "read" }
  /** `own`: the conversation's unreadCount and isMuted are this user's (a mute from one of their devices). */
  | { type: "conversation_updated"; conversation: Conversation; own?: boolean }
  /** `at`: when the user left (their participant row's left_at, ISO), so a notice overtaken by a later re-add is dropped. */
  | { type: "conversation_removed"; conversationId: string; at?: string };

export interface PresenceInfo {
  userId: string;
  status: PresenceStatus;
  lastSeen: string | null;
}

const limiter = new WindowRateLimiter<WebSocket>();
/** Conversations with no unread message whose zero count a connecting device is sent (see refreshBadges). */
const SNAPSHOT_ZEROS_MAX = 100;
/** Conversations the session remembers the user was removed from (see noteRemoved); the oldest go first. */
const REMOVED_KEEP = 500;
/** Conversations whose latest membership change (joined or left) the session remembers, to drop notices older than it. */
const MEMBERSHIP_KEEP = 500;
/** Conversations whose newest view version the session remembers (see olderView); the least recently changed go first. */
const VIEWS_KEEP = 500;

/** A Postgres write or read to do again from the alarm, at `at` (backoff after `failures` attempts). */
interface Retry {
  failures: number;
  at: number;
}

/** Attempts to tell a desk again (backoff up to 1 s doubling to 60 s, with jitter: a few minutes in all). */
const DESK_RETRY_MAX = 12;

/** Business desks that missed the agent's last published presence: told again from the alarm. */
interface DeskRetry extends Retry {
  businesses: string[];
}

/**
 * One per user: presence across the user's devices, unread badges and notifications for all of the user's
 * conversations. Device state lives in socket attachments and badges in storage, so hibernation loses nothing;
 * the only timer is the alarm for the next presence change (a device timing out or idling).
 */
export class UserSession extends DurableObject<Env> {
  private readonly log = createLogger({ object: "UserSession" });

  private get config() {
    return getConfig(this.env);
  }

  /**
   * Counts the rooms sent (after a read, a delete, an archive), numbered as they came, by conversation: a badge
   * refresh gives way to one that came during its read of Postgres (see refreshBadges).
   */
  private recounts = 0;
  private readonly recountedAt = new Map<string, number>();
  /** Mute changes from the user's devices, numbered likewise: a read of the flags begun before one gives way to it. */
  private muteChanges = 0;
  private readonly mutedChangedAt = new Map<string, number>();
  /** For the rare view the session reads itself (sendCurrentView). */
  private profiles: ProfileProvider | undefined;

  /**
   * One pool for the object's life, as in the rooms. A connect publishes "online" and then re-derives the badges,
   * and clients ask for their contacts' presence right after: with a pool per call that was three Postgres
   * connections (in production, three Neon connection setups) for one connect.
   */
  private readonly pg = new ObjectDb(() => ({ databaseUrl: this.config.DATABASE_URL, bridge: this.config.PG_BRIDGE }), 2);

  db(): Db {
    return this.pg.db;
  }

  private async withDb<T>(work: (db: Db) => Promise<T>): Promise<T> {
    try {
      return await work(this.pg.db);
    } catch (err) {
      this.pg.reset();
      throw err;
    }
  }

  /**
   * Logs a failed step and gives the answer for a request waiting on it. A skipped migration (a missing table, column
   * or function) failed every publish, badge refresh and get_presence alike, each logged as a passing warning, and
   * get_presence said "try again" for ever: it is logged once per isolate and named, as the rooms and desks do.
   */
  private failed(what: string, err: unknown, fields: LogFields = {}): HttpError {
    // A room's answer to an RPC carries only the message: the room logged the missing object (once).
    const relayed = err instanceof HttpError && err.detail === MIGRATIONS_PENDING_MESSAGE ? err : undefined;
    const pending = relayed ?? migrationsPending(err);
    if (pending) {
      if (!relayed) reportMigrationsPending(err, this.log);
      return pending;
    }
    this.log.warn(what, { ...fields, error: errorReason(err).slice(0, 200) });
    return unavailable("Database unavailable");
  }

  /**
   * Open sockets only: one this object closed (an expired token, a missed heartbeat) stays in getWebSockets() until
   * its client answers the close, which a client without network never does. Counted, it kept the user online and
   * its expiry re-armed the alarm every 10 ms, closing it again each time.
   */
  private devices(): { ws: WebSocket; att: UserSocketAttachment }[] {
    const out: { ws: WebSocket; att: UserSocketAttachment }[] = [];
    for (const ws of this.ctx.getWebSockets()) {
      if (ws.readyState !== WebSocket.OPEN) continue;
      const att = ws.deserializeAttachment() as UserSocketAttachment | null;
      if (att) out.push({ ws, att });
    }
    return out;
  }

  private async userId(): Promise<string | undefined> {
    return (await this.ctx.storage.get<string>("userId")) ?? this.devices()[0]?.att.userId;
  }

  private current(now = Date.now()): Presence {
    return aggregatePresence(this.devices().map((d) => d.att), now, this.config.PRESENCE_AWAY_AFTER * 1000, this.seenBefore());
  }

  /** The latest lastSeen of devices no longer here (published, or noted as they left). */
  private seenBefore(): number {
    const kv = this.ctx.storage.kv;
    return Math.max(kv.get<Presence>("published")?.lastSeen ?? 0, kv.get<number>("departedAt") ?? 0);
  }

  /** Kept in storage: the offline change is published after a grace, when the socket is gone with its attachment. */
  private noteDeparture(ws: WebSocket, now = Date.now()): void {
    const att = ws.deserializeAttachment() as UserSocketAttachment | null;
    if (!att) return;
    const kv = this.ctx.storage.kv;
    kv.put("departedAt", Math.max(kv.get<number>("departedAt") ?? 0, departedAt(att, now)));
  }

  private send(type: string, data: unknown): void {
    const frame = encodeFrame(type, data);
    for (const { ws } of this.devices()) sendRaw(ws, frame);
  }

  // ── Sockets ──────────────────────────────────────────────────────────────────────────────────────────────

  override async fetch(request: Request): Promise<Response> {
    const identity = JSON.parse(request.headers.get(IDENTITY_HEADER) ?? "null") as { id: string; kahaId: string; exp?: number } | null;
    if (!identity || request.headers.get("upgrade")?.toLowerCase() !== "websocket") {
      return Response.json({ statusCode: 400, message: "Expected an authenticated WebSocket upgrade" }, { status: 400 });
    }
    // Open ones only: a socket closed for a heartbeat timeout (the phone lost its network) is never answered, and
    // stays listed until the runtime gives up on it; twenty of those refused every reconnect with 429.
    if (this.ctx.getWebSockets().filter((ws) => ws.readyState === WebSocket.OPEN).length >= 20) {
      return Response.json(
        { statusCode: 429, message: "Too many sockets for this user" },
        { status: 429, headers: { "Retry-After": String(SOCKET_CAP_RETRY_SECONDS) } },
      );
    }
    await this.ctx.storage.put("userId", identity.id);
    const pair = new WebSocketPair();
    const [client, server] = [pair[0], pair[1]];
    this.ctx.acceptWebSocket(server);
    const now = Date.now();
    const att: UserSocketAttachment = { userId: identity.id, kahaId: identity.kahaId, exp: identity.exp, status: "online", lastSeen: now, lastActive: now };
    server.serializeAttachment(att);
    sendRaw(server, encodeFrame("connected", { userId: identity.id, timestamp: new Date(now).toISOString() }));
    // Presence first: once the user's rooms know they are online, every later message reaches this session. Then
    // badges are re-derived from Postgres, which by then holds every message those rooms did not notify.
    await this.presenceMaybeChanged();
    this.ctx.waitUntil(this.refreshBadges([server]));
    return new Response(null, { status: 101, webSocket: client });
  }

  override async webSocketMessage(ws: WebSocket, raw: string | ArrayBuffer): Promise<void> {
    if (frameTooLarge(raw)) return safeClose(ws, CLOSE.tooBig, "Frame too large");
    const att = ws.deserializeAttachment() as UserSocketAttachment | null;
    if (!att) return safeClose(ws, 1011, "Socket state lost");
    if (att.exp && att.exp * 1000 <= Date.now()) return safeClose(ws, CLOSE.unauthorized, "Token expired");
    if (!limiter.allow(ws, this.config.WS_MAX_FRAMES_PER_SECOND)) {
      sendRaw(ws, encodeFrame("error", { code: "rate_limited", message: "Too many frames" }));
      return safeClose(ws, CLOSE.policy, "Rate limited");
    }
    if (typeof raw !== "string") return sendRaw(ws, encodeFrame("error", { code: "invalid_frame", message: "Binary frames are not supported" }));
    const parsed = parseFrame(raw, userClientFrame, userClientTypes);
    if (!parsed.ok) return sendRaw(ws, encodeFrame("error", { code: parsed.code, message: parsed.message }, parsed.id));
    const frame = parsed.frame;
    const now = Date.now();
    const next: UserSocketAttachment = { ...att, lastSeen: now };
    let said = false;
    switch (frame.type) {
      case "heartbeat":
        ws.serializeAttachment(next);
        sendRaw(ws, encodeFrame("heartbeat_ack", { timestamp: new Date(now).toISOString() }, frame.id));
        break;
      case "set_presence": {
        // The user's word: a change it makes is published at once (presenceMaybeChanged).
        const before = this.current(now).status;
        ws.serializeAttachment({ ...next, status: frame.data.status, lastActive: frame.data.status === "online" ? now : att.lastActive });
        said = this.current(now).status !== before;
        break;
      }
      case "get_presence": {
        // Not a sign of a person: apps ask on their own (the web app on every new conversation), and an idle user
        // whose app asked came back online to every contact.
        ws.serializeAttachment(next);
        try {
          const presences = await this.presenceOfContacts(att.userId, frame.data.userIds);
          sendRaw(ws, encodeFrame("presence_state", { presences }, frame.id));
        } catch (err) {
          // Postgres unreachable: an answer the client can retry, not silence. A missing migration says its fix.
          const failure = this.failed("get_presence failed", err);
          const message = failure.detail === MIGRATIONS_PENDING_MESSAGE ? MIGRATIONS_PENDING_MESSAGE : "Presence unavailable; try again";
          sendRaw(ws, encodeFrame("error", { code: errorCodeFor(failure.status), message }, frame.id));
        }
        break;
      }
      case "mark_delivered": {
        ws.serializeAttachment(next);
        const { conversationId, seq } = frame.data;
        const rooms = this.env.CONVERSATION_ROOM;
        // The room checks membership: a conversation the user is not in is "not_found", as over REST.
        const result = await rooms
          .get(rooms.idFromName(conversationId))
          .markDelivered({ conversationId, actor: { id: att.userId, kahaId: att.kahaId }, seq })
          .catch(() => ({ ok: false as const, status: 503, detail: "Conversation unavailable; try again" }));
        if (!result.ok) {
          const message = Array.isArray(result.detail) ? result.detail.join("; ") : result.detail;
          sendRaw(ws, encodeFrame("error", { code: errorCodeFor(result.status), message }, frame.id));
        }
        break;
      }
    }
    await this.presenceMaybeChanged(undefined, false, said);
  }

  override async webSocketClose(ws: WebSocket, code: number, reason: string): Promise<void> {
    this.noteDeparture(ws);
    safeClose(ws, code, reason);
    await this.presenceMaybeChanged(ws);
  }

  override async webSocketError(ws: WebSocket): Promise<void> {
    this.noteDeparture(ws);
    await this.presenceMaybeChanged(ws);
  }

  override async alarm(): Promise<void> {
    const now = Date.now();
    for (const { ws, att } of this.devices()) {
      const expired = Boolean(att.exp) && att.exp! * 1000 <= now;
      if (!expired && now - att.lastSeen <= HEARTBEAT_TIMEOUT_MS) continue;
      this.noteDeparture(ws, now);
      safeClose(ws, expired ? CLOSE.unauthorized : 1001, expired ? "Token expired" : "Heartbeat timeout");
    }
    if (this.ctx.storage.kv.get<Retry>("badgesRetry")) {
      const live = this.devices();
      if (live.length > 0) await this.refreshBadges(live.map((d) => d.ws));
      else this.ctx.storage.kv.delete("badgesRetry"); // the next connect re-derives them anyway
    }
    const deskRetry = this.ctx.storage.kv.get<DeskRetry>("deskRetry");
    if (deskRetry && now >= deskRetry.at) await this.retryDesks(deskRetry);
    await this.presenceMaybeChanged(undefined, true);
  }

  // ── Presence ─────────────────────────────────────────────────────────────────────────────────────────────

  /**
   * Publishes only transitions. Going offline waits OFFLINE_GRACE_MS (an alarm) so a reconnecting client does not
   * flap; coming back within the grace publishes nothing. A change between online and away that a device's coming
   * or going caused (`said` false) waits the same grace: a new socket starts `online` before its client says `away`
   * again, and one device dropping can leave only a backgrounded one. Published at once, each reconnect flashed the
   * user online, or away, to every contact. A change the user's own word just made (`said`: set_presence, activity
   * in a room) is published at once, as is coming back from offline (the rooms need it to notify the user).
   * A publish that failed (Postgres unreachable) is retried from the alarm: until it lands, Postgres holds the old
   * state, and every room that loads or refreshes its member list reads it there (a user who came online would get
   * no notifications from them).
   */
  private async presenceMaybeChanged(closing?: WebSocket, fromAlarm = false, said = false): Promise<void> {
    const now = Date.now();
    const kv = this.ctx.storage.kv;
    const live = this.devices().filter((d) => d.ws !== closing);
    const devices = live.map((d) => d.att);
    const last = kv.get<Presence>("published") ?? { status: "offline" as PresenceStatus, lastSeen: 0 };
    const next = aggregatePresence(devices, now, this.config.PRESENCE_AWAY_AFTER * 1000, this.seenBefore());
    let wake = nextPresenceCheck(devices, now, this.config.PRESENCE_AWAY_AFTER * 1000);
    // A failed publish is retried when its backoff is over, not on every frame: while Postgres is down each attempt
    // can wait for the connection timeout.
    const retry = kv.get<Retry>("publishRetry");
    const failures = retry?.failures;
    let publishing: Presence | undefined;
    /** The change waits out the grace under `key`; true once it has. */
    const settled = (key: "offlineSince" | "changeSince"): boolean => {
      const since = kv.get<number>(key);
      if (since === undefined) kv.put(key, now);
      else if (now - since >= OFFLINE_GRACE_MS) return true;
      wake = Math.min(wake ?? Infinity, (since ?? now) + OFFLINE_GRACE_MS);
      return false;
    };
    if (next.status !== last.status) {
      const immediate = last.status === "offline" || (said && next.status !== "offline");
      const key = next.status === "offline" ? "offlineSince" : "changeSince";
      kv.delete(key === "offlineSince" ? "changeSince" : "offlineSince");
      if (next.status === "offline") wake = undefined; // no device left to time out or idle
      if (immediate || settled(key)) {
        kv.delete(key);
        kv.put("published", next);
        publishing = next;
      }
    } else {
      kv.delete("offlineSince");
      kv.delete("changeSince");
      if (retry && (fromAlarm || now >= retry.at)) publishing = last;
      else if (retry) wake = Math.min(wake ?? Infinity, retry.at);
    }
    if (publishing) {
      // online ⇄ away changes nobody's reachability: only rooms someone else watches need it. A retry goes to all.
      const everyRoom = failures !== undefined || (publishing.status === "offline") !== (last.status === "offline");
      if (await this.publish(publishing, undefined, everyRoom)) {
        kv.delete("publishRetry");
        // As after a connect: messages the rooms did not notify meanwhile are in Postgres's counts.
        if (failures !== undefined && live.length > 0) this.ctx.waitUntil(this.refreshBadges(live.map((d) => d.ws)));
      } else {
        wake = Math.min(wake ?? Infinity, this.retryLater("publishRetry", now));
      }
    }
    for (const d of devices) if (d.exp) wake = Math.min(wake ?? Infinity, d.exp * 1000);
    for (const retry of [kv.get<Retry>("badgesRetry"), kv.get<DeskRetry>("deskRetry")]) if (retry) wake = Math.min(wake ?? Infinity, retry.at);
    if (wake !== undefined && Number.isFinite(wake)) await this.ctx.storage.setAlarm(Math.max(wake, now + 10));
  }

  /**
   * [business] A desk keeps its own copy of each agent's presence and hears of changes only from here: one that
   * missed a publish (every object is reset by a deploy, and calls in flight fail) showed the agent in the old state,
   * and gave them no chats or kept routing to them, until their next change. Contacts and rooms need no retry: a
   * contact is told again on its next get_presence, a room reads Postgres when it loads.
   */
  private async noteDeskFailures(failed: string[], now = Date.now()): Promise<void> {
    const kv = this.ctx.storage.kv;
    if (failed.length === 0) {
      kv.delete("deskRetry");
      return;
    }
    const failures = kv.get<DeskRetry>("deskRetry")?.failures ?? 0;
    // A desk that refuses for good (not a passing reset) is not woken for every minute of the session's life.
    if (failures >= DESK_RETRY_MAX) {
      kv.delete("deskRetry");
      this.log.warn("desks did not take the agent's presence; giving up", { businesses: failed.length });
      return;
    }
    const at = now + backoffMs(failures, 1000, 60_000);
    kv.put("deskRetry", { businesses: failed, failures: failures + 1, at } satisfies DeskRetry);
    const alarm = await this.ctx.storage.getAlarm();
    if (alarm === null || alarm > at) await this.ctx.storage.setAlarm(at);
  }

  /** The desks that missed a publish are told the state published since (it may have changed again). */
  private async retryDesks(retry: DeskRetry): Promise<void> {
    const userId = await this.userId();
    const status = this.ctx.storage.kv.get<Presence>("published")?.status ?? "offline";
    if (!userId) return this.noteDeskFailures([]);
    const desks = this.env.BUSINESS_DESK;
    const results = await Promise.allSettled(retry.businesses.map((b) => desks.get(desks.idFromName(b)).agentPresence(b, userId, status)));
    await this.noteDeskFailures(retry.businesses.filter((_, i) => results[i].status === "rejected"));
  }

  /** Records one more failed attempt under `key` and returns when to try again (backoff 1 s doubling to 60 s). */
  private retryLater(key: "publishRetry" | "badgesRetry", now: number): number {
    const failures = this.ctx.storage.kv.get<Retry>(key)?.failures ?? 0;
    const at = now + backoffMs(failures, 1000, 60_000);
    this.ctx.storage.kv.put(key, { failures: failures + 1, at });
    return at;
  }

  /** The publish under way, if any: the next one waits for it (see publish). In memory: a wake starts with none. */
  private publishing: Promise<unknown> = Promise.resolve();
  private owedEveryRoom = false;

  /**
   * Resolves to false when Postgres did not take the new state. `everyRoom`: every conversation's room hears it,
   * else only those where another member is online (who may have the conversation open).
   * One at a time, in the order the states were recorded: run side by side, a slow "offline" (the grace's alarm)
   * finished after the "online" of a device back just then, and Postgres and every contact were left with offline.
   * One that a newer state was recorded after while it waited is skipped: that newer one follows it, to every room
   * if the skipped one was owed to every room.
   */
  private publish(p: Presence, knownUserId: string | undefined, everyRoom: boolean): Promise<boolean> {
    const run = this.publishing.then(() => {
      const latest = this.ctx.storage.kv.get<Presence>("published");
      if (latest && (latest.status !== p.status || latest.lastSeen !== p.lastSeen)) {
        this.owedEveryRoom ||= everyRoom;
        return true;
      }
      const toAll = everyRoom || this.owedEveryRoom;
      this.owedEveryRoom = false;
      return this.publishNow(p, knownUserId, toAll);
    });
    this.publishing = run.catch(() => undefined);
    return run;
  }

  private async publishNow(p: Presence, knownUserId: string | undefined, everyRoom: boolean): Promise<boolean> {
    const userId = knownUserId ?? (await this.userId());
    if (!userId) return true; // a session that never had a socket has nothing to publish (and nothing to retry)
    const update = { userId, status: p.status, lastSeen: p.lastSeen ? new Date(p.lastSeen).toISOString() : null };
    try {
      const audience = await this.withDb((db) => publishPresence(db, userId, p.status !== "offline", p.lastSeen ? new Date(p.lastSeen) : null));
      const users = this.env.USER_SESSION;
      const rooms = this.env.CONVERSATION_ROOM;
      const desks = this.env.BUSINESS_DESK; // [business] an agent's presence decides whether they get new chats
      const [, deskResults] = await Promise.all([
        Promise.allSettled([
          ...audience.contacts.map((id) => users.get(users.idFromName(id)).contactPresence(update)),
          ...(everyRoom ? audience.conversations : audience.watched).map((id) => rooms.get(rooms.idFromName(id)).presence(update)),
        ]),
        Promise.allSettled(audience.businesses.map((b) => desks.get(desks.idFromName(b)).agentPresence(b, userId, p.status))),
      ]);
      await this.noteDeskFailures(audience.businesses.filter((_, i) => deskResults[i].status === "rejected"));
      return true;
    } catch (err) {
      this.failed("presence publish failed", err, { userId });
      return false;
    }
  }

  /**
   * Contacts Postgres holds as offline are answered from there; only the sessions of the others are asked (online
   * or away). Asking every session woke up to 200 objects per request, and the reply waited for the slowest. One
   * that comes online meanwhile pushes its change to this user, who is online by now.
   */
  private async presenceOfContacts(userId: string, ids: string[]): Promise<PresenceInfo[]> {
    const wanted = [...new Set(ids)];
    const order = new Map(wanted.map((id, i) => [id, i]));
    const flags = (await this.withDb((db) => contactFlags(db, userId, wanted))).sort((a, b) => order.get(a.userId)! - order.get(b.userId)!);
    const users = this.env.USER_SESSION;
    const fromPostgres = (f: (typeof flags)[number]): PresenceInfo => ({
      userId: f.userId,
      status: f.online ? "online" : "offline",
      lastSeen: f.lastSeen?.toISOString() ?? null,
    });
    // A session that fails to answer (every object is reset by a deploy, and calls in flight fail) is answered with
    // Postgres's flag, which cannot tell away from online: one such contact made the whole request an error.
    return Promise.all(
      flags.map((f) => (f.online ? users.get(users.idFromName(f.userId)).presenceOf(f.userId).catch(() => fromPostgres(f)) : fromPostgres(f))),
    );
  }

  // ── RPC from rooms and other sessions ───────────────────────────────────────────────────────────────────

  async presenceOf(userId: string): Promise<PresenceInfo> {
    let p: Presence = this.devices().length ? this.current() : { status: "offline", lastSeen: this.seenBefore() };
    // While a change waits out its grace, contacts still hold the published status, and a change undone within it
    // publishes nothing: answered with the unpublished one, the asker kept it (a user back online shown offline).
    const kv = this.ctx.storage.kv;
    const published = kv.get<Presence>("published");
    if (published && (kv.get<number>("offlineSince") !== undefined || kv.get<number>("changeSince") !== undefined)) {
      p = { status: published.status, lastSeen: p.lastSeen };
    }
    return { userId, status: p.status, lastSeen: p.lastSeen ? new Date(p.lastSeen).toISOString() : null };
  }

  /**
   * [operations] Asked by the presence reconcile job (src/jobs/maintenance.ts) for a user Postgres holds as online
   * since long. A session with live devices answers online (its own alarms keep presence right). One without devices
   * is offline: unless an offline publish is already on its way (the grace alarm), it publishes offline again —
   * users.online, then the rooms, contacts and desks, which may all have missed the failed publish.
   */
  async reconcilePresence(userId: string): Promise<{ state: "online" | "settling" | "offline"; republished: boolean }> {
    const live = this.devices();
    if (live.length > 0) return { state: "online", republished: false };
    const published = this.ctx.storage.kv.get<Presence>("published") ?? { status: "offline" as PresenceStatus, lastSeen: 0 };
    if (published.status !== "offline") {
      // Devices gone without a close event: this starts (or finishes) the grace that publishes offline.
      await this.presenceMaybeChanged();
      return { state: "settling", republished: false };
    }
    return { state: "offline", republished: await this.publish(published, userId, true) };
  }

  /** The user sent, typed or read in one of their conversations (its room says so, throttled): a sign of a person. */
  async activity(): Promise<void> {
    const now = Date.now();
    const before = this.current(now).status;
    for (const { ws, att } of this.devices()) {
      const next = withActivity(att, now);
      if (next !== att) ws.serializeAttachment(next);
    }
    await this.presenceMaybeChanged(undefined, false, this.current(now).status !== before);
  }

  async contactPresence(update: PresenceInfo): Promise<void> {
    this.send("presence_update", update);
  }

  /** New messages in one of the user's conversations (a batch from the room): badge, then a frame per message. */
  async messageNotifications(input: { conversationId: string; messages: Message[]; muted: boolean }): Promise<void> {
    if (this.removed()[input.conversationId] !== undefined) return;
    const badges = this.badges();
    const before = badgeOf(badges[input.conversationId]);
    // Read on one of the user's devices before this batch arrived (the room's read count came first): nothing to
    // tell the others.
    const unread = input.messages.filter((m) => m.seq > before.readSeq);
    if (unread.length === 0) return;
    badges[input.conversationId] = withMessages(before, unread.map((m) => m.seq));
    this.ctx.storage.kv.put("badges", badges);
    // The batch's flag is the room's as the batch left, which can be older than a mute the user made since (the
    // batch was on its way): taken here, it put the mute back until the next message. The flag comes from the
    // user's own changes and Postgres's reads instead.
    if (this.devices().length === 0) return;
    for (const message of unread) {
      this.send("notification", { conversationId: input.conversationId, message, ...(input.muted ? { muted: true } : {}) });
    }
    this.sendBadge(input.conversationId, badges);
  }

  /**
   * The user's read watermark moved (any device, REST or socket): the badge is what the room computed, as of its
   * newest seq then (`asOfSeq`) and the read mark (`readSeq`); notifications of later messages still count.
   */
  async unreadChanged(input: { conversationId: string; unreadCount: number; asOfSeq: number; readSeq: number }): Promise<void> {
    if (this.removed()[input.conversationId] !== undefined) return;
    this.recountedAt.set(input.conversationId, ++this.recounts);
    const badges = this.badges();
    badges[input.conversationId] = withCount(badgeOf(badges[input.conversationId]), input.unreadCount, input.asOfSeq, input.readSeq);
    this.ctx.storage.kv.put("badges", badges);
    if (this.devices().length) this.sendBadge(input.conversationId, badges);
  }

  async conversationEvent(event: UserConversationEvent): Promise<void> {
    if (event.type !== "conversation_updated" && (await this.overtaken(event))) return;
    if (event.type === "conversation_removed") {
      const badges = this.badges();
      const had = badgeOf(badges[event.conversationId]).count;
      delete badges[event.conversationId];
      this.ctx.storage.kv.put("badges", badges);
      this.noteMuted(event.conversationId, false);
      this.noteRemoved(event.conversationId, Date.now());
      this.send("conversation_removed", { conversationId: event.conversationId });
      // The total the devices last heard still counted this conversation's unread messages.
      if (had > 0) this.sendBadge(event.conversationId, badges);
      return;
    }
    if (event.type === "conversation_created") {
      this.noteRemoved(event.conversation.id, undefined);
      // Noted, never dropped for its version: whether the user is in the list is the membership times' to say.
      this.olderView(event.conversation);
    }
    if (event.type === "conversation_created" && event.unread === "read") return this.createdWithOwnCounts(event.conversation);
    if (event.type === "conversation_updated") {
      // Sent to the members as a request read them, before a removal that reached the session first: the
      // conversation would come back into the removed member's list.
      if (this.removed()[event.conversation.id] !== undefined) return;
      // A mute's flag is the user's own, not counted by the version: kept even from an older view, for the next one.
      if (event.own) {
        this.noteMuted(event.conversation.id, event.conversation.isMuted);
        this.mutedChangedAt.set(event.conversation.id, ++this.muteChanges);
      }
      if (this.olderView(event.conversation)) {
        // A mute's view read before a rename and arriving after it: the devices would drop it as older and show the
        // conversation unmuted until its next change. The current view carries the flag instead (a rare race).
        if (event.own && this.devices().length) await this.sendCurrentView(event.conversation.id);
        return;
      }
      this.sendView(event.conversation, event.own ? event.conversation.unreadCount : 0);
      return;
    }
    this.send(event.type, { conversation: event.conversation });
    if (event.type === "conversation_created" && typeof event.unread === "object") {
      // The user's own view: one who comes back keeps their flag.
      this.noteMuted(event.conversation.id, event.conversation.isMuted);
      this.startBadge(event.conversation.id, event.unread);
    }
  }

  /**
   * The Worker sends every member the same view; the count and flag the contract gives are each member's own (a
   * client taking the frame as it stands cleared the badge and the mute of a conversation on every rename).
   */
  private sendView(conversation: Conversation, unreadIfNoBadge: number): void {
    const badge = this.badges()[conversation.id];
    const unreadCount = badge !== undefined ? badgeOf(badge).count : unreadIfNoBadge;
    this.send("conversation_updated", { conversation: { ...conversation, unreadCount, isMuted: this.muted().has(conversation.id) } });
  }

  private async sendCurrentView(conversationId: string): Promise<void> {
    try {
      this.profiles ??= createProfileProvider({ ...profileOptionsFromConfig(this.config), memory: true, waitUntil: (p) => this.ctx.waitUntil(p) });
      const profiles = this.profiles;
      const view = await this.withDb((db) => sharedConversation(db, profiles, conversationId));
      if (!view || this.removed()[conversationId] !== undefined || this.olderView(view)) return;
      this.sendView(view, 0);
    } catch (err) {
      // The session still holds the flag: the conversation's next update carries it.
      this.failed("current view failed", err, { conversationId });
    }
  }

  /**
   * A member who comes back keeps their read mark: the badge starts from their count, not from nothing (it was
   * dropped when they left), and notifications of messages it covers do not add again.
   */
  private startBadge(conversationId: string, own: { unreadCount: number; asOfSeq: number; readSeq: number }): void {
    const badges = this.badges();
    badges[conversationId] = withCount(badgeOf(badges[conversationId]), own.unreadCount, own.asOfSeq, own.readSeq);
    this.ctx.storage.kv.put("badges", badges);
    if (badgeOf(badges[conversationId]).count > 0) this.sendBadge(conversationId, badges);
  }

  /**
   * The user's own count and mute flag, read here rather than by the request that brought them back (it kept its
   * round trips), and only when a device will show them: a device that connects later reads every badge anyway.
   */
  private async createdWithOwnCounts(conversation: Conversation): Promise<void> {
    const userId = await this.userId();
    if (!userId || this.devices().length === 0) return;
    let own: MembershipSummary | undefined;
    const since = this.recounts;
    const mutesSince = this.muteChanges;
    try {
      const [[read], held] = await Promise.all([
        this.withDb((db) => membershipSummary(db, userId, conversation.id)),
        this.heldReadMark(conversation.id, userId),
      ]);
      own = read && held !== undefined && held > read.lastReadSeq ? await this.countFrom(read, userId, held) : read;
    } catch (err) {
      this.failed("own counts read failed", err);
    }
    if (!own) return this.send("conversation_created", { conversation });
    const isMuted = this.mutedAsRead(conversation.id, own.isMuted, mutesSince);
    this.noteMuted(conversation.id, isMuted);
    const badges = this.badges();
    badges[conversation.id] = this.readCount(conversation.id, badgeOf(badges[conversation.id]), own, since);
    this.ctx.storage.kv.put("badges", badges);
    const unreadCount = badgeOf(badges[conversation.id]).count;
    this.send("conversation_created", { conversation: { ...conversation, unreadCount, isMuted } });
    if (unreadCount > 0) this.sendBadge(conversation.id, badges);
  }

  /**
   * Notices of one user's membership travel from different requests and can arrive out of order: a removal arriving
   * after the re-add that followed it took the conversation off the user's list (and its badge) while they were a
   * member again, and an add arriving after a later removal put it back. Each notice carries the time of its change
   * (the participant row's joined_at or left_at); one older than the newest change heard of is dropped.
   */
  private async overtaken(event: Exclude<UserConversationEvent, { type: "conversation_updated" }>): Promise<boolean> {
    let at: number;
    let conversationId: string;
    if (event.type === "conversation_removed") {
      if (event.at === undefined) return false;
      [at, conversationId] = [Date.parse(event.at), event.conversationId];
    } else {
      const userId = await this.userId();
      const mine = event.conversation.participants.find((p) => p.userId === userId);
      if (!mine) return false;
      [at, conversationId] = [Date.parse(mine.joinedAt), event.conversation.id];
    }
    if (!Number.isFinite(at)) return false;
    const heard = this.ctx.storage.kv.get<Record<string, number>>("membershipAt") ?? {};
    if (heard[conversationId] !== undefined && at < heard[conversationId]) return true;
    delete heard[conversationId];
    heard[conversationId] = at;
    const kept = Object.entries(heard).sort((x, y) => x[1] - y[1]).slice(-MEMBERSHIP_KEEP);
    this.ctx.storage.kv.put("membershipAt", Object.fromEntries(kept));
    return false;
  }

  /**
   * Views of one conversation come from different requests (two renames, a rename and an add) and can arrive out of
   * order: the older one, sent last, left the user's lists with the old name or members until the next change. Each
   * carries the conversation's version (bumped in the change's transaction); true for one below the newest heard.
   * An equal one passes: a mute or a preview changes nothing the version counts.
   */
  private olderView(conversation: Conversation): boolean {
    const heard = this.ctx.storage.kv.get<Record<string, number>>("viewVersions") ?? {};
    const known = heard[conversation.id];
    if (known !== undefined && conversation.version < known) return true;
    if (known === conversation.version) return false;
    delete heard[conversation.id];
    heard[conversation.id] = conversation.version;
    const kept = Object.entries(heard).slice(-VIEWS_KEEP);
    this.ctx.storage.kv.put("viewVersions", Object.fromEntries(kept));
    return false;
  }

  /** Conversations the user muted, as last heard (a connect reads them all): for the views the session personalises. */
  private muted(): Set<string> {
    return new Set(this.ctx.storage.kv.get<string[]>("muted") ?? []);
  }

  private noteMuted(conversationId: string, isMuted: boolean): void {
    const muted = this.muted();
    if (muted.has(conversationId) === isMuted) return;
    if (isMuted) muted.add(conversationId);
    else muted.delete(conversationId);
    this.ctx.storage.kv.put("muted", [...muted]);
  }

  /** When the session was told the user left each conversation (ms), as long as they have not been added back. */
  private removed(): Record<string, number> {
    return this.ctx.storage.kv.get<Record<string, number>>("removed") ?? {};
  }

  /**
   * A notification or recount the room sent before it heard of the removal can land after conversation_removed:
   * counted, it put back a badge (and a total) for a conversation the user is no longer in, until the next connect.
   * The session drops those until the user is added back (`at` undefined).
   */
  private noteRemoved(conversationId: string, at: number | undefined): void {
    const removed = this.removed();
    if (at === undefined && removed[conversationId] === undefined) return;
    delete removed[conversationId];
    if (at !== undefined) removed[conversationId] = at;
    const kept = Object.entries(removed).sort((x, y) => x[1] - y[1]).slice(-REMOVED_KEEP);
    this.ctx.storage.kv.put("removed", Object.fromEntries(kept));
  }

  /**
   * A count read from Postgres, begun when `recounts` stood at `since`. A room's count that came during the read, as
   * of the same seq and read mark, is the newer one: a delete (or an archive) committed after the read moves neither
   * mark, and the read's count put the deleted message back on every device.
   */
  private readCount(conversationId: string, b: Badge, read: MembershipSummary, since: number): Badge {
    const recounted = (this.recountedAt.get(conversationId) ?? 0) > since;
    if (recounted && b.asOf === read.lastSeq && b.readSeq === read.lastReadSeq) return b;
    return withCount(b, read.unread, read.lastSeq, read.lastReadSeq);
  }

  /**
   * The user's read mark as their conversation's room holds it (asked after the room was told of the return, which
   * merged the marks it kept for them): a read the room has not flushed yet is missing from Postgres, and a count from
   * Postgres's older mark put the messages read before leaving back on the badge. Undefined when the room cannot say.
   */
  private async heldReadMark(conversationId: string, userId: string): Promise<number | undefined> {
    const rooms = this.env.CONVERSATION_ROOM;
    try {
      const marks = unwrapRpc(await rooms.get(rooms.idFromName(conversationId)).readMarks(conversationId));
      return marks?.find((m) => m.userId === userId)?.lastReadSeq;
    } catch (err) {
      this.failed("the room's marks are unavailable", err, { conversationId });
      return undefined;
    }
  }

  /** `read` counted again from the later read mark `from` (only messages above it, as Postgres holds them). */
  private async countFrom(read: MembershipSummary, userId: string, from: number): Promise<MembershipSummary> {
    const { count, asOf } = await this.withDb((db) => unreadCount(db, read.conversationId, userId, from));
    return { ...read, unread: count, lastSeq: Math.max(read.lastSeq, asOf), lastReadSeq: from };
  }

  /** A flag read from Postgres, begun when `muteChanges` stood at `since`: a mute change heard during the read is newer. */
  private mutedAsRead(conversationId: string, read: boolean, since: number): boolean {
    return (this.mutedChangedAt.get(conversationId) ?? 0) > since ? this.muted().has(conversationId) : read;
  }

  private badges(): Record<string, StoredBadge> {
    return this.ctx.storage.kv.get<Record<string, StoredBadge>>("badges") ?? {};
  }

  private sendBadge(conversationId: string, badges: Record<string, StoredBadge>): void {
    this.send("unread_count", { conversationId, unreadCount: badgeOf(badges[conversationId]).count, totalUnread: totalUnread(badges) });
  }

  private async refreshBadges(sockets: WebSocket[]): Promise<void> {
    const userId = await this.userId();
    if (!userId) return;
    const started = Date.now();
    const recountsBefore = this.recounts;
    const mutesBefore = this.muteChanges;
    try {
      const read = await this.withDb((db) => membershipSummary(db, userId));
      // A removal the session heard of during the read may not be in it; one heard of before it is, so a conversation
      // Postgres still lists then is one the user was added back to.
      const removed = this.removed();
      const summary = read.filter((s) => removed[s.conversationId] === undefined || removed[s.conversationId] < started);
      const back = summary.filter((s) => removed[s.conversationId] !== undefined);
      if (back.length > 0) {
        for (const s of back) delete removed[s.conversationId];
        this.ctx.storage.kv.put("removed", removed);
      }
      // As of the newest committed seq: notifications of those are on their way, or came, and must not add again.
      const before = this.badges();
      const badges: Record<string, Badge> = Object.fromEntries(
        summary.map((s) => [s.conversationId, this.readCount(s.conversationId, badgeOf(before[s.conversationId]), s, recountsBefore)]),
      );
      this.ctx.storage.kv.put("badges", badges);
      const muted = summary.filter((s) => this.mutedAsRead(s.conversationId, s.isMuted, mutesBefore)).map((s) => s.conversationId);
      this.ctx.storage.kv.put("muted", muted);
      const total = totalUnread(badges);
      // A device that comes back may show badges the user cleared elsewhere meanwhile (only non-zero counts went
      // before: with every count zero no frame came, and even the total stayed): zeros go too, for the first
      // SNAPSHOT_ZEROS_MAX conversations without unread messages (a user in thousands gets the rest from REST).
      let zeros = 0;
      for (const s of summary) {
        const unreadCount = badges[s.conversationId].count;
        if (unreadCount === 0 && ++zeros > SNAPSHOT_ZEROS_MAX) continue;
        const frame = encodeFrame("unread_count", { conversationId: s.conversationId, unreadCount, totalUnread: total });
        for (const ws of sockets) sendRaw(ws, frame);
      }
      this.ctx.storage.kv.delete("badgesRetry");
    } catch (err) {
      // Retried from the alarm: the devices would otherwise go without their counts until the next message.
      this.failed("badge refresh failed", err);
      const at = this.retryLater("badgesRetry", Date.now());
      const alarm = await this.ctx.storage.getAlarm();
      if (alarm === null || alarm > at) await this.ctx.storage.setAlarm(at);
    }
  }
}
