import { describe, expect, it } from "vitest";
import { sql } from "drizzle-orm";
import { api, expectErrorShape, expectJsonHeaders, newUser, type ApiResponse } from "./helpers";
import { withDb } from "./fixtures";
import { direct, get, group, roles, send, users } from "./conversation-helpers";

describe("POST /conversations/direct", () => {
  it("creates one conversation (201) and finds it afterwards from either side (200)", async () => {
    const [a, b] = await users(2);
    const first = await api("POST", "/conversations/direct", { token: a.token, body: { targetUserId: b.id } });
    expect(first.status).toBe(201);
    expect(first.body).toMatchObject({ type: "direct", name: null, businessId: null, lastSeq: 0, unreadCount: 0, isMuted: false });
    expect(first.body.lastMessage).toBeUndefined();
    expect(roles(first.body)).toEqual({ [a.id]: "member", [b.id]: "member" });
    for (const p of first.body.participants) {
      expect(p).toMatchObject({ lastReadSeq: 0, lastDeliveredSeq: 0, isMuted: false, profile: { id: p.userId, kind: "user" } });
    }
    const again = await api("POST", "/conversations/direct", { token: a.token, body: { targetUserId: b.id } });
    const reverse = await api("POST", "/conversations/direct", { token: b.token, body: { targetUserId: a.id.toUpperCase() } });
    expect([again.status, reverse.status]).toEqual([200, 200]);
    expect(again.body.id).toBe(first.body.id);
    expect(reverse.body.id).toBe(first.body.id);
  });

  it("keeps exactly one conversation under 20 concurrent requests from both sides", async () => {
    const [a, b] = await users(2);
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        api("POST", "/conversations/direct", { token: (i % 2 ? a : b).token, body: { targetUserId: (i % 2 ? b : a).id } }),
      ),
    );
    const statuses = results.map((r) => r.status);
    expect(new Set(results.map((r) => r.body.id)).size).toBe(1);
    expect(statuses.filter((s) => s === 201)).toHaveLength(1);
    expect(statuses.filter((s) => s === 200)).toHaveLength(19);
    const key = [a.id, b.id].sort().join(":");
    const rows = await withDb((db) => db.execute<{ n: string }>(sql`SELECT count(*) AS n FROM conversations WHERE direct_key = ${key}`));
    expect(Number(rows.rows[0].n)).toBe(1);
    const members = await withDb((db) =>
      db.execute<{ n: string }>(sql`SELECT count(*) AS n FROM participants WHERE conversation_id = ${results[0].body.id}`),
    );
    expect(Number(members.rows[0].n)).toBe(2);
  });

  it("provisions a target user it has never seen", async () => {
    const a = await newUser("conv");
    const stranger = crypto.randomUUID();
    const res = await api("POST", "/conversations/direct", { token: a.token, body: { targetUserId: stranger } });
    expect(res.status).toBe(201);
    expect(res.body.participants.map((p: { userId: string }) => p.userId).sort()).toEqual([a.id, stranger].sort());
    const row = await withDb((db) => db.execute<{ kaha_id: string }>(sql`SELECT kaha_id FROM users WHERE id = ${stranger}`));
    expect(row.rows).toHaveLength(1);
  });

  it("rejects self, malformed ids and unknown fields with 400", async () => {
    const [a, b] = await users(2);
    for (const body of [
      { targetUserId: a.id },
      { targetUserId: "not-a-uuid" },
      { targetUserId: 42 },
      {},
      { targetUserId: b.id, type: "group" },
      { targetUserId: b.id, createdBy: b.id },
      JSON.parse(`{"targetUserId": "${b.id}", "__proto__": {"admin": true}}`),
    ]) {
      expectErrorShape(await api("POST", "/conversations/direct", { token: a.token, body }), 400);
    }
    expectErrorShape(await api("POST", "/conversations/direct", { token: a.token, rawBody: "{", headers: { "content-type": "application/json" } }), 400);
  });

  it("brings back a side that left when the conversation is asked for again", async () => {
    const [a, b] = await users(2);
    const id = await direct(a, b);
    expect((await api("DELETE", `/conversations/${id}/participants/${a.id}`, { token: a.token })).status).toBe(204);
    expectErrorShape(await get(id, a), 404);
    const back = await api("POST", "/conversations/direct", { token: b.token, body: { targetUserId: a.id } });
    expect(back.status).toBe(200);
    expect(back.body.id).toBe(id);
    expect((await get(id, a)).status).toBe(200);
    expect(back.body.participants).toHaveLength(2);
  });
});

describe("POST /conversations/group", () => {
  it("makes the creator admin and the others members, removing duplicates and the creator", async () => {
    const [creator, x, y] = await users(3);
    const res = await api("POST", "/conversations/group", {
      token: creator.token,
      body: { participantIds: [x.id, y.id, x.id, y.id.toUpperCase(), creator.id], name: "  Team  " },
    });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ type: "group", name: "Team", unreadCount: 0, isMuted: false });
    expect(roles(res.body)).toEqual({ [creator.id]: "admin", [x.id]: "member", [y.id]: "member" });
  });

  it("accepts 3 to 8 members and no name", async () => {
    const [creator, ...others] = await users(8);
    const eight = await api("POST", "/conversations/group", { token: creator.token, body: { participantIds: others.map((u) => u.id) } });
    expect(eight.status).toBe(201);
    expect(eight.body.participants).toHaveLength(8);
    expect(eight.body.name).toBeNull();
  });

  it("rejects fewer than 3 or more than 8 members (after dedupe), bad names and unknown fields", async () => {
    const [creator, ...others] = await users(9);
    const ids = others.map((u) => u.id);
    for (const body of [
      { participantIds: [] },
      { participantIds: [ids[0]] },
      { participantIds: [ids[0], ids[0], creator.id] },
      { participantIds: ids },
      { participantIds: [ids[0], "nope"] },
      { participantIds: ids.slice(0, 2), name: "" },
      { participantIds: ids.slice(0, 2), name: "   " },
      { participantIds: ids.slice(0, 2), name: "x".repeat(101) },
      { participantIds: ids.slice(0, 2), name: "bell\u0007" },
      // An unpaired surrogate (Postgres refused it inside the audit entry's JSON: "Invalid value in request").
      { participantIds: ids.slice(0, 2), name: "half \ud83d" },
      { participantIds: ids.slice(0, 2), name: "😀".repeat(101) },
      { participantIds: ids.slice(0, 2), roles: { [ids[0]]: "admin" } },
      { name: "no members" },
    ]) {
      expectErrorShape(await api("POST", "/conversations/group", { token: creator.token, body }), 400);
    }
  });
});

describe("POST /conversations/business", () => {
  it("opens one conversation per customer and business (201, then 200), with the business profile", async () => {
    const customer = await newUser("customer");
    const businessId = crypto.randomUUID();
    const first = await api("POST", "/conversations/business", { token: customer.token, body: { businessId } });
    expect(first.status).toBe(201);
    expect(first.body).toMatchObject({ type: "business", businessId, status: "open", business: { id: businessId, kind: "business" } });
    expect(roles(first.body)).toEqual({ [customer.id]: "customer" });
    const again = await api("POST", "/conversations/business", { token: customer.token, body: { businessId } });
    expect(again.status).toBe(200);
    expect(again.body.id).toBe(first.body.id);
    const other = await newUser("customer");
    const separate = await api("POST", "/conversations/business", { token: other.token, body: { businessId } });
    expect(separate.status).toBe(201);
    expect(separate.body.id).not.toBe(first.body.id);
  });

  it("keeps one open conversation under concurrent requests", async () => {
    const customer = await newUser("customer");
    const businessId = crypto.randomUUID();
    const results = await Promise.all(
      Array.from({ length: 8 }, () => api("POST", "/conversations/business", { token: customer.token, body: { businessId } })),
    );
    expect(new Set(results.map((r) => r.body.id)).size).toBe(1);
    expect(results.filter((r) => r.status === 201)).toHaveLength(1);
  });

  it("queues for a registered but unavailable agent, and refuses anyone else as agent", async () => {
    const [customer, agent, impostor] = await users(3, "biz");
    const businessId = crypto.randomUUID();
    await withDb((db) => db.execute(sql`INSERT INTO business_agents (business_id, user_id) VALUES (${businessId}, ${agent.id})`));
    const res = await api("POST", "/conversations/business", { token: customer.token, body: { businessId, agentId: agent.id } });
    expect(res.status).toBe(201);
    // The agent is offline and not available: the conversation waits in the queue (routing is the desk's job).
    expect(res.body.queuePosition).toBe(1);
    expect(roles(res.body)).toEqual({ [customer.id]: "customer" });
    const otherBusiness = crypto.randomUUID();
    for (const agentId of [impostor.id, customer.id]) {
      expectErrorShape(await api("POST", "/conversations/business", { token: customer.token, body: { businessId: otherBusiness, agentId } }), 400);
    }
  });

  it("ends the conversation when its customer leaves: closed, unreadable to them, and the next request opens a new one", async () => {
    const [customer, agent] = await users(2, "biz");
    const businessId = crypto.randomUUID();
    await withDb((db) => db.execute(sql`INSERT INTO business_agents (business_id, user_id) VALUES (${businessId}, ${agent.id})`));
    const first = await api("POST", "/conversations/business", { token: customer.token, body: { businessId, agentId: agent.id } });
    expect(first.status).toBe(201);
    await send(first.body.id, customer, "before leaving");
    expect((await api("DELETE", `/conversations/${first.body.id}/participants/${customer.id}`, { token: customer.token })).status).toBe(204);
    const row = await withDb((db) => db.execute<{ status: string }>(sql`SELECT status FROM conversations WHERE id = ${first.body.id}`));
    expect(row.rows[0].status).toBe("closed");
    // Leaving takes the history with it, for the customer.
    expectErrorShape(await api("GET", `/conversations/${first.body.id}`, { token: customer.token }), 404);
    expectErrorShape(await api("GET", `/conversations/${first.body.id}/messages`, { token: customer.token }), 404);
    const again = await api("POST", "/conversations/business", { token: customer.token, body: { businessId, agentId: agent.id } });
    expect(again.status).toBe(201);
    expect(again.body.id).not.toBe(first.body.id);
    expect(again.body.status).toBe("open");
    expect(roles(again.body)).toEqual({ [customer.id]: "customer" });
    // One open conversation per customer and business: a repeat request returns the new one.
    const repeat = await api("POST", "/conversations/business", { token: customer.token, body: { businessId } });
    expect(repeat.status).toBe(200);
    expect(repeat.body.id).toBe(again.body.id);
  });

  it("validates its body", async () => {
    const customer = await newUser("customer");
    for (const body of [{}, { businessId: "acme" }, { businessId: crypto.randomUUID(), customerId: customer.id }, { businessId: crypto.randomUUID(), agentId: "x" }]) {
      expectErrorShape(await api("POST", "/conversations/business", { token: customer.token, body }), 400);
    }
  });
});

describe("GET /conversations/:id", () => {
  it("returns participants, the last message and the caller's unread count", async () => {
    const [a, b, c] = await users(3);
    const id = await group(a, [b, c], "Chat");
    await send(id, b, "one");
    const last = await send(id, c, "two");
    await send(id, a, "mine");
    const asA = await get(id, a);
    expect(asA.status).toBe(200);
    expectJsonHeaders(asA);
    expect(asA.body).toMatchObject({ id, type: "group", name: "Chat", lastSeq: 3, unreadCount: 2 });
    expect(asA.body.lastMessage).toMatchObject({ seq: 3, content: "mine", senderId: a.id, sender: { id: a.id } });
    const asB = await get(id, b);
    expect(asB.body.unreadCount).toBe(2);
    expect(last.seq).toBe(2);
    expect(new Date(asA.body.lastActivity).getTime()).toBeGreaterThanOrEqual(new Date(asA.body.createdAt).getTime());
  });

  it("is a 404 for strangers, unknown ids and malformed ids", async () => {
    const [a, b, stranger] = await users(3);
    const id = await direct(a, b);
    for (const path of [id, crypto.randomUUID(), "not-a-uuid", "1' OR '1'='1", "%00"]) {
      const res = await api("GET", `/conversations/${path}`, { token: stranger.token });
      expectErrorShape(res, 404);
      if (path === id) expect(res.body.message).toBe("Conversation not found");
    }
  });
});

describe("PATCH /conversations/:id", () => {
  it("counts a name in characters and stores it composed (NFC)", async () => {
    const [a, b, c] = await users(3);
    // 100 emoji are 200 UTF-16 units: within the 100-character limit as users count.
    const emoji = await api("POST", "/conversations/group", { token: a.token, body: { participantIds: [b.id, c.id], name: "😀".repeat(100) } });
    expect(emoji.status).toBe(201);
    expect(emoji.body.name).toBe("😀".repeat(100));
    const renamed = await api("PATCH", `/conversations/${emoji.body.id}`, { token: a.token, body: { name: " Cafe\u0301 " } });
    expect(renamed.status).toBe(200);
    expect(renamed.body.name).toBe("Caf\u00e9");
  });

  it("lets a group admin rename", async () => {
    const [a, b, c] = await users(3);
    const id = await group(a, [b, c], "Old");
    const res = await api("PATCH", `/conversations/${id}`, { token: a.token, body: { name: "New" } });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ id, name: "New" });
    expect((await get(id, b)).body.name).toBe("New");
  });

  it("is a 403 for members, a 400 on direct and business conversations and for bad bodies", async () => {
    const [a, b, c] = await users(3);
    const id = await group(a, [b, c]);
    expectErrorShape(await api("PATCH", `/conversations/${id}`, { token: b.token, body: { name: "Mine" } }), 403);
    const d = await direct(a, b);
    expectErrorShape(await api("PATCH", `/conversations/${d}`, { token: a.token, body: { name: "Pair" } }), 400);
    const biz = await api("POST", "/conversations/business", { token: a.token, body: { businessId: crypto.randomUUID() } });
    expectErrorShape(await api("PATCH", `/conversations/${biz.body.id}`, { token: a.token, body: { name: "Shop" } }), 400);
    for (const body of [{}, { name: "" }, { name: "x".repeat(101) }, { name: "half \udc00" }, { name: "ok", type: "direct" }, { name: "ok", lastSeq: 99 }]) {
      expectErrorShape(await api("PATCH", `/conversations/${id}`, { token: a.token, body }), 400);
    }
  });
});

describe("GET /conversations", () => {
  const b64url = (value: unknown) => btoa(JSON.stringify(value)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");

  async function fiveConversations() {
    const [me, ...others] = await users(6, "lister");
    const ids: string[] = [];
    for (const other of others) ids.push(await direct(me, other));
    return { me, others, ids };
  }

  it("pages by cursor, newest activity first, without gaps or repeats", async () => {
    const { me, others, ids } = await fiveConversations();
    // Activity in the oldest conversation moves it to the top.
    await send(ids[0], others[0], "bump");
    const expected = [ids[0], ids[4], ids[3], ids[2], ids[1]];
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const res: ApiResponse = await api("GET", `/conversations?limit=2${cursor ? `&cursor=${cursor}` : ""}`, { token: me.token });
      expect(res.status).toBe(200);
      expect(res.body.conversations.length).toBeLessThanOrEqual(2);
      seen.push(...res.body.conversations.map((c: { id: string }) => c.id));
      cursor = res.body.nextCursor;
      pages++;
    } while (cursor && pages < 10);
    expect(seen).toEqual(expected);
    expect(pages).toBe(3);
    const first = await api("GET", "/conversations", { token: me.token });
    expect(first.body.conversations[0]).toMatchObject({ id: ids[0], unreadCount: 1, lastMessage: { content: "bump" } });
    expect(first.body.nextCursor).toBeNull();
  });

  it("accepts page/limit and reports total and hasMore", async () => {
    const { me, ids } = await fiveConversations();
    const p1 = await api("GET", "/conversations?page=1&limit=2", { token: me.token });
    expect(p1.body).toMatchObject({ total: 5, hasMore: true, page: 1, limit: 2 });
    expect(p1.body.conversations.map((c: { id: string }) => c.id)).toEqual([ids[4], ids[3]]);
    const p3 = await api("GET", "/conversations?page=3&limit=2", { token: me.token });
    expect(p3.body).toMatchObject({ total: 5, hasMore: false, page: 3 });
    expect(p3.body.conversations.map((c: { id: string }) => c.id)).toEqual([ids[0]]);
    const beyond = await api("GET", "/conversations?page=9&limit=2", { token: me.token });
    expect(beyond.body).toMatchObject({ conversations: [], total: 5, hasMore: false });
  });

  it("clamps large limits, and rejects non-positive or non-numeric limits, bad pages and garbage cursors with 400", async () => {
    const { me } = await fiveConversations();
    expect((await api("GET", "/conversations?page=1&limit=1000", { token: me.token })).body.limit).toBe(100);
    expect((await api("GET", "/conversations?limit=1e9", { token: me.token })).status).toBe(200);
    // Past a double's range (Infinity for Number) is still just larger than the maximum: clamped, as 1e300 is.
    for (const huge of ["1e300", "1e400", "9".repeat(400)]) {
      const res = await api("GET", `/conversations?page=1&limit=${huge}`, { token: me.token });
      expect(res.status, `limit=${huge.slice(0, 10)}`).toBe(200);
      expect(res.body.limit).toBe(100);
    }
    const one = await api("GET", "/conversations?page=1&limit=1", { token: me.token });
    expect(one.body).toMatchObject({ limit: 1, hasMore: true });
    expect(one.body.conversations).toHaveLength(1);
    const garbage = [
      "limit=abc",
      "limit=0",
      "limit=-5",
      "limit=-1",
      "limit=NaN",
      "limit=Infinity",
      "limit=1e-400",
      "limit=%205",
      "limit=5abc",
      "limit=0x10",
      "page=0",
      "page=x",
      "cursor=garbage",
      `cursor=${b64url([1, 2])}`,
      `cursor=${b64url(["2026-02-31T00:00:00.000000Z", crypto.randomUUID()])}`,
      `cursor=${b64url(["2026-01-01T00:00:00.000000Z", "x"])}`,
      `cursor=${b64url(["2026-01-01T00:00:00.000000Z", crypto.randomUUID(), "extra"])}`,
      "cursor=%F0%9F%98%80",
      "page=1&cursor=abc",
    ];
    for (const q of garbage) expectErrorShape(await api("GET", `/conversations?${q}`, { token: me.token }), 400);
  });

  it("lists only conversations the caller is an active participant of", async () => {
    const [me, a, b, c] = await users(4);
    const kept = await direct(me, a);
    const left = await group(b, [me, c]);
    const foreign = await direct(b, c);
    await api("DELETE", `/conversations/${left}/participants/${me.id}`, { token: me.token });
    const res = await api("GET", "/conversations", { token: me.token });
    expect(res.body.conversations.map((x: { id: string }) => x.id)).toEqual([kept]);
    expect(foreign).not.toBe(kept);
  });
});

describe("authorisation on every conversation route", () => {
  // userId doubles as the message id: any UUID will do, a non-member is refused before the message is looked up.
  const routes = (id: string, userId: string): [string, string, unknown?][] => [
    ["GET", `/conversations/${id}`],
    ["PATCH", `/conversations/${id}`, { name: "x" }],
    ["POST", `/conversations/${id}/participants`, { userId }],
    ["DELETE", `/conversations/${id}/participants/${userId}`],
    ["PUT", `/conversations/${id}/participants/${userId}/role`, { role: "admin" }],
    ["PUT", `/conversations/${id}/mute`, { isMuted: true }],
    ["PUT", `/conversations/${id}/read`, {}],
    ["GET", `/conversations/${id}/unread-count`],
    ["GET", `/conversations/${id}/read-receipts`],
    ["POST", `/conversations/${id}/messages`, { content: "x" }],
    ["GET", `/conversations/${id}/messages`],
    ["GET", `/conversations/${id}/messages/search?q=x`],
    ["GET", `/conversations/${id}/messages/${userId}`],
    ["PATCH", `/conversations/${id}/messages/${userId}`, { content: "x" }],
    ["DELETE", `/conversations/${id}/messages/${userId}`],
  ];

  it("answers 404 Conversation not found to a non-member, for unknown and for malformed ids", async () => {
    const [a, b, c, stranger] = await users(4);
    const id = await group(a, [b, c]);
    for (const target of [id, crypto.randomUUID(), "not-a-uuid"]) {
      for (const [method, path, body] of routes(target, b.id)) {
        const res = await api(method, path, { token: stranger.token, body });
        expect(res.status, `${method} ${path}`).toBe(404);
        expectErrorShape(res, 404);
        expect(res.body.message).toBe("Conversation not found");
      }
    }
    // Nothing changed.
    const seen = await get(id, a);
    expect(seen.body.participants).toHaveLength(3);
  });

  it("answers 401 without a token, before looking at the body", async () => {
    const id = crypto.randomUUID();
    const all: [string, string, unknown?][] = [
      ...routes(id, id),
      ["POST", "/conversations/direct", { bogus: 1 }],
      ["POST", "/conversations/group", {}],
      ["POST", "/conversations/business", {}],
      ["GET", "/conversations"],
      ["GET", "/notifications/unread-counts"],
      ["PUT", "/notifications/mark-all-read"],
      ["POST", `/conversations/${id}/messages`, { bogus: 1 }],
      ["GET", `/conversations/${id}/messages?limit=abc&before=1&after=1`],
      ["GET", `/conversations/${id}/messages/search`],
      ["GET", `/conversations/not-a-uuid/messages/not-a-uuid`],
      ["PATCH", `/conversations/${id}/messages/${id}`, {}],
      ["GET", "/messages/search"],
      ["GET", "/messages/search?q=x&cursor=garbage"],
    ];
    for (const [method, path, body] of all) expectErrorShape(await api(method, path, { body }), 401);
  });

  it("documents every route with bearer security", async () => {
    const doc = await api("GET", "/openapi.json");
    const paths = doc.body.paths as Record<string, Record<string, { security?: unknown }>>;
    const expected = [
      "/conversations/direct",
      "/conversations/group",
      "/conversations/business",
      "/conversations",
      "/conversations/{id}",
      "/conversations/{id}/participants",
      "/conversations/{id}/participants/{userId}",
      "/conversations/{id}/participants/{userId}/role",
      "/conversations/{id}/mute",
      "/conversations/{id}/read",
      "/conversations/{id}/unread-count",
      "/conversations/{id}/read-receipts",
      "/notifications/unread-counts",
      "/notifications/mark-all-read",
      "/conversations/{id}/messages",
      "/conversations/{id}/messages/search",
      "/conversations/{id}/messages/{messageId}",
      "/messages/search",
    ];
    for (const p of expected) {
      expect(paths[p], p).toBeDefined();
      for (const [m, op] of Object.entries(paths[p])) expect(op.security, `${m} ${p}`).toEqual([{ bearerAuth: [] }]);
    }
  });
});
