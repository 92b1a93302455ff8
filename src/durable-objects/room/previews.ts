import { errorReason } from "../../lib/errors";
import type { Logger } from "../../lib/log";
import type { Conversation } from "../../protocol/resources";
import type { StoredMessage } from "../../db/queries/messages";
import type { PendingRow } from "./outbox";

/** The last message as an edit or delete left it: the version the lists' preview waits for. */
interface Due {
  seq: number;
  content: string;
  editedAt: string | null;
  deletedAt: string | null;
}

const KEY = "previewDue";

export interface PreviewDeps {
  kv: DurableObjectStorage["kv"];
  lastSeq: () => number;
  /** The conversation as every member sees it, read from Postgres (undefined: gone). */
  view: () => Promise<Conversation | undefined>;
  tell: (userIds: string[], conversation: Conversation) => Promise<void>;
  keepAlive: (work: Promise<unknown>) => void;
  log: Logger;
}

/**
 * Conversation lists preview the last message; after an edit or delete of it the members' sessions get
 * `conversation_updated`, once the change is in Postgres (the view is read there: read before the commit, it had the
 * old text). The Worker checked Postgres right after its answer, and a change answered `pending` (its commit took
 * longer than the write-through deadline) was never told: lists kept the old or deleted text until a reload. The room
 * sees the commit, so it tells; a change that changed nothing (the same text, a second delete) is never noted.
 * Kept in storage too: a room evicted while Postgres is down still tells once the alarm's flush lands.
 */
export class PreviewNotices {
  // undefined: not read from storage yet in this instance (one read per wake, at the first commit).
  private due: Due | null | undefined;

  constructor(private readonly deps: PreviewDeps) {}

  /** An edit or delete of `m` is stored: if it is the last message, its commit tells the lists. */
  changed(m: StoredMessage): void {
    if (m.seq !== this.deps.lastSeq()) return;
    this.due = { seq: m.seq, content: m.content, editedAt: m.editedAt, deletedAt: m.deletedAt };
    this.deps.kv.put(KEY, this.due);
  }

  /** After each commit: a memory check, unless the change waited for is among the rows. */
  committed(rows: readonly PendingRow[]): void {
    if (this.due === undefined) this.due = this.deps.kv.get<Due>(KEY) ?? null;
    const due = this.due;
    if (due === null) return;
    // An earlier version of the row (a flight already out when the edit came) is not the change.
    const landed = rows.some(
      ({ message: m }) => m.seq === due.seq && m.content === due.content && m.editedAt === due.editedAt && m.deletedAt === due.deletedAt,
    );
    if (!landed) return;
    this.due = null;
    this.deps.kv.delete(KEY);
    // A newer message is the preview now: its own notification shows it.
    if (due.seq !== this.deps.lastSeq()) return;
    this.deps.keepAlive(this.tell());
  }

  private async tell(): Promise<void> {
    try {
      const view = await this.deps.view();
      if (view) await this.deps.tell(view.participants.map((p) => p.userId), view);
    } catch (err) {
      this.deps.log.warn("preview update failed", { error: errorReason(err).slice(0, 200) });
    }
  }
}
