/**
 * Reads of one shared copy (a room's member list) that overlap can finish in any order, and one started before a
 * change, landing after one started after it, would put the old state back. Each read takes a ticket as it starts;
 * a read older than the newest one adopted must not be adopted.
 */
export class ReadOrder {
  private started = 0;
  private adopted = 0;

  begin(): number {
    return ++this.started;
  }

  /** The newest ticket given: every read holding it or an older one began by now. */
  latest(): number {
    return this.started;
  }

  /** Whether the read holding `ticket` may be adopted; if it may, it is from now on the newest adopted. */
  adopt(ticket: number): boolean {
    if (ticket < this.adopted) return false;
    this.adopted = ticket;
    return true;
  }
}
