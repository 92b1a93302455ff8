import { describe, expect, expectTypeOf, it } from "vitest";
import type { OpenAPIHono } from "@hono/zod-openapi";
import { ChatClient, ChatRest } from "../../src/client";
import type * as sdk from "../../src/client";
import type { conversations } from "../../src/worker/routes/conversations";
import type { health } from "../../src/worker/routes/health";
import type { messages } from "../../src/worker/routes/messages";
import type { notifications } from "../../src/worker/routes/notifications";
import type { operations } from "../../src/worker/routes/operations";
import type { realtime } from "../../src/worker/routes/realtime";
import { api } from "./helpers";

/** What Hono infers for a sub-app's routes: per path and method, the JSON body it validates and what it answers. */
type RoutesOf<A> = A extends OpenAPIHono<infer _E, infer S, infer _B> ? S : never;
type Ok<A, P extends keyof RoutesOf<A>, M extends keyof RoutesOf<A>[P]> =
  Extract<RoutesOf<A>[P][M], { status: 200 }> extends { output: infer O } ? O : never;
type Body<A, P extends keyof RoutesOf<A>, M extends keyof RoutesOf<A>[P]> = RoutesOf<A>[P][M] extends { input: { json: infer J } } ? J : never;

/** Routes the SDK deliberately leaves to other tools (each with its reason). */
const NOT_IN_SDK = new Map<string, string>([
  ["GET /api/docs", "Swagger UI page for people, not an API"],
  ["GET /metrics", "Prometheus text for the scraper, not JSON for apps"],
  ["GET /ws", "WebSocket upgrade: ChatClient.user()"],
  ["GET /conversations/{}/ws", "WebSocket upgrade: ChatClient.conversation()"],
]);

const HELPERS = new Set(["constructor", "request", "once", "token", "setToken"]);

/**
 * Every REST call the SDK can make, as `METHOD /path/{}`: each method of ChatRest is called with placeholder
 * arguments against a fetch that records the request (nothing leaves the test).
 */
async function sdkRoutes(): Promise<Map<string, string>> {
  const seen = new Map<string, string>();
  let current = "";
  const fetchImpl = (async (input: RequestInfo | URL, init?: RequestInit) => {
    const url = new URL(String(input));
    const path = url.pathname
      .split("/")
      .map((s) => (/^p\d$/.test(s) ? "{}" : s))
      .join("/");
    seen.set(`${init?.method ?? "GET"} ${path}`, current);
    return new Response("{}", { status: 200, headers: { "content-type": "application/json" } });
  }) as typeof fetch;
  const client = new ChatClient({ baseUrl: "http://sdk.test", token: "t", fetch: fetchImpl, retries: 0 });
  for (const name of Object.getOwnPropertyNames(ChatRest.prototype)) {
    const method = (client as unknown as Record<string, unknown>)[name];
    if (HELPERS.has(name) || typeof method !== "function") continue;
    current = name;
    await (method as (...args: string[]) => Promise<unknown>).call(client, "p0", "p1", "p2", "p3");
  }
  return seen;
}

describe("SDK routes match the server's OpenAPI document", () => {
  it("every documented route has an SDK method, and every SDK call is a documented route", async () => {
    const doc = (await api("GET", "/openapi.json")).body as { paths: Record<string, Record<string, unknown>> };
    // The document does not list itself.
    const documented = new Set<string>(["GET /openapi.json"]);
    for (const [path, ops] of Object.entries(doc.paths)) {
      for (const m of Object.keys(ops)) {
        if (!["get", "post", "put", "patch", "delete"].includes(m)) continue;
        documented.add(`${m.toUpperCase()} ${path.replace(/\{[^}]+\}/g, "{}").replace(/(.)\/$/, "$1")}`);
      }
    }
    const sdk = await sdkRoutes();
    expect(sdk.size).toBeGreaterThan(30);
    const missingFromSdk = [...documented].filter((r) => !sdk.has(r) && !NOT_IN_SDK.has(r)).sort();
    const unknownToServer = [...sdk.entries()].filter(([r]) => !documented.has(r)).map(([r, name]) => `${name}: ${r}`).sort();
    expect(missingFromSdk).toEqual([]);
    expect(unknownToServer).toEqual([]);
  });

  // Checked by tsc (tsconfig.json), not at run time: a hand-written SDK type that drifts from the route fails the build.
  it("SDK result and input types are the ones the server's routes validate and answer with", () => {
    expectTypeOf<sdk.HealthDetailed>().toEqualTypeOf<Ok<typeof health, "/detailed", "$get">>();
    expectTypeOf<sdk.UnreadCounts>().toEqualTypeOf<Ok<typeof notifications, "/unread-counts", "$get">>();
    expectTypeOf<sdk.MessagePage>().toEqualTypeOf<Ok<typeof messages, "/:id/messages", "$get">>();
    expectTypeOf<sdk.AuditVerifyReport>().toEqualTypeOf<Ok<typeof operations, "/audit/verify", "$post">>();
    expectTypeOf<sdk.Ticket>().toEqualTypeOf<Ok<typeof realtime, "/tickets", "$post">>();
    expectTypeOf<sdk.CreateBusinessInput>().toEqualTypeOf<Body<typeof conversations, "/business", "$post">>();
    expectTypeOf<sdk.SendMessageInput>().toEqualTypeOf<Body<typeof messages, "/:id/messages", "$post">>();
  });
});
