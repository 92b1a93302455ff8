/** Milliseconds from `now` to the next local midnight (a day of 23 or 25 hours at a clock change included). */
export function untilMidnight(now: Date): number {
  return new Date(now.getFullYear(), now.getMonth(), now.getDate() + 1).getTime() - now.getTime();
}

/**
 * Calls back when the local day changes, from one timer set to the next midnight. Times drawn as "today's" (a bubble's
 * time of day, the list's time) were never redrawn: in a tab left open overnight, yesterday's messages showed a time
 * with no date.
 */
export class DayChange {
  private timer: ReturnType<typeof setTimeout> | undefined;
  private day = new Date().toDateString();

  constructor(private readonly onDay: () => void) {}

  start(): void {
    this.day = new Date().toDateString();
    this.schedule();
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  /**
   * Looks again now: also called when the page comes back into view, since a computer asleep over midnight runs its
   * timer late. A timer that fired early (before the day changed) just sets the next one.
   */
  check(): void {
    if (this.timer === undefined) return;
    const today = new Date().toDateString();
    if (today !== this.day) {
      this.day = today;
      this.onDay();
    }
    this.schedule();
  }

  private schedule(): void {
    clearTimeout(this.timer);
    // A moment past midnight: a timer may fire a few milliseconds early.
    this.timer = setTimeout(() => this.check(), untilMidnight(new Date()) + 50);
  }
}
