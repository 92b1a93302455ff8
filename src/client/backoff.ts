/** Reconnect delays: exponential growth, capped, with random jitter so that many clients do not retry in step. */
export interface BackoffOptions {
  /** Delay before the first retry (ms). Default 500. */
  initialMs?: number;
  /** Upper bound of a delay (ms). Default 30 000. */
  maxMs?: number;
  /** Growth per attempt. Default 2. */
  factor?: number;
  /**
   * Share of the delay that is random, 0..1. Default 0.5: a delay lies in [base/2, base]. 1 is "full jitter"
   * ([0, base]); 0 disables jitter.
   */
  jitter?: number;
}

export const DEFAULT_BACKOFF: Required<BackoffOptions> = { initialMs: 500, maxMs: 30_000, factor: 2, jitter: 0.5 };

/** The delay before retry number `attempt` (0-based). `random` returns a number in [0, 1). */
export function backoffDelay(attempt: number, options: BackoffOptions = {}, random: () => number = Math.random): number {
  const o = { ...DEFAULT_BACKOFF, ...options };
  const jitter = Math.min(1, Math.max(0, o.jitter));
  const exp = Math.min(Math.max(0, attempt), 60);
  const base = Math.min(o.maxMs, o.initialMs * Math.pow(o.factor, exp));
  return Math.round(base * (1 - jitter) + random() * base * jitter);
}

/** Counts consecutive failures; `next()` gives the delay for the next retry, `reset()` after a success. */
export class Backoff {
  private attempt = 0;
  constructor(
    private readonly options: BackoffOptions = {},
    private readonly random: () => number = Math.random,
  ) {}

  get attempts(): number {
    return this.attempt;
  }

  next(): number {
    return backoffDelay(this.attempt++, this.options, this.random);
  }

  reset(): void {
    this.attempt = 0;
  }
}
