/** Errors that map to the contract's single error shape (contract §1). */
import { createLogger, type Logger } from "./log";

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

/** The SQLSTATE of a Postgres error, through drizzle's "Failed query" wrapper (its cause). */
export function sqlState(err: unknown): string | undefined {
  let e: unknown = err;
  for (let depth = 0; depth < 4 && e && typeof e === "object"; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && /^[0-9A-Z]{5}$/.test(code)) return code;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

/**
 * What went wrong, for a log line or a job record: drizzle's message is "Failed query: <statement> params: …", and
 * Postgres's reason is its cause; cut to a few hundred characters, the reason was cut off behind a long statement.
 */
export function errorReason(err: unknown): string {
  const cause = (err as { cause?: unknown } | null)?.cause;
  const own = String((err as { message?: unknown } | null)?.message ?? err);
  const reason = (cause as { message?: unknown } | null)?.message;
  return typeof reason === "string" && reason && own.startsWith("Failed query") ? reason : own;
}

function messages(err: unknown): string {
  const parts: string[] = [];
  let e: unknown = err;
  for (let depth = 0; depth < 4 && e && typeof e === "object"; depth++) {
    parts.push(String((e as { message?: unknown }).message ?? ""));
    e = (e as { cause?: unknown }).cause;
  }
  return parts.join(" | ");
}

export const MIGRATIONS_PENDING_MESSAGE =
  "The database has not applied this version's migrations (a table, column or function it needs is missing): run `npm run migrate`";

/**
 * A schema older than the code (a migration skipped or not yet applied): undefined_table, undefined_column, or a
 * missing function (42883 also covers operator mismatches, a code bug, hence the message check). Every route touching
 * it answered 500 "Internal server error" while /health/detailed already said migrations_pending.
 */
export function migrationsPending(err: unknown): HttpError | undefined {
  const code = sqlState(err);
  const missing = code === "42P01" || code === "42703" || (code === "42883" && /function .* does not exist/i.test(messages(err)));
  return missing ? new HttpError(503, MIGRATIONS_PENDING_MESSAGE, { "Retry-After": "30" }) : undefined;
}

// Once per isolate and missing object: every request failed the same way and buried the one line that says the fix.
const reportedSchemaGaps = new Set<string>();

export function reportMigrationsPending(err: unknown, log: Logger = createLogger()): void {
  const detail = messages(err).match(/(relation|column|function) "?[^"|]+"? (of relation "[^"]+" )?does not exist/i)?.[0] ?? sqlState(err) ?? "";
  if (reportedSchemaGaps.has(detail) || reportedSchemaGaps.size >= 32) return;
  reportedSchemaGaps.add(detail);
  log.error("database schema is behind this code: run `npm run migrate`", { sqlstate: sqlState(err), missing: detail.slice(0, 200) });
}

/** The 503 for a failed database step: a missing migration names its fix (logged once), anything else is generic. */
export function databaseUnavailable(err: unknown, log: Logger): HttpError {
  const pending = migrationsPending(err);
  if (!pending) return unavailable("Database unavailable");
  reportMigrationsPending(err, log);
  return pending;
}

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
    // Thrown across RPC, a Postgres error loses its SQLSTATE and reached the Worker as a bare 500.
    const pending = migrationsPending(err);
    if (!pending) throw err;
    reportMigrationsPending(err);
    return { ok: false, status: pending.status, detail: pending.detail, headers: pending.headers };
  }
}

export function unwrapRpc<T>(result: RpcResult<T>): T {
  if (result.ok) return result.value;
  throw new HttpError(result.status, result.detail, result.headers ?? {});
}
