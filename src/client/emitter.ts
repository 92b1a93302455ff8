import { ChatApiError } from "./errors";

/** A small typed event emitter (no Node `events` dependency, so it runs in browsers and workers alike). */
export type Listener<T> = (payload: T) => void;

/** A once() wrapper remembers what it wraps, so off() with the app's own function finds it. */
type Wrapped = Listener<never> & { original?: Listener<never> };

export class Emitter<Events extends object> {
  private readonly listeners = new Map<keyof Events, Set<Wrapped>>();

  /** Subscribes; returns the function that unsubscribes. */
  on<K extends keyof Events>(type: K, listener: Listener<Events[K]>): () => void {
    let set = this.listeners.get(type);
    if (!set) this.listeners.set(type, (set = new Set()));
    set.add(listener as Listener<never>);
    return () => this.off(type, listener);
  }

  off<K extends keyof Events>(type: K, listener: Listener<Events[K]>): void {
    const set = this.listeners.get(type);
    if (!set) return;
    const fn = listener as Listener<never>;
    if (set.delete(fn)) return;
    for (const l of set) {
      if (l.original !== fn) continue;
      set.delete(l);
      return;
    }
  }

  once<K extends keyof Events>(type: K, listener: Listener<Events[K]>): () => void {
    const wrapper: Wrapped = ((payload: Events[K]) => {
      off();
      listener(payload);
    }) as Wrapped;
    wrapper.original = listener as Listener<never>;
    const off = this.on(type, wrapper as Listener<Events[K]>);
    return off;
  }

  /**
   * The next event of this type that matches, as a promise. Rejects after timeoutMs when given (a ChatApiError of
   * code `timeout`), with what match throws, or when no such event can come any more (a socket closed for good:
   * code `closed`).
   */
  next<K extends keyof Events>(type: K, match: (payload: Events[K]) => boolean = () => true, timeoutMs?: number): Promise<Events[K]> {
    return new Promise((resolve, reject) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      let unwatch: (() => void) | undefined;
      let done = false;
      const settle = (): boolean => {
        if (done) return false;
        done = true;
        off();
        unwatch?.();
        if (timer !== undefined) clearTimeout(timer);
        return true;
      };
      const off = this.on(type, (payload) => {
        let matched: boolean;
        try {
          matched = match(payload);
        } catch (err) {
          // Swallowed by emit, the promise waited for ever (or until its timeout).
          if (settle()) reject(err);
          return;
        }
        if (matched && settle()) resolve(payload);
      });
      // A socket closed for good sends nothing more: an app awaiting an event without a timeout waited for ever.
      unwatch = this.endOfWaits(type, (err) => {
        if (settle()) reject(err);
      });
      if (done) return unwatch?.();
      if (timeoutMs !== undefined) {
        timer = setTimeout(() => {
          // The SDK's error with the code its other timeouts have: a plain Error gave an app nothing to branch on
          // (`code`, `isRetryable`) and failed the `instanceof ChatApiError` check that every other failure passes.
          if (settle()) reject(new ChatApiError({ statusCode: 0, message: `timed out after ${timeoutMs} ms waiting for "${String(type)}"`, code: "timeout", error: "Timeout" }));
        }, timeoutMs);
      }
    });
  }

  /**
   * Where no event of `type` can come any more (a socket closed for good), calls `fail`, at once or when that
   * happens, and returns what stops watching. Nothing by default.
   */
  protected endOfWaits(_type: keyof Events, _fail: (err: Error) => void): (() => void) | undefined {
    return undefined;
  }

  protected emit<K extends keyof Events>(type: K, payload: Events[K]): void {
    const set = this.listeners.get(type);
    if (!set) return;
    for (const listener of [...set]) {
      // Removed by an earlier listener of this event (a view it tore down): not called, as DOM events do.
      if (!set.has(listener)) continue;
      try {
        (listener as Listener<Events[K]>)(payload);
      } catch (err) {
        // A failing listener must not break the connection's own bookkeeping.
        console.error(`chat client: "${String(type)}" listener threw`, err);
      }
    }
  }

  protected removeAllListeners(): void {
    this.listeners.clear();
  }
}
