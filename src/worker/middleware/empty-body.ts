import { createMiddleware } from "hono/factory";
import { HttpError } from "../../lib/errors";
import type { AppEnv } from "../env";

const JSON_TYPE = /^application\/([\w.-]+\+)?json\s*(;|$)/i;

/**
 * A JSON Content-Type with no body is no body. Many HTTP clients set the header on every request; the validator
 * then parsed "" and answered "Malformed JSON in request body", so `PUT /conversations/:id/read` (whose body is
 * optional: "default: latest") was a 400 for them. Routes with a required body still answer 400, naming the
 * missing fields. Only an empty body is touched: nothing is read here.
 */
export const emptyJsonBody = createMiddleware<AppEnv>(async (c, next) => {
  const type = c.req.header("content-type");
  if (type && JSON_TYPE.test(type) && (c.req.raw.body === null || c.req.header("content-length") === "0")) {
    c.req.bodyCache.json = Promise.resolve({});
  }
  await next();
});

const CHARSET = /;\s*charset\s*=\s*"?([^";\s]*)"?/i;
const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false });

/**
 * JSON is UTF-8 (RFC 8259, contract §1). The body used to be decoded as UTF-8 whatever it was: a Latin-1 "café",
 * even declared `charset=latin1`, was stored as "caf\uFFFD" with a 201. Another declared charset is a 415, bytes that
 * are not UTF-8 a 400; nothing is stored. The bytes read here are what the validator parses (Hono caches them).
 */
export const utf8JsonBody = createMiddleware<AppEnv>(async (c, next) => {
  const type = c.req.header("content-type");
  if (!type || !JSON_TYPE.test(type) || c.req.raw.body === null || c.req.bodyCache.json !== undefined) return next();
  const charset = CHARSET.exec(type)?.[1]?.toLowerCase();
  if (charset !== undefined && charset !== "utf-8" && charset !== "utf8") {
    throw new HttpError(415, "Content-Type must be application/json; JSON is UTF-8 (charset=utf-8)");
  }
  try {
    utf8.decode(await c.req.arrayBuffer());
  } catch (err) {
    if (!(err instanceof TypeError)) throw err; // the body limit's error, answered 413 by its middleware
    throw new HttpError(400, "Request body is not valid UTF-8");
  }
  await next();
});
