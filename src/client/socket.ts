import { Backoff, type BackoffOptions } from "./backoff";
import { Emitter } from "./emitter";
import { ChatApiError, errorFromFrame } from "./errors";
import { onUpgradeRefused } from "./refusal";
import type { ChatRest } from "./rest";
import type { ConnectionState, StateChange, WebSocketConstructor, WebSocketLike } from "./types";

export interface SocketOptions {
  /** WebSocket implementation. Default: globalThis.WebSocket (browsers, Node ≥ 22). In Node 20 pass `ws`. */
  WebSocket?: WebSocketConstructor;
  /**
   * How the upgrade is authenticated. `header`: `Authorization` on the upgrade (Node; needs a WebSocket that accepts
   * headers, like `ws`). `ticket`: POST /realtime/tickets first, then `?ticket=` (browsers). Default: `header` when a
   * WebSocket option is given, else `ticket`.
   */
  auth?: "header" | "ticket";
  /** Reconnect delays. Default 500 ms doubling to 30 s, half of each delay random. */
  backoff?: BackoffOptions;
  /** Heartbeat interval (ms). Default 25 000 (contract §6). */
  heartbeatIntervalMs?: number;
  /** A socket that stays silent this long after a heartbeat is treated as dead and replaced (ms). Default 10 000. */
  heartbeatTimeoutMs?: number;
  /** An attempt that is not live within this long is abandoned and retried (ms). Default 20 000. */
  connectTimeoutMs?: number;
  /**
   * Follow the browser's online/offline events: drop the socket when the network goes away (state `offline`) and
   * reconnect as soon as it is back. Default: true where `window` has these events.
   */
  watchNetwork?: boolean;
  /** Stop retrying after this many consecutive failed attempts (state `closed`). Default: never stop. */
  maxAttempts?: number;
}

export interface Frame {
  type: string;
  // Frames are validated by the server; their data is typed by the event maps.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  data: any;
  id?: string;
}

interface PendingRequest {
  resolve: (frame: Frame) => void;
  reject: (err: Error) => void;
  reply: string;
  timer: ReturnType<typeof setTimeout>;
  /** A question safe to ask twice: its connection dropped before the reply, so it is asked on the next one. */
  askAgain?: () => void;
}

const OPEN = 1;

interface NetworkTarget {
  addEventListener(type: string, fn: () => void): void;
  removeEventListener(type: string, fn: () => void): void;
  navigator?: { onLine?: boolean };
}

function networkTarget(): NetworkTarget | undefined {
  const g = globalThis as unknown as Partial<NetworkTarget> & { window?: unknown; document?: unknown };
  if (typeof g.addEventListener !== "function" || g.window === undefined || g.document === undefined) return undefined;
  return g as NetworkTarget;
}

const ignoreError = (): void => {};

interface SpareTicket {
  ticket: string;
  expiresAtMs: number;
}

/** A spare ticket this close to its expiry could lapse on the way: a new one is fetched instead. */
const SPARE_TICKET_MARGIN_MS = 5_000;

const spareTicket = (t: { ticket: string; expiresAt: string }): SpareTicket => ({ ticket: t.ticket, expiresAtMs: Date.parse(t.expiresAt) });

/**
 * One self-healing WebSocket: connects, authenticates (header or ticket), keeps a heartbeat, and reconnects with
 * exponential backoff and jitter after any drop until closed by the app or refused for good.
 */
export abstract class RealtimeSocket<Events extends { state: StateChange; error: ChatApiError }> extends Emitter<Events> {
  private ws: WebSocketLike | undefined;
  private currentState: ConnectionState = "idle";
  private readonly backoff: Backoff;
  private readonly WebSocketImpl: WebSocketConstructor | undefined;
  protected readonly authMode: "header" | "ticket";
  private readonly heartbeatIntervalMs: number;
  private readonly heartbeatTimeoutMs: number;
  private readonly connectTimeoutMs: number;
  private readonly maxAttempts: number;
  private generation = 0;
  private everOpened = false;
  private failures = 0;
  private closedByApp = false;
  private lastFrameAt = 0;
  private upgradeStatus: number | undefined;
  /** The server asked us to wait (429/503 with Retry-After): the next delay is at least this long. */
  private retryAfterMs = 0;
  private reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  /** The ticket this attempt connects with. */
  private attemptTicket: SpareTicket | undefined;
  /**
   * A ticket whose upgrade was refused for a reason that passes (429, 5xx): the server keeps it usable until it
   * expires, so the retry uses it instead of spending the upgrade budget a 429 says is short on a new one.
   */
  private spareTicket: SpareTicket | undefined;
  /**
   * Ends the REST calls made for connecting (probe, ticket) when the socket closes for good: a retry's wait of up to
   * 10 s outlived close() and kept a Node process running.
   */
  private restCalls = new AbortController();
  private heartbeatTimer: ReturnType<typeof setInterval> | undefined;
  private heartbeatCheck: ReturnType<typeof setTimeout> | undefined;
  private connectTimer: ReturnType<typeof setTimeout> | undefined;
  private readonly requests = new Map<string, PendingRequest>();
  private counter = 0;
  private readonly network: NetworkTarget | undefined;
  private readonly onOffline = () => this.wentOffline();
  private readonly onOnline = () => this.cameOnline();

  protected constructor(
    protected readonly rest: ChatRest,
    private readonly wsBase: string,
    options: SocketOptions,
  ) {
    super();
    this.WebSocketImpl = options.WebSocket ?? (globalThis as unknown as { WebSocket?: WebSocketConstructor }).WebSocket;
    this.authMode = options.auth ?? (options.WebSocket ? "header" : "ticket");
    this.backoff = new Backoff(options.backoff);
    this.heartbeatIntervalMs = options.heartbeatIntervalMs ?? 25_000;
    this.heartbeatTimeoutMs = options.heartbeatTimeoutMs ?? 10_000;
    this.connectTimeoutMs = options.connectTimeoutMs ?? 20_000;
    this.maxAttempts = options.maxAttempts ?? Infinity;
    this.network = options.watchNetwork === false ? undefined : networkTarget();
  }

  get state(): ConnectionState {
    return this.currentState;
  }

  /** The WebSocket in use now (undefined between attempts). For diagnostics and tests. */
  get socket(): WebSocketLike | undefined {
    return this.ws;
  }

  /** Starts connecting (no-op when already started). */
  connect(): this {
    if (this.currentState !== "idle" && this.currentState !== "closed") return this;
    if (!this.WebSocketImpl) throw new Error("No WebSocket implementation: pass the `WebSocket` option (e.g. the `ws` package in Node 20)");
    this.closedByApp = false;
    if (this.restCalls.signal.aborted) this.restCalls = new AbortController();
    this.failures = 0;
    this.backoff.reset();
    this.network?.addEventListener("offline", this.onOffline);
    this.network?.addEventListener("online", this.onOnline);
    if (this.network?.navigator?.onLine === false) this.setState("offline");
    else void this.attempt();
    return this;
  }

  /** Closes for good (until connect() is called again). */
  close(reason = "closed by client"): void {
    // Called from an `error` listener while the server's refusal closes us: that close finishes with the real cause,
    // which this one pre-empted (pending sends failed as "closed by client", without send_failed).
    if (this.failing) return;
    this.closedByApp = true;
    this.restCalls.abort();
    this.network?.removeEventListener("offline", this.onOffline);
    this.network?.removeEventListener("online", this.onOnline);
    this.teardown(1000, reason);
    this.onClosed(reason);
    this.setState("closed", { reason });
  }

  /** Drops the current socket (if any) and reconnects at once, skipping the backoff wait. */
  reconnectNow(): void {
    if (this.closedByApp || this.currentState === "idle" || this.currentState === "closed") return;
    this.teardown(4000, "reconnecting");
    // A listener told of the drop (typing stopped) may have closed us: reconnecting then undid the app's close().
    if (this.closedByApp) return;
    this.backoff.reset();
    void this.attempt();
  }

  // ── For subclasses ─────────────────────────────────────────────────────────────────────────────────────

  /** Path of the upgrade, e.g. `/ws`. */
  protected abstract path(): string;
  /** Extra query parameters of the upgrade (resume position). */
  protected query(): Record<string, string> {
    return {};
  }
  /** Called before each attempt (resolve identity and the like). */
  protected async beforeConnect(): Promise<void> {}
  protected abstract onFrame(frame: Frame): void;
  /** The socket went away (any reason): the server's close code and reason when it closed it, else none. */
  protected onDisconnected(_code?: number, _reason?: string): void {}
  /** Closed for good: by the app (no error), or because the server refused us or we gave up (`error`). */
  protected onClosed(_reason: string, _error?: ChatApiError): void {}
  /** A REST call that throws a ChatApiError when connecting is pointless (unknown conversation, bad token). */
  protected abstract probe(signal: AbortSignal): Promise<void>;

  /**
   * The server accepted the socket, which goes live after more frames (a replay) under a timeout of their own: the
   * connect timeout no longer applies.
   */
  protected markAccepted(): void {
    if (this.connectTimer !== undefined) clearTimeout(this.connectTimer);
    this.connectTimer = undefined;
  }

  /** The subclass saw the frame(s) that make the socket live. */
  protected markOpen(): void {
    // The app may close from inside the listener of the frame that makes us live (ready, resumed, connected): a
    // heartbeat started after that kept the process alive and the state read `open` on a closed socket.
    if (this.closedByApp || !this.ws) return;
    this.markAccepted();
    const reconnected = this.everOpened;
    this.everOpened = true;
    this.failures = 0;
    this.backoff.reset();
    this.startHeartbeat();
    this.setState("open", { reconnected });
  }

  protected get isLive(): boolean {
    return this.currentState === "open" && this.ws?.readyState === OPEN;
  }

  /** Sends a frame on the current socket if it is open; false when it could not be sent. */
  protected sendFrame(type: string, data: unknown = {}, id?: string): boolean {
    const ws = this.ws;
    if (!ws || ws.readyState !== OPEN) return false;
    try {
      ws.send(JSON.stringify(id === undefined ? { type, data } : { type, data, id }));
      return true;
    } catch {
      return false;
    }
  }

  protected nextId(prefix = "r"): string {
    return `${prefix}${++this.counter}`;
  }

  /** The number in the id nextId() gave last: frames with an id up to it went out before now. */
  protected get lastIdNumber(): number {
    return this.counter;
  }

  /**
   * Sends a frame with an id and waits for the reply of type `reply` (or the error frame) with that id. Asked while
   * the socket is connecting (or reconnecting, or offline), it goes when the socket is open: an app that asked right
   * after creating the client was refused "Not connected". `timeoutMs` bounds the wait and the reply together.
   * `askAgain`: a question (no change on the server) whose connection drops before the reply is asked again on the
   * next one, within the same timeout; otherwise it fails with code `disconnected`.
   */
  protected request(type: string, data: unknown, reply: string, options: { timeoutMs?: number; askAgain?: boolean } = {}): Promise<Frame> {
    const timeoutMs = options.timeoutMs ?? 10_000;
    return new Promise<Frame>((resolve, reject) => {
      let offState: (() => void) | undefined;
      // Each transmission gets a fresh id: the ids' order tells what went out before what (user.ts orders presence
      // replies against pushed updates by it), and a reply to an earlier transmission is not this one's.
      let id: string | undefined;
      const settle = (err: ChatApiError) => {
        offState?.();
        offState = undefined;
        clearTimeout(timer);
        if (id !== undefined) this.requests.delete(id);
        reject(err);
      };
      const timer = setTimeout(() => {
        const waited = offState !== undefined;
        settle(new ChatApiError({ statusCode: 0, message: waited ? `Not connected within ${timeoutMs} ms` : `No ${reply} within ${timeoutMs} ms`, code: "timeout", error: "Timeout" }));
      }, timeoutMs);
      const waitForOpen = (): void => {
        if (id !== undefined) this.requests.delete(id);
        id = undefined;
        offState = this.on("state", ({ state, reason }) => {
          if (state === "closed") return settle(this.closedError(reason));
          // Open, but its socket gone already (a listener before this one dropped it): the next open is waited for.
          if (state !== "open" || !send()) return;
          offState?.();
          offState = undefined;
        });
      };
      const send = (): boolean => {
        id = this.nextId();
        this.requests.set(id, { resolve, reject, reply, timer, askAgain: options.askAgain ? waitForOpen : undefined });
        if (this.isLive && this.sendFrame(type, data, id)) return true;
        this.requests.delete(id);
        id = undefined;
        return false;
      };
      if (send()) return;
      if (this.currentState === "idle" || this.currentState === "closed") return settle(this.closedError());
      waitForOpen();
    });
  }

  /**
   * A wait for an event (`next()`) ends with the socket: closed for good (by the app or the server), it tells
   * nothing more, and an app awaiting `next("ready")` on a conversation it had been removed from waited for ever.
   * A wait for `state` goes on (a closed socket may be connected again).
   */
  protected override endOfWaits(type: keyof Events, fail: (err: Error) => void): (() => void) | undefined {
    if (type === "state") return undefined;
    if (this.currentState === "closed") {
      fail(this.closedError());
      return undefined;
    }
    return this.on("state", ({ state, reason }) => {
      if (state === "closed") fail(this.closedError(reason));
    });
  }

  /** The rejection of a call on a socket that is closed (or never started): not retryable on this socket. */
  protected closedError(reason?: string): ChatApiError {
    const what = this.currentState === "idle" ? "not connected (call connect())" : `closed${reason ? `: ${reason}` : ""}`;
    return new ChatApiError({ statusCode: 0, message: `The socket is ${what}`, code: "closed" });
  }

  /** Closes for good because the server refused us (removed from the conversation, credentials refused). */
  protected fail(error: ChatApiError): void {
    if (this.failing) return;
    this.failing = true;
    try {
      this.closeFor(error);
    } finally {
      this.failing = false;
    }
  }

  private closeFor(error: ChatApiError): void {
    this.closedByApp = true;
    this.restCalls.abort();
    this.network?.removeEventListener("offline", this.onOffline);
    this.network?.removeEventListener("online", this.onOnline);
    this.teardown(1000, error.message);
    this.emit("error", error as Events["error"]);
    this.onClosed(error.message, error);
    this.setState("closed", { reason: error.message });
  }

  /** Abandons the current socket as dead (missing replies) and reconnects. */
  protected drop(reason: string): void {
    if (!this.ws) return;
    this.teardown(4000, reason);
    this.afterDrop(1006, reason);
  }

  // ── Internals ──────────────────────────────────────────────────────────────────────────────────────────

  private setState(state: ConnectionState, extra: Partial<StateChange> = {}): void {
    const previous = this.currentState;
    if (previous === state && state !== "reconnecting") return;
    this.currentState = state;
    this.emit("state", { state, previous, attempt: this.failures, ...extra } as Events["state"]);
  }

  private async attempt(): Promise<void> {
    if (this.reconnectTimer !== undefined) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    const gen = ++this.generation;
    this.setState("connecting");
    this.upgradeStatus = undefined;
    const params = new URLSearchParams();
    let headers: Record<string, string> | undefined;
    try {
      await this.beforeConnect();
      // Closed meanwhile (also from a `connecting` listener): query() arms the replay's wait, which outlived close().
      if (gen !== this.generation || this.closedByApp) return;
      for (const [k, v] of Object.entries(this.query())) params.set(k, v);
      if (this.authMode === "ticket") {
        const spare = this.spareTicket;
        this.spareTicket = undefined;
        this.attemptTicket =
          spare && spare.expiresAtMs - Date.now() > SPARE_TICKET_MARGIN_MS ? spare : spareTicket(await this.rest.createTicket({ signal: this.restCalls.signal }));
        params.set("ticket", this.attemptTicket.ticket);
      } else {
        const token = await this.rest.token();
        if (token) headers = { authorization: `Bearer ${token}` };
      }
    } catch (err) {
      if (gen !== this.generation || this.closedByApp) return;
      const e = toApiError(err);
      if (e.isClientError) return this.fail(e);
      if (e.retryAfter !== undefined) this.retryAfterMs = e.retryAfter * 1000;
      return this.afterDrop(1006, e.message);
    }
    if (gen !== this.generation || this.closedByApp) return;
    const qs = params.toString();
    const url = `${this.wsBase}${this.path()}${qs ? `?${qs}` : ""}`;
    let ws: WebSocketLike;
    try {
      const Impl = this.WebSocketImpl!;
      ws = headers ? new Impl(url, { headers }) : new Impl(url);
    } catch (err) {
      return this.afterDrop(1006, (err as Error).message);
    }
    this.ws = ws;
    this.attached = true;
    this.lastFrameAt = Date.now();
    this.connectTimer = setTimeout(() => {
      if (gen === this.generation && this.currentState !== "open") this.drop("connect timeout");
    }, this.connectTimeoutMs);
    ws.onmessage = (event: { data: unknown }) => {
      if (gen !== this.generation) return;
      this.lastFrameAt = Date.now();
      if (typeof event.data !== "string") return;
      let frame: Frame;
      try {
        frame = JSON.parse(event.data) as Frame;
      } catch {
        return;
      }
      if (typeof frame !== "object" || frame === null || typeof frame.type !== "string") return;
      if (frame.id !== undefined) {
        const pending = this.requests.get(frame.id);
        if (pending && (frame.type === pending.reply || frame.type === "error")) {
          this.requests.delete(frame.id);
          clearTimeout(pending.timer);
          if (frame.type === "error") pending.reject(errorFromFrame(frame.data));
          else pending.resolve(frame);
          return;
        }
      }
      this.onFrame(frame);
    };
    onUpgradeRefused(ws, ({ status, retryAfter }) => {
      if (gen !== this.generation) return;
      this.upgradeStatus = status;
      if (retryAfter !== undefined) this.retryAfterMs = retryAfter * 1000;
    });
    ws.onerror = (event: { message?: unknown; error?: { message?: unknown } }) => {
      // The `ws` package names the refusal: "Unexpected server response: 404". Browsers tell nothing.
      const text = String(event?.message ?? event?.error?.message ?? "");
      const m = /Unexpected server response: (\d{3})/.exec(text);
      if (m) this.upgradeStatus = Number(m[1]);
    };
    ws.onclose = (event: { code?: number; reason?: string }) => {
      if (gen !== this.generation) return;
      this.ws = undefined;
      this.stopTimers();
      this.afterDrop(event?.code ?? 1006, event?.reason ?? "");
    };
  }

  private afterDrop(code: number, reason: string): void {
    this.ws = undefined;
    this.stopTimers();
    this.rejectRequests("connection lost");
    this.disconnected(code, reason);
    if (this.closedByApp) return;
    const status = this.upgradeStatus;
    if (this.attemptTicket && status !== undefined && (status === 429 || status >= 500)) this.spareTicket = this.attemptTicket;
    this.attemptTicket = undefined;
    if (code === 4403 || status === 403 || status === 404) {
      return this.fail(
        new ChatApiError({
          statusCode: status ?? 403,
          message: reason || (status === 404 ? "Conversation not found" : "No longer a participant"),
          code: "forbidden",
        }),
      );
    }
    if (this.network?.navigator?.onLine === false) return this.setState("offline");
    this.failures++;
    if (this.failures >= this.maxAttempts) {
      return this.fail(new ChatApiError({ statusCode: 0, message: `Gave up after ${this.failures} attempts`, code: "gave_up" }));
    }
    const unauthorized = code === 4401 || status === 401;
    // Attempts that never got live may be hopeless (a conversation we cannot see, a rejected token): ask REST why.
    if (unauthorized || this.failures % 3 === 0) {
      const gen = this.generation;
      this.probe(this.restCalls.signal).then(
        () => {
          if (gen === this.generation && !this.closedByApp) this.scheduleReconnect();
        },
        (err: unknown) => {
          if (gen !== this.generation || this.closedByApp) return;
          const e = toApiError(err);
          if (e.isClientError) return this.fail(e);
          // Longer than REST waits out itself (10 s): the server's wait, not the backoff's, comes first.
          if (e.retryAfter !== undefined) this.retryAfterMs = Math.max(this.retryAfterMs, e.retryAfter * 1000);
          this.scheduleReconnect();
        },
      );
      this.setState("reconnecting", { delayMs: undefined, reason: reason || undefined });
      return;
    }
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    if (this.reconnectTimer !== undefined) clearTimeout(this.reconnectTimer);
    const delayMs = Math.max(this.backoff.next(), this.retryAfterMs);
    this.retryAfterMs = 0;
    const gen = this.generation;
    this.setState("reconnecting", { delayMs });
    // close() from a `reconnecting` listener: a timer armed after it kept the process alive.
    if (gen !== this.generation || this.closedByApp) return;
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      if (gen === this.generation && !this.closedByApp) void this.attempt();
    }, delayMs);
  }

  private startHeartbeat(): void {
    if (this.heartbeatTimer !== undefined) clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = setInterval(() => {
      const sentAt = Date.now();
      if (!this.sendFrame("heartbeat", {}, this.nextId("hb"))) return;
      // An unanswered earlier heartbeat keeps its deadline: resetting it on every beat would never fire when the
      // interval is shorter than the timeout.
      if (this.heartbeatCheck !== undefined) return;
      this.heartbeatCheck = setTimeout(() => {
        this.heartbeatCheck = undefined;
        if (this.lastFrameAt < sentAt) this.drop("heartbeat timeout");
      }, this.heartbeatTimeoutMs);
    }, this.heartbeatIntervalMs);
  }

  private stopTimers(): void {
    if (this.heartbeatTimer !== undefined) clearInterval(this.heartbeatTimer);
    if (this.heartbeatCheck !== undefined) clearTimeout(this.heartbeatCheck);
    if (this.connectTimer !== undefined) clearTimeout(this.connectTimer);
    this.heartbeatTimer = this.heartbeatCheck = this.connectTimer = undefined;
  }

  /**
   * The connection is gone with these requests unanswered. A question is asked again on the next connection (a drop
   * failed an app's getPresence with `disconnected`, although asking again was all it could do); closing for good
   * then fails it as `closed`.
   */
  private rejectRequests(message: string): void {
    for (const [id, p] of [...this.requests]) {
      this.requests.delete(id);
      if (p.askAgain) {
        p.askAgain();
        continue;
      }
      clearTimeout(p.timer);
      p.reject(new ChatApiError({ statusCode: 0, message, code: "disconnected" }));
    }
  }

  /** Detaches the current socket (its late events are ignored) and closes it. */
  private teardown(code: number, reason: string): void {
    this.generation++;
    if (this.reconnectTimer !== undefined) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    this.stopTimers();
    const ws = this.ws;
    this.ws = undefined;
    if (ws) {
      ws.onmessage = ws.onclose = ws.onopen = null;
      // Not null: the `ws` package emits "error" when a socket still connecting is closed, and an EventEmitter with
      // no listener for it throws, which ended the whole Node process on a connect timeout or an early close.
      ws.onerror = ignoreError;
      try {
        ws.close(code, closeReason(reason));
      } catch {
        // already closed
      }
      this.rejectRequests(reason);
      this.disconnected();
    }
  }

  private attached = false;
  /** fail() is closing the socket for good (its listeners run meanwhile). */
  private failing = false;

  /** Runs onDisconnected once per socket. */
  private disconnected(code?: number, reason?: string): void {
    if (!this.attached) return;
    this.attached = false;
    this.onDisconnected(code, reason);
  }

  private wentOffline(): void {
    if (this.closedByApp || this.currentState === "idle" || this.currentState === "closed") return;
    this.teardown(4000, "offline");
    if (this.closedByApp) return;
    this.setState("offline");
  }

  private cameOnline(): void {
    if (this.closedByApp || this.currentState !== "offline") return;
    this.backoff.reset();
    void this.attempt();
  }
}

/**
 * A close reason of at most 123 UTF-8 bytes, cut between characters: WebSocket.close() throws on a longer one, and the
 * socket was then left open (a limit counted in UTF-16 units let 60 emoji through as 240 bytes).
 */
function closeReason(reason: string): string {
  const encoder = new TextEncoder();
  if (encoder.encode(reason).length <= 123) return reason;
  let out = "";
  let bytes = 0;
  for (const ch of reason) {
    const size = encoder.encode(ch).length;
    if (bytes + size > 123) break;
    out += ch;
    bytes += size;
  }
  return out;
}

export function toApiError(err: unknown): ChatApiError {
  if (err instanceof ChatApiError) return err;
  return new ChatApiError({ statusCode: 0, message: (err as Error)?.message ?? String(err), cause: err });
}
