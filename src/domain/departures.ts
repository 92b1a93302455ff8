/**
 * Removals a room acted on before re-reading its member list from Postgres. A read of the list that was already on
 * its way when the member left still shows them: adopted after the room had dropped them, it put them back (their
 * sockets reopened, their sends accepted) until the next read. A membership that began after the removal (a re-add)
 * is not the one that ended, and stands.
 */
export class Departures {
  private readonly recent = new Map<string, { leftAt: number; notedAt: number }>();

  /** `keepMs` outlasts any read of the list (the room gives up on one after 8 s): older notes can match nothing. */
  constructor(private readonly keepMs = 30_000) {}

  note(userId: string, leftAt: number, now: number): void {
    for (const [id, d] of this.recent) if (now - d.notedAt >= this.keepMs) this.recent.delete(id);
    const known = this.recent.get(userId);
    if (!known || known.leftAt < leftAt) this.recent.set(userId, { leftAt, notedAt: now });
  }

  /** Whether a listed membership of `userId`, begun at `joinedAt`, is one a noted removal ended. */
  ended(userId: string, joinedAt: number, now: number): boolean {
    const d = this.recent.get(userId);
    return d !== undefined && now - d.notedAt < this.keepMs && joinedAt <= d.leftAt;
  }
}
