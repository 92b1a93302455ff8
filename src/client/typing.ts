/** Timers and clock, injectable for tests. */
export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
};

export interface TypingOptions {
  /** start_typing is sent at most this often while typing continues (ms). Default 2000 (contract §6). */
  refreshMs?: number;
  /** stop_typing after this long without a keystroke (ms). Default 3000 (under the server's 6 s lease). */
  idleMs?: number;
}

/**
 * Turns keystrokes into protocol frames: the first keystroke sends start_typing, later ones refresh it at most every
 * `refreshMs`, and `idleMs` without a keystroke sends stop_typing.
 */
export class TypingThrottle {
  private typing = false;
  private lastStart = -Infinity;
  private idleTimer: unknown;
  private readonly refreshMs: number;
  private readonly idleMs: number;

  constructor(
    private readonly send: (type: "start_typing" | "stop_typing") => void,
    options: TypingOptions = {},
    private readonly clock: Clock = systemClock,
  ) {
    this.refreshMs = options.refreshMs ?? 2000;
    this.idleMs = options.idleMs ?? 3000;
  }

  get isTyping(): boolean {
    return this.typing;
  }

  /** Call on every keystroke (input event). */
  keystroke(): void {
    const now = this.clock.now();
    if (!this.typing || now - this.lastStart >= this.refreshMs) {
      this.typing = true;
      this.lastStart = now;
      this.send("start_typing");
    }
    if (this.idleTimer !== undefined) this.clock.clearTimeout(this.idleTimer);
    this.idleTimer = this.clock.setTimeout(() => {
      this.idleTimer = undefined;
      this.stop();
    }, this.idleMs);
  }

  /** Stops now (input cleared, focus lost). Sends stop_typing only when a start was sent. */
  stop(): void {
    this.clearTimer();
    if (!this.typing) return;
    this.typing = false;
    this.lastStart = -Infinity;
    this.send("stop_typing");
  }

  /** Forgets the typing state without a frame: the message was sent (the server ends typing itself) or the socket dropped. */
  reset(): void {
    this.clearTimer();
    this.typing = false;
    this.lastStart = -Infinity;
  }

  private clearTimer(): void {
    if (this.idleTimer !== undefined) this.clock.clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
  }
}
