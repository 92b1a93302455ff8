/** What the list's clean-up needs of a conversation: its id and its last activity (a server time). */
export interface Listed {
  id: string;
  lastActivity: string;
}

/** A reload of the list's first page, from the moment it was asked for until its answer is applied. */
export interface ListReload {
  /** The newest server time the app had seen when it asked. */
  readonly asked: string;
  /** Conversations pushed to the app (created, fetched for a notification) while the reload was under way. */
  readonly arrived: ReadonlySet<string>;
  /** Call once the answer has been applied (or failed). */
  end(): void;
}

/**
 * Reloads of the list under way, and what arrived during each. A conversation can reach the app while the reload is
 * asked for (an add to an old group: its activity is older than anything seen), and the answer, read before the user
 * was in it, does not list it: judged by its activity alone it was dropped until the next reload.
 */
export class ListReloads {
  private readonly running = new Set<Set<string>>();

  begin(asked: string): ListReload {
    const arrived = new Set<string>();
    this.running.add(arrived);
    return { asked, arrived, end: () => void this.running.delete(arrived) };
  }

  /** A conversation the server just told the app about: the user is in it now, whatever an older page says. */
  arrive(id: string): void {
    for (const arrived of this.running) arrived.add(id);
  }

  /** Removed meanwhile (conversation_removed): an earlier arrival no longer vouches for it. */
  remove(id: string): void {
    for (const arrived of this.running) arrived.delete(id);
  }
}

/**
 * The held conversations a reloaded first page says to drop. A removal while offline sent no conversation_removed, so
 * what the server no longer lists goes, except: one that arrived or moved (activity newer than `asked`) while the
 * reload was under way, and, when there are more pages, one older than this page's oldest (it would not be on it).
 * Server times only, never the browser's clock: it may be hours off.
 */
export function toDrop(held: Iterable<Listed>, page: { conversations: readonly Listed[]; nextCursor: string | null }, reload: Pick<ListReload, "asked" | "arrived">): string[] {
  const listed = new Set(page.conversations.map((c) => c.id));
  const oldest = page.conversations.at(-1)?.lastActivity ?? "";
  const drop: string[] = [];
  for (const c of held) {
    if (listed.has(c.id) || reload.arrived.has(c.id) || c.lastActivity > reload.asked) continue;
    if (page.nextCursor !== null && c.lastActivity < oldest) continue;
    drop.push(c.id);
  }
  return drop;
}
