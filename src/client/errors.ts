/**
 * Every failure of a REST call (and every refusal of a message sent over a socket) is a ChatApiError.
 * `statusCode` is the HTTP status (0 when no response arrived: network down, timeout, aborted). A call on a socket
 * that is closed (by the app, or for good by the server) is 0 too, with `code: "closed"`: neither a network error nor
 * retryable, since the same call on the same socket fails again (open a new socket, or `connect()` again).
 */
export class ChatApiError extends Error {
  override readonly name = "ChatApiError";
  /** HTTP status; 0 when the request never got an answer. */
  readonly statusCode: number;
  /** The server's request id (`X-Request-Id`), for support and logs. */
  readonly requestId: string | undefined;
  /** The reason phrase of the status ("Not Found"), or "Network Error" (or "Socket Closed"). */
  readonly error: string;
  /** Validation messages when the server sent several. */
  readonly details: readonly string[];
  /** Seconds the server asked to wait (429, 503). */
  readonly retryAfter: number | undefined;
  /**
   * A socket error code when the error came from a frame (`conflict`, `bad_request`, ...), the same code for a REST
   * refusal of that status (and `unauthorized` for 401, `too_large` for 413), or the SDK's own: `timeout`
   * (a REST call, a socket request or `next()` waited its time out), `network` (a REST call got no answer),
   * `disconnected`, `closed`, `aborted`, `gave_up`, `token`, `invalid_response`, `too_large`.
   */
  readonly code: string | undefined;

  constructor(init: {
    statusCode: number;
    message: string;
    requestId?: string;
    error?: string;
    details?: readonly string[];
    retryAfter?: number;
    code?: string;
    cause?: unknown;
  }) {
    super(init.message, init.cause === undefined ? undefined : { cause: init.cause });
    this.statusCode = init.statusCode;
    this.requestId = init.requestId;
    this.error = init.error ?? (init.code === "closed" ? "Socket Closed" : init.statusCode === 0 ? "Network Error" : "Error");
    this.details = init.details ?? [];
    this.retryAfter = init.retryAfter;
    this.code = init.code;
  }

  /**
   * No answer from the server (offline, DNS, reset, timeout). Safe to retry idempotent calls. Not a call that ended on
   * this side: a socket that is closed, or a call the caller aborted (retried with the same signal, it fails at once).
   */
  get isNetworkError(): boolean {
    return this.statusCode === 0 && !this.isSocketClosed && this.code !== "aborted";
  }

  /** Asked of a socket that is closed (code `closed`): nothing was sent, and asking it again fails the same way. */
  get isSocketClosed(): boolean {
    return this.code === "closed";
  }

  /** The server refused the request itself; retrying the same request will not help. */
  get isClientError(): boolean {
    return this.statusCode >= 400 && this.statusCode < 500 && this.statusCode !== 429;
  }

  /**
   * Worth retrying later: no answer, rate limited, or a dependency down. Not a socket that is closed, nor an aborted
   * call: both failed at once with status 0, and an app retrying what is retryable looped for ever.
   */
  get isRetryable(): boolean {
    return this.isNetworkError || this.statusCode === 429 || this.statusCode === 503 || this.statusCode === 502 || this.statusCode === 504;
  }
}

/** Socket error codes (contract §6) mapped to the HTTP status they stand for. */
const STATUS_BY_CODE: Record<string, number> = {
  bad_request: 400,
  invalid_frame: 400,
  invalid_json: 400,
  unknown_type: 400,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  rate_limited: 429,
  unavailable: 503,
  internal: 500,
};

export function errorFromFrame(data: { code?: unknown; message?: unknown } | undefined): ChatApiError {
  const code = typeof data?.code === "string" ? data.code : "internal";
  const message = typeof data?.message === "string" ? data.message : "Socket error";
  return new ChatApiError({ statusCode: STATUS_BY_CODE[code] ?? 500, message, code, error: code });
}

/** The code of a REST refusal, as the socket names the same refusal (the server's errorCodeFor), and 401 and 413. */
const CODE_BY_STATUS: Record<number, string> = {
  400: "bad_request",
  401: "unauthorized",
  403: "forbidden",
  404: "not_found",
  409: "conflict",
  413: "too_large",
  429: "rate_limited",
  500: "internal",
  503: "unavailable",
};

/**
 * A REST refusal's code. REST errors had none while the socket's refusals did: an app with one handler for both (a
 * send over REST or over the socket refused as `conflict`) saw `undefined` for the REST one.
 */
function codeForStatus(status: number): string | undefined {
  return CODE_BY_STATUS[status] ?? (status >= 500 ? "unavailable" : status >= 400 ? "bad_request" : undefined);
}

/** Builds the error from an HTTP error response body of the contract's shape (or whatever came back). */
export function errorFromResponse(status: number, statusText: string, body: unknown, headers: { get(name: string): string | null }): ChatApiError {
  const b = (typeof body === "object" && body !== null ? body : {}) as { message?: unknown; error?: unknown; requestId?: unknown };
  const details = Array.isArray(b.message) ? b.message.filter((m): m is string => typeof m === "string") : [];
  const message =
    typeof b.message === "string" ? b.message : details.length > 0 ? details.join("; ") : statusText || `HTTP ${status}`;
  return new ChatApiError({
    statusCode: status,
    message,
    details,
    error: typeof b.error === "string" ? b.error : statusText || undefined,
    requestId: (typeof b.requestId === "string" ? b.requestId : undefined) ?? headers.get("x-request-id") ?? undefined,
    retryAfter: retryAfterSeconds(headers.get("retry-after"), headers.get("date")),
    code: codeForStatus(status),
  });
}

/** An HTTP-date as RFC 9110 writes it (IMF-fixdate, or the obsolete RFC 850 and asctime forms) opens with a day name. */
const HTTP_DATE = /^[A-Za-z]{3}/;

/**
 * The seconds a `Retry-After` asks for, in either of its forms (RFC 9110 §10.2.3): a number of seconds, or an
 * HTTP-date, counted from the answer's own `Date` when it has one (the server's clock, so a client clock that is off
 * does not stretch or skip the wait), else from this clock. Only the seconds were read: a date (as proxies and CDNs
 * send) was ignored, and the retry came at once. Undefined when there is nothing to wait (absent, zero, past).
 */
export function retryAfterSeconds(value: string | null | undefined, date?: string | null, now = Date.now()): number | undefined {
  const text = value?.trim() ?? "";
  if (text === "") return undefined;
  if (!HTTP_DATE.test(text)) {
    const seconds = Number(text);
    return Number.isFinite(seconds) && seconds > 0 ? seconds : undefined;
  }
  const at = Date.parse(text);
  const from = date ? Date.parse(date) : Number.NaN;
  if (!Number.isFinite(at)) return undefined;
  const seconds = Math.ceil((at - (Number.isFinite(from) ? from : now)) / 1000);
  return seconds > 0 ? seconds : undefined;
}
