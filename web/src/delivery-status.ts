import type { Message, Participant } from "../../src/client";
import type { Directory } from "./format";
import { h } from "./dom";
import { showTicks } from "./message-bubble";
import { seenByChanges, seenByLines } from "./receipts";

interface Marks {
  read: number;
  delivered: number;
}

/** What the ticks and "Seen by" lines are drawn on. */
export interface DrawnMessages {
  readonly me: string;
  readonly dir: Pick<Directory, "name">;
  readonly participants: readonly Participant[];
  readonly messages: ReadonlyMap<number, Message>;
  readonly nodes: ReadonlyMap<number, HTMLLIElement>;
  /** The list of stored messages. */
  readonly log: HTMLElement;
}

/** How far each participant has read and received (their marks), shown as ticks on my messages and "Seen by" lines. */
export class DeliveryStatus {
  private readonly marks = new Map<string, Marks>();

  constructor(participants: readonly Participant[]) {
    for (const p of participants) this.marks.set(p.userId, { read: p.lastReadSeq, delivered: p.lastDeliveredSeq });
  }

  /** Marks only move forward; what is read has been delivered. */
  set(userId: string, read: number, delivered: number): void {
    const m = this.marks.get(userId) ?? { read: 0, delivered: 0 };
    this.marks.set(userId, { read: Math.max(m.read, read), delivered: Math.max(m.delivered, delivered, read) });
  }

  /** Ticks on my messages (sent, delivered, read) and "Seen by" under the last message each participant has read. */
  draw(v: DrawnMessages): void {
    const others = v.participants.filter((p) => p.userId !== v.me).map((p) => ({ id: p.userId, ...(this.marks.get(p.userId) ?? { read: 0, delivered: 0 }) }));
    for (const [seq, node] of v.nodes) {
      const ticks = node.querySelector<HTMLElement>(".ticks");
      if (!ticks) continue;
      const read = others.length > 0 && others.every((o) => o.read >= seq);
      const delivered = others.length > 0 && others.every((o) => Math.max(o.delivered, o.read) >= seq);
      showTicks(ticks, read ? "read" : delivered ? "delivered" : "sent");
    }
    const readers = others.map((o) => ({ id: o.id, read: o.read, name: v.dir.name(o.id) }));
    const wanted = seenByLines(v.messages.values(), readers);
    const shown = new Map<number, string>();
    for (const el of v.log.querySelectorAll<HTMLElement>(".seen-by")) {
      const seq = Number(el.closest<HTMLElement>(".msg")?.dataset.seq);
      // One line per message; anything else (a node redrawn meanwhile) goes.
      if (shown.has(seq) || !Number.isFinite(seq)) el.remove();
      else shown.set(seq, el.textContent ?? "");
    }
    const { remove, add } = seenByChanges(shown, wanted);
    for (const seq of remove) v.nodes.get(seq)?.querySelector(".seen-by")?.remove();
    for (const [seq, text] of add) v.nodes.get(seq)?.append(h("p", { class: "seen-by", text }));
  }
}
