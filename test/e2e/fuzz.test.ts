import { afterAll, beforeAll, describe, expect, it } from "vitest";
import fc from "fast-check";
import { LOCAL_PROFILE_TOKEN } from "../../scripts/lib/stack";
import { conversationClientFrame, userClientFrame } from "../../src/protocol/frames";
import { BASE, Client, login, seedConversation, sleep, until, type User } from "./harness";

/**
 * Fuzz (fixed seeds, so a failure replays): random and half-valid REST bodies, query strings and WebSocket frames.
 * The service must never answer 5xx to client input, must answer every invalid frame with an error frame, must keep
 * its Durable Objects alive, and a bystander in the same conversation keeps receiving what is sent afterwards.
 */

const SEED = 20_261_125;
const ALLOWED = new Set([200, 201, 204, 400, 401, 403, 404, 405, 409, 413, 415, 429]);
const ERROR_CODES = new Set(["invalid_json", "invalid_frame", "unknown_type", "rate_limited", "not_found", "forbidden", "conflict", "bad_request", "unavailable"]);

let members: User[];
let group: string;
let messageId: string;
const clients: Client[] = [];

beforeAll(async () => {
  members = [];
  for (let i = 0; i < 8; i++) members.push(await login(`fz${i}`));
  group = await seedConversation("group", members);
  const res = await fetch(`${BASE}/conversations/${group}/messages`, {
    method: "POST",
    headers: { authorization: `Bearer ${members[0].token}`, "content-type": "application/json" },
    body: JSON.stringify({ content: "fuzz target", clientMessageId: "fz-seed" }),
  });
  messageId = ((await res.json()) as { id: string }).id;
});

afterAll(() => {
  for (const c of clients.splice(0)) c.terminate();
});

// ── generators ────────────────────────────────────────────────────────────────────────────────────────────────

const FIELDS = [
  "content", "type", "clientMessageId", "replyToId", "seq", "messageId", "isMuted", "role", "userId", "name",
  "participantIds", "targetUserId", "businessId", "agentId", "kahaId", "user_uuids", "business_uuids", "senderId",
  "__proto__", "constructor", "prototype", "toString", "id", "data",
];

/** Values of every JSON kind, including the awkward ones (huge numbers, -0 as text, long strings, nesting). */
const value: fc.Arbitrary<unknown> = fc.oneof(
  fc.jsonValue({ maxDepth: 3 }),
  fc.constantFrom(null, true, false, 0, -1, 1e308, -1e308, 2 ** 53 + 1, "", " ", "\u0000", "💥".repeat(50), "a".repeat(5000)),
  fc.uuid(),
  fc.constantFrom(["a"], [null], [[[]]], {}, { a: { b: { c: [] } } }),
  fc.string({ unit: "binary", maxLength: 40 }),
);

/** Objects whose keys are the fields routes know (so validation goes deeper), with values of the wrong types. */
const halfValidObject = fc.dictionary(fc.constantFrom(...FIELDS), value, { maxKeys: 5 });

/** A request body as raw text: JSON of any shape, a near-valid object, or not JSON at all. */
const bodyText: fc.Arbitrary<string> = fc.oneof(
  { weight: 3, arbitrary: halfValidObject.map((o) => JSON.stringify(o)) },
  { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v)) },
  { weight: 1, arbitrary: fc.string({ unit: "binary", maxLength: 200 }) },
  { weight: 1, arbitrary: fc.constantFrom("", "{", "[", '{"content":', "null", "\u0000", '{"a":1}{"b":2}', "\ufeff{}", "{'a':1}") },
  // A valid-looking send with a random tail of fields.
  { weight: 2, arbitrary: fc.tuple(fc.string({ maxLength: 50 }), halfValidObject).map(([c, extra]) => JSON.stringify({ content: c, ...extra })) },
);

const contentType = fc.constantFrom("application/json", "application/json; charset=utf-8", "text/plain", "application/x-www-form-urlencoded", "", "application/json; charset=latin1");

function routes(conversationId: string, message: string, other: string): [string, string][] {
  return [
    ["POST", `/conversations/${conversationId}/messages`],
    ["PATCH", `/conversations/${conversationId}/messages/${message}`],
    ["PUT", `/conversations/${conversationId}/read`],
    ["PUT", `/conversations/${conversationId}/mute`],
    ["POST", `/conversations/${conversationId}/participants`],
    ["PUT", `/conversations/${conversationId}/participants/${other}/role`],
    ["PATCH", `/conversations/${conversationId}`],
    ["POST", "/conversations/direct"],
    ["POST", "/conversations/group"],
    ["POST", "/conversations/business"],
    ["POST", "/auth/dev-login"],
    ["POST", "/realtime/tickets"],
    ["POST", "/profiles/invalidate"],
    ["PUT", "/notifications/mark-all-read"],
  ];
}

async function call(method: string, path: string, token: string, body?: string | Uint8Array, type?: string) {
  const headers: Record<string, string> = { authorization: `Bearer ${token}` };
  if (type) headers["content-type"] = type;
  const payload = typeof body === "string" || body === undefined ? body : Buffer.from(body);
  const res = await fetch(`${BASE}${path}`, { method, headers, body: payload });
  const text = await res.text();
  return { status: res.status, text, contentType: res.headers.get("content-type") ?? "" };
}

function expectSane(r: { status: number; text: string; contentType: string }, label: string): void {
  expect(ALLOWED.has(r.status), `${label} → ${r.status} ${r.text.slice(0, 200)}`).toBe(true);
  if (r.status >= 400) {
    expect(r.contentType, label).toMatch(/^application\/json/);
    const body = JSON.parse(r.text) as { statusCode: number; requestId: string };
    expect(body.statusCode, label).toBe(r.status);
    expect(typeof body.requestId, label).toBe("string");
  }
}

describe("REST fuzz", () => {
  it("random bodies on every write route never get a 5xx", async () => {
    const list = routes(group, messageId, members[1].id);
    let i = 0;
    const statuses: Record<number, number> = {};
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...list), bodyText, contentType, async ([method, path], text, type) => {
        // Spread over the members: the per-user write budget is 120 a minute.
        const user = members[i++ % members.length];
        const token = path === "/profiles/invalidate" && i % 2 === 0 ? LOCAL_PROFILE_TOKEN : user.token;
        const r = await call(method, path, token, text, type || undefined);
        statuses[r.status] = (statuses[r.status] ?? 0) + 1;
        expectSane(r, `${method} ${path} ${type} ${JSON.stringify(text).slice(0, 150)}`);
      }),
      { seed: SEED, numRuns: 350 },
    );
    // The fuzzer reached past validation sometimes (not only 400s).
    expect(Object.keys(statuses).length).toBeGreaterThan(2);
  });

  it("binary bodies and random query strings never get a 5xx", async () => {
    const reads = [
      `/conversations/${group}/messages`,
      `/conversations/${group}/messages/search`,
      "/messages/search",
      "/conversations",
      `/conversations/${group}`,
      `/conversations/${group}/unread-count`,
      "/notifications/unread-counts",
      `/conversations/${group}/messages/${messageId}`,
    ];
    const param = fc.constantFrom("limit", "before", "after", "page", "q", "cursor", "afterSeq", "ticket", "limit[]", "q[]", "__proto__");
    const query = fc.array(
      fc.tuple(param, fc.oneof(fc.string({ maxLength: 30 }), fc.integer().map(String), fc.double().map(String), fc.constantFrom("%", "%zz", "%00", "1e9", "-0", "NaN", "Infinity", ""))),
      { maxLength: 4 },
    );
    let i = 0;
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...reads), query, async (path, pairs) => {
        const qs = pairs.map(([k, v]) => `${k}=${/^%/.test(v) ? v : encodeURIComponent(v)}`).join("&");
        const r = await call("GET", `${path}${qs ? `?${qs}` : ""}`, members[i++ % members.length].token);
        expectSane(r, `GET ${path}?${qs}`);
      }),
      { seed: SEED + 1, numRuns: 250 },
    );
    const list = routes(group, messageId, members[1].id);
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...list), fc.uint8Array({ maxLength: 300 }), contentType, async ([method, path], bytes, type) => {
        const r = await call(method, path, members[i++ % members.length].token, bytes, type || "application/octet-stream");
        expectSane(r, `${method} ${path} <${bytes.length} bytes>`);
      }),
      { seed: SEED + 2, numRuns: 120 },
    );
  });
});

// ── WebSocket fuzz ───────────────────────────────────────────────────────────────────────────────────────────

type Fuzzed = { kind: "text"; text: string; id?: string; invalid: boolean } | { kind: "binary"; bytes: Uint8Array };

const CONVERSATION_TYPES = ["send_message", "start_typing", "stop_typing", "mark_as_read", "mark_delivered", "resume", "heartbeat"];
const USER_TYPES = ["heartbeat", "set_presence", "get_presence"];

/** Frames: known types with random data, unknown types, random JSON, broken JSON and binary. */
function frameArbitrary(types: string[]): fc.Arbitrary<{ raw: unknown; text?: string; bytes?: Uint8Array }> {
  const data = fc.oneof(halfValidObject, value, fc.record({ content: fc.string({ maxLength: 60 }), clientMessageId: fc.string({ maxLength: 20 }) }));
  return fc.oneof(
    { weight: 4, arbitrary: fc.record({ type: fc.constantFrom(...types), data }, { requiredKeys: ["type"] }).map((raw) => ({ raw })) },
    { weight: 1, arbitrary: fc.record({ type: value, data: value, extra: value }, { requiredKeys: [] }).map((raw) => ({ raw })) },
    { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 3 }).map((raw) => ({ raw })) },
    { weight: 1, arbitrary: fc.string({ unit: "binary", maxLength: 80 }).map((text) => ({ raw: undefined, text })) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 100 }).map((bytes) => ({ raw: undefined, bytes })) },
    // Deep nesting in every position (a recursive stringify of it once blew the stack: no error frame came back).
    {
      weight: 1,
      arbitrary: fc
        .tuple(fc.integer({ min: 1000, max: 12_000 }), fc.constantFrom("type", "data", "id", "top"), fc.nat())
        .map(([n, where, k]) => {
          const deep = "[".repeat(n) + "]".repeat(n);
          const text =
            where === "top" ? deep : where === "type" ? `{"id":"d${k}","type":${deep}}` : where === "id" ? `{"type":"heartbeat","id":${deep}}` : `{"id":"d${k}","type":"${types[k % types.length]}","data":${deep}}`;
          return { raw: undefined, text };
        }),
    },
  );
}

/** Gives every object frame an id (so its error can be matched) and decides locally whether the server must refuse it. */
function prepare(samples: { raw: unknown; text?: string; bytes?: Uint8Array }[], schema: { safeParse(v: unknown): { success: boolean } }, tag: string): Fuzzed[] {
  return samples.map((s, i) => {
    if (s.bytes) return { kind: "binary", bytes: s.bytes };
    if (s.text !== undefined) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(s.text);
      } catch {
        return { kind: "text", text: s.text, invalid: true };
      }
      const id = parsed && typeof parsed === "object" && typeof (parsed as { id?: unknown }).id === "string" ? (parsed as { id: string }).id : undefined;
      return { kind: "text", text: s.text, id, invalid: !schema.safeParse(parsed).success };
    }
    if (s.raw !== null && typeof s.raw === "object" && !Array.isArray(s.raw)) {
      const id = `${tag}${i}`;
      const frame = { ...(s.raw as object), id };
      return { kind: "text", text: JSON.stringify(frame), id, invalid: !schema.safeParse(frame).success };
    }
    return { kind: "text", text: JSON.stringify(s.raw), invalid: true };
  });
}

/** Sends at ~100 frames/s (under the 200/s limit) and checks every invalid frame got an error frame. */
async function blast(target: Client, frames: Fuzzed[]): Promise<{ invalid: number; binary: number; errors: number }> {
  const errorsBefore = target.all("error").length;
  let invalid = 0;
  let binary = 0;
  for (const [i, f] of frames.entries()) {
    if (f.kind === "binary") {
      binary++;
      target.raw(Buffer.from(f.bytes));
    } else {
      if (f.invalid) invalid++;
      target.raw(f.text);
    }
    if (i % 10 === 9) await sleep(100);
  }
  // Everything before this heartbeat has been processed once it is answered (frames are handled in order).
  await target.request("heartbeat", {}, "heartbeat_ack", 15_000);
  const errors = target.all("error").slice(errorsBefore);
  for (const e of errors) expect(ERROR_CODES.has(e.data.code), JSON.stringify(e.data)).toBe(true);
  for (const f of frames) {
    if (f.kind === "text" && f.invalid && f.id) {
      expect(errors.some((e) => e.id === f.id), `no error frame for ${f.text.slice(0, 200)}`).toBe(true);
    }
  }
  expect(errors.length, "every invalid frame is answered with an error frame").toBeGreaterThanOrEqual(invalid + binary);
  return { invalid, binary, errors: errors.length };
}

describe("WebSocket fuzz", () => {
  it("conversation socket: every bad frame gets an error frame, the room survives, a bystander keeps receiving", async () => {
    const [fuzzer, bystander, sender] = [members[2], members[3], members[4]];
    const watch = await Client.connect(`/conversations/${group}/ws`, bystander.token);
    clients.push(watch);
    const ready = await watch.next("ready");
    const startSeq = ready.data.lastSeq as number;
    const target = await Client.connect(`/conversations/${group}/ws`, fuzzer.token);
    clients.push(target);
    await target.next("ready");
    const samples = fc.sample(frameArbitrary(CONVERSATION_TYPES), { seed: SEED + 3, numRuns: 400 });
    const frames = prepare(samples, conversationClientFrame, "c");
    const outcome = await blast(target, frames);
    expect(outcome.invalid).toBeGreaterThan(100);
    expect(target.closed, JSON.stringify(target.closed)).toBeUndefined();
    expect(watch.closed).toBeUndefined();
    expect(target.all("error").filter((e) => e.data.code === "internal")).toEqual([]);

    // After the fuzzing: a sender's messages reach the bystander, in order, and the whole stream is dense.
    const room = await Client.connect(`/conversations/${group}/ws`, sender.token);
    clients.push(room);
    await room.next("ready");
    let last = 0;
    for (let i = 0; i < 5; i++) last = (await room.request("send_message", { content: `after fuzz ${i}`, clientMessageId: `after-${i}` }, "message_ack")).data.message.seq;
    await until(async () => (watch.all("new_message").some((f) => f.data.message.seq === last) ? true : undefined));
    const seqs = watch.all("new_message").map((f) => f.data.message.seq as number);
    expect(seqs).toEqual(Array.from({ length: last - startSeq }, (_, i) => startSeq + i + 1));
    expect(watch.all("new_message").slice(-5).map((f) => f.data.message.content)).toEqual([0, 1, 2, 3, 4].map((i) => `after fuzz ${i}`));
    // The fuzzer's socket still works for real traffic too.
    await target.request("send_message", { content: "fuzzer is fine", clientMessageId: "fz-ok" }, "message_ack");
  });

  it("user socket: every bad frame gets an error frame and the session keeps working", async () => {
    const user = members[5];
    const target = await Client.connect("/ws", user.token);
    clients.push(target);
    await target.next("connected");
    const samples = fc.sample(frameArbitrary(USER_TYPES), { seed: SEED + 4, numRuns: 300 });
    const frames = prepare(samples, userClientFrame, "u");
    await blast(target, frames);
    expect(target.closed).toBeUndefined();
    const contact = members[0].id;
    const state = await target.request("get_presence", { userIds: [contact] }, "presence_state");
    expect(state.data.presences).toEqual([expect.objectContaining({ userId: contact, status: expect.any(String) })]);
    // Notifications still arrive after the fuzzing.
    const room = await Client.connect(`/conversations/${group}/ws`, members[6].token);
    clients.push(room);
    await room.next("ready");
    await room.request("send_message", { content: "ping after user fuzz", clientMessageId: "u-after" }, "message_ack");
    const note = await target.next("notification", (f) => f.data.message?.content === "ping after user fuzz");
    expect(note.data.conversationId).toBe(group);
  });
});
