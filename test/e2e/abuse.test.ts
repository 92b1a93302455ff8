import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { SignJWT } from "jose";
import WebSocket from "ws";
import { LOCAL_JWT_SECRET, LOCAL_PROFILE_TOKEN } from "../../scripts/lib/stack";
import { normalizeContent } from "../../src/domain/content";
import { verifyToken } from "../../src/lib/jwt";
import { BASE, Client, login, pool, seedConversation, sleep, WS_BASE, type User } from "./harness";

/**
 * Abuse: strangers, forged tokens, mass assignment, hostile content and queries, oversized and deeply nested input,
 * floods and pagination tricks. Every answer is a clear 4xx (never 5xx), and nothing changes that should not.
 */

interface Raw {
  status: number;
  headers: Headers;
  text: string;
  json: any;
}

async function raw(
  method: string,
  path: string,
  opts: { token?: string; body?: unknown; text?: string; headers?: Record<string, string> } = {},
): Promise<Raw> {
  const headers: Record<string, string> = { ...opts.headers };
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  let body: string | undefined = opts.text;
  if (opts.body !== undefined) body = JSON.stringify(opts.body);
  if (body !== undefined && !headers["content-type"]) headers["content-type"] = "application/json";
  const res = await fetch(`${BASE}${path}`, { method, headers, body });
  const text = await res.text();
  let json: unknown;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json };
}

function expectError(res: Raw, status: number, label = ""): void {
  expect(res.status, `${label} → ${res.status} ${res.text.slice(0, 200)}`).toBe(status);
  expect(res.json, label).toMatchObject({ statusCode: status, error: expect.any(String), requestId: expect.any(String) });
  expect(res.headers.get("content-type"), label).toMatch(/^application\/json/);
  expect(res.headers.get("x-content-type-options"), label).toBe("nosniff");
}

const open: (Client | WebSocket)[] = [];
afterEach(() => {
  for (const c of open.splice(0)) c instanceof Client ? c.terminate() : c.terminate();
});

async function connect(conversationId: string, user: User, query = ""): Promise<Client> {
  const c = await Client.connect(`/conversations/${conversationId}/ws${query}`, user.token);
  open.push(c);
  await c.next("ready");
  return c;
}

/** Everything a stranger's request could change about these conversations and users, as comparable text. */
async function snapshot(conversationIds: string[], userIds: string[]): Promise<Record<string, unknown>> {
  const db = pool();
  try {
    const q = async (text: string, params: unknown[]) => (await db.query(text, params)).rows;
    return {
      conversations: await q(
        "SELECT id, type, name, last_seq FROM conversations WHERE id = ANY($1::uuid[]) OR created_by = ANY($2::uuid[]) ORDER BY id",
        [conversationIds, userIds],
      ),
      participants: await q(
        `SELECT conversation_id, user_id, role, left_at, is_muted, last_read_seq, last_delivered_seq FROM participants
         WHERE conversation_id = ANY($1::uuid[]) OR user_id = ANY($2::uuid[]) ORDER BY conversation_id, user_id`,
        [conversationIds, userIds],
      ),
      messages: await q(
        "SELECT id, conversation_id, seq, sender_id, content, edited_at, deleted_at FROM messages WHERE conversation_id = ANY($1::uuid[]) OR sender_id = ANY($2::uuid[]) ORDER BY conversation_id, seq",
        [conversationIds, userIds],
      ),
      audit: await q("SELECT count(*)::int AS n FROM audit_log WHERE conversation_id = ANY($1::uuid[]) OR actor_id = ANY($2::uuid[])", [
        conversationIds,
        userIds,
      ]),
    };
  } finally {
    await db.end();
  }
}

async function pgCount(text: string, params: unknown[]): Promise<number> {
  const db = pool();
  try {
    return Number((await db.query<{ n: string }>(text, params)).rows[0]?.n ?? 0);
  } finally {
    await db.end();
  }
}

/** Sends over a socket and waits for the ack (messages exist before the abuse starts). */
async function sendWs(c: Client, content: string, cmid: string) {
  return (await c.request("send_message", { content, clientMessageId: cmid }, "message_ack")).data.message;
}

/** Resolves with the HTTP status of a refused upgrade, or 101. */
function upgradeStatus(path: string, headers: Record<string, string> = {}): Promise<number> {
  return Client.refused(path, undefined, headers);
}

// ── shared fixture: a group with history, and a stranger ────────────────────────────────────────────────────
let admin: User, member: User, third: User, stranger: User;
let group: string;
let strangersOwn: string;
let messageIds: string[] = [];

beforeAll(async () => {
  [admin, member, third, stranger] = [await login("ab-admin"), await login("ab-member"), await login("ab-third"), await login("ab-stranger")];
  group = await seedConversation("group", [admin, member, third]);
  strangersOwn = await seedConversation("direct", [stranger, await login("ab-friend")]);
  const c = await connect(group, admin);
  messageIds = [];
  for (let i = 0; i < 3; i++) messageIds.push((await sendWs(c, `secret group message ${i} zebraquartz`, `ab-${i}`)).id);
  c.terminate();
});

afterAll(() => {
  for (const c of open.splice(0)) c.terminate();
});

describe("a non-member", () => {
  it("gets 404 from every conversation route and the socket, indistinguishable from an unknown id, and changes nothing", async () => {
    const before = await snapshot([group], [stranger.id]);
    const m = messageIds[0];
    const t = stranger.token;
    const routes: [string, string, unknown?][] = [
      ["GET", `/conversations/${group}`],
      ["PATCH", `/conversations/${group}`, { name: "pwned" }],
      ["POST", `/conversations/${group}/participants`, { userId: stranger.id }],
      ["DELETE", `/conversations/${group}/participants/${member.id}`],
      ["DELETE", `/conversations/${group}/participants/${stranger.id}`],
      ["PUT", `/conversations/${group}/participants/${member.id}/role`, { role: "admin" }],
      ["PUT", `/conversations/${group}/participants/${stranger.id}/role`, { role: "admin" }],
      ["PUT", `/conversations/${group}/mute`, { isMuted: true }],
      ["PUT", `/conversations/${group}/read`, {}],
      ["PUT", `/conversations/${group}/read`, { seq: 2 }],
      ["GET", `/conversations/${group}/unread-count`],
      ["GET", `/conversations/${group}/read-receipts`],
      ["POST", `/conversations/${group}/messages`, { content: "let me in" }],
      ["POST", `/conversations/${group}/messages`, { content: "let me in", clientMessageId: "ab-0" }],
      ["GET", `/conversations/${group}/messages`],
      ["GET", `/conversations/${group}/messages?page=1&limit=10`],
      ["GET", `/conversations/${group}/messages?after=0`],
      ["GET", `/conversations/${group}/messages/search?q=zebraquartz`],
      ["GET", `/conversations/${group}/messages/${m}`],
      ["PATCH", `/conversations/${group}/messages/${m}`, { content: "edited by a stranger" }],
      ["DELETE", `/conversations/${group}/messages/${m}`],
    ];
    const unknown = crypto.randomUUID();
    for (const [method, path, body] of routes) {
      const res = await raw(method, path, { token: t, body });
      expectError(res, 404, `${method} ${path}`);
      // Same answer for a conversation that does not exist: no existence oracle.
      const ghost = await raw(method, path.replace(group, unknown), { token: t, body });
      expect(ghost.status, `${method} ${path} (unknown id)`).toBe(404);
      expect(ghost.json.message, `${method} ${path}`).toEqual(res.json.message);
    }
    expect(await upgradeStatus(`/conversations/${group}/ws`, { authorization: `Bearer ${t}` })).toBe(404);
    const ticket = await raw("POST", "/realtime/tickets", { token: t });
    expect(ticket.status).toBe(200);
    expect(await upgradeStatus(`/conversations/${group}/ws?ticket=${ticket.json.ticket}`)).toBe(404);

    // Cross-conversation: the stranger's own conversation path, the group's message id.
    const mine = strangersOwn;
    for (const [method, path, body] of [
      ["GET", `/conversations/${mine}/messages/${m}`],
      ["PATCH", `/conversations/${mine}/messages/${m}`, { content: "via my own room" }],
      ["DELETE", `/conversations/${mine}/messages/${m}`],
      ["PUT", `/conversations/${mine}/read`, { messageId: m }],
    ] as [string, string, unknown?][]) {
      expectError(await raw(method, path, { token: t, body }), 404, `${method} ${path}`);
    }
    const reply = await raw("POST", `/conversations/${mine}/messages`, { token: t, body: { content: "re", replyToId: m } });
    expectError(reply, 400, "reply to a message of another conversation");
    expect(reply.text).not.toContain("zebraquartz");

    // Lists and global search never show the group.
    const found = await raw("GET", "/messages/search?q=zebraquartz", { token: t });
    expect(found.status).toBe(200);
    expect(found.json.messages).toEqual([]);
    const list = await raw("GET", "/conversations?limit=100", { token: t });
    expect(list.status).toBe(200);
    expect(list.json.conversations.map((x: { id: string }) => x.id)).not.toContain(group);
    const counts = await raw("GET", "/notifications/unread-counts", { token: t });
    expect(Object.keys(counts.json.unreadCounts ?? {})).not.toContain(group);

    await sleep(300);
    expect(await snapshot([group], [stranger.id])).toEqual(before);
  });

  it("a member who leaves is cut off at once: nothing more reaches their socket, then 404 everywhere", async () => {
    const [a, b, c] = [await login("lv-a"), await login("lv-b"), await login("lv-c")];
    const id = await seedConversation("group", [a, b, c]);
    const cb = await connect(id, b);
    const ca = await connect(id, a);
    await sendWs(ca, "before", "lv-1");
    await cb.next("new_message");
    const left = await raw("DELETE", `/conversations/${id}/participants/${b.id}`, { token: b.token });
    expect(left.status).toBe(204);
    expect(await upgradeStatus(`/conversations/${id}/ws`, { authorization: `Bearer ${b.token}` })).toBe(404);
    expectError(await raw("POST", `/conversations/${id}/messages`, { token: b.token, body: { content: "still here?" } }), 404);
    expectError(await raw("GET", `/conversations/${id}/messages`, { token: b.token }), 404);
    // Frames from the old socket are not acted upon either.
    if (!cb.closed) cb.send("send_message", { content: "sneaky", clientMessageId: "lv-sneak" });
    await sendWs(ca, "after", "lv-2");
    await sleep(500);
    // (The 4403 close itself is covered by realtime.test.ts; what matters here is that nothing leaks to b.)
    expect(cb.all("new_message").map((f) => f.data.message.content)).toEqual(["before"]);
    expect(await pgCount("SELECT count(*) AS n FROM messages WHERE conversation_id = $1 AND sender_id = $2", [id, b.id])).toBe(0);
  });
});

describe("tokens", () => {
  const id = "3f1c2a52-8e43-4c4b-9a3e-7e2d2f0b1a11";
  const future = () => Math.floor(Date.now() / 1000) + 600;
  const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString("base64url");
  const sign = (claims: Record<string, unknown>, secret = LOCAL_JWT_SECRET, alg = "HS256", header: Record<string, unknown> = {}) =>
    new SignJWT(claims).setProtectedHeader({ alg, ...header }).sign(new TextEncoder().encode(secret));

  async function forged(): Promise<Record<string, string>> {
    const good = await sign({ id, kahaId: "k", exp: future() });
    const [h, p] = good.split(".");
    return {
      algNone: `${b64({ alg: "none", typ: "JWT" })}.${b64({ id, kahaId: "k", exp: future() })}.`,
      algNoneUpper: `${b64({ alg: "NONE", typ: "JWT" })}.${b64({ id, kahaId: "k", exp: future() })}.`,
      algNoneWithSig: `${b64({ alg: "none" })}.${p}.${good.split(".")[2]}`,
      wrongKey: await sign({ id, kahaId: "k", exp: future() }, "another-secret-that-is-long-enough-000000"),
      expired: await sign({ id, kahaId: "k", exp: Math.floor(Date.now() / 1000) - 5 }),
      notYetValid: await sign({ id, kahaId: "k", exp: future(), nbf: future() }),
      noExp: await sign({ id, kahaId: "k" }),
      noId: await sign({ kahaId: "k", exp: future() }),
      idNotUuid: await sign({ id: "1 OR 1=1", kahaId: "k", exp: future() }),
      noKahaId: await sign({ id, exp: future() }),
      emptyKahaId: await sign({ id, kahaId: "", exp: future() }),
      hs512: await sign({ id, kahaId: "k", exp: future() }, LOCAL_JWT_SECRET, "HS512"),
      rs256Header: `${b64({ alg: "RS256", typ: "JWT" })}.${p}.${good.split(".")[2]}`,
      tamperedPayload: `${h}.${b64({ id, kahaId: "k", exp: future(), role: "admin" })}.${good.split(".")[2]}`,
      truncated: good.slice(0, -5),
      twoParts: `${h}.${p}`,
      garbage: "not.a.jwt",
      hugeClaims: await sign({ id, kahaId: "k".repeat(5000), exp: future() }),
    };
  }

  it("forged, expired and incomplete tokens get 401 on REST, tickets and both sockets", async () => {
    const g = group;
    for (const [label, token] of Object.entries(await forged())) {
      for (const [method, path] of [
        ["GET", "/auth/me"],
        ["GET", `/conversations/${g}`],
        ["POST", `/conversations/${g}/messages`],
        ["POST", "/realtime/tickets"],
        ["GET", "/conversations"],
      ]) {
        const res = await raw(method, path, { token, body: method === "POST" ? { content: "x" } : undefined });
        if (path === "/realtime/tickets") expect(res.status, `${label} ${method} ${path}`).toBe(401);
        else expectError(res, 401, `${label} ${method} ${path}`);
      }
      expect(await upgradeStatus(`/conversations/${g}/ws`, { authorization: `Bearer ${token}` }), label).toBe(401);
      expect(await upgradeStatus("/ws", { authorization: `Bearer ${token}` }), label).toBe(401);
    }
  });

  it("tokens never work from URLs, odd headers or used tickets", async () => {
    const t = admin.token;
    for (const q of [`?token=${t}`, `?access_token=${t}`, `?authorization=Bearer%20${t}`, "?ticket=", "?ticket=00", `?ticket=${"a".repeat(48)}`]) {
      expect(await upgradeStatus(`/conversations/${group}/ws${q}`), q).toBe(401);
    }
    for (const header of [`Basic ${t}`, `Bearer`, `Bearer  `, t, `Bearer ${t} extra`, `bearer\t${t}x`]) {
      expectError(await raw("GET", "/auth/me", { headers: { authorization: header } }), 401, header.slice(0, 20));
    }
    const ticket = (await raw("POST", "/realtime/tickets", { token: t })).json.ticket as string;
    const c = await Client.connect(`/conversations/${group}/ws?ticket=${ticket}`);
    open.push(c);
    await c.next("ready");
    expect(await upgradeStatus(`/conversations/${group}/ws?ticket=${ticket}`)).toBe(401);
    expect(await upgradeStatus(`/ws?ticket=${ticket}`)).toBe(401);
  });

  it("a ticket lives no longer than its token, and a token with a fractional exp gets one", async () => {
    const me = await login("tkexp");
    const conv = await seedConversation("direct", [me, await login("tkexp-b")]);
    const soon = await sign({ id: me.id, kahaId: me.kahaId, exp: Math.floor(Date.now() / 1000) + 2 });
    const ticket = (await raw("POST", "/realtime/tickets", { token: soon })).json.ticket as string;
    await sleep(3200);
    expectError(await raw("GET", "/auth/me", { token: soon }), 401, "the token has expired");
    // Before, the ticket opened both sockets for another 10 s (until the object's alarm closed them).
    expect(await upgradeStatus(`/conversations/${conv}/ws?ticket=${ticket}`)).toBe(401);
    const fractional = await sign({ id: me.id, kahaId: me.kahaId, exp: Math.floor(Date.now() / 1000) + 600.5 });
    const issued = await raw("POST", "/realtime/tickets", { token: fractional });
    expect(issued.status).toBe(200);
    const c = await Client.connect(`/ws?ticket=${issued.json.ticket}`);
    open.push(c);
    await c.next("connected");
  });

  it("issuer and audience are enforced when configured (verifyToken with JWT_ISSUER / JWT_AUDIENCE settings)", async () => {
    const settings = { secret: LOCAL_JWT_SECRET, issuer: "https://id.example.test", audience: "edge-chat", requireExp: true };
    const base = { id, kahaId: "k", exp: future() };
    const ok = await sign({ ...base, iss: settings.issuer, aud: settings.audience });
    await expect(verifyToken(ok, settings)).resolves.toMatchObject({ id, kahaId: "k" });
    const bad: Record<string, string> = {
      wrongIssuer: await sign({ ...base, iss: "https://evil.example", aud: settings.audience }),
      noIssuer: await sign({ ...base, aud: settings.audience }),
      wrongAudience: await sign({ ...base, iss: settings.issuer, aud: "another-service" }),
      noAudience: await sign({ ...base, iss: settings.issuer }),
      audienceList: await sign({ ...base, iss: settings.issuer, aud: ["another-service", "more"] }),
      issuerCase: await sign({ ...base, iss: settings.issuer.toUpperCase(), aud: settings.audience }),
    };
    for (const [label, token] of Object.entries(bad)) {
      await expect(verifyToken(token, settings), label).rejects.toMatchObject({ status: 401 });
    }
    // Without an issuer configured, an iss claim is just a claim (the running stack sets none).
    await expect(verifyToken(bad.wrongIssuer, { ...settings, issuer: undefined, audience: undefined })).resolves.toMatchObject({ id });
    // JWT_REQUIRE_EXP=false accepts a token without exp, but never an expired one.
    await expect(verifyToken(await sign({ id, kahaId: "k" }), { ...settings, issuer: undefined, audience: undefined, requireExp: false })).resolves.toMatchObject({ id });
    await expect(
      verifyToken(await sign({ id, kahaId: "k", exp: Math.floor(Date.now() / 1000) - 5 }), { secret: LOCAL_JWT_SECRET, requireExp: false }),
    ).rejects.toMatchObject({ status: 401 });
  });
});

describe("mass assignment", () => {
  /** Server-owned or privileged fields, added to every body. __proto__ and constructor go in as raw JSON keys. */
  const EXTRA: Record<string, string> = {
    senderId: '"3f1c2a52-8e43-4c4b-9a3e-7e2d2f0b1a11"',
    seq: "7",
    role: '"admin"',
    __proto__: '{"role":"admin","isAdmin":true}',
    constructor: '{"prototype":{"isAdmin":true}}',
    id: '"3f1c2a52-8e43-4c4b-9a3e-7e2d2f0b1a11"',
    createdAt: '"2000-01-01T00:00:00Z"',
  };
  const withExtra = (body: Record<string, unknown>, key: string) => {
    const json = JSON.stringify(body);
    return `${json.slice(0, -1)}${json.length > 2 ? "," : ""}"${key}":${EXTRA[key]}}`;
  };

  it("every body with a server-owned field is a 400 and nothing is stored", async () => {
    const [a, b, c] = [await login("ma-a"), await login("ma-b"), await login("ma-c")];
    const id = await seedConversation("group", [a, b, c]);
    const ca = await connect(id, a);
    const m = await sendWs(ca, "original", "ma-0");
    const before = await snapshot([id], [a.id, b.id, c.id]);
    const ticketsBefore = await pgCount("SELECT count(*) AS n FROM realtime_tickets WHERE user_id = $1", [a.id]);
    const kahaId = `ma-login-${Date.now()}`;
    const cases: { method: string; path: string; body: Record<string, unknown>; token?: string; skip?: string[] }[] = [
      { method: "POST", path: "/conversations/direct", body: { targetUserId: b.id } },
      { method: "POST", path: "/conversations/group", body: { participantIds: [b.id, c.id], name: "g" } },
      { method: "POST", path: "/conversations/business", body: { businessId: crypto.randomUUID() } },
      { method: "PATCH", path: `/conversations/${id}`, body: { name: "renamed" } },
      { method: "POST", path: `/conversations/${id}/participants`, body: { userId: crypto.randomUUID() }, skip: ["role"] },
      { method: "PUT", path: `/conversations/${id}/participants/${b.id}/role`, body: { role: "admin" }, skip: ["role"] },
      { method: "PUT", path: `/conversations/${id}/mute`, body: { isMuted: true } },
      { method: "PUT", path: `/conversations/${id}/read`, body: {}, skip: ["seq"] },
      { method: "POST", path: `/conversations/${id}/messages`, body: { content: "mass", clientMessageId: "ma-x" } },
      { method: "PATCH", path: `/conversations/${id}/messages/${m.id}`, body: { content: "mass edit" } },
      { method: "POST", path: "/auth/dev-login", body: { kahaId } },
      { method: "POST", path: "/profiles/invalidate", body: { user_uuids: [a.id] }, token: LOCAL_PROFILE_TOKEN },
    ];
    for (const k of cases) {
      for (const key of Object.keys(EXTRA)) {
        if (k.skip?.includes(key)) continue;
        const res = await raw(k.method, k.path, { token: k.token ?? a.token, text: withExtra(k.body, key) });
        expectError(res, 400, `${k.method} ${k.path} +${key}`);
      }
    }
    // Frames: the same fields on send_message are refused with an error frame and store nothing.
    for (const key of Object.keys(EXTRA)) {
      const text = `{"type":"send_message","id":"ma-${key}","data":${withExtra({ content: "frame mass", clientMessageId: `ma-f-${key}` }, key)}}`;
      ca.raw(text);
      const err = await ca.next("error", (f) => f.id === `ma-${key}`);
      expect(err.data.code, key).toBe("invalid_frame");
    }
    // A ticket request with a body cannot choose its role either.
    const ticket = await raw("POST", "/realtime/tickets", { token: a.token, text: '{"role":"admin","userId":"3f1c2a52-8e43-4c4b-9a3e-7e2d2f0b1a11"}' });
    expect([200, 400]).toContain(ticket.status);
    if (ticket.status === 200) {
      const rows = await pool().query("SELECT user_id, role FROM realtime_tickets WHERE ticket = $1", [ticket.json.ticket]);
      expect(rows.rows).toEqual([{ user_id: a.id, role: null }]);
    }
    await sleep(300);
    expect(await snapshot([id], [a.id, b.id, c.id])).toEqual(before);
    expect(await pgCount("SELECT count(*) AS n FROM users WHERE kaha_id = $1", [kahaId])).toBe(0);
    expect(await pgCount("SELECT count(*) AS n FROM realtime_tickets WHERE user_id = $1", [a.id])).toBeLessThanOrEqual(ticketsBefore + 1);
    expect(({} as Record<string, unknown>).isAdmin).toBeUndefined();
  });
});

describe("hostile content", () => {
  const XSS = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(document.cookie)>',
    "<svg/onload=alert(1)>",
    "javascript:alert(1)",
    '<a href="jav&#x09;ascript:alert(1)">click</a>',
    "<iframe srcdoc=\"<script>parent.alert(1)</script>\"></iframe>",
    "</script><script>alert(1)</script>",
    "{{constructor.constructor('alert(1)')()}}",
    "${alert(1)}",
    "';alert(String.fromCharCode(88,83,83))//",
    "<style>@import 'https://evil.example/x.css';</style>",
    "<!--<img src=x onerror=alert(1)>-->",
    "%3Cscript%3Ealert(1)%3C%2Fscript%3E",
    "&lt;script&gt;alert(1)&lt;/script&gt;",
    "[click](javascript:alert(1))",
    "<math><mi xlink:href=\"javascript:alert(1)\">x</mi></math>",
    "\u202e<script>gnp.exe</script>",
    "<img src=\"x\" onerror=\"&#97;&#108;&#101;&#114;&#116;(1)\">",
    "<body onload=alert(1)>\n<div style=\"background:url(javascript:alert(1))\">",
    "\\u003cscript\\u003ealert(1)\\u003c/script\\u003e",
  ];

  it("an XSS corpus is stored and returned verbatim, always as JSON with nosniff", async () => {
    const [a, b] = [await login("xss-a"), await login("xss-b")];
    const id = await seedConversation("direct", [a, b]);
    const ca = await connect(id, a);
    const cb = await connect(id, b);
    const marker = `xq${Date.now().toString(36)}`;
    for (const [i, payload] of XSS.entries()) {
      const content = `${payload} ${marker}`;
      const expected = normalizeContent(content);
      expect(expected.ok).toBe(true);
      const want = (expected as { content: string }).content;
      let msgId: string;
      if (i % 2 === 0) {
        const res = await raw("POST", `/conversations/${id}/messages`, { token: a.token, body: { content, clientMessageId: `x${i}` } });
        expect(res.status).toBe(201);
        expect(res.headers.get("content-type")).toMatch(/^application\/json/);
        expect(res.headers.get("x-content-type-options")).toBe("nosniff");
        expect(res.json.content).toBe(want);
        msgId = res.json.id;
      } else {
        const m = await sendWs(ca, content, `x${i}`);
        expect(m.content).toBe(want);
        msgId = m.id;
      }
      const live = await cb.next("new_message", (f) => f.data.message.id === msgId);
      expect(live.data.message.content).toBe(want);
      const one = await raw("GET", `/conversations/${id}/messages/${msgId}`, { token: b.token });
      expect(one.headers.get("content-type")).toMatch(/^application\/json/);
      expect(one.headers.get("x-content-type-options")).toBe("nosniff");
      expect(one.json.content).toBe(want);
    }
    const page = await raw("GET", `/conversations/${id}/messages?limit=100`, { token: b.token });
    expect(page.json.messages.map((m: { content: string }) => m.content)).toEqual(
      XSS.map((p) => (normalizeContent(`${p} ${marker}`) as { content: string }).content),
    );
    // Search returns them as data too.
    const found = await raw("GET", `/conversations/${id}/messages/search?q=${marker}&limit=100`, { token: b.token });
    expect(found.status).toBe(200);
    expect(found.json.messages).toHaveLength(XSS.length);
    expect(found.headers.get("content-type")).toMatch(/^application\/json/);
    // A group name and error messages that echo input are JSON as well.
    const echo = await raw("DELETE", `/health?<script>alert(1)</script>`);
    expect(echo.headers.get("content-type")).toMatch(/^application\/json/);
    expect(echo.headers.get("x-content-type-options")).toBe("nosniff");
    const path = await raw("GET", `/conversations/%3Cscript%3Ealert(1)%3C%2Fscript%3E`, { token: a.token });
    expectError(path, 404, "script in a path");
  });

  it("search with SQL and tsquery metacharacters never fails and never leaks other conversations", async () => {
    const [a, b] = [await login("sq-a"), await login("sq-b")];
    const id = await seedConversation("direct", [a, b]);
    const ca = await connect(id, a);
    await sendWs(ca, "ordinary words 100% of_the & | ! ( ) : * ' \" \\ here", "sq-1");
    // The group's "zebraquartz" messages must never come back to these users.
    const qs = [
      "' OR 1=1 --",
      "zebraquartz' OR '1'='1",
      "'; DROP TABLE messages; --",
      "zebraquartz') OR true --",
      "\") OR 1=1 --",
      "a & b",
      "a | b",
      "!a",
      "a:*",
      "zebra:*",
      "(a",
      "a <-> b",
      "a <2> b",
      "a:A",
      "a:*B",
      "&&&",
      "|||",
      "!!!",
      "'",
      "''",
      "\\",
      "\\'",
      "%",
      "_",
      "%%",
      "*",
      ":*",
      "$$ $$",
      "$1",
      "\u0000",
      "\u0000zebraquartz",
      "' UNION SELECT content FROM messages --",
      "zebraquartz/**/OR/**/1=1",
      "-- comment",
      "/*",
      "😀".repeat(100),
      "x".repeat(600),
      " ",
      "",
    ];
    // Already percent-encoded: broken escapes and byte sequences that are not UTF-8.
    const rawQs = ["%", "%E0%A4%A", "%ED%A0%80", "%C0%AF", "%FF%FE", "%25%", "a%00b"];
    for (const q of rawQs) {
      for (const path of [`/messages/search?q=${q}`, `/conversations/${id}/messages/search?q=${q}`]) {
        const res = await raw("GET", path, { token: a.token });
        expect([200, 400], `${path} → ${res.status} ${res.text.slice(0, 120)}`).toContain(res.status);
      }
    }
    const countBefore = await pgCount("SELECT count(*) AS n FROM messages WHERE conversation_id = $1", [group]);
    for (const q of qs) {
      for (const path of [`/messages/search?q=${encodeURIComponent(q)}`, `/conversations/${id}/messages/search?q=${encodeURIComponent(q)}`]) {
        const res = await raw("GET", path, { token: a.token });
        expect([200, 400], `${path} → ${res.status} ${res.text.slice(0, 120)}`).toContain(res.status);
        if (res.status === 200) {
          for (const m of res.json.messages) expect(m.conversationId, `${q} leaked`).toBe(id);
        }
      }
    }
    expect(await pgCount("SELECT count(*) AS n FROM messages WHERE conversation_id = $1", [group])).toBe(countBefore);
  });
});

describe("oversized and deeply nested input", () => {
  it("bodies over 64 KiB are 413 on every write route", async () => {
    const [a, b, c] = [await login("big-a"), await login("big-b"), await login("big-c")];
    const id = await seedConversation("group", [a, b, c]);
    const big = JSON.stringify({ content: "x".repeat(70_000) });
    const routes: [string, string][] = [
      ["POST", `/conversations/${id}/messages`],
      ["PATCH", `/conversations/${id}/messages/${crypto.randomUUID()}`],
      ["POST", "/conversations/direct"],
      ["POST", "/conversations/group"],
      ["POST", "/conversations/business"],
      ["PATCH", `/conversations/${id}`],
      ["POST", `/conversations/${id}/participants`],
      ["PUT", `/conversations/${id}/participants/${b.id}/role`],
      ["PUT", `/conversations/${id}/mute`],
      ["PUT", `/conversations/${id}/read`],
      ["POST", "/auth/dev-login"],
      ["POST", "/realtime/tickets"],
    ];
    for (const [method, path] of routes) expectError(await raw(method, path, { token: a.token, text: big }), 413, `${method} ${path}`);
    // A chunked upload (no Content-Length) is limited by hono's bodyLimit on the bytes read, but through wrangler
    // dev's local proxy such a request can hang the client; it is not exercised here (see docs/reliability.md).
    expect(await pgCount("SELECT count(*) AS n FROM messages WHERE conversation_id = $1", [id])).toBe(0);
  });

  it("frames over 64 KiB close both sockets with 1009; a large valid-size frame is just an error", async () => {
    const [a, b] = [await login("frm-a"), await login("frm-b")];
    const id = await seedConversation("direct", [a, b]);
    const ca = await connect(id, a);
    ca.send("send_message", { content: "y".repeat(60_000), clientMessageId: "near-limit" }, "n1");
    expect((await ca.next("error", (f) => f.id === "n1")).data.code).toBeTruthy();
    expect((await ca.request("heartbeat", {}, "heartbeat_ack")).type).toBe("heartbeat_ack");
    ca.raw(Buffer.from("x".repeat(70_000)).toString());
    expect((await ca.waitClosed()).code).toBe(1009);
    const ua = await Client.connect("/ws", a.token);
    open.push(ua);
    await ua.next("connected");
    ua.raw(JSON.stringify({ type: "heartbeat", data: { pad: "z".repeat(70_000) } }));
    expect((await ua.waitClosed()).code).toBe(1009);
    // Bytes, not characters: 30,000 "€" are 90,000 bytes on the wire (the user socket counted 30,000 and parsed it).
    const ub = await Client.connect("/ws", a.token);
    open.push(ub);
    await ub.next("connected");
    ub.raw(JSON.stringify({ type: "heartbeat", data: { pad: "€".repeat(30_000) } }));
    expect((await ub.waitClosed()).code).toBe(1009);
    // A binary frame over the limit too.
    const cb = await connect(id, b);
    cb.raw(Buffer.alloc(70_000, 1));
    expect((await cb.waitClosed()).code).toBe(1009);
  });

  it("10,000-deep JSON is a 400 on REST and an error frame on sockets, never a 5xx or a crash", async () => {
    const [a, b] = [await login("deep-a"), await login("deep-b")];
    const id = await seedConversation("direct", [a, b]);
    const arrays = (n: number) => "[".repeat(n) + "]".repeat(n);
    const objects = (n: number) => '{"a":'.repeat(n) + "1" + "}".repeat(n);
    const bodies = [
      arrays(10_000),
      objects(10_000),
      `{"content":${arrays(10_000)}}`,
      `{"content":"x","clientMessageId":${objects(5000)}}`,
      arrays(30_000),
    ];
    for (const [i, text] of bodies.entries()) {
      for (const [method, path] of [
        ["POST", `/conversations/${id}/messages`],
        ["PUT", `/conversations/${id}/read`],
        ["POST", "/conversations/group"],
        ["POST", "/auth/dev-login"],
      ]) {
        const res = await raw(method, path, { token: a.token, text });
        expect([400, 413], `body ${i} ${method} ${path} → ${res.status}`).toContain(res.status);
      }
    }
    const ca = await connect(id, a);
    const ua = await Client.connect("/ws", a.token);
    open.push(ua);
    await ua.next("connected");
    for (const text of [arrays(10_000), `{"type":"send_message","data":${objects(10_000)}}`, `{"type":${arrays(5000)}}`, arrays(30_000)]) {
      ca.raw(text);
      ua.raw(text);
    }
    await sleep(500);
    expect(ca.closed).toBeUndefined();
    expect(ua.closed).toBeUndefined();
    expect(ca.all("error").length).toBeGreaterThanOrEqual(4);
    await ca.request("heartbeat", {}, "heartbeat_ack");
    await ua.request("heartbeat", {}, "heartbeat_ack");
    expect((await sendWs(ca, "still alive", "deep-ok")).seq).toBe(1);
  });
});

describe("floods", () => {
  it("a frame flood gets rate_limited then 1008 on both sockets; a bystander is unaffected", async () => {
    const [a, b] = [await login("fl-a"), await login("fl-b")];
    const id = await seedConversation("direct", [a, b]);
    const bystander = await connect(id, b);
    const ca = await connect(id, a);
    for (let i = 0; i < 600; i++) ca.send("start_typing");
    expect((await ca.next("error", (f) => f.data.code === "rate_limited")).data.code).toBe("rate_limited");
    expect((await ca.waitClosed()).code).toBe(1008);
    const ua = await Client.connect("/ws", a.token);
    open.push(ua);
    await ua.next("connected");
    for (let i = 0; i < 600; i++) ua.send("heartbeat");
    expect((await ua.next("error", (f) => f.data.code === "rate_limited")).data.code).toBe("rate_limited");
    expect((await ua.waitClosed()).code).toBe(1008);
    // The room still works for everyone else.
    const again = await connect(id, a);
    await sendWs(again, "after the flood", "fl-1");
    expect((await bystander.next("new_message")).data.message.content).toBe("after the flood");
  });

  it("an upgrade flood is capped (429 per user and conversation), other users and the service carry on", async () => {
    const [a, b] = [await login("up-a"), await login("up-b")];
    const id = await seedConversation("direct", [a, b]);
    const bystander = await connect(id, b);
    const statuses = await Promise.all(
      Array.from({ length: 40 }, () =>
        new Promise<number>((resolve) => {
          const ws = new WebSocket(`${WS_BASE}/conversations/${id}/ws`, { headers: { authorization: `Bearer ${a.token}` } });
          open.push(ws);
          ws.once("open", () => resolve(101));
          ws.once("unexpected-response", (_q, res) => resolve(res.statusCode ?? 0));
          ws.once("error", () => resolve(0));
        }),
      ),
    );
    const opened = statuses.filter((s) => s === 101).length;
    expect(statuses.every((s) => s === 101 || s === 429), statuses.join(",")).toBe(true);
    expect(opened).toBeLessThanOrEqual(10);
    expect(statuses.filter((s) => s === 429).length).toBeGreaterThanOrEqual(30);
    const health = await raw("GET", "/health");
    expect(health.status).toBe(200);
    const cb = await Client.connect(`/ws`, b.token);
    open.push(cb);
    await cb.next("connected");
    const sender = await Client.connect(`/conversations/${id}/ws`, (await login("up-c")).token).catch(() => undefined);
    expect(sender).toBeUndefined(); // not a member: refused, never accepted into the room
    const res = await raw("POST", `/conversations/${id}/messages`, { token: b.token, body: { content: "still fine" } });
    expect(res.status).toBe(201);
    expect((await bystander.next("new_message")).data.message.content).toBe("still fine");
  });
});

describe("pagination abuse", () => {
  let a: User, b: User, other: User;
  let id: string, otherId: string;

  beforeAll(async () => {
    [a, b, other] = [await login("pg-a"), await login("pg-b"), await login("pg-o")];
    id = await seedConversation("direct", [a, b]);
    otherId = await seedConversation("direct", [other, await login("pg-o2")]);
    // 120 messages written straight to Postgres before the rooms are first used (they load their seq from there).
    const db = pool();
    try {
      for (const [conv, sender, word] of [
        [id, a.id, "pagemark"],
        [otherId, other.id, "pagemark"],
      ] as const) {
        const rows = Array.from({ length: 120 }, (_, i) => i + 1);
        await db.query(
          `INSERT INTO messages (id, conversation_id, seq, sender_id, type, content, created_at, event_seq)
           SELECT gen_random_uuid(), $1, s, $2, 'text', $3 || ' ' || s, now() - (121 - s) * interval '1 second', s FROM unnest($4::int[]) AS s`,
          [conv, sender, `${word} ${conv === id ? "mine" : "theirs"}`, rows],
        );
        await db.query("UPDATE conversations SET last_seq = 120 WHERE id = $1", [conv]);
      }
    } finally {
      await db.end();
    }
  });

  it("limit is clamped, negative and malformed values are 400s", async () => {
    for (const path of [`/conversations/${id}/messages`, `/conversations/${id}/messages/search`, "/messages/search", "/conversations"]) {
      const q = path.includes("search") ? "q=pagemark&" : "";
      const huge = await raw("GET", `${path}?${q}limit=1000000000`, { token: a.token });
      expect(huge.status, path).toBe(200);
      const list = huge.json.messages ?? huge.json.conversations;
      expect(list.length, path).toBeLessThanOrEqual(100);
      const clamped = await raw("GET", `${path}?${q}limit=1e9`, { token: a.token });
      expect(clamped.status, `${path} limit=1e9 → ${clamped.text.slice(0, 120)}`).toBe(200);
      // Infinity for Number, still only a large limit: clamped (it used to be a 400 while 1e300 was clamped).
      const overflow = await raw("GET", `${path}?${q}limit=1e400`, { token: a.token });
      expect(overflow.status, `${path} limit=1e400 → ${overflow.text.slice(0, 120)}`).toBe(200);
      for (const bad of ["-1", "0", "abc", "NaN", "[]", " 5", "5abc", "0x10"]) {
        const res = await raw("GET", `${path}?${q}limit=${encodeURIComponent(bad)}`, { token: a.token });
        expect(res.status, `${path} limit=${bad} → ${res.text.slice(0, 120)}`).toBe(400);
      }
    }
    const huge = await raw("GET", `/conversations/${id}/messages?limit=1e9`, { token: a.token });
    expect(huge.json.messages).toHaveLength(100);
    for (const q of ["before=-1", "after=-5", "before=1.5", "after=99999999999999999999", "page=0", "page=-2", "page=abc", "before=0x10"]) {
      expectError(await raw("GET", `/conversations/${id}/messages?${q}`, { token: a.token }), 400, q);
    }
    const far = await raw("GET", `/conversations/${id}/messages?page=100000000&limit=100`, { token: a.token });
    expect(far.status).toBe(200);
    expect(far.json.messages).toEqual([]);
  });

  // Found by this suite: the conversation list used to answer 400 to limit=1e9 while the message routes clamped it.
  it("GET /conversations?limit=1e9 is clamped, like every list (regression)", async () => {
    const res = await raw("GET", "/conversations?limit=1e9", { token: a.token });
    expect(res.status).toBe(200);
  });

  it("garbage cursors are 400s; a cursor from another conversation or user leaks nothing", async () => {
    const enc = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url");
    const garbage = [
      "garbage",
      "%00",
      enc({}),
      enc({ createdAt: "x", id: "y" }),
      enc({ createdAt: "2024-01-01T00:00:00Z", id: "1 OR 1=1" }),
      enc(["2024-01-01T00:00:00.000000Z", "not-a-uuid"]),
      enc("' OR 1=1 --"),
      "x".repeat(501),
      enc({ createdAt: "2024-13-45T99:99:99Z", id: crypto.randomUUID() }),
    ];
    for (const cursor of garbage) {
      for (const path of [`/conversations/${id}/messages/search?q=pagemark&`, "/messages/search?q=pagemark&", "/conversations?"]) {
        const res = await raw("GET", `${path}cursor=${encodeURIComponent(cursor)}`, { token: a.token });
        expect(res.status, `${path} cursor=${cursor.slice(0, 30)} → ${res.text.slice(0, 100)}`).toBe(400);
      }
    }
    // The other user's search cursors, used in my conversation or across mine: only my messages come back. A cursor
    // is opaque to its endpoint (a conversation search pages by seq, the global one by time), so one endpoint may
    // refuse the other's with a 400; it never widens what the caller sees.
    const theirs = await raw("GET", `/conversations/${otherId}/messages/search?q=pagemark&limit=5`, { token: other.token });
    const theirsGlobal = await raw("GET", `/messages/search?q=pagemark&limit=5`, { token: other.token });
    expect(theirs.json.nextCursor).toBeTruthy();
    expect(theirsGlobal.json.nextCursor).toBeTruthy();
    for (const cursor of [theirs.json.nextCursor, theirsGlobal.json.nextCursor]) {
      for (const path of [`/conversations/${id}/messages/search?q=pagemark&limit=100&`, "/messages/search?q=pagemark&limit=100&"]) {
        const res = await raw("GET", `${path}cursor=${cursor}`, { token: a.token });
        expect([200, 400]).toContain(res.status);
        if (res.status === 200) for (const m of res.json.messages) expect(m.conversationId).toBe(id);
      }
    }
    // Each endpoint takes its own cursors.
    const ownPage = await raw("GET", `/conversations/${id}/messages/search?q=pagemark&limit=5`, { token: a.token });
    const next = await raw("GET", `/conversations/${id}/messages/search?q=pagemark&limit=5&cursor=${ownPage.json.nextCursor}`, { token: a.token });
    expect(next.status).toBe(200);
    expect(next.json.messages[0].seq).toBeLessThan(ownPage.json.messages.at(-1).seq);
    // A list cursor naming the other user's conversation: still only mine.
    const listCursor = enc([new Date().toISOString().replace("Z", "000Z"), otherId]);
    const list = await raw("GET", `/conversations?cursor=${listCursor}&limit=100`, { token: a.token });
    expect([200, 400]).toContain(list.status);
    if (list.status === 200) for (const c of list.json.conversations) expect(c.id).not.toBe(otherId);
    // Seq cursors name positions in the caller's own conversation only.
    const after = await raw("GET", `/conversations/${id}/messages?after=110&limit=100`, { token: a.token });
    expect(after.json.messages.map((m: { seq: number }) => m.seq)).toEqual([111, 112, 113, 114, 115, 116, 117, 118, 119, 120]);
    expect(after.json.messages.every((m: { content: string }) => m.content.includes("mine"))).toBe(true);
  });
});
