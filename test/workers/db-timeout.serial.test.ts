import { afterEach, describe, expect, it } from "vitest";
import { postgres } from "./fixtures";
import { api } from "./helpers";
import { direct, users } from "./conversation-helpers";

afterEach(() => postgres({}));

describe("a Postgres that stops answering", () => {
  // The Worker's one-statement queries (HTTP) had no deadline of their own: a request waited as long as Postgres
  // did, and an app showed a spinner for good instead of the 503 its retry logic acts on.
  it("gets a 503 with Retry-After in bounded time, not a request that hangs", { timeout: 40_000 }, async () => {
    const [alice, bob] = await users(2, "db-hang");
    await direct(alice, bob);
    // Each way: a statement's answer comes after 24 s.
    await postgres({ delayMs: 12_000 });
    const started = Date.now();
    const res = await api("GET", "/conversations", { token: alice.token });
    const took = Date.now() - started;
    expect(res.status).toBe(503);
    expect(res.headers.get("retry-after")).toBeTruthy();
    expect(took).toBeLessThan(12_000);
  });

  it("also when the request writes over a connection of its own", { timeout: 40_000 }, async () => {
    const [alice, bob, carol] = await users(3, "db-hang-w");
    await direct(alice, bob);
    await postgres({ delayMs: 12_000 });
    const started = Date.now();
    const res = await api("POST", "/conversations/group", { token: alice.token, body: { name: "hang", participantIds: [bob.id, carol.id] } });
    expect(res.status).toBe(503);
    expect(Date.now() - started).toBeLessThan(12_000);
  });
});

describe("routes without a token that write to Postgres", () => {
  // POST /auth/dev-login provisions its user: with Postgres down it answers 503, which its document did not list.
  it("answer 503 with Retry-After, and the OpenAPI document says so", { timeout: 40_000 }, async () => {
    const doc = (await api("GET", "/openapi.json")).body as { paths: Record<string, Record<string, { responses: Record<string, unknown> }>> };
    await postgres({ delayMs: 12_000 });
    const res = await api("POST", "/auth/dev-login", { body: { kahaId: `db-hang-login-${Date.now()}` } });
    expect(res.status).toBe(503);
    expect(res.headers.get("retry-after")).toBeTruthy();
    expect(Object.keys(doc.paths["/auth/dev-login"].post.responses)).toContain("503");
  });
});
