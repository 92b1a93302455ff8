import { describe, expect, it } from "vitest";
import { createExecutionContext, env, waitOnExecutionContext } from "cloudflare:test";
import { createApp } from "../../src/worker/app";
import { newUser } from "./helpers";

const APP = "https://app.example";
// Written as an operator might: other case, a trailing slash, spaces.
const configured = { ...env, ALLOWED_ORIGINS: " https://App.example/ , https://other.example" };

async function call(
  method: string,
  path: string,
  headers: Record<string, string>,
  vars: typeof configured = configured,
): Promise<{ status: number; headers: Headers }> {
  const ctx = createExecutionContext();
  const res = await createApp().fetch(new Request(`http://chat.test${path}`, { method, headers }), vars, ctx);
  await res.arrayBuffer();
  await waitOnExecutionContext(ctx);
  return { status: res.status, headers: res.headers };
}

const preflight = (origin: string) =>
  call("OPTIONS", "/conversations", {
    origin,
    "access-control-request-method": "POST",
    "access-control-request-headers": "authorization,content-type",
  });

describe("browser apps on allowed origins (CORS)", () => {
  it("answers a preflight from an allowed origin, with no token", async () => {
    const res = await preflight(APP);
    expect(res.status).toBe(204);
    expect(res.headers.get("access-control-allow-origin")).toBe(APP);
    expect(res.headers.get("access-control-allow-methods")).toContain("POST");
    expect(res.headers.get("access-control-allow-headers")?.toLowerCase().split(",")).toEqual(
      expect.arrayContaining(["authorization", "content-type"]),
    );
    expect(res.headers.get("access-control-max-age")).toBe("600");
    // Bearer tokens, not cookies: the browser must not send credentials.
    expect(res.headers.get("access-control-allow-credentials")).toBeNull();
  });

  it("lets the app read answers and errors, with their request id", async () => {
    const user = await newUser("cors");
    const ok = await call("GET", "/conversations", { origin: APP, authorization: `Bearer ${user.token}` });
    expect(ok.status).toBe(200);
    expect(ok.headers.get("access-control-allow-origin")).toBe(APP);
    expect(ok.headers.get("access-control-expose-headers")).toContain("X-Request-Id");
    expect(ok.headers.get("vary")).toContain("Origin");
    // An error the app must show (sign in again) is readable too, as is a 404.
    const unauthorised = await call("GET", "/conversations", { origin: APP });
    expect(unauthorised.status).toBe(401);
    expect(unauthorised.headers.get("access-control-allow-origin")).toBe(APP);
    const missing = await call("GET", `/conversations/${crypto.randomUUID()}`, { origin: APP, authorization: `Bearer ${user.token}` });
    expect(missing.status).toBe(404);
    expect(missing.headers.get("access-control-allow-origin")).toBe(APP);
  });

  it("gives other origins nothing to read", async () => {
    const user = await newUser("cors");
    const res = await call("GET", "/conversations", { origin: "https://evil.example", authorization: `Bearer ${user.token}` });
    expect(res.headers.get("access-control-allow-origin")).toBeNull();
    const pre = await preflight("https://evil.example");
    expect(pre.headers.get("access-control-allow-origin")).toBeNull();
    expect(pre.status).not.toBe(204);
  });

  it("matches an origin configured with its default port written out, as browsers never send it", async () => {
    const withPort = { ...env, ALLOWED_ORIGINS: "https://app.example:443" };
    const pre = await call("OPTIONS", "/conversations", { origin: APP, "access-control-request-method": "POST" }, withPort);
    expect(pre.status).toBe(204);
    expect(pre.headers.get("access-control-allow-origin")).toBe(APP);
    const user = await newUser("cors");
    const upgrade = await call("GET", "/ws", { origin: APP, upgrade: "websocket", authorization: `Bearer ${user.token}` }, withPort);
    expect(upgrade.status).not.toBe(403);
  });
});
