/** Exponential backoff with full jitter, capped: attempt 0 → up to base, then doubling to cap. */
export function backoffMs(attempt: number, baseMs = 500, capMs = 30_000, random: () => number = Math.random): number {
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.min(attempt, 20));
  return Math.max(baseMs / 2, Math.round(ceiling * random()));
}
