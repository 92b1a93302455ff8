import { afterEach, describe, expect, it } from "vitest";
import { sql } from "drizzle-orm";
import { closedUntil, closeSockets, newBusiness, openChat, readyAgent } from "./business-helpers";
import { api, newUser } from "./helpers";
import { postgres, seedConversation, withDb } from "./fixtures";
import { openSocket, waitFor } from "./sockets";

afterEach(async () => {
  await postgres({});
});

describe("provisioning the caller", () => {
  it("does not hold a message or a socket of a conversation the caller is in: both work while Postgres is down, on an isolate that has not seen them", async () => {
    // Seeded straight into Postgres: this isolate has not provisioned either user yet.
    const { id, users } = await seedConversation("group", 3);
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
    // Opening the conversation's socket, the same.
    const socket = await openSocket(`/conversations/${id}/ws`, users[2]);
    const ready = await waitFor(() => socket.frames.find((f) => f.type === "ready"), "ready");
    expect(ready.data.lastSeq).toBe(2);
    socket.ws.close(1000, "done");
  });
});

describe("a user someone else brought in", () => {
  it("gets their kaha id (so their profile) from their own first request on the isolate that made their placeholder", async () => {
    const [alice, bob] = [await newUser("placeholder"), await newUser("placeholder")];
    const created = await api("POST", "/conversations/direct", { token: alice.token, body: { targetUserId: bob.id } });
    expect(created.status).toBe(201);
    const kaha = () => withDb(async (db) => (await db.execute<{ kaha_id: string }>(sql`SELECT kaha_id FROM users WHERE id = ${bob.id}`)).rows[0]?.kaha_id);
    expect(await kaha()).toBe(`unknown:${bob.id}`);
    for (const path of ["/conversations", `/conversations/${created.body.id}`]) {
      expect((await api("GET", path, { token: bob.token })).status).toBe(200);
    }
    for (let i = 0; (await kaha()) !== bob.kahaId; i++) {
      if (i > 50) throw new Error(`bob's kaha id is still ${await kaha()}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    // Everyone sees bob's own profile from then on, bob included.
    const view = await api("GET", `/conversations/${created.body.id}`, { token: bob.token });
    const me = view.body.participants.find((p: { userId: string }) => p.userId === bob.id);
    expect(me.profile.name).not.toBe(`User ${bob.id.slice(0, 8)}`);
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

describe("every conversation route while Postgres is down", () => {
  it("answers from the room or says 503, never 500", async () => {
    const { id, users } = await seedConversation("group", 4);
    const [admin, member, other, outsider] = users;
    const sent = await api("POST", `/conversations/${id}/messages`, { token: admin.token, body: { content: "before the outage" } });
    expect(sent.status).toBe(201);
    // Everyone is known to this isolate, as in a running service; a new isolate is the first test above.
    for (const u of users) expect((await api("GET", "/conversations", { token: u.token })).status).toBe(200);
    await postgres({ down: true });
    const m = sent.body.id as string;
    const requests: [string, string, unknown?][] = [
      ["GET", "/conversations"],
      ["GET", "/conversations?page=1"],
      ["GET", `/conversations/${id}`],
      ["PATCH", `/conversations/${id}`, { name: "Renamed" }],
      ["POST", "/conversations/direct", { targetUserId: other.id }],
      ["POST", "/conversations/group", { participantIds: [member.id, other.id], name: "New" }],
      ["POST", `/conversations/${id}/participants`, { userId: crypto.randomUUID() }],
      ["PUT", `/conversations/${id}/participants/${member.id}/role`, { role: "admin" }],
      ["DELETE", `/conversations/${id}/participants/${outsider.id}`],
      ["PUT", `/conversations/${id}/mute`, { isMuted: true }],
      ["PUT", `/conversations/${id}/read`, {}],
      ["GET", `/conversations/${id}/unread-count`],
      ["GET", `/conversations/${id}/read-receipts`],
      ["GET", `/conversations/${id}/messages?limit=20`],
      ["GET", `/conversations/${id}/messages?before=1`],
      ["POST", `/conversations/${id}/messages`, { content: "during the outage" }],
      ["GET", `/conversations/${id}/messages/${m}`],
      ["PATCH", `/conversations/${id}/messages/${m}`, { content: "edited during the outage" }],
      ["GET", `/conversations/${id}/messages/search?q=outage`],
      ["GET", "/messages/search?q=outage"],
      ["GET", "/notifications/unread-counts"],
      ["PUT", "/notifications/mark-all-read", {}],
      ["POST", "/realtime/tickets", {}],
      ["GET", "/auth/me"],
      ["GET", `/conversations/${id}/archive`],
      ["GET", `/conversations/${id}/audit`],
      ["DELETE", `/conversations/${id}/messages/${m}`],
    ];
    const answers = [];
    for (const [method, path, body] of requests) {
      const res = await api(method, path, { token: admin.token, body });
      answers.push(`${method} ${path.replace(id, ":id").replace(m, ":m")} → ${res.status}`);
    }
    expect(answers.filter((a) => / → 5\d\d$/.test(a) && !a.endsWith(" → 503"))).toEqual([]);
    // What the room holds still works: the newest page, a send (acked pending), an edit, a delete.
    expect(answers).toEqual(expect.arrayContaining(["GET /conversations/:id/messages?limit=20 → 200", "POST /conversations/:id/messages → 201", "DELETE /conversations/:id/messages/:m → 204"]));
    expect(answers.filter((a) => a.endsWith(" → 405") || a.endsWith(" → 404"))).toEqual([]);
  });
});

describe("every business route while Postgres is down", () => {
  afterEach(() => closeSockets());

  it("says 503 or answers from the desk, never 500", async () => {
    const biz = await newBusiness();
    const agent = await readyAgent(biz);
    const customer = await newUser("cust");
    const chat = await openChat(customer, biz.id);
    expect(chat.status, JSON.stringify(chat.body)).toBe(201);
    const conv = chat.body.id as string;
    const other = await newUser("other");
    for (const u of [customer, other]) expect((await api("GET", "/conversations", { token: u.token })).status).toBe(200);
    await postgres({ down: true });
    const requests: [string, string, string, unknown?][] = [
      [customer.token, "POST", "/conversations/business", { businessId: crypto.randomUUID() }],
      [agent.token, "PUT", "/business/agents/me/availability", { isAvailable: false }],
      [biz.admin.token, "PUT", `/business/${biz.id}/agents/${other.id}`, {}],
      [biz.admin.token, "GET", `/business/${biz.id}/agents`],
      [biz.admin.token, "PUT", `/business/${biz.id}/hours`, closedUntil(2).hours],
      [biz.admin.token, "GET", `/business/${biz.id}/hours`],
      [biz.admin.token, "GET", `/business/${biz.id}/hours/status`],
      [biz.admin.token, "DELETE", `/business/${biz.id}/hours`],
      [biz.admin.token, "GET", `/business/${biz.id}/queue`],
      [biz.admin.token, "GET", `/business/${biz.id}/stats`],
      [biz.admin.token, "POST", `/business/conversations/${conv}/assign`, { agentId: agent.id }],
      [customer.token, "GET", `/business/conversations/${conv}/queue-position`],
      [agent.token, "POST", `/business/conversations/${conv}/close`, {}],
      [biz.admin.token, "DELETE", `/business/${biz.id}/agents/${agent.id}`],
    ];
    const answers = [];
    for (const [token, method, path, body] of requests) {
      const res = await api(method, path, { token, body });
      answers.push(`${method} ${path.replace(biz.id, ":biz").replace(conv, ":id")} → ${res.status}`);
    }
    expect(answers.filter((a) => / → 5\d\d$/.test(a) && !a.endsWith(" → 503"))).toEqual([]);
    expect(answers.filter((a) => a.endsWith(" → 405") || a.endsWith(" → 404"))).toEqual([]);
  });
});
