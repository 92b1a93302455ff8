import { z } from "@hono/zod-openapi";
import { LIMITS } from "../protocol/resources";

/**
 * A decimal number as a query value: digits, an optional fraction and exponent (`1e9` is a client's way to say "all").
 * Not what `Number` also takes: spaces, `0x10`, `Infinity`, which the document's `integer` does not describe.
 */
const DECIMAL = /^\d+(?:\.\d+)?(?:e\+?\d+)?$/i;

/** `limit`: default when absent, clamped to the maximum (contract §1), 400 when not a positive decimal number. */
export const limitParam = (fallback: number) =>
  z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined || v === "") return fallback;
      // A literal too large for a double (1e400) is Infinity: larger than the maximum, so clamped like 1e300.
      const n = DECIMAL.test(v) ? Number(v) : NaN;
      if (Number.isNaN(n) || n < 1) {
        ctx.addIssue({ code: "custom", message: "must be a positive number" });
        return z.NEVER;
      }
      return Math.min(LIMITS.pageMax, Math.floor(n));
    })
    // No `maximum`: larger values are clamped, not refused. The minimum is refused (a 400), so the document says so.
    .openapi({ type: "integer", minimum: 1, description: `default ${fallback}, maximum ${LIMITS.pageMax} (larger values are clamped)` });

/** A non-negative integer query value (seq cursors, page numbers). */
export const intParam = (min = 0) =>
  z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined || v === "") return undefined;
      if (!/^\d{1,15}$/.test(v) || Number(v) < min) {
        ctx.addIssue({ code: "custom", message: `must be an integer ≥ ${min}` });
        return z.NEVER;
      }
      return Number(v);
    })
    .openapi({ type: "integer", minimum: min });

/** Path ids: anything that is not a UUID cannot name a visible resource, so it is a 404, not a 400. */
// Lower-cased: ids name Durable Objects, and Postgres prints them in lower case (see uuidField).
export const uuidPath = (what: string) => z.string().toLowerCase().openapi({ format: "uuid", description: `${what} id` });

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
export const isUuidParam = (v: string) => UUID_RE.test(v);

/** Opaque keyset cursors: base64url of JSON. */
export function encodeCursor(value: unknown): string {
  return btoa(JSON.stringify(value)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

export function decodeCursor<T>(cursor: string, schema: z.ZodType<T>): T | undefined {
  try {
    const json = atob(cursor.replace(/-/g, "+").replace(/_/g, "/"));
    const parsed = schema.safeParse(JSON.parse(json));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}
