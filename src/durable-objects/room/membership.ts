import { errorReason } from "../../lib/errors";
import type { Db } from "../../db/client";
import { loadRoomState } from "../../db/queries/room";
import { Departures } from "../../domain/departures";
import { laterMarks, type Marks } from "../../domain/marks";
import { ReadOrder } from "../../domain/read-order";
import { withTimeout } from "../../lib/redis";
import type { Logger } from "../../lib/log";
import type { ParticipantFrameData } from "../../protocol/frames";
import { publicParticipant, type Participant, type Role } from "../../protocol/resources";
import type { RoomEvent } from "../room-api";
import type { RoomProfiles } from "./profiles";
import type { RoomStore } from "./store";

/** Membership changes reach the room by notice; the copy is re-read from Postgres at most this often besides. */
const PARTICIPANTS_TTL_MS = 60_000;
/** A connect by someone the copy does not list re-reads it at most this often (see recheckFor). */
const STRANGER_RECHECK_MS = 2_000;

type ParticipantsEvent = Extract<RoomEvent, { kind: "participants" }>;

/** A mark waiting for the flush, which carries only what moved, as marks to compare (an absent one is behind). */
function unflushedMarks(w: { lastReadSeq?: number; lastReadAt?: string; lastDeliveredSeq?: number }): Marks {
  return { lastReadSeq: w.lastReadSeq ?? 0, lastReadAt: w.lastReadAt ?? null, lastDeliveredSeq: w.lastDeliveredSeq ?? 0 };
}

function marksOf({ lastReadSeq, lastReadAt, lastDeliveredSeq }: Marks): Marks {
  return { lastReadSeq, lastReadAt, lastDeliveredSeq };
}

/** What the room's member list needs of the room (the Durable Object class satisfies it). */
export interface MembershipHost {
  readonly store: RoomStore;
  readonly profiles: RoomProfiles;
  readonly log: Logger;
  readonly state: DurableObjectState;
  db(): Db;
  resetDb(): void;
  pgOr503<T>(work: () => Promise<T>): Promise<T>;
  member(userId: string): Participant | undefined;
  broadcast(type: string, data: unknown): void;
  closeUserSockets(userId: string, code: number, reason: string): void;
  endTyping(userId: string): void;
  closeRoom(): void;
  noteArchived(upToSeq: number): void;
  /** Starts a flush of what is pending (marks the room moved itself) without waiting for it. */
  flushOutboxSoon(): void;
}

/**
 * The room's copy of its member list: Postgres is the authority, the Worker's notices (and the business desk's) say
 * what changed, and a re-read once a minute catches a notice that was lost. Reads of the list overlap and land in
 * any order, so only the newest started is adopted, and removals and demotions are taken as their notice arrives,
 * ahead of the read that follows it.
 */
export class RoomMembership {
  /** Member-list reads (notices, the minute's re-read) run concurrently: only the newest started one is adopted. */
  private readonly reads = new ReadOrder();
  /** Removals acted on ahead of a re-read: a read that was already out when they happened must not undo them. */
  private readonly departures = new Departures();
  /** Demotions taken at their notice: a list read begun up to `ticket` predates them and must not undo them. */
  private readonly demotions = new Map<string, { role: Role; ticket: number }>();
  /**
   * Marks of members the room dropped, until they are listed again: a flush of their last read that commits while
   * the re-add's read of the list is out clears the store's copy, and that read still has Postgres's older mark.
   */
  private readonly leftMarks = new Map<string, Marks>();
  /**
   * Newcomers named by an add's notice, with the room's newest seq when it landed, until a read of the list brings
   * them in: the add's commit started their marks at the seq it asked the room for before committing, and a message
   * sent in between counted as unread for someone who was not in the conversation when it was sent.
   */
  private readonly newcomerStarts = new Map<string, number>();
  private checkedAtMemo: number | undefined;
  private strangerCheckedAt = 0;

  constructor(private readonly room: MembershipHost) {}

  /**
   * A connect by a user the copy does not list. Their add's notice can be lost (the Worker only logs a failed one,
   * with Postgres slow to the room's read) and the copy then lacked them until the minute's re-read: their socket
   * was refused with 404, which apps take as "not yours", and the SDK stopped reconnecting. The list is read again
   * first, at most once per STRANGER_RECHECK_MS, so repeated connects by a non-member cost Postgres little.
   */
  async recheckFor(conversationId: string): Promise<void> {
    const now = Date.now();
    if (now - this.strangerCheckedAt < STRANGER_RECHECK_MS) return;
    this.strangerCheckedAt = now;
    await this.refresh(conversationId);
  }

  /**
   * When the member list was last read from Postgres. Kept in storage: workerd evicts a room ~10 s after its last
   * event, and a woken room that re-read the list on its first message held that message's delivery for a Postgres
   * connection and round trip (a conversation with a message every half minute paid it on most messages).
   */
  private get checkedAt(): number {
    this.checkedAtMemo ??= this.room.state.storage.kv.get<number>("participantsCheckedAt") ?? 0;
    return this.checkedAtMemo;
  }

  /** The room loaded the list itself (its first load). */
  markChecked(at: number): void {
    this.checkedAtMemo = at;
    this.room.state.storage.kv.put("participantsCheckedAt", at);
  }

  /** Checked before calling refresh: an async call costs every send a promise and a turn, and is due once a minute. */
  due(now: number): boolean {
    return now - this.checkedAt >= PARTICIPANTS_TTL_MS;
  }

  /**
   * Should a notice be lost, the copy is re-read from Postgres at most once a minute while the room is in use. A
   * failed re-read keeps the copy.
   */
  async refresh(conversationId: string): Promise<void> {
    const room = this.room;
    const now = Date.now();
    this.markChecked(now);
    try {
      const ticket = this.reads.begin();
      const state = await withTimeout(loadRoomState(room.db(), conversationId), 2000, "participants");
      if (!state) return;
      if (state.closed && !room.store.meta()?.closed) room.closeRoom();
      // A read started later (a membership change's notify) was adopted meanwhile: this one may predate the change.
      if (!this.reads.adopt(ticket)) return;
      const { gone, arrived } = this.adopt(state.participants, ticket);
      room.store.adoptOffline(state.offline, now);
      // A lost notification: the sockets and member lists follow as its frames would have made them.
      this.closeGone(gone);
      for (const p of arrived) room.broadcast("participant_joined", { participant: this.withCachedProfile(p) } satisfies ParticipantFrameData);
      for (const userId of gone) room.broadcast("participant_left", { userId });
      room.noteArchived(state.archivedUpToSeq);
    } catch (err) {
      room.resetDb();
      room.log.warn("participant refresh failed", { error: errorReason(err).slice(0, 200) });
    }
  }

  /** A notice of joins, leaves and role changes already committed to Postgres. */
  async apply(event: ParticipantsEvent): Promise<void> {
    const room = this.room;
    const dropped = this.dropLeavers(event.left ?? [], event.leftAt);
    this.demoteEarly(event.updated ?? []);
    this.noteNewcomers(event.newcomers ?? []);
    const readAt = Date.now();
    const ticket = this.reads.begin();
    const state = await room.pgOr503(() => loadRoomState(room.db(), event.conversationId));
    if (!state) return;
    if (!this.reads.adopt(ticket)) {
      // A read started after this one was adopted first, and announced whatever differed from the room's copy,
      // this event's joins and leaves included if they still hold: adopted now, this older list put a member
      // just removed back in (until the minute's re-read). Role changes are not diffed: those still current go.
      for (const p of event.updated ?? []) {
        if (room.member(p.userId)?.role === p.role) room.broadcast("participant_updated", { participant: this.withOwnMarks(p) } satisfies ParticipantFrameData);
      }
      return;
    }
    // Besides those the event names, the list may show changes nobody told the room of (a notification lost).
    // Adopted silently, a removed member kept their sockets and every later frame (the minute's re-read no
    // longer had them in its copy to compare), and the others' member lists missed whoever came or went.
    const adopted = this.adopt(state.participants, ticket);
    // Those named who are members again (re-added since) stay: closing their new sockets and announcing them gone
    // left everyone's lists without them until the next change.
    const namedGone = (event.left ?? []).filter((userId) => !dropped.has(userId) && !room.member(userId));
    const gone = [...new Set([...namedGone, ...adopted.gone])];
    const named = new Set((event.joined ?? []).map((p) => p.userId));
    const unannounced = adopted.arrived.filter((p) => !named.has(p.userId)).map((p) => this.withCachedProfile(p));
    room.store.adoptOffline(state.offline, readAt);
    this.closeGone(gone);
    // The Worker (or the business desk) looked their profiles up for its own answer: they come with the event.
    for (const p of [...(event.joined ?? []), ...unannounced]) room.broadcast("participant_joined", { participant: this.withOwnMarks(p) } satisfies ParticipantFrameData);
    for (const p of event.updated ?? []) room.broadcast("participant_updated", { participant: this.withOwnMarks(p) } satisfies ParticipantFrameData);
    for (const userId of gone) room.broadcast("participant_left", { userId });
  }

  /**
   * Removed members' sockets close before anything is sent about them: a close queued right behind a send on the same
   * hibernatable socket can stall until the object is evicted (workerd output-gate behaviour). Their typing lease
   * ended only with their socket's close handshake, or after 6 s when their app never answered it: the others saw
   * "typing…" from someone no longer in the conversation.
   */
  private closeGone(gone: Iterable<string>): void {
    for (const userId of gone) this.room.closeUserSockets(userId, 4403, "No longer a participant");
    for (const userId of gone) this.room.endTyping(userId);
  }

  /**
   * Takes Postgres's member list, keeping local watermarks that are ahead of it (not flushed yet).
   * Returns who is no longer a member, and who is new to the room's copy.
   */
  private adopt(listed: Participant[], ticket: number): { gone: string[]; arrived: Participant[] } {
    const store = this.room.store;
    const now = Date.now();
    // A read begun after a demotion was taken has it from Postgres.
    for (const [userId, d] of this.demotions) if (ticket > d.ticket) this.demotions.delete(userId);
    const fresh = listed
      .filter((p) => !this.departures.ended(p.userId, Date.parse(p.joinedAt), now))
      .map((p) => {
        const demoted = this.demotions.get(p.userId);
        return demoted && p.role === "admin" ? { ...p, role: demoted.role } : p;
      });
    const local = new Map(store.participants().map((p) => [p.userId, p]));
    // A member removed and added back before the flush of their last read: the room dropped their entry at the
    // removal, and Postgres's older mark put the messages they had read back to unread. The store still holds it.
    const unflushed = new Map(store.watermarks().map((w) => [w.userId, unflushedMarks(w)]));
    const marked = (p: Participant) => laterMarks(laterMarks(p, local.get(p.userId) ?? this.leftMarks.get(p.userId)), unflushed.get(p.userId));
    store.replaceParticipants(fresh.map((p) => (local.has(p.userId) ? marked(p) : this.startedMarks(marked(p)))));
    this.markChecked(Date.now());
    const current = new Set(fresh.map((p) => p.userId));
    for (const userId of current) this.leftMarks.delete(userId);
    for (const [userId, p] of local) if (!current.has(userId)) this.leftMarks.set(userId, marksOf(p));
    return { gone: [...local.keys()].filter((id) => !current.has(id)), arrived: fresh.filter((p) => !local.has(p.userId)) };
  }

  /** Only for those not in the copy yet: one already in it may have had frames of what came since. */
  private noteNewcomers(newcomers: string[]): void {
    const newest = this.room.store.meta()?.lastSeq;
    if (newest === undefined) return;
    for (const userId of newcomers) if (!this.room.member(userId)) this.newcomerStarts.set(userId, newest);
  }

  /**
   * A newcomer's marks moved up to where the room stood when their add's notice landed. Written with the next flush
   * (their badge, counted after the notice, reads the room's marks); arrivals are rare, so this stays off the send path.
   */
  private startedMarks(p: Participant): Participant {
    const start = this.newcomerStarts.get(p.userId);
    if (start === undefined) return p;
    this.newcomerStarts.delete(p.userId);
    if (start <= p.lastReadSeq && start <= p.lastDeliveredSeq) return p;
    const at = new Date().toISOString();
    const started = laterMarks(p, { lastReadSeq: start, lastReadAt: at, lastDeliveredSeq: start });
    this.room.store.setWatermark(p.userId, {
      lastReadSeq: started.lastReadSeq > p.lastReadSeq ? started.lastReadSeq : undefined,
      lastReadAt: started.lastReadSeq > p.lastReadSeq ? at : undefined,
      lastDeliveredSeq: started.lastDeliveredSeq > p.lastDeliveredSeq ? started.lastDeliveredSeq : undefined,
    });
    this.room.flushOutboxSoon();
    return started;
  }

  /**
   * Acts on a removal as its notice arrives, before the re-read of the list (a Postgres round trip) that follows: the
   * removed member's sockets had the whole read to send messages and marks the others received. A member whose copy
   * shows them joined after `leftAt` was re-added, and that notice came first: the removal is older news.
   */
  private dropLeavers(left: string[], leftAtIso: string | undefined): Set<string> {
    const dropped = new Set<string>();
    const leftAt = leftAtIso === undefined ? Number.NaN : Date.parse(leftAtIso);
    if (Number.isNaN(leftAt)) return dropped;
    const now = Date.now();
    for (const userId of left) {
      this.departures.note(userId, leftAt, now);
      const p = this.room.member(userId);
      if (!p || Date.parse(p.joinedAt) > leftAt) continue;
      this.leftMarks.set(userId, marksOf(p));
      this.room.store.dropParticipant(userId);
      dropped.add(userId);
    }
    this.closeGone(dropped);
    for (const userId of dropped) this.room.broadcast("participant_left", { userId });
    return dropped;
  }

  /**
   * An admin's demotion is taken as its notice arrives: a demoted admin still deleted other members' messages for
   * the whole re-read of the list. Promotions wait for the read (a late demotion notice, behind the notice of a
   * promotion that followed it, costs the member their admin rights only until then).
   */
  private demoteEarly(updated: Participant[]): void {
    for (const p of updated) {
      const mine = this.room.member(p.userId);
      if (mine?.role !== "admin" || p.role === "admin") continue;
      this.room.store.upsertParticipant({ ...mine, role: p.role });
      this.demotions.set(p.userId, { role: p.role, ticket: this.reads.latest() });
    }
  }

  /**
   * A participant read from Postgres by the Worker, with the read and delivered marks the room holds: those it moved
   * last reach Postgres with a later flush (the outbox's backoff, while Postgres is unreachable). Apps take the
   * frame as the member's state, and the marks in Postgres put read ticks the room had already sent back to unread.
   */
  private withOwnMarks(p: Participant): Participant {
    const mine = this.room.member(p.userId);
    if (!mine) return publicParticipant(p);
    return publicParticipant({ ...p, lastReadSeq: mine.lastReadSeq, lastReadAt: mine.lastReadAt, lastDeliveredSeq: mine.lastDeliveredSeq });
  }

  /** For a participant frame the room sends of its own accord: the profile it holds, if any. */
  private withCachedProfile(p: Participant): Participant {
    const profile = this.room.profiles.cached(p.userId);
    return publicParticipant(profile ? { ...p, profile } : p);
  }
}
