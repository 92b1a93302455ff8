import { describe, expect, it } from "vitest";
import { ChatApiError, ChatClient, ChatRest } from "../../src/client";
import { userIdFromToken } from "../../src/client/ids";
import { onUpgradeRefused } from "../../src/client/refusal";

type Call = { url: string; method: string; headers: Record<string, string>; body?: string };

function fakeFetch(responses: (Response | Error)[]) {
  const calls: Call[] = [];
  const fetchImpl = (async (input: RequestInfo | URL, init?: RequestInit) => {
    calls.push({ url: String(input), method: init?.method ?? "GET", headers: init?.headers as Record<string, string>, body: init?.body as string | undefined });
    const next = responses.shift();
    if (!next) throw new Error("no more responses");
    if (next instanceof Error) throw next;
    return next;
  }) as typeof fetch;
  return { calls, fetchImpl };
}

const json = (status: number, body: unknown, headers: Record<string, string> = {}) =>
  new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json", ...headers } });

describe("client REST", () => {
  it("sends the bearer token (static or from a function), JSON bodies and query strings", async () => {
    const { calls, fetchImpl } = fakeFetch([json(200, { messages: [], hasMore: false }), json(201, { id: "m" })]);
    let n = 0;
    const rest = new ChatRest({ baseUrl: "http://api.test/", token: () => `t${++n}`, fetch: fetchImpl });
    await rest.listMessages("c 1", { before: 10, limit: 5, after: undefined });
    await rest.sendMessage("c1", { content: "hi" });
    expect(calls[0]).toMatchObject({ method: "GET", url: "http://api.test/conversations/c%201/messages?before=10&limit=5" });
    expect(calls[0].headers.authorization).toBe("Bearer t1");
    expect(calls[1].headers.authorization).toBe("Bearer t2");
    const body = JSON.parse(calls[1].body!);
    // REST sends get a clientMessageId so that retrying the call cannot store the message twice.
    expect(body).toMatchObject({ content: "hi" });
    expect(body.clientMessageId).toMatch(/^[0-9a-f-]{36}$/);
  });

  it("throws ChatApiError with statusCode, message, error, requestId and Retry-After", async () => {
    const { fetchImpl } = fakeFetch([
      json(404, { statusCode: 404, error: "Not Found", message: "Conversation not found", requestId: "req-1" }),
      json(400, { statusCode: 400, error: "Bad Request", message: ["content: too long", "type: invalid"], requestId: "req-2" }),
      json(429, { statusCode: 429, error: "Too Many Requests", message: "Too many requests", requestId: "req-3" }, { "retry-after": "7" }),
      new Response("<html>bad gateway</html>", { status: 502, statusText: "Bad Gateway", headers: { "x-request-id": "req-4" } }),
    ]);
    const rest = new ChatRest({ baseUrl: "http://api.test", token: "t", fetch: fetchImpl, retries: 0 });
    const e1 = (await rest.getConversation("x").catch((e) => e)) as ChatApiError;
    expect(e1).toBeInstanceOf(ChatApiError);
    // With the code the socket gives the same refusal: an app handles both with one branch.
    expect(e1).toMatchObject({ name: "ChatApiError", statusCode: 404, message: "Conversation not found", error: "Not Found", requestId: "req-1", code: "not_found" });
    expect(e1.isClientError).toBe(true);
    const e2 = (await rest.editMessage("c", "m", "x").catch((e) => e)) as ChatApiError;
    expect(e2.message).toBe("content: too long; type: invalid");
    expect(e2.details).toEqual(["content: too long", "type: invalid"]);
    expect(e2.code).toBe("bad_request");
    const e3 = (await rest.markAllRead().catch((e) => e)) as ChatApiError;
    expect(e3).toMatchObject({ statusCode: 429, retryAfter: 7, isRetryable: true, isClientError: false, code: "rate_limited" });
    const e4 = (await rest.me().catch((e) => e)) as ChatApiError;
    expect(e4).toMatchObject({ statusCode: 502, requestId: "req-4", message: "Bad Gateway", code: "unavailable" });
  });

  it("retries safe requests after network errors and 503, never a write", async () => {
    const { calls, fetchImpl } = fakeFetch([
      new TypeError("fetch failed"),
      json(503, { statusCode: 503, error: "Service Unavailable", message: "Database unavailable", requestId: "r" }, { "retry-after": "0" }),
      json(200, { conversations: [], nextCursor: null }),
      new TypeError("fetch failed"),
    ]);
    const rest = new ChatRest({ baseUrl: "http://api.test", token: "t", fetch: fetchImpl, retries: 2 });
    await expect(rest.listConversations()).resolves.toEqual({ conversations: [], nextCursor: null });
    expect(calls).toHaveLength(3);
    const err = (await rest.createDirect("u").catch((e) => e)) as ChatApiError;
    expect(err).toMatchObject({ statusCode: 0, isNetworkError: true, code: "network" });
    expect(calls).toHaveLength(4);
  });

  it("times out a request that never answers (statusCode 0)", async () => {
    const never = (() => new Promise<Response>((_, reject) => setTimeout(() => reject(new Error("aborted")), 50))) as unknown as typeof fetch;
    const rest = new ChatRest({ baseUrl: "http://api.test", fetch: never, timeoutMs: 10, retries: 0 });
    await expect(rest.health()).rejects.toMatchObject({ statusCode: 0, code: "timeout", isNetworkError: true });
  });

  it("knows the user from the token's id claim", async () => {
    const payload = btoa(JSON.stringify({ id: "0A1B2C3D-0000-4000-8000-000000000001", kahaId: "x" })).replace(/=+$/, "");
    const token = `e30.${payload}.sig`;
    expect(userIdFromToken(token)).toBe("0a1b2c3d-0000-4000-8000-000000000001");
    expect(userIdFromToken("garbage")).toBeUndefined();
    expect(await new ChatClient({ baseUrl: "http://x", token }).userId()).toBe("0a1b2c3d-0000-4000-8000-000000000001");
    expect(await new ChatClient({ baseUrl: "http://x", token, userId: "U1" }).userId()).toBe("u1");
  });

  /** A shared module the SDK may load values from: it imports nothing (so no zod). */
  const ZOD_FREE_SHARED = "../protocol/limits";

  it("the SDK uses no Node-only API (it runs in browsers)", async () => {
    const { readdir, readFile } = await import("node:fs/promises");
    const dir = new URL("../../src/client/", import.meta.url);
    for (const f of await readdir(dir)) {
      if (!f.endsWith(".ts")) continue;
      const src = await readFile(new URL(f, dir), "utf8");
      // Comments may quote Node usage (`import("ws")` for Node 20): only code counts.
      const code = src.replace(/\/\*[\s\S]*?\*\//g, "").replace(/\/\/.*$/gm, "");
      expect(code, f).not.toMatch(/\bBuffer\b|\bprocess\.|\brequire\(|\b__dirname\b/);
      // Node built-ins, with or without the node: prefix, imported statically or dynamically.
      expect(code, f).not.toMatch(/(?:\bfrom\s+|\bimport\s*\(\s*|^\s*import\s+)["'](node:[^"']+|(ws|events|fs|path|crypto|http|https|net|tls|os|stream|url|child_process|worker_threads)(\/[^"']*)?)["']/m);
      // Only types come from the shared schemas (imported or re-exported): zod stays out of the bundle. The one
      // exception is the zod-free limits module (checked below), whose values the SDK needs at run time.
      for (const m of src.matchAll(/^(?:import|export)\s+(type\s+)?[^;]*from\s+["'](\.\.\/(?:protocol|domain)\/[^"']+)["']/gm)) {
        if (m[2] !== ZOD_FREE_SHARED) expect(m[1], `${f}: ${m[2]}`).toBe("type ");
      }
    }
    const limits = await readFile(new URL(`${ZOD_FREE_SHARED}.ts`, dir), "utf8");
    expect(limits).not.toMatch(/^\s*(?:import|export)\b[^;]*\bfrom\s/m);
  });
});

describe("client REST: answers that stall or break mid-body", () => {
  /** Headers arrive, then the connection stalls (or breaks) before the body ends: the network, not the server. */
  const stalled = (status: number, fail?: Error) =>
    new Response(
      new ReadableStream<Uint8Array>({
        start(controller) {
          controller.enqueue(new TextEncoder().encode('{"id":'));
          if (fail) setTimeout(() => controller.error(fail), 5);
        },
      }),
      { status, headers: { "content-type": "application/json" } },
    );

  it("times out a request whose body never finishes instead of hanging for ever", async () => {
    const rest = new ChatRest({ baseUrl: "http://api.test", token: "t", fetch: (async () => stalled(200)) as typeof fetch, timeoutMs: 50, retries: 0 });
    const outcome = await Promise.race([
      rest.getConversation("c").then(
        () => "resolved",
        (e: ChatApiError) => `rejected ${e.statusCode}`,
      ),
      new Promise((r) => setTimeout(() => r("still pending"), 1000)),
    ]);
    expect(outcome).toBe("rejected 0");
  });

  it("a body cut off by the network is a network error, not a success without a result", async () => {
    const rest = new ChatRest({ baseUrl: "http://api.test", token: "t", fetch: (async () => stalled(201, new TypeError("terminated"))) as typeof fetch, retries: 0 });
    await expect(rest.sendMessage("c", { content: "hi" })).rejects.toMatchObject({ name: "ChatApiError", statusCode: 0, code: "network" });
  });

  // A retry went with the token read before the first try: one that expired during the wait (up to 10 s a try)
  // turned a retried 503 into a 401, although the token function had a fresh one.
  it("asks the token function again for each retry of a request", async () => {
    const { calls, fetchImpl } = fakeFetch([json(503, { statusCode: 503, message: "Database unavailable" }), json(200, { messages: [], hasMore: false })]);
    let n = 0;
    const rest = new ChatRest({ baseUrl: "http://api.test", token: () => `t${++n}`, fetch: fetchImpl });
    await rest.listMessages("c1");
    expect(calls.map((c) => c.headers.authorization)).toEqual(["Bearer t1", "Bearer t2"]);
  });
});

describe("client REST: writes refused by the rate limiter", () => {
  // The limiter answers 429 before a route runs, so the write was not made; it failed although a short wait would do.
  it("retries a write refused with 429 after its Retry-After, and still never retries a write after a 503", async () => {
    const limited = json(429, { statusCode: 429, error: "Too Many Requests", message: "Too many requests" }, { "retry-after": "0" });
    const { calls, fetchImpl } = fakeFetch([
      limited,
      json(200, { conversationId: "c", lastReadSeq: 3 }),
      json(503, { statusCode: 503, error: "Service Unavailable", message: "down" }),
    ]);
    const rest = new ChatRest({ baseUrl: "http://api.test", token: "t", fetch: fetchImpl });
    await expect(rest.markRead("c", { seq: 3 })).resolves.toEqual({ conversationId: "c", lastReadSeq: 3 });
    expect(calls.map((c) => c.method)).toEqual(["PUT", "PUT"]);
    await expect(rest.createDirect("u")).rejects.toMatchObject({ statusCode: 503 });
    expect(calls).toHaveLength(3);
  });
});

describe("client REST: Retry-After as an HTTP date", () => {
  // RFC 9110 allows a date as well as seconds (proxies and CDNs send dates): only seconds were read, and a 503 that
  // asked for a wait was retried at once.
  const down = (retryAfter: string, date?: string) =>
    json(503, { statusCode: 503, error: "Service Unavailable", message: "down" }, { "retry-after": retryAfter, ...(date ? { date } : {}) });

  it("reads a date as the seconds until it, from the answer's own Date (another clock's skew does not count)", async () => {
    const serverNow = Date.parse("Sun, 06 Nov 1994 08:49:37 GMT");
    const { fetchImpl } = fakeFetch([
      down(new Date(serverNow + 7_000).toUTCString(), new Date(serverNow).toUTCString()),
      down(new Date(Date.now() + 7_000).toUTCString()),
      down(new Date(Date.now() - 7_000).toUTCString()),
    ]);
    const rest = new ChatRest({ baseUrl: "http://api.test", token: "t", fetch: fetchImpl, retries: 0 });
    expect(await rest.me().catch((e) => e)).toMatchObject({ statusCode: 503, retryAfter: 7 });
    const local = (await rest.me().catch((e) => e)) as ChatApiError;
    expect(local.retryAfter).toBeGreaterThanOrEqual(6);
    expect(local.retryAfter).toBeLessThanOrEqual(7);
    // A date gone by asks for no wait.
    expect(await rest.me().catch((e) => e)).toMatchObject({ statusCode: 503, retryAfter: undefined });
  });

  it("waits out a near date before retrying, and gives a far one back to the app as the seconds form is", async () => {
    const { calls, fetchImpl } = fakeFetch([down(new Date(Date.now() + 1_000).toUTCString(), new Date().toUTCString()), json(200, { id: "me" })]);
    const rest = new ChatRest({ baseUrl: "http://api.test", token: "t", fetch: fetchImpl });
    const started = Date.now();
    await expect(rest.me()).resolves.toEqual({ id: "me" });
    expect(calls).toHaveLength(2);
    // The backoff alone waits 250 ms.
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
    const far = fakeFetch([down(new Date(Date.now() + 60_000).toUTCString()), json(200, {})]);
    const impatient = new ChatRest({ baseUrl: "http://api.test", token: "t", fetch: far.fetchImpl });
    const error = (await impatient.me().catch((e) => e)) as ChatApiError;
    expect(error.retryAfter).toBeGreaterThanOrEqual(59);
    expect(far.calls).toHaveLength(1);
  });

  // In Node (`ws`) a refused upgrade's Retry-After sets the socket's next wait: a date was ignored there too.
  it("reads a date on a refused socket upgrade", () => {
    const listeners: ((req: unknown, res: unknown) => void)[] = [];
    const ws = { on: (_event: string, fn: (req: unknown, res: unknown) => void) => listeners.push(fn), close() {} };
    const heard: unknown[] = [];
    onUpgradeRefused(ws as never, (refusal) => heard.push(refusal));
    const headers = { "retry-after": "Sun, 06 Nov 1994 08:49:47 GMT", date: "Sun, 06 Nov 1994 08:49:37 GMT" };
    listeners[0](undefined, { statusCode: 503, headers });
    expect(heard).toEqual([{ status: 503, retryAfter: 10 }]);
  });
});

describe("client REST: calls the caller ends", () => {
  it("an aborted signal ends a retry's wait at once: no further call, an `aborted` error", async () => {
    const { calls, fetchImpl } = fakeFetch([json(503, { statusCode: 503, error: "Service Unavailable", message: "down" }, { "retry-after": "5" }), json(200, {})]);
    const rest = new ChatRest({ baseUrl: "http://api.test", token: "t", fetch: fetchImpl });
    const controller = new AbortController();
    const started = Date.now();
    const call = rest.me({ signal: controller.signal });
    await new Promise((r) => setTimeout(r, 50));
    controller.abort();
    const error = (await call.catch((e: unknown) => e)) as ChatApiError;
    expect(error).toBeInstanceOf(ChatApiError);
    expect(error.code).toBe("aborted");
    expect(Date.now() - started).toBeLessThan(1000);
    expect(calls.length).toBe(1);
  });

  it("an aborted signal ends a call whose answer has not come", async () => {
    const rest = new ChatRest({ baseUrl: "http://api.test", token: "t", fetch: (_input, init) => new Promise((_, reject) => init?.signal?.addEventListener("abort", () => reject(new Error("aborted")))) });
    const controller = new AbortController();
    const call = rest.getConversation("c1", { signal: controller.signal });
    controller.abort();
    expect(((await call.catch((e: unknown) => e)) as ChatApiError).code).toBe("aborted");
  });
});

describe("client REST: failures an app tells apart", () => {
  // A baseUrl naming the web app's own server answers every path with its page (200, HTML): the call resolved with
  // `undefined`, and the app failed later with a TypeError far from the cause.
  it("a success that is not JSON fails the call with a ChatApiError naming the answer", async () => {
    const page = new Response("<!doctype html><title>Chat</title>", { status: 200, headers: { "content-type": "text/html" } });
    const { calls, fetchImpl } = fakeFetch([page]);
    const rest = new ChatRest({ baseUrl: "http://localhost:5173", token: "t", fetch: fetchImpl });
    const error = (await rest.listConversations().catch((e: unknown) => e)) as ChatApiError;
    expect(error).toBeInstanceOf(ChatApiError);
    expect(error).toMatchObject({ statusCode: 200, code: "invalid_response", isRetryable: false });
    expect(error.message).toBe("GET http://localhost:5173/conversations answered 200 with text/html, not JSON: is baseUrl the chat API?");
    expect(calls).toHaveLength(1);
    // An empty success (204) is still fine.
    const empty = fakeFetch([new Response(null, { status: 204 })]);
    await expect(new ChatRest({ baseUrl: "http://api.test", token: "t", fetch: empty.fetchImpl }).deleteMessage("c1", "m1")).resolves.toBeUndefined();
  });

  // The token function's own error escaped (a TypeError from its refresh): not a ChatApiError like every other failure.
  it("a token function that fails fails the call with a ChatApiError carrying its error", async () => {
    const { calls, fetchImpl } = fakeFetch([]);
    const cause = new TypeError("Failed to fetch");
    const rest = new ChatRest({ baseUrl: "http://api.test", token: () => Promise.reject(cause), fetch: fetchImpl, retries: 0 });
    const error = (await rest.me().catch((e: unknown) => e)) as ChatApiError;
    expect(error).toBeInstanceOf(ChatApiError);
    expect(error).toMatchObject({ statusCode: 0, code: "token", message: "Could not get a token: Failed to fetch", cause });
    expect(calls).toHaveLength(0);
  });

  // An aborted call said it was retryable (status 0): an app that retries what is retryable, with the same signal,
  // looped for ever on calls that failed at once.
  it("an aborted call is not retryable, and no network error", async () => {
    const rest = new ChatRest({ baseUrl: "http://api.test", token: "t", fetch: fakeFetch([json(200, {})]).fetchImpl });
    const controller = new AbortController();
    controller.abort();
    const error = (await rest.me({ signal: controller.signal }).catch((e: unknown) => e)) as ChatApiError;
    expect(error).toMatchObject({ code: "aborted", isRetryable: false, isNetworkError: false });
  });
});

describe("client REST: a baseUrl that cannot work", () => {
  // "chat.example.com" (no scheme) failed every call with a bare "Invalid URL", and the sockets retried for ever.
  it("is refused when the client is made, saying what is expected", () => {
    for (const baseUrl of ["chat.example.com", "/api", "ws://chat.example.com"]) {
      expect(() => new ChatClient({ baseUrl, token: "t" }), baseUrl).toThrow(`baseUrl must be an absolute http(s) URL such as "https://chat.example.com", or "" for the page's own origin (got "${baseUrl}")`);
    }
    for (const baseUrl of ["https://chat.example.com/", "HTTP://127.0.0.1:8787", ""]) expect(() => new ChatRest({ baseUrl }), baseUrl).not.toThrow();
  });
});
