import { OpenAPIHono, createRoute, z } from "@hono/zod-openapi";
import { createMiddleware } from "hono/factory";
import { devUserId } from "../../lib/ids";
import { signDevToken } from "../../lib/jwt";
import { HttpError } from "../../lib/errors";
import { provisionUser } from "../../db/queries/users";
import { kahaIdField } from "../../protocol/requests";
import { devLoginResult, meResult } from "../../protocol/responses";
import { requireAuth } from "../middleware/auth";
import { loadProfiles } from "../profiles";
import type { AppEnv } from "../env";
import { errorResponses } from "../openapi";

const devLoginBody = z.strictObject({
  kahaId: kahaIdField,
  name: z.string().trim().min(1).max(100).optional(),
});

/**
 * Off in production: the route answers as if it did not exist. A route middleware, so it runs before the body is
 * validated: a 400 naming dev-login's fields would reveal the route.
 */
const devLoginEnabled = createMiddleware<AppEnv>(async (c, next) => {
  if (!c.get("config").DEV_LOGIN || !c.get("config").JWT_SECRET) throw new HttpError(404, "Not found");
  await next();
});

export const auth = new OpenAPIHono<AppEnv>()
  .openapi(
    createRoute({
      method: "post",
      path: "/dev-login",
      tags: ["auth"],
      summary: "Local development only (DEV_LOGIN=true): a token for any kahaId",
      middleware: [devLoginEnabled] as const,
      request: { body: { required: true, content: { "application/json": { schema: devLoginBody } } } },
      responses: {
        200: {
          description: "A token for a stable user id per kahaId",
          content: {
            "application/json": { schema: devLoginResult },
          },
        },
        // 404: DEV_LOGIN is off (the route does not exist outside local development). 503: the user is provisioned
        // in Postgres, which may be down (the shared 503 of documentSharedRefusals covers secured routes only).
        ...errorResponses(400, 404, 503),
      },
    }),
    async (c) => {
      const config = c.get("config");
      // devLoginEnabled let the request through only with a secret; the check also narrows its type here.
      if (!config.JWT_SECRET) throw new HttpError(404, "Not found");
      const { kahaId } = c.req.valid("json");
      const id = await devUserId(kahaId);
      await provisionUser(c.get("httpDb"), id, kahaId);
      const access_token = await signDevToken({ id, kahaId }, config.JWT_SECRET, 24 * 3600);
      return c.json({ access_token, user: { id, kahaId } }, 200);
    },
  )
  .openapi(
    createRoute({
      method: "get",
      path: "/me",
      tags: ["auth"],
      summary: "The caller, with its profile",
      security: [{ bearerAuth: [] }],
      middleware: [requireAuth] as const,
      responses: {
        200: {
          description: "The authenticated user",
          content: {
            "application/json": { schema: meResult },
          },
        },
        ...errorResponses(401),
      },
    }),
    async (c) => {
      const user = c.get("user");
      const profiles = await loadProfiles(c, { userIds: [user.id] });
      return c.json({ id: user.id, kahaId: user.kahaId, profile: profiles.user(user.id, user.kahaId) }, 200);
    },
  );
