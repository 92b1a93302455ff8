/**
 * Whether someone is at the page: it is visible and was used (a key, the pointer, the wheel, a touch) within the
 * idle time. A visible tab alone was taken for a reader: a desk left with the chat open marked every arriving
 * message read, told the sender so, and kept its user "online" (each read counts as activity on the server).
 */
const INPUT_EVENTS = ["keydown", "pointerdown", "pointermove", "wheel", "touchstart", "focus"] as const;

/** Two minutes without input. `localStorage["edgechat.idleAfterMs"]` overrides it (the browser tests use seconds). */
const DEFAULT_IDLE_AFTER_MS = 120_000;

function idleAfterMs(): number {
  try {
    const set = Number(localStorage.getItem("edgechat.idleAfterMs"));
    return Number.isFinite(set) && set > 0 ? set : DEFAULT_IDLE_AFTER_MS;
  } catch {
    return DEFAULT_IDLE_AFTER_MS;
  }
}

export class Attention {
  private lastInput = Date.now();
  private present: boolean;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private readonly listeners = new Set<(present: boolean) => void>();
  private readonly idleAfter = idleAfterMs();
  private readonly onInput = () => {
    this.lastInput = Date.now();
    this.update();
  };
  private readonly onVisibility = () => this.update();

  constructor() {
    this.present = this.compute();
  }

  start(): void {
    for (const type of INPUT_EVENTS) window.addEventListener(type, this.onInput, { passive: true, capture: true });
    document.addEventListener("visibilitychange", this.onVisibility);
    this.schedule();
  }

  stop(): void {
    for (const type of INPUT_EVENTS) window.removeEventListener(type, this.onInput, { capture: true });
    document.removeEventListener("visibilitychange", this.onVisibility);
    clearTimeout(this.timer);
    this.listeners.clear();
  }

  isPresent(): boolean {
    return this.present;
  }

  /** Called on every change between present and absent; returns the unsubscribe. */
  onChange(listener: (present: boolean) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private compute(now = Date.now()): boolean {
    return document.visibilityState === "visible" && now - this.lastInput < this.idleAfter;
  }

  private update(): void {
    const present = this.compute();
    if (present && this.timer === undefined) this.schedule();
    if (present === this.present) return;
    this.present = present;
    for (const listener of [...this.listeners]) listener(present);
  }

  /** One timer at the moment the page would turn idle, not one per input event. */
  private schedule(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (document.visibilityState !== "visible") return;
    const due = this.lastInput + this.idleAfter - Date.now();
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (Date.now() - this.lastInput < this.idleAfter) this.schedule();
      else this.update();
    }, Math.max(due, 50));
  }
}
