/** Errors that map to the contract's single error shape (contract §1). */

const REASONS: Record<number, string> = {
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  409: "Conflict",
  413: "Payload Too Large",
  415: "Unsupported Media Type",
  422: "Unprocessable Entity",
  // A socket route called without the upgrade: the body said "Error" where every other status names its reason.
  426: "Upgrade Required",
  429: "Too Many Requests",
  500: "Internal Server Error",
  503: "Service Unavailable",
};

export function reasonPhrase(status: number): string {
  return REASONS[status] ?? "Error";
}

export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly detail: string | string[],
    readonly headers: Record<string, string> = {},
  ) {
    super(Array.isArray(detail) ? detail.join("; ") : detail);
    this.name = "HttpError";
  }
}

export const badRequest = (detail: string | string[]) => new HttpError(400, detail);
export const notFound = (what: string) => new HttpError(404, `${what} not found`);
export const forbidden = (detail: string) => new HttpError(403, detail);
export const conflict = (detail: string) => new HttpError(409, detail);
export const unavailable = (detail: string, retryAfterSeconds = 5) =>
  new HttpError(503, detail, { "Retry-After": String(retryAfterSeconds) });
export const tooManyRequests = (retryAfterSeconds: number) =>
  new HttpError(429, "Too many requests", { "Retry-After": String(Math.max(1, Math.ceil(retryAfterSeconds))) });

export interface ErrorBody {
  statusCode: number;
  error: string;
  message: string | string[];
  requestId: string;
}

export function errorBody(status: number, message: string | string[], requestId: string): ErrorBody {
  return { statusCode: status, error: reasonPhrase(status), message, requestId };
}

/**
 * Durable Object RPC answers carry expected failures as values: a thrown error would lose its class across the
 * boundary and be logged as an uncaught exception by the runtime.
 */
export type RpcResult<T> = { ok: true; value: T } | { ok: false; status: number; detail: string | string[]; headers?: Record<string, string> };

export async function asRpcResult<T>(work: () => Promise<T>): Promise<RpcResult<T>> {
  try {
    return { ok: true, value: await work() };
  } catch (err) {
    if (err instanceof HttpError) return { ok: false, status: err.status, detail: err.detail, headers: err.headers };
    throw err;
  }
}

export function unwrapRpc<T>(result: RpcResult<T>): T {
  if (result.ok) return result.value;
  throw new HttpError(result.status, result.detail, result.headers ?? {});
}
