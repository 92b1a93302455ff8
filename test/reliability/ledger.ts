// The message ledger: every message a client sends is recorded as sent, acked (with its status), persisted (found in
// Postgres at the end) and delivered (per receiver, per socket incarnation, by seq). A scenario ends with
// `reconcile()`, which turns the records into counts; a clean run has lost = duplicated = outOfOrder = mismatched = 0.
//
// Definitions (per conversation; N = the highest seq in Postgres once the outbox has drained):
// - Postgres must hold exactly seq 1..N, one row per (sender, clientMessageId), each acked message at the seq its
//   ack named, with the content that was sent (normalised content is what the ack returned).
// - lost:       an acked message that is not in Postgres after the drain wait, plus every (receiver, seq) pair a
//               receiver never saw (a receiver must see every seq from its first one to N, across its socket
//               incarnations: it stayed connected, or it reconnected with ?afterSeq=<highest seq seen> and resumed).
// - duplicated: more than one Postgres row for one (sender, clientMessageId); two acks of one message naming different
//               seqs or ids; the same seq delivered twice on one socket incarnation (overlap *across* incarnations is
//               the client's to dedupe by seq, so it is counted as `overlap`, not as a duplicate).
// - outOfOrder: on one socket incarnation, a seq lower than one delivered before it.
// - mismatched: a delivered or acked message whose id/content differs from the Postgres row of that seq.
import type { TruthDb, PgRow } from "./db";

export type AckStatus = "sent" | "pending";

export interface LedgerMessage {
  id: string;
  seq: number;
  senderId: string;
  clientMessageId: string | null;
  content: string;
  status?: string;
}

interface SentRecord {
  conversationId: string;
  senderId: string;
  clientMessageId: string;
  content: string;
  attempts: number;
  acks: { seq: number; id: string; status: string; content: string; via: string }[];
  failures: string[];
}

interface Incarnation {
  receiver: string;
  conversationId: string;
  index: number;
  /** afterSeq of the resume this socket was opened with (0 for a fresh start). */
  afterSeq: number;
  seqs: number[];
  messages: Map<number, LedgerMessage>;
}

interface ReceiverRecord {
  conversationId: string;
  /** First seq this receiver is responsible for (1 when it joined before the first send). */
  fromSeq: number;
  incarnations: Incarnation[];
}

export interface ReconcileReport {
  scenario: string;
  conversations: number;
  sent: number;
  acked: number;
  ackedPending: number;
  unacked: number;
  persisted: number;
  /** Rows in Postgres for these conversations (ledger messages and any others). */
  pgRows: number;
  receivers: number;
  expectedDeliveries: number;
  /** Unique (receiver, seq) pairs seen. */
  delivered: number;
  /** Raw new_message frames received (including overlap across incarnations). */
  deliveryFrames: number;
  reconnects: number;
  lost: number;
  duplicated: number;
  outOfOrder: number;
  mismatched: number;
  overlap: number;
  pgGaps: number;
  details: string[];
}

const keyOf = (conversationId: string, senderId: string, cmid: string) => `${conversationId}|${senderId}|${cmid}`;

export class Ledger {
  private readonly sends = new Map<string, SentRecord>();
  private readonly receivers = new Map<string, ReceiverRecord>();
  readonly conversations = new Set<string>();

  constructor(readonly scenario: string) {}

  /** A logical message (one per clientMessageId); retries call it again and count as attempts. */
  sent(conversationId: string, senderId: string, clientMessageId: string, content: string): void {
    this.conversations.add(conversationId);
    const key = keyOf(conversationId, senderId, clientMessageId);
    const rec = this.sends.get(key);
    if (rec) {
      rec.attempts++;
      return;
    }
    this.sends.set(key, { conversationId, senderId, clientMessageId, content, attempts: 1, acks: [], failures: [] });
  }

  acked(conversationId: string, senderId: string, clientMessageId: string, message: LedgerMessage, via: "ws" | "rest"): void {
    const rec = this.sends.get(keyOf(conversationId, senderId, clientMessageId));
    if (!rec) throw new Error(`ack for a message the ledger never saw sent: ${clientMessageId}`);
    rec.acks.push({ seq: message.seq, id: message.id, status: message.status ?? "sent", content: message.content, via });
  }

  failed(conversationId: string, senderId: string, clientMessageId: string, reason: string): void {
    this.sends.get(keyOf(conversationId, senderId, clientMessageId))?.failures.push(reason);
  }

  /** Registers a receiver (a logical client: one user's device) before its first socket opens. */
  receiver(label: string, conversationId: string, fromSeq = 1): void {
    this.conversations.add(conversationId);
    if (!this.receivers.has(label)) this.receivers.set(label, { conversationId, fromSeq, incarnations: [] });
  }

  /** A new socket of the receiver; returns its incarnation index. */
  incarnation(label: string, afterSeq: number): number {
    const r = this.receivers.get(label);
    if (!r) throw new Error(`unknown receiver ${label}`);
    const index = r.incarnations.length;
    r.incarnations.push({ receiver: label, conversationId: r.conversationId, index, afterSeq, seqs: [], messages: new Map() });
    return index;
  }

  delivered(label: string, incarnation: number, message: LedgerMessage): void {
    const inc = this.receivers.get(label)?.incarnations[incarnation];
    if (!inc) throw new Error(`unknown incarnation ${label}#${incarnation}`);
    inc.seqs.push(message.seq);
    if (!inc.messages.has(message.seq)) inc.messages.set(message.seq, message);
  }

  /** Highest seq the receiver has seen over all its sockets (what it resumes after). */
  highestSeen(label: string): number {
    let max = 0;
    for (const inc of this.receivers.get(label)?.incarnations ?? []) for (const s of inc.seqs) if (s > max) max = s;
    return max;
  }

  /** Acked messages (first ack) per conversation, for waiting on the outbox. */
  ackedCount(conversationIds = [...this.conversations]): number {
    const set = new Set(conversationIds);
    let n = 0;
    for (const r of this.sends.values()) if (set.has(r.conversationId) && r.acks.length > 0) n++;
    return n;
  }

  totals(): { sent: number; acked: number; pending: number } {
    let acked = 0;
    let pending = 0;
    for (const r of this.sends.values()) {
      if (r.acks.length > 0) acked++;
      if (r.acks[0]?.status === "pending") pending++;
    }
    return { sent: this.sends.size, acked, pending };
  }

  /**
   * Waits until every acked message is in Postgres (or the deadline passes), then compares everything.
   * `settle` is for receivers: after the last send, how long live frames may still be on their way.
   */
  async reconcile(db: TruthDb, options: { drainMs?: number; settleMs?: number } = {}): Promise<ReconcileReport> {
    const conversationIds = [...this.conversations];
    const deadline = Date.now() + (options.drainMs ?? 60_000);
    const wanted = this.ackedCount();
    for (;;) {
      const have = await this.persistedAckedCount(db, conversationIds);
      if (have >= wanted || Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    if (options.settleMs) await new Promise((r) => setTimeout(r, options.settleMs));

    const details: string[] = [];
    const note = (line: string) => {
      if (details.length < 40) details.push(line);
    };
    const rowsByConversation = new Map<string, PgRow[]>();
    for (const id of conversationIds) rowsByConversation.set(id, await db.messages(id));

    let persisted = 0;
    let lost = 0;
    let duplicated = 0;
    let mismatched = 0;
    let outOfOrder = 0;
    let overlap = 0;
    let pgGaps = 0;
    let unacked = 0;
    let ackedPending = 0;
    let acked = 0;
    let pgRows = 0;

    // Postgres itself: dense seqs, one row per client id.
    for (const [cid, rows] of rowsByConversation) {
      pgRows += rows.length;
      rows.forEach((row, i) => {
        if (row.seq !== i + 1) {
          pgGaps++;
          note(`pg ${cid.slice(0, 8)}: row ${i} has seq ${row.seq} (expected ${i + 1})`);
        }
      });
      const byClientId = new Map<string, number>();
      for (const row of rows) {
        if (!row.clientMessageId) continue;
        const k = `${row.senderId}|${row.clientMessageId}`;
        byClientId.set(k, (byClientId.get(k) ?? 0) + 1);
      }
      for (const [k, n] of byClientId) {
        if (n > 1) {
          duplicated += n - 1;
          note(`pg ${cid.slice(0, 8)}: ${n} rows for ${k}`);
        }
      }
    }

    // Sends against Postgres.
    for (const rec of this.sends.values()) {
      const rows = rowsByConversation.get(rec.conversationId) ?? [];
      const row = rows.find((r) => r.senderId === rec.senderId && r.clientMessageId === rec.clientMessageId);
      if (row) persisted++;
      if (rec.acks.length === 0) {
        unacked++;
        if (!row) note(`unacked and not persisted: ${rec.clientMessageId} (${rec.failures.slice(-1)[0] ?? "no reason"})`);
        continue;
      }
      acked++;
      if (rec.acks[0].status === "pending") ackedPending++;
      const seqs = new Set(rec.acks.map((a) => `${a.seq}|${a.id}`));
      if (seqs.size > 1) {
        duplicated += seqs.size - 1;
        note(`acks disagree for ${rec.clientMessageId}: ${[...seqs].join(", ")}`);
      }
      if (!row) {
        lost++;
        note(`LOST acked ${rec.clientMessageId} seq ${rec.acks[0].seq} (${rec.acks[0].status})`);
        continue;
      }
      const ack = rec.acks[0];
      if (row.seq !== ack.seq || row.id !== ack.id || row.content !== ack.content) {
        mismatched++;
        note(`ack/pg mismatch ${rec.clientMessageId}: ack ${ack.seq}/${ack.id.slice(0, 8)} pg ${row.seq}/${row.id.slice(0, 8)}`);
      }
    }

    // Deliveries against Postgres.
    let expectedDeliveries = 0;
    let delivered = 0;
    let deliveryFrames = 0;
    let reconnects = 0;
    for (const [label, r] of this.receivers) {
      const rows = rowsByConversation.get(r.conversationId) ?? [];
      const bySeq = new Map(rows.map((row) => [row.seq, row]));
      const n = rows.length === 0 ? 0 : rows[rows.length - 1].seq;
      const seen = new Set<number>();
      reconnects += Math.max(0, r.incarnations.length - 1);
      for (const inc of r.incarnations) {
        deliveryFrames += inc.seqs.length;
        const onThisSocket = new Set<number>();
        let prev = 0;
        for (const seq of inc.seqs) {
          if (onThisSocket.has(seq)) {
            duplicated++;
            note(`${label}#${inc.index}: seq ${seq} delivered twice on one socket`);
          } else if (seq < prev) {
            outOfOrder++;
            note(`${label}#${inc.index}: seq ${seq} after ${prev}`);
          }
          if (seen.has(seq) && !onThisSocket.has(seq)) overlap++;
          onThisSocket.add(seq);
          seen.add(seq);
          prev = Math.max(prev, seq);
        }
        for (const [seq, m] of inc.messages) {
          const row = bySeq.get(seq);
          if (!row || row.id !== m.id || row.content !== m.content) {
            mismatched++;
            note(`${label}#${inc.index}: seq ${seq} delivered as ${m.id.slice(0, 8)} but pg has ${row ? row.id.slice(0, 8) : "nothing"}`);
          }
        }
      }
      for (let s = r.fromSeq; s <= n; s++) {
        expectedDeliveries++;
        if (seen.has(s)) delivered++;
        else {
          lost++;
          note(`${label}: never saw seq ${s} of ${n}`);
        }
      }
    }

    return {
      scenario: this.scenario,
      conversations: conversationIds.length,
      sent: this.sends.size,
      acked,
      ackedPending,
      unacked,
      persisted,
      pgRows,
      receivers: this.receivers.size,
      expectedDeliveries,
      delivered,
      deliveryFrames,
      reconnects,
      lost,
      duplicated,
      outOfOrder,
      mismatched,
      overlap,
      pgGaps,
      details,
    };
  }

  private async persistedAckedCount(db: TruthDb, conversationIds: string[]): Promise<number> {
    const rows = await db.query<{ conversation_id: string; sender_id: string; client_message_id: string }>(
      "SELECT conversation_id, sender_id, client_message_id FROM messages WHERE conversation_id = ANY($1::uuid[]) AND client_message_id IS NOT NULL",
      [conversationIds],
    );
    const have = new Set(rows.map((r) => keyOf(r.conversation_id, r.sender_id, r.client_message_id)));
    let n = 0;
    for (const [k, rec] of this.sends) if (rec.acks.length > 0 && have.has(k)) n++;
    return n;
  }
}

/** One line for logs and docs: the counts the reliability table shows. */
export function summarize(r: ReconcileReport): string {
  return (
    `${r.scenario}: sent ${r.sent}, acked ${r.acked} (pending ${r.ackedPending}), persisted ${r.persisted}, ` +
    `delivered ${r.delivered}/${r.expectedDeliveries} (frames ${r.deliveryFrames}, reconnects ${r.reconnects}, overlap ${r.overlap}), ` +
    `lost ${r.lost}, duplicated ${r.duplicated}, out of order ${r.outOfOrder}, mismatched ${r.mismatched}, pg gaps ${r.pgGaps}`
  );
}
