import { describe, expect, it } from "vitest";
import { createExecutionContext, env, waitOnExecutionContext } from "cloudflare:test";
import { sql } from "drizzle-orm";
import { createApp } from "../../src/worker/app";
import { withDb } from "./fixtures";
import { api, expectErrorShape, newUser, signWith, type ApiResponse } from "./helpers";

const id = "3f1c2a52-8e43-4c4b-9a3e-7e2d2f0b1a11";
const exp = () => Math.floor(Date.now() / 1000) + 600;

describe("token verification", () => {
  it("accepts a valid token and provisions the user", async () => {
    const user = await newUser("auth");
    const users = () => withDb(async (db) => (await db.execute<{ kaha_id: string }>(sql`SELECT kaha_id FROM users WHERE id = ${user.id}`)).rows);
    expect(await users()).toEqual([]);
    const res = await api("GET", "/auth/me", { token: user.token });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ id: user.id, kahaId: user.kahaId, profile: { id: user.id, kind: "user" } });
    expect(await users()).toEqual([{ kaha_id: user.kahaId }]);
  });

  it.each([
    ["no header", undefined],
    ["garbage", "not-a-jwt"],
  ])("rejects %s with 401", async (_label, token) => {
    expectErrorShape(await api("GET", "/auth/me", { token }), 401);
  });

  it("rejects expired tokens, wrong keys, alg none and missing claims", async () => {
    const cases: Record<string, string> = {
      expired: await signWith({ id, kahaId: "k", exp: Math.floor(Date.now() / 1000) - 60 }),
      wrongKey: await signWith({ id, kahaId: "k", exp: exp() }, "another-secret-that-is-long-enough-000000"),
      noExp: await signWith({ id, kahaId: "k" }),
      noId: await signWith({ kahaId: "k", exp: exp() }),
      badId: await signWith({ id: "123", kahaId: "k", exp: exp() }),
      noKahaId: await signWith({ id, exp: exp() }),
      // Blank is missing: the user was provisioned with it, and shown to everyone with a blank name.
      blankKahaId: await signWith({ id, kahaId: " \t ", exp: exp() }),
      hs512: await signWith({ id, kahaId: "k", exp: exp() }, env.JWT_SECRET, "HS512"),
    };
    const unsigned = (claims: object) =>
      `${btoa(JSON.stringify({ alg: "none", typ: "JWT" })).replace(/=+$/, "")}.${btoa(JSON.stringify(claims)).replace(/=+$/, "")}.`;
    cases.algNone = unsigned({ id, kahaId: "k", exp: exp() });
    for (const [label, token] of Object.entries(cases)) {
      const res = await api("GET", "/auth/me", { token });
      expect(res.status, label).toBe(401);
      expectErrorShape(res, 401);
    }
  });
});

describe("realtime tickets", () => {
  it("say they expire no later than the token they were issued for", async () => {
    const user = await newUser("ticket-exp");
    const exp = Math.floor(Date.now() / 1000) + 5;
    const token = await signWith({ id: user.id, kahaId: user.kahaId, exp });
    const res = await api("POST", "/realtime/tickets", { token });
    expect(res.status).toBe(200);
    // The ticket is refused past the token's exp: its expiresAt said 60 s, and a client trusting it got a 401.
    expect(Date.parse(res.body.expiresAt)).toBeLessThanOrEqual(exp * 1000);
    const long = await api("POST", "/realtime/tickets", { token: user.token });
    expect(Date.parse(long.body.expiresAt) - Date.now()).toBeGreaterThan(50_000);
  });
});

describe("realtime tickets' body", () => {
  it("refuses fields it cannot honour and malformed JSON; no body, an empty one or {} get a ticket (contract §1)", async () => {
    const user = await newUser("ticket-body");
    // Without a token it is a 401 whatever the body.
    expectErrorShape(await api("POST", "/realtime/tickets", { body: { conversationId: 1 } }), 401);
    // Answered 200 with a ticket as if the field had been taken.
    expectErrorShape(await api("POST", "/realtime/tickets", { token: user.token, body: { conversationId: crypto.randomUUID() } }), 400);
    expectErrorShape(await api("POST", "/realtime/tickets", { token: user.token, rawBody: "{", headers: { "content-type": "application/json" } }), 400);
    for (const options of [{}, { body: {} }, { rawBody: "", headers: { "content-type": "application/json" } }]) {
      const res = await api("POST", "/realtime/tickets", { token: user.token, ...options });
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      expect(typeof res.body.ticket).toBe("string");
    }
  });
});

describe("clock skew", () => {
  it("accepts a token minted with nbf a few seconds ahead of this clock, and still refuses one expired a second ago", async () => {
    // The identity provider's clock runs ahead: nbf = its "now", which is this edge's future.
    const now = Math.floor(Date.now() / 1000);
    const fresh = await signWith({ id: crypto.randomUUID(), kahaId: "skewed", iat: now + 3, nbf: now + 3, exp: now + 600 });
    const res = await api("GET", "/auth/me", { token: fresh });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    // The leeway is for nbf only: exp stays exact, as sockets close (4401) and tickets end at exp.
    expectErrorShape(await api("GET", "/auth/me", { token: await signWith({ id, kahaId: "k", exp: now - 1 }) }), 401);
    expectErrorShape(await api("GET", "/auth/me", { token: await signWith({ id, kahaId: "k", nbf: now + 600, exp: now + 900 }) }), 401);
  });
});

describe("user ids of any UUID version", () => {
  it("accepts a token whose id is a UUID outside RFC 9562's versions and variants (contract §1: any version)", async () => {
    // Version nibble 0 and variant nibble 1: ids from the identity platform need not be RFC 4122 UUIDs.
    const hex = crypto.randomUUID().replace(/-/g, "");
    const oddId = `${hex.slice(0, 8)}-${hex.slice(8, 12)}-0${hex.slice(13, 16)}-1${hex.slice(17, 20)}-${hex.slice(20)}`;
    const token = await signWith({ id: oddId.toUpperCase(), kahaId: "odd-id", exp: exp() });
    const res = await api("GET", "/auth/me", { token });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body).toMatchObject({ id: oddId, kahaId: "odd-id" });
  });
});

describe("dev login", () => {
  it("issues a token for a stable id per kahaId when DEV_LOGIN=true", async () => {
    const a = await api("POST", "/auth/dev-login", { body: { kahaId: "dev-alice" } });
    const b = await api("POST", "/auth/dev-login", { body: { kahaId: "dev-alice", name: "Alice" } });
    expect(a.status).toBe(200);
    expect(a.body.user.id).toBe(b.body.user.id);
    const me = await api("GET", "/auth/me", { token: a.body.access_token });
    expect(me.body.kahaId).toBe("dev-alice");
  });

  it("validates its body strictly", async () => {
    expectErrorShape(await api("POST", "/auth/dev-login", { body: { kahaId: "" } }), 400);
    expectErrorShape(await api("POST", "/auth/dev-login", { body: { kahaId: "a", admin: true } }), 400);
    expectErrorShape(await api("POST", "/auth/dev-login", { rawBody: "{not json", headers: { "content-type": "application/json" } }), 400);
  });
});

describe("dev login off (the production setting)", () => {
  // The Worker as wrangler.toml configures it for production: DEV_LOGIN "false", everything else as in the suite.
  const production = async (init: { body?: unknown; rawBody?: string }): Promise<ApiResponse> => {
    const ctx = createExecutionContext();
    const res = await createApp().fetch(
      new Request("http://chat.test/auth/dev-login", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: init.rawBody ?? JSON.stringify(init.body),
      }),
      { ...env, DEV_LOGIN: "false" },
      ctx,
    );
    const body: unknown = await res.json();
    await waitOnExecutionContext(ctx);
    return { status: res.status, body, headers: res.headers };
  };

  it("answers 404 whatever the body, as if the route did not exist", async () => {
    for (const init of [{ body: { kahaId: "prod-alice" } }, { body: { kahaId: "" } }, { body: { kahaId: "a", admin: true } }, { rawBody: "{not json" }]) {
      const res = await production(init);
      expectErrorShape(res, 404);
      expect(res.body.access_token, JSON.stringify(init)).toBeUndefined();
    }
  });
});

describe("error shapes", () => {
  it("404 for unknown routes, 405 for a wrong method, 413 for large bodies", async () => {
    expectErrorShape(await api("GET", "/nope"), 404);
    const wrongMethod = await api("DELETE", "/health");
    expectErrorShape(wrongMethod, 405);
    expect(wrongMethod.headers.get("allow")).toContain("GET");
    // A trailing slash on a route that has this method is no route: 404, not "GET not allowed" on a GET route.
    const user = await newUser("slash");
    const slash = await api("GET", `/conversations/${crypto.randomUUID()}/messages/`, { token: user.token });
    expectErrorShape(slash, 404);
    expect(slash.body.message).toMatch(/trailing slash/);
    const big = await api("POST", "/auth/dev-login", { body: { kahaId: "x".repeat(70_000) } });
    expectErrorShape(big, 413);
  });

  it("names the reason of a 426 (a socket route called without the upgrade) in `error`, as every other status does", async () => {
    const user = await newUser("upgrade");
    for (const path of ["/ws", `/conversations/${crypto.randomUUID()}/ws`]) {
      const res = await api("GET", path, { token: user.token });
      expectErrorShape(res, 426);
      expect(res.body.error, path).toBe("Upgrade Required");
    }
  });

  it("sets X-Request-Id and nosniff on every response, echoing a sane incoming id", async () => {
    const res = await api("GET", "/health", { headers: { "x-request-id": "trace-123" } });
    expect(res.headers.get("x-request-id")).toBe("trace-123");
    expect(res.headers.get("x-content-type-options")).toBe("nosniff");
    const login = await api("POST", "/auth/dev-login", { body: { kahaId: "nocache" } });
    expect(login.headers.get("cache-control")).toBe("no-store");
    const weird = await api("GET", "/health", { headers: { "x-request-id": "<script>" } });
    expect(weird.headers.get("x-request-id")).not.toBe("<script>");
  });
});

describe("health", () => {
  it("liveness answers without dependencies", async () => {
    const res = await api("GET", "/health");
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ status: "ok", service: "edge-chat" });
  });

  it("readiness checks Postgres, Redis and the profile service", async () => {
    const res = await api("GET", "/health/detailed");
    expect(res.status).toBe(200);
    expect(res.body.status).toBe("ok");
    for (const check of ["database", "cache", "profileService"]) {
      expect(res.body.checks[check].status, check).toBe("ok");
      expect(typeof res.body.checks[check].latencyMs).toBe("number");
    }
  });

  it("serves an OpenAPI 3.1 document and the docs page", async () => {
    const doc = await api("GET", "/openapi.json");
    expect(doc.status).toBe(200);
    expect(doc.body.openapi).toBe("3.1.0");
    const page = await api("GET", "/api/docs");
    expect(page.status).toBe(200);
  });
});
