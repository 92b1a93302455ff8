import { afterEach, describe, expect, it } from "vitest";
import { sql } from "drizzle-orm";
import { api } from "./helpers";
import { postgres, seedConversation, withDb } from "./fixtures";

afterEach(async () => {
  await postgres({});
});

describe("provisioning the caller", () => {
  it("does not hold a message to a conversation the caller is in: sent while Postgres is down, on an isolate that has not seen them", async () => {
    // Seeded straight into Postgres: this isolate has not provisioned either user yet.
    const { id, users } = await seedConversation("direct", 2);
    const [alice] = users;
    await withDb((db) => db.execute(sql`UPDATE users SET kaha_id = ${`unknown:${alice.id}`} WHERE id = ${alice.id}`));
    const first = await api("POST", `/conversations/${id}/messages`, { token: alice.token, body: { content: "the room is started" } });
    expect(first.status).toBe(201);
    // The placeholder's kaha id is filled in all the same, in the background of alice's first request.
    const kaha = () => withDb(async (db) => (await db.execute<{ kaha_id: string }>(sql`SELECT kaha_id FROM users WHERE id = ${alice.id}`)).rows[0]?.kaha_id);
    for (let i = 0; (await kaha()) !== alice.kahaId; i++) {
      if (i > 100) throw new Error("alice's kaha id was never filled in");
      await new Promise((r) => setTimeout(r, 20));
    }

    await postgres({ down: true });
    const sent = await api("POST", `/conversations/${id}/messages`, { token: users[1].token, body: { content: "while Postgres is down", clientMessageId: "down-1" } });
    expect(sent.status).toBe(201);
    expect(sent.body).toMatchObject({ seq: 2, status: "pending" });
  });
});

describe("Postgres down, for the Worker's own queries", () => {
  it("is a 503 with Retry-After, not a 500: before the handler (provisioning) and in it (drizzle wraps the driver's error)", async () => {
    const { id, users } = await seedConversation("group", 3);
    const [fresh, known] = users;
    expect((await api("GET", "/conversations", { token: known.token })).status).toBe(200);
    await postgres({ down: true });
    for (const [who, path] of [
      ["a user this isolate has not provisioned", "/conversations"],
      ["a provisioned user's list", "/conversations"],
      ["a provisioned user's conversation", `/conversations/${id}`],
    ] as const) {
      const res = await api("GET", path, { token: who.startsWith("a user") ? fresh.token : known.token });
      expect({ who, status: res.status, retryAfter: res.headers.get("retry-after") }).toEqual({ who, status: 503, retryAfter: "5" });
    }
  });
});
