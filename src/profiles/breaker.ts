/**
 * Circuit breaker for the profile service. State is per isolate (module level through sharedBreaker): a failing
 * service then costs each isolate a handful of calls per cool-down instead of one per request.
 */
export type BreakerState = "closed" | "open" | "half-open";
export type FailureKind = "timeout" | "error";

export interface BreakerSettings {
  /** Consecutive failures that open the circuit. */
  failureThreshold: number;
  /** How long the circuit stays open before one probe is let through. */
  cooldownMs: number;
  /** A timeout opens at once: a hanging service is the costliest failure for callers waiting on it. */
  openOnTimeout: boolean;
}

export const DEFAULT_BREAKER_SETTINGS: BreakerSettings = { failureThreshold: 5, cooldownMs: 30_000, openOnTimeout: true };

export interface BreakerOptions extends Partial<BreakerSettings> {
  now?: () => number;
  onTransition?: (from: BreakerState, to: BreakerState) => void;
}

export class CircuitBreaker {
  private readonly settings: BreakerSettings;
  private readonly now: () => number;
  private readonly onTransition?: (from: BreakerState, to: BreakerState) => void;
  private current: BreakerState = "closed";
  private failures = 0;
  private openedAt = 0;
  private probeStartedAt: number | undefined;

  constructor(options: BreakerOptions = {}) {
    this.settings = {
      failureThreshold: Math.max(1, options.failureThreshold ?? DEFAULT_BREAKER_SETTINGS.failureThreshold),
      cooldownMs: Math.max(0, options.cooldownMs ?? DEFAULT_BREAKER_SETTINGS.cooldownMs),
      openOnTimeout: options.openOnTimeout ?? DEFAULT_BREAKER_SETTINGS.openOnTimeout,
    };
    this.now = options.now ?? Date.now;
    this.onTransition = options.onTransition;
  }

  get state(): BreakerState {
    return this.current;
  }

  get consecutiveFailures(): number {
    return this.failures;
  }

  /** Whether a call may go out now. In half-open only one caller (the probe) gets true. */
  tryAcquire(): boolean {
    const now = this.now();
    if (this.current === "closed") return true;
    if (this.current === "open") {
      if (now - this.openedAt < this.settings.cooldownMs) return false;
      this.move("half-open");
      this.probeStartedAt = now;
      return true;
    }
    // A probe whose caller never reported (a bug, a cancelled request) must not hold the circuit half-open forever.
    if (this.probeStartedAt !== undefined && now - this.probeStartedAt < Math.max(this.settings.cooldownMs, 1)) return false;
    this.probeStartedAt = now;
    return true;
  }

  recordSuccess(): void {
    this.failures = 0;
    this.probeStartedAt = undefined;
    if (this.current !== "closed") this.move("closed");
  }

  recordFailure(kind: FailureKind): void {
    this.failures++;
    this.probeStartedAt = undefined;
    const trip =
      this.current === "half-open" ||
      this.failures >= this.settings.failureThreshold ||
      (kind === "timeout" && this.settings.openOnTimeout);
    if (trip) {
      this.openedAt = this.now();
      if (this.current !== "open") this.move("open");
    }
  }

  private move(to: BreakerState): void {
    const from = this.current;
    this.current = to;
    this.onTransition?.(from, to);
  }
}

const shared = new Map<string, CircuitBreaker>();

/** The isolate's breaker for one service and settings; later callers get the same instance. */
export function sharedBreaker(serviceUrl: string, settings: Partial<BreakerSettings> = {}, options: Omit<BreakerOptions, keyof BreakerSettings> = {}): CircuitBreaker {
  const s = { ...DEFAULT_BREAKER_SETTINGS, ...settings };
  const key = `${serviceUrl}#${s.failureThreshold}/${s.cooldownMs}/${s.openOnTimeout}`;
  let breaker = shared.get(key);
  if (!breaker) {
    breaker = new CircuitBreaker({ ...s, ...options });
    shared.set(key, breaker);
  }
  return breaker;
}
