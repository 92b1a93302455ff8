import { OpenAPIHono } from "@hono/zod-openapi";
import { swaggerUI } from "@hono/swagger-ui";
import { bodyLimit } from "hono/body-limit";
import { LIMITS } from "../protocol/resources";
import { HttpError } from "../lib/errors";
import type { AppEnv } from "./env";
import { handleError } from "./errors";
import { documentSharedRefusals } from "./openapi";
import { requestContext } from "./middleware/context";
import { validationHook } from "./validation";
import { health } from "./routes/health";
import { auth } from "./routes/auth";
import { conversations } from "./routes/conversations";
import { notifications } from "./routes/notifications";
import { messages, messageSearch } from "./routes/messages";
import { conversationSocket, realtime, userSocket } from "./routes/realtime";
import { profiles } from "./routes/profiles";
import { business } from "./routes/business";
import { conversationOperations, metricsRoute, operations } from "./routes/operations";
import { rateLimit } from "./middleware/rate-limit";
import { allowedOriginsCors } from "./middleware/cors";
import { emptyJsonBody, utf8JsonBody } from "./middleware/empty-body";
import { requestMetrics } from "../lib/metrics";

export function createApp() {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });

  app.use("*", requestContext);
  app.use("*", requestMetrics);
  app.use("*", allowedOriginsCors);
  app.use(
    "*",
    bodyLimit({
      maxSize: LIMITS.bodyMaxBytes,
      onError: () => {
        throw new HttpError(413, `Request body must be at most ${LIMITS.bodyMaxBytes} bytes`);
      },
    }),
  );
  app.use("*", emptyJsonBody);
  app.use("*", utf8JsonBody);
  app.use("*", rateLimit);

  app.route("/health", health);
  app.route("/auth", auth);
  app.route("/conversations", conversations);
  app.route("/notifications", notifications);
  app.route("/conversations", messages);
  app.route("/messages", messageSearch);
  app.route("/conversations", conversationSocket);
  app.route("/realtime", realtime);
  app.route("/ws", userSocket);
  app.route("/profiles", profiles);
  app.route("/business", business);
  app.route("/conversations", conversationOperations);
  app.route("/operations", operations);
  app.route("/metrics", metricsRoute);

  documentSharedRefusals(app);
  app.openAPIRegistry.registerComponent("securitySchemes", "bearerAuth", { type: "http", scheme: "bearer", bearerFormat: "JWT" });
  app.openAPIRegistry.registerComponent("securitySchemes", "ticket", {
    type: "apiKey",
    in: "query",
    name: "ticket",
    description: "WebSocket upgrades only: a single-use ticket from POST /realtime/tickets, for browsers (tokens never travel in URLs)",
  });
  app.doc31("/openapi.json", (c) => ({
    openapi: "3.1.0",
    info: { title: "Edge Chat API", version: c.get("config").SERVICE_VERSION, description: "Contract v1: see README." },
  }));
  app.get("/api/docs", swaggerUI({ url: "/openapi.json" }));

  app.notFound((c) => {
    const allowed = allowedMethods(app, c.req.path);
    // Only a trailing slash differs from a route of this very method (the pattern lets one through).
    if (allowed.includes(c.req.method)) throw new HttpError(404, "Route not found; drop the trailing slash");
    if (allowed.length > 0) {
      c.header("Allow", allowed.join(", "));
      throw new HttpError(405, `Method ${c.req.method} not allowed on ${c.req.path}`);
    }
    throw new HttpError(404, "Route not found");
  });
  app.onError(handleError);
  return app;
}

/** Methods registered for a path other than the one used: turns "no route" into 405 where it is one. */
function allowedMethods(app: OpenAPIHono<AppEnv>, path: string): string[] {
  const methods = new Set<string>();
  for (const route of app.routes) {
    if (route.method === "ALL") continue;
    const pattern = new RegExp(`^${route.path.replace(/\/:[^/]+/g, "/[^/]+").replace(/\*/g, ".*")}/?$`);
    if (pattern.test(path)) methods.add(route.method);
  }
  return [...methods];
}
