import { retryAfterSeconds } from "./errors";
import type { WebSocketLike } from "./types";

/** An upgrade the server answered with an HTTP status instead of 101. */
export interface UpgradeRefusal {
  status: number;
  /** Seconds from `Retry-After` (429, 503), when given. */
  retryAfter?: number;
}

interface UpgradeResponse {
  statusCode?: number;
  headers?: Record<string, string | string[] | undefined>;
}

interface EventEmitterLike {
  on(event: string, listener: (...args: unknown[]) => void): unknown;
}

/**
 * Hears the status and `Retry-After` of a refused upgrade where the implementation tells them: the `ws` package emits
 * `unexpected-response` with the response. Browsers tell nothing (their sockets have no `on`), and neither do the
 * error messages of `ws`, which name only the status: a 503 that asked for seconds was retried within milliseconds.
 * A listener takes over the refusal from `ws` (it no longer aborts by itself), so the socket is closed here; `ws` then
 * reports the close as usual.
 */
export function onUpgradeRefused(ws: WebSocketLike, listener: (refusal: UpgradeRefusal) => void): void {
  const emitter = ws as unknown as Partial<EventEmitterLike>;
  if (typeof emitter.on !== "function") return;
  emitter.on("unexpected-response", (_req: unknown, res: unknown) => {
    const r = (res ?? {}) as UpgradeResponse;
    const header = (name: string) => {
      const value = r.headers?.[name];
      return Array.isArray(value) ? value[0] : value;
    };
    const seconds = retryAfterSeconds(header("retry-after"), header("date"));
    listener({ status: r.statusCode ?? 0, ...(seconds !== undefined ? { retryAfter: seconds } : {}) });
    try {
      ws.close();
    } catch {
      // already closing
    }
  });
}
