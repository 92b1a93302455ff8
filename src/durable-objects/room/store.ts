import type { ConversationType, Message, Participant } from "../../protocol/resources";
import type { StoredMessage } from "../../db/queries/messages";
import type { AuditEntry } from "../../db/queries/audit";
import type { PendingRow } from "./outbox";
import type { SerializedMessage } from "../room-api";

/**
 * The room's own SQLite storage: the durable half of the single-writer design. A message gets its seq and lands
 * here in one synchronous transaction (the outbox) before anyone hears of it; rows stay `pending` until the
 * flush to Postgres commits. Committed rows stay until the retention job archives them: the room holds its
 * conversation's unarchived history (from `heldFrom` on, see room/backfill.ts), so pages, lookups and resume are
 * answered here. Client ids are kept for the last CLIENT_IDS_KEEP messages, so a retry of a recent message never
 * depends on Postgres (older ones are looked up there).
 */
const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS messages (
  seq INTEGER PRIMARY KEY,
  id TEXT NOT NULL UNIQUE,
  body TEXT NOT NULL,
  event_seq INTEGER NOT NULL,
  pending INTEGER NOT NULL,
  version INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS messages_pending ON messages (pending) WHERE pending = 1;
CREATE INDEX IF NOT EXISTS messages_event ON messages (event_seq);
CREATE TABLE IF NOT EXISTS client_ids (
  sender_id TEXT NOT NULL,
  client_message_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  content_hash TEXT NOT NULL,
  PRIMARY KEY (sender_id, client_message_id)
);
CREATE INDEX IF NOT EXISTS client_ids_seq ON client_ids (seq);
CREATE TABLE IF NOT EXISTS participants (user_id TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS watermarks (
  user_id TEXT PRIMARY KEY,
  last_read_seq INTEGER,
  last_read_at TEXT,
  last_delivered_seq INTEGER
);
CREATE TABLE IF NOT EXISTS typing (user_id TEXT PRIMARY KEY, expires_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS reachability (user_id TEXT PRIMARY KEY, online INTEGER NOT NULL, at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS audit_outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT NOT NULL);
`;

/** A quiet room writes its flushed marks after this long; a busy one writes them with its next append. */
export const SETTLE_IDLE_MS = 100;
/** Client ids of the last this-many messages stay in the room; older ones are pruned in steps of PRUNE_STEP. */
export const CLIENT_IDS_KEEP = 10_000;
const CLIENT_IDS_PRUNE_STEP = 1_000;

export interface RoomMeta {
  conversationId: string;
  type: ConversationType;
  lastSeq: number;
  /** Highest seq Postgres had when this storage was first initialised: older client ids may only be there. */
  pgSeqAtInit: number;
  /** Client ids of messages below this seq were pruned from the room: only Postgres knows them. */
  clientIdsPrunedBelow: number;
  /** A closed (business) conversation takes no new messages. */
  closed: boolean;
  /**
   * Every seq from here to lastSeq is in `messages` (those at or below the archive mark excepted): the room answers
   * for that span alone. Lowered by the backfill (room/backfill.ts) until it passes the archive mark.
   */
  heldFrom: number;
}

export class RoomStore {
  // Read on every message and frame; SQLite stays the truth. Every write below drops the copy (a rolled-back
  // transaction must not leave a cached value behind), appendMessage sets it after its commit.
  private metaCache: RoomMeta | undefined;
  /**
   * The member list as stored (no profiles), by user id in storage order. A receipt updates its entry in place (its
   * write is never inside transactionSync, and a failed implicit commit resets the object): dropping the copy made a
   * room of n members, whose every device acknowledges every message, re-read and re-parse all n rows per receipt.
   */
  private participantsCache: Map<string, Participant> | undefined;
  private offlineCache: Set<string> | undefined;
  // What the flusher asks for on every flush, mirrored so that a quiet table costs no query. Each is only written
  // here; undefined (or true) means "not known: read SQLite", as after a wake.
  private pendingMirror: PendingRow[] | undefined;
  private watermarksDirty = true;
  private auditsDirty = true;
  private typingCache: Map<string, number> | undefined;
  /** Committed (seq, version) pairs whose `pending = 0` is not yet written: see markFlushed. */
  private flushedQueue: [number, number][] = [];
  private settleTimer: ReturnType<typeof setTimeout> | undefined;
  /** Messages appended by this instance: a send that saw the same count twice knows no other send came between. */
  appends = 0;
  /** Edits and deletes stored by this instance: a send whose commit wait saw none answers with what it stored. */
  changes = 0;
  /** Watermarks and audit entries stored by this instance (see OutboxStore). */
  extrasVersion = 0;

  constructor(private readonly sql: SqlStorage, private readonly storage: DurableObjectStorage) {
    sql.exec(SCHEMA);
  }

  meta(): RoomMeta | undefined {
    if (this.metaCache) return { ...this.metaCache };
    const meta = this.readMeta();
    this.metaCache = meta;
    return meta && { ...meta };
  }

  private readMeta(): RoomMeta | undefined {
    const rows = this.sql.exec<{ key: string; value: string }>("SELECT key, value FROM meta").toArray();
    if (rows.length === 0) return undefined;
    const m = Object.fromEntries(rows.map((r) => [r.key, r.value]));
    if (!m.conversationId) return undefined;
    return {
      conversationId: m.conversationId,
      type: m.type as ConversationType,
      lastSeq: Number(m.lastSeq ?? 0),
      pgSeqAtInit: Number(m.pgSeqAtInit ?? 0),
      clientIdsPrunedBelow: Number(m.clientIdsPrunedBelow ?? 0),
      closed: m.closed === "true",
      // Storage from before the room held whole histories claims nothing: the backfill re-reads what it has.
      heldFrom: m.heldFrom !== undefined ? Number(m.heldFrom) : Number(m.lastSeq ?? 0) + 1,
    };
  }

  /**
   * `recent`: the newest committed messages, so the first pages a client asks for need no Postgres round trip; with
   * `meta.heldFrom` the lowest seq from which they run unbroken to lastSeq.
   */
  initialise(meta: RoomMeta, participants: Participant[], offline: string[], recent: StoredMessage[] = []): void {
    this.storage.transactionSync(() => {
      for (const [k, v] of Object.entries(meta)) this.setMeta(k, String(v));
      this.replaceParticipants(participants);
      this.adoptOffline(offline, Date.now());
      for (const m of recent) this.cacheCommitted(m);
    });
  }

  // Who can hear notifications live. A member the room knows nothing about counts as reachable (the safe side).

  offlineUsers(): Set<string> {
    this.offlineCache ??= new Set(
      this.sql
        .exec<{ user_id: string }>("SELECT user_id FROM reachability WHERE online = 0")
        .toArray()
        .map((r) => r.user_id),
    );
    return this.offlineCache;
  }

  /** A presence change from the user's session: newer than any Postgres snapshot read before `at`. */
  setReachable(userId: string, online: boolean, at = Date.now()): void {
    this.offlineCache = undefined;
    this.sql.exec(
      "INSERT INTO reachability (user_id, online, at) VALUES (?, ?, ?) ON CONFLICT (user_id) DO UPDATE SET online = excluded.online, at = excluded.at",
      userId,
      online ? 1 : 0,
      at,
    );
  }

  /**
   * Postgres's view, read at `readAt`: members listed are offline, the others online. Entries a session updated
   * after the read are newer and stay.
   */
  adoptOffline(offline: string[], readAt: number): void {
    const off = new Set(offline);
    const rows = [...this.participantsView()].map((p) => [p.userId, off.has(p.userId) ? 0 : 1]);
    this.offlineCache = undefined;
    if (rows.length === 0) return;
    // One statement for the whole member list (1000 members: one upsert, not a thousand). `WHERE true` keeps
    // SQLite from reading ON CONFLICT as a join constraint of the SELECT.
    this.sql.exec(
      `INSERT INTO reachability (user_id, online, at)
       SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), ? FROM json_each(?) WHERE true
       ON CONFLICT (user_id) DO UPDATE SET online = excluded.online, at = excluded.at WHERE reachability.at < excluded.at`,
      readAt,
      JSON.stringify(rows),
    );
  }

  private setMeta(key: string, value: string): void {
    this.metaCache = undefined;
    this.sql.exec("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value", key, value);
  }

  private members(): Map<string, Participant> {
    this.participantsCache ??= new Map(
      this.sql
        .exec<{ body: string }>("SELECT body FROM participants")
        .toArray()
        .map((r) => {
          const p = JSON.parse(r.body) as Participant;
          return [p.userId, p];
        }),
    );
    return this.participantsCache;
  }

  /** Copies, for callers that change or keep what they get. */
  participants(): Participant[] {
    return [...this.members().values()].map((p) => ({ ...p }));
  }

  /** The stored entries themselves, to read in place: a notification batch in a room of 1000 copies none of them. */
  participantsView(): Iterable<Readonly<Participant>> {
    return this.members().values();
  }

  participant(userId: string): Participant | undefined {
    const p = this.members().get(userId);
    return p && { ...p };
  }

  replaceParticipants(participants: Participant[]): void {
    this.participantsCache = undefined;
    this.sql.exec("DELETE FROM participants");
    for (const p of participants) {
      const { profile: _profile, ...rest } = p;
      this.sql.exec("INSERT INTO participants (user_id, body) VALUES (?, ?)", p.userId, JSON.stringify(rest));
    }
  }

  /** A member who left, dropped from the copy ahead of the next full re-read. */
  dropParticipant(userId: string): void {
    this.sql.exec("DELETE FROM participants WHERE user_id = ?", userId);
    this.participantsCache?.delete(userId);
  }

  upsertParticipant(p: Participant): void {
    const { profile: _profile, ...rest } = p;
    const body = JSON.stringify(rest);
    this.sql.exec(
      "INSERT INTO participants (user_id, body) VALUES (?, ?) ON CONFLICT (user_id) DO UPDATE SET body = excluded.body",
      p.userId,
      body,
    );
    // What a re-read would give (the stored JSON), in the row's place: an update keeps its row, a new member is last.
    this.participantsCache?.set(p.userId, JSON.parse(body) as Participant);
  }

  /** Assigns the next seq and stores the message as pending, atomically. */
  appendMessage(build: (seq: number) => StoredMessage, contentHash: string): StoredMessage {
    const meta = this.meta();
    if (!meta) throw new Error("room not initialised");
    // Same turn, same implicit commit: the flushed marks ride along instead of paying for a commit of their own.
    this.settle();
    const message = this.storage.transactionSync(() => {
      const seq = meta.lastSeq + 1;
      const message = build(seq);
      this.sql.exec(
        "INSERT INTO messages (seq, id, body, event_seq, pending, version) VALUES (?, ?, ?, ?, 1, 0)",
        seq,
        message.id,
        JSON.stringify(message),
        message.eventSeq,
      );
      if (message.clientMessageId) {
        this.sql.exec(
          "INSERT INTO client_ids (sender_id, client_message_id, seq, content_hash) VALUES (?, ?, ?, ?)",
          message.senderId,
          message.clientMessageId,
          seq,
          contentHash,
        );
      }
      this.setMeta("lastSeq", String(seq));
      return message;
    });
    this.metaCache = { ...meta, lastSeq: message.seq };
    this.pendingMirror?.push({ message, version: 0 });
    this.appends++;
    return message;
  }

  /** Replaces a message's stored state (edit, delete) and marks it for the next flush. */
  updateMessage(message: StoredMessage): void {
    this.pendingMirror = undefined;
    this.changes++;
    this.sql.exec(
      `INSERT INTO messages (seq, id, body, event_seq, pending, version) VALUES (?, ?, ?, ?, 1, 0)
       ON CONFLICT (seq) DO UPDATE SET body = excluded.body, event_seq = excluded.event_seq, pending = 1, version = messages.version + 1`,
      message.seq,
      message.id,
      JSON.stringify(message),
      message.eventSeq,
    );
  }

  /** Caches a committed message read from Postgres (e.g. before editing an old one). */
  cacheCommitted(message: StoredMessage): void {
    this.sql.exec(
      "INSERT INTO messages (seq, id, body, event_seq, pending, version) VALUES (?, ?, ?, ?, 0, 0) ON CONFLICT (seq) DO NOTHING",
      message.seq,
      message.id,
      JSON.stringify(message),
      message.eventSeq,
    );
  }

  /**
   * A backfill chunk read from Postgres, for seqs from..to, in one transaction: rows the room already has are newer
   * truth and stay (the room changes a row only through updateMessage, which puts it here first, so a stale read
   * never overwrites it); rows at or below the archive mark as it is now are left out (it may have moved during the
   * read). heldFrom is lowered only when every seq of the range above the mark is then held: true when it was.
   */
  adoptBackfill(rows: StoredMessage[], from: number, to: number, archivedUpToSeq: number): boolean {
    const low = Math.max(from, archivedUpToSeq + 1);
    this.settle();
    return this.storage.transactionSync(() => {
      for (const m of rows) if (m.seq >= low && m.seq <= to) this.cacheCommitted(m);
      const meta = this.meta();
      if (!meta || low > to || low >= meta.heldFrom) return false;
      const held = this.sql.exec<{ n: number }>("SELECT count(*) AS n FROM messages WHERE seq BETWEEN ? AND ?", low, to).one().n;
      if (held !== to - low + 1 || to < meta.heldFrom - 1) return false;
      this.setMeta("heldFrom", String(low));
      return true;
    });
  }

  clientId(senderId: string, clientMessageId: string): { seq: number; contentHash: string } | undefined {
    const row = this.sql
      .exec<{ seq: number; content_hash: string }>(
        "SELECT seq, content_hash FROM client_ids WHERE sender_id = ? AND client_message_id = ?",
        senderId,
        clientMessageId,
      )
      .toArray()[0];
    return row ? { seq: row.seq, contentHash: row.content_hash } : undefined;
  }

  rememberClientId(senderId: string, clientMessageId: string, seq: number, contentHash: string): void {
    this.sql.exec(
      "INSERT INTO client_ids (sender_id, client_message_id, seq, content_hash) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
      senderId,
      clientMessageId,
      seq,
      contentHash,
    );
  }

  messageBySeq(seq: number): StoredMessage | undefined {
    this.settle();
    const row = this.sql.exec<LocalRow>("SELECT body, pending FROM messages WHERE seq = ?", seq).toArray()[0];
    return row ? fromRow(row) : undefined;
  }

  /**
   * A message as stored, without writing the queued flushed marks first: for a caller that wants its content, not its
   * pending flag (which may still say pending here). A settle from the notification batch, which runs right after
   * each commit, was a storage commit of its own per message, holding the room's next frames at the output gate.
   */
  peekMessage(seq: number): StoredMessage | undefined {
    const row = this.sql.exec<LocalRow>("SELECT body, pending FROM messages WHERE seq = ?", seq).toArray()[0];
    return row ? fromRow(row) : undefined;
  }

  messageById(id: string): StoredMessage | undefined {
    this.settle();
    const row = this.sql.exec<LocalRow>("SELECT body, pending FROM messages WHERE id = ?", id).toArray()[0];
    return row ? fromRow(row) : undefined;
  }

  pending(limit = 500): PendingRow[] {
    if (this.pendingMirror) return this.pendingMirror.slice(0, limit);
    this.settle();
    const rows = this.sql
      .exec<{ body: string; version: number }>("SELECT body, version FROM messages WHERE pending = 1 ORDER BY seq LIMIT ?", limit)
      .toArray()
      .map((r) => ({ message: JSON.parse(r.body) as StoredMessage, version: r.version }));
    if (rows.length < limit) this.pendingMirror = rows.slice();
    return rows;
  }

  pendingCount(): number {
    if (this.pendingMirror) return this.pendingMirror.length;
    this.settle();
    return this.sql.exec<{ n: number }>("SELECT count(*) AS n FROM messages WHERE pending = 1").one().n;
  }

  /**
   * After a commit: clears rows whose version did not change meanwhile (a concurrent edit keeps its row pending).
   * The in-memory mirror changes now; the SQLite UPDATE waits for the next append (whose commit it joins), the next
   * read of the table, or a short idle timer. A write made now would hold the sender's ack behind its storage commit
   * (the output gate), and the ack needs only Postgres; a write of its own would cost a commit per flush. Lost by
   * an eviction in between, the rows stay pending and are written again, idempotently.
   */
  markFlushed(rows: PendingRow[]): void {
    if (rows.length === 0) return;
    if (this.pendingMirror) {
      const flushed = new Map(rows.map((r) => [r.message.seq, r.version]));
      this.pendingMirror = this.pendingMirror.filter((r) => flushed.get(r.message.seq) !== r.version);
    }
    for (const r of rows) this.flushedQueue.push([r.message.seq, r.version]);
    this.settleTimer ??= setTimeout(() => this.settle(), SETTLE_IDLE_MS);
  }

  /** Writes the queued flushed marks (one statement), then trims old client ids now and then. */
  settle(): void {
    if (this.settleTimer !== undefined) clearTimeout(this.settleTimer);
    this.settleTimer = undefined;
    if (this.flushedQueue.length === 0) return;
    const pairs = this.flushedQueue;
    this.flushedQueue = [];
    // A row edited meanwhile has a newer version and stays pending.
    this.sql.exec(
      `UPDATE messages SET pending = 0
       WHERE pending = 1 AND (seq, version) IN (SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?))`,
      JSON.stringify(pairs),
    );
    const meta = this.meta();
    if (!meta || meta.lastSeq - CLIENT_IDS_KEEP - meta.clientIdsPrunedBelow < CLIENT_IDS_PRUNE_STEP) return;
    const oldestPending = this.sql.exec<{ s: number | null }>("SELECT min(seq) AS s FROM messages WHERE pending = 1").one().s;
    const horizon = Math.min(meta.lastSeq - CLIENT_IDS_KEEP, oldestPending ?? Number.POSITIVE_INFINITY);
    if (horizon - meta.clientIdsPrunedBelow >= CLIENT_IDS_PRUNE_STEP) this.pruneClientIds(horizon);
  }

  markClosed(): void {
    this.setMeta("closed", "true");
  }

  /** Forgets client ids of messages below `belowSeq` (never those still pending: Postgres does not have them). */
  pruneClientIds(belowSeq: number): void {
    this.storage.transactionSync(() => {
      this.sql.exec("DELETE FROM client_ids WHERE seq < ?", belowSeq);
      this.setMeta("clientIdsPrunedBelow", String(belowSeq));
    });
  }

  /**
   * Whether every seq from `fromSeq` to `lastSeq` is held here. The oldest row alone does not say so: an old message
   * looked up (an edit, a reply) is kept beside the newest rows, with a gap between until the backfill fills it, and
   * counting or replaying from the rows here then missed the gap's messages.
   */
  holdsAllFrom(fromSeq: number, lastSeq: number): boolean {
    if (fromSeq > lastSeq) return true;
    this.settle();
    const held = this.sql.exec<{ n: number }>("SELECT count(*) AS n FROM messages WHERE seq BETWEEN ? AND ?", fromSeq, lastSeq).one().n;
    return held === lastSeq - fromSeq + 1;
  }

  /** Messages (current state) with afterSeq < seq <= upToSeq, or changed at/after afterSeq, in seq order. */
  changesSince(afterSeq: number, limit: number, upToSeq = Number.MAX_SAFE_INTEGER): StoredMessage[] {
    this.settle();
    return this.sql
      .exec<LocalRow>(
        `SELECT body, pending FROM messages
         WHERE seq BETWEEN ? AND ?
            OR (seq <= ? AND event_seq >= ? AND (json_extract(body, '$.editedAt') IS NOT NULL OR json_extract(body, '$.deletedAt') IS NOT NULL))
         ORDER BY seq LIMIT ?`,
        afterSeq + 1,
        upToSeq,
        afterSeq,
        afterSeq,
        limit,
      )
      .toArray()
      .map(fromRow);
  }

  /**
   * A seq range as public messages already in JSON: SQLite drops the internal field and sets the status, the RPC
   * carries strings rather than 50 objects to clone, and the Worker serializes nothing a second time. (Measured in S8,
   * the page's CPU stayed within the noise of the object path: SQLite's JSON functions cost about what parsing did.)
   */
  rangeJson(fromSeq: number, toSeq: number): SerializedMessage[] {
    this.settle();
    return this.sql
      .exec<{ json: string; sender_id: string }>(
        `SELECT json_set(json_remove(body, '$.eventSeq', '$.sender'), '$.status', CASE pending WHEN 1 THEN 'pending' ELSE 'sent' END) AS json,
                json_extract(body, '$.senderId') AS sender_id
         FROM messages WHERE seq BETWEEN ? AND ? ORDER BY seq`,
        fromSeq,
        toSeq,
      )
      .toArray()
      .map((r) => ({ json: r.json, senderId: r.sender_id }));
  }

  /** Local rows in a seq range (inclusive), for overlaying pending state on a Postgres page. */
  range(fromSeq: number, toSeq: number): StoredMessage[] {
    this.settle();
    return this.sql
      .exec<LocalRow>("SELECT body, pending FROM messages WHERE seq BETWEEN ? AND ? ORDER BY seq", fromSeq, toSeq)
      .toArray()
      .map(fromRow);
  }

  // Receipt watermarks waiting to be written to Postgres with the next flush.
  setWatermark(userId: string, w: { lastReadSeq?: number; lastReadAt?: string; lastDeliveredSeq?: number }): void {
    this.watermarksDirty = true;
    this.extrasVersion++;
    this.sql.exec(
      `INSERT INTO watermarks (user_id, last_read_seq, last_read_at, last_delivered_seq) VALUES (?, ?, ?, ?)
       ON CONFLICT (user_id) DO UPDATE SET
         last_read_seq = max(coalesce(watermarks.last_read_seq, 0), coalesce(excluded.last_read_seq, 0)),
         last_read_at = coalesce(excluded.last_read_at, watermarks.last_read_at),
         last_delivered_seq = max(coalesce(watermarks.last_delivered_seq, 0), coalesce(excluded.last_delivered_seq, 0))`,
      userId,
      w.lastReadSeq ?? null,
      w.lastReadAt ?? null,
      w.lastDeliveredSeq ?? null,
    );
  }

  watermarks(): { userId: string; lastReadSeq?: number; lastReadAt?: string; lastDeliveredSeq?: number }[] {
    if (!this.watermarksDirty) return [];
    const rows = this.sql
      .exec<{ user_id: string; last_read_seq: number | null; last_read_at: string | null; last_delivered_seq: number | null }>(
        "SELECT * FROM watermarks",
      )
      .toArray()
      .map((r) => ({
        userId: r.user_id,
        lastReadSeq: r.last_read_seq || undefined,
        lastReadAt: r.last_read_at ?? undefined,
        lastDeliveredSeq: r.last_delivered_seq || undefined,
      }));
    this.watermarksDirty = rows.length > 0;
    return rows;
  }

  clearWatermarks(flushed: { userId: string; lastReadSeq?: number; lastDeliveredSeq?: number }[]): void {
    for (const w of flushed) {
      this.sql.exec(
        "DELETE FROM watermarks WHERE user_id = ? AND coalesce(last_read_seq, 0) <= ? AND coalesce(last_delivered_seq, 0) <= ?",
        w.userId,
        w.lastReadSeq ?? 0,
        w.lastDeliveredSeq ?? 0,
      );
    }
  }

  /** Audit entries travel with the flush, in the same Postgres transaction as the change they describe. */
  queueAudit(entry: AuditEntry): void {
    this.auditsDirty = true;
    this.extrasVersion++;
    // The id lets Postgres tell a second write of this entry (a flush retried after one that committed late) apart.
    const stamped: AuditEntry = { ...entry, at: entry.at ?? new Date().toISOString(), entryId: entry.entryId ?? crypto.randomUUID() };
    this.sql.exec("INSERT INTO audit_outbox (body) VALUES (?)", JSON.stringify(stamped));
  }

  audits(): { id: number; entry: AuditEntry }[] {
    if (!this.auditsDirty) return [];
    const rows = this.sql
      .exec<{ id: number; body: string }>("SELECT id, body FROM audit_outbox ORDER BY id LIMIT 500")
      .toArray()
      .map((r) => ({ id: r.id, entry: JSON.parse(r.body) as AuditEntry }));
    this.auditsDirty = rows.length > 0;
    return rows;
  }

  clearAudits(upToId: number): void {
    this.sql.exec("DELETE FROM audit_outbox WHERE id <= ?", upToId);
  }

  typing(): { userId: string; expiresAt: number }[] {
    return [...this.typingLeases()].map(([userId, expiresAt]) => ({ userId, expiresAt }));
  }

  private typingLeases(): Map<string, number> {
    this.typingCache ??= new Map(
      this.sql
        .exec<{ user_id: string; expires_at: number }>("SELECT user_id, expires_at FROM typing")
        .toArray()
        .map((r) => [r.user_id, r.expires_at]),
    );
    return this.typingCache;
  }

  setTyping(userId: string, expiresAt: number): void {
    this.sql.exec(
      "INSERT INTO typing (user_id, expires_at) VALUES (?, ?) ON CONFLICT (user_id) DO UPDATE SET expires_at = excluded.expires_at",
      userId,
      expiresAt,
    );
    this.typingLeases().set(userId, expiresAt);
  }

  /** Every send ends its sender's typing: a sender who was not typing costs no write. */
  clearTyping(userId: string): boolean {
    if (!this.typingLeases().has(userId)) return false;
    this.typingCache?.delete(userId);
    return this.sql.exec("DELETE FROM typing WHERE user_id = ?", userId).rowsWritten > 0;
  }
}

type LocalRow = { body: string; pending: number };

function fromRow(row: LocalRow): StoredMessage {
  const m = JSON.parse(row.body) as StoredMessage;
  return { ...m, status: row.pending ? "pending" : "sent" };
}

export function contentHash(type: string, content: string, replyToId: string | null | undefined): string {
  // FNV-1a over the fields that make two sends "the same": enough to tell a retry from a conflicting reuse of an id.
  let h1 = 0x811c9dc5;
  let h2 = 0x01000193;
  const text = `${type}\u0000${replyToId ?? ""}\u0000${content}`;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 0x01000193) >>> 0;
    h2 = Math.imul(h2 ^ c, 0x5bd1e995) >>> 0;
  }
  return `${h1.toString(16)}${h2.toString(16)}:${text.length}`;
}

export type { Message };
