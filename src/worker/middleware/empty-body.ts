import { createMiddleware } from "hono/factory";
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
