import { describe, expect, it } from "vitest";
import { env, SELF } from "cloudflare:test";
import { getConfig } from "../../src/lib/config";
import { createRedis } from "../../src/lib/redis";
import { createApp } from "../../src/worker/app";
import { api, expectErrorShape, newUser } from "./helpers";
import { direct } from "./conversation-helpers";

const UNDOCUMENTED = new Set(["/openapi.json", "/api/docs"]);

describe("OpenAPI document", () => {
  it("documents every route the app serves, with the same methods", async () => {
    const doc = (await api("GET", "/openapi.json")).body as { paths: Record<string, Record<string, unknown>> };
    const missing: string[] = [];
    for (const route of createApp().routes) {
      if (route.method === "ALL" || UNDOCUMENTED.has(route.path)) continue;
      const path = route.path.replace(/:([A-Za-z0-9_]+)/g, "{$1}").replace(/\/$/, "") || "/";
      const entry = doc.paths[path] ?? doc.paths[`${path}/`];
      if (!entry?.[route.method.toLowerCase()]) missing.push(`${route.method} ${path}`);
    }
    expect(missing).toEqual([]);
  });

  it("declares bearer auth and the shared resource schemas", async () => {
    const doc = (await api("GET", "/openapi.json")).body;
    expect(doc.components.securitySchemes.bearerAuth).toMatchObject({ type: "http", scheme: "bearer" });
    for (const name of ["Message", "Conversation", "Participant", "Profile"]) expect(doc.components.schemas[name], name).toBeDefined();
  });

  it("lets the socket upgrades be authorised by a ticket alone, as browsers do (contract §2)", async () => {
    const doc = (await api("GET", "/openapi.json")).body;
    expect(doc.components.securitySchemes.ticket).toMatchObject({ type: "apiKey", in: "query", name: "ticket" });
    for (const path of ["/ws", "/conversations/{id}/ws"]) {
      // Alternatives: a bearer token (apps, servers) or a ticket. The document required the bearer token.
      expect(doc.paths[path].get.security, path).toEqual([{ bearerAuth: [] }, { ticket: [] }]);
    }
    const user = await newUser("oa-ticket");
    const { ticket } = (await api("POST", "/realtime/tickets", { token: user.token })).body as { ticket: string };
    const res = await SELF.fetch(new Request(`http://chat.test/ws?ticket=${ticket}`, { headers: { Upgrade: "websocket" } }));
    expect(res.status).toBe(101);
    res.webSocket!.accept();
    res.webSocket!.close(1000, "test done");
  });

  it("documents the error statuses the routes answer (401 when secured, 404 on a path id, 400 for input)", async () => {
    const doc = (await api("GET", "/openapi.json")).body as {
      paths: Record<string, Record<string, { security?: unknown[]; requestBody?: unknown; parameters?: { in: string }[]; responses: Record<string, unknown> }>>;
    };
    const missing: string[] = [];
    for (const [path, operations] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(operations)) {
        const statuses = Object.keys(op.responses);
        const need: string[] = [];
        if (op.security?.length) need.push("401");
        // A path id names something that may not exist or not be the caller's (contract §1).
        if (path.includes("{")) need.push("404");
        // An upgrade ignores a malformed query value (afterSeq); everything else validates its input.
        if (!statuses.includes("101") && (op.requestBody || op.parameters?.some((p) => p.in === "query"))) need.push("400");
        // A refused Origin (contract §2).
        if (statuses.includes("101")) need.push("403");
        for (const status of need) if (!statuses.includes(status)) missing.push(`${method.toUpperCase()} ${path}: ${status}`);
      }
    }
    expect(missing).toEqual([]);
  });

  it("documents 403 where a route answers it", async () => {
    const doc = (await api("GET", "/openapi.json")).body as { paths: Record<string, Record<string, { responses: Record<string, unknown> }>> };
    const member = await newUser("oa");
    const refused: [string, string, string][] = [
      ["get", "/conversations/{id}/audit", `/conversations/${await direct(member, await newUser("oa"))}/audit`],
      ["get", "/operations/jobs", "/operations/jobs"],
      ["get", "/operations/audit", "/operations/audit"],
    ];
    for (const [method, docPath, path] of refused) {
      const res = await api(method.toUpperCase(), path, { token: member.token });
      expect(res.status, path).toBe(403);
      expect(Object.keys(doc.paths[docPath][method].responses), `${method} ${docPath}`).toContain("403");
    }
  });

  it("documents 429 on every rate-limited write and 503 wherever a dependency answers for the route", async () => {
    const doc = (await api("GET", "/openapi.json")).body as { paths: Record<string, Record<string, { security?: unknown[]; responses: Record<string, unknown> }>> };
    const missing: string[] = [];
    for (const [path, operations] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(operations)) {
        if (!op.security?.length) continue;
        const statuses = Object.keys(op.responses);
        // src/worker/middleware/rate-limit.ts counts every write (contract §1: 429 with Retry-After).
        if (method !== "get" && !statuses.includes("429")) missing.push(`${method.toUpperCase()} ${path}: 429`);
        // A verified token provisions its user in Postgres (contract §2), so every secured route can find it down.
        if (!statuses.includes("503")) missing.push(`${method.toUpperCase()} ${path}: 503`);
      }
    }
    expect(missing).toEqual([]);
  });

  it("declares the headers the answers carry: X-Request-Id on every one, Retry-After on every 429 and 503", async () => {
    // Contract §1. Without them a client generated from the document had no way to read when to retry.
    const doc = (await api("GET", "/openapi.json")).body as { paths: Record<string, Record<string, { responses: Record<string, { headers?: Record<string, { schema?: { type?: string } }> }> }>> };
    const missing: string[] = [];
    for (const [path, operations] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(operations)) {
        for (const [status, response] of Object.entries(op.responses)) {
          const need = status === "429" || status === "503" ? ["X-Request-Id", "Retry-After"] : ["X-Request-Id"];
          for (const header of need) if (!response.headers?.[header]?.schema?.type) missing.push(`${method.toUpperCase()} ${path} ${status}: ${header}`);
        }
      }
    }
    expect(missing).toEqual([]);
  });

  it("offers exactly the roles the participant routes give (admin, member): the business roles were always a 400", async () => {
    const doc = (await api("GET", "/openapi.json")).body;
    const roleEnum = (path: string, method: string) => doc.paths[path][method].requestBody.content["application/json"].schema.properties.role.enum;
    const [admin, a, b] = await Promise.all([newUser("oa-role"), newUser("oa-role"), newUser("oa-role")]);
    const created = await api("POST", "/conversations/group", { token: admin.token, body: { participantIds: [a.id, b.id] } });
    const id = created.body.id as string;
    const routes = [
      { path: "/conversations/{id}/participants", method: "post", call: (role: string) => api("POST", `/conversations/${id}/participants`, { token: admin.token, body: { userId: crypto.randomUUID(), role } }) },
      { path: "/conversations/{id}/participants/{userId}/role", method: "put", call: (role: string) => api("PUT", `/conversations/${id}/participants/${a.id}/role`, { token: admin.token, body: { role } }) },
    ];
    for (const route of routes) {
      const offered = roleEnum(route.path, route.method) as string[];
      // Every role the document offers is taken, and every other role of the contract's list is refused.
      for (const role of ["admin", "member", "customer", "agent", "business"]) {
        const res = await route.call(role);
        expect(res.status === 400, `${route.method} ${route.path} role ${role}: ${res.status}, offered ${offered.join("|")}`).toBe(!offered.includes(role));
      }
    }
  });

  it("documents text patterns a validator can use: plain text passes, a control character does not", async () => {
    const doc = (await api("GET", "/openapi.json")).body;
    const bodyOf = (path: string, method: string) => doc.paths[path][method].requestBody.content["application/json"].schema.properties;
    // Short texts (group names, clientMessageId, skills, reasons) came out as "^[^\\p{Cc}\\p{Cs}]*$/u": the regex's
    // flags glued to its source, so a client validating with the document refused every value.
    const patterns = {
      clientMessageId: bodyOf("/conversations/{id}/messages", "post").clientMessageId.pattern,
      groupName: bodyOf("/conversations/group", "post").name.pattern,
      rename: bodyOf("/conversations/{id}", "patch").name.pattern,
      category: bodyOf("/conversations/business", "post").category.pattern,
    };
    for (const [field, pattern] of Object.entries(patterns)) {
      expect(typeof pattern, field).toBe("string");
      // JSON Schema patterns are ECMA-262 regexes, read with the u flag by validators such as Ajv.
      const re = new RegExp(pattern, "u");
      expect(re.test("Support team 😀 é"), `${field}: ${pattern}`).toBe(true);
      expect(re.test("bad\u0007"), `${field}: ${pattern}`).toBe(false);
      expect(re.test("bad \ud800"), `${field}: ${pattern}`).toBe(false);
    }
  });
});

describe("a body that is not JSON", () => {
  it("is a 415 that names the media type to send, and the document lists 415 wherever a route takes a body", async () => {
    const doc = (await api("GET", "/openapi.json")).body as { paths: Record<string, Record<string, { requestBody?: unknown; responses: Record<string, unknown> }>> };
    const user = await newUser("oa");
    const conversationId = await direct(user, await newUser("oa"));
    // fetch() with a string body and no headers sends text/plain: the JSON inside is not read.
    const res = await api("POST", `/conversations/${conversationId}/messages`, {
      token: user.token,
      rawBody: JSON.stringify({ content: "hello" }),
      headers: { "content-type": "text/plain;charset=UTF-8" },
    });
    expectErrorShape(res, 415);
    expect(res.body.message).toMatch(/application\/json/);
    const missing: string[] = [];
    for (const [path, operations] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(operations)) {
        if (op.requestBody && !Object.keys(op.responses).includes("415")) missing.push(`${method.toUpperCase()} ${path}: 415`);
      }
    }
    expect(missing).toEqual([]);
  });
});

describe("a JSON body that is not UTF-8", () => {
  // The body was decoded as UTF-8 whatever it was: a Latin-1 "café" was stored as "caf\uFFFD" with a 201.
  it("is refused (415 for another declared charset, 400 for bytes that are not UTF-8) and nothing is stored", async () => {
    const user = await newUser("oa-utf8");
    const conversationId = await direct(user, await newUser("oa-utf8"));
    const path = `/conversations/${conversationId}/messages`;
    const enc = new TextEncoder();
    const latin1 = new Uint8Array([...enc.encode('{"content":"caf'), 0xe9, ...enc.encode('"}')]);
    const post = async (body: Uint8Array, type: string) => {
      const res = await SELF.fetch(`http://chat.test${path}`, { method: "POST", headers: { authorization: `Bearer ${user.token}`, "content-type": type }, body });
      return { status: res.status, body: (await res.json()) as { content?: string }, headers: res.headers };
    };
    expectErrorShape(await post(latin1, "application/json; charset=ISO-8859-1"), 415);
    expectErrorShape(await post(latin1, "application/json"), 400);
    expect((await api("GET", path, { token: user.token })).body.messages).toEqual([]);
    // UTF-8, however it is spelled, is JSON as ever.
    for (const type of ['application/json; charset="UTF-8"', "application/json;charset=utf8", "application/json"]) {
      const ok = await post(enc.encode(JSON.stringify({ content: "café" })), type);
      expect(ok.status, type).toBe(201);
      expect(ok.body.content).toBe("café");
    }
  });
});

describe("path parameters", () => {
  it("declares every parameter a path template names, as a required path parameter (OpenAPI requires it)", async () => {
    const doc = (await api("GET", "/openapi.json")).body as {
      paths: Record<string, Record<string, { parameters?: { name: string; in: string; required?: boolean }[] }>>;
    };
    const missing: string[] = [];
    for (const [path, operations] of Object.entries(doc.paths)) {
      for (const name of [...path.matchAll(/\{(\w+)\}/g)].map((m) => m[1])) {
        for (const [method, op] of Object.entries(operations)) {
          const declared = (op.parameters ?? []).some((p) => p.in === "path" && p.name === name && p.required === true);
          if (!declared) missing.push(`${method.toUpperCase()} ${path}: ${name}`);
        }
      }
    }
    expect(missing).toEqual([]);
  });

  it("answers a status the document lists for a path value that names nothing (a long one too)", async () => {
    const doc = (await api("GET", "/openapi.json")).body as { paths: Record<string, Record<string, { requestBody?: unknown; responses: Record<string, unknown> }>> };
    // A service token passes every route's role check, so the value itself is what the route answers about.
    const service = await newUser("oa-svc", "admin");
    const undocumented: string[] = [];
    for (const [docPath, operations] of Object.entries(doc.paths)) {
      if (!docPath.includes("{")) continue;
      const path = docPath.replace(/\{\w+\}/g, "x".repeat(101));
      for (const [method, op] of Object.entries(operations)) {
        const res = await api(method.toUpperCase(), path, { token: service.token, ...(op.requestBody ? { body: {} } : {}) });
        if (!Object.keys(op.responses).includes(String(res.status))) undocumented.push(`${method.toUpperCase()} ${docPath}: ${res.status} ${JSON.stringify(res.body)}`);
      }
    }
    expect(undocumented).toEqual([]);
  });
});

describe("query parameter bounds", () => {
  it("states the bounds the server enforces: limit ≥ 1, seq cursors and pages ≥ their minimum, q at most 500 characters", async () => {
    const doc = (await api("GET", "/openapi.json")).body as {
      paths: Record<string, Record<string, { parameters?: { name: string; in: string; schema: Record<string, unknown> }[] }>>;
    };
    const schemaOf = (path: string, name: string) => doc.paths[path].get.parameters!.find((p) => p.in === "query" && p.name === name)!.schema;
    const user = await newUser("oa");
    const conversationId = await direct(user, await newUser("oa"));
    // Each value below the stated minimum (or over the stated maximum) is a 400 from the server.
    const cases: [string, string, string, Record<string, unknown>][] = [
      ["/conversations/{id}/messages", "limit", `/conversations/${conversationId}/messages?limit=0`, { minimum: 1 }],
      ["/conversations/{id}/messages", "before", `/conversations/${conversationId}/messages?before=0`, { minimum: 1 }],
      ["/conversations/{id}/messages", "page", `/conversations/${conversationId}/messages?page=0`, { minimum: 1 }],
      ["/conversations/{id}/messages", "after", `/conversations/${conversationId}/messages?after=-1`, { minimum: 0 }],
      ["/conversations", "limit", "/conversations?limit=0", { minimum: 1 }],
      ["/conversations", "page", "/conversations?page=0", { minimum: 1 }],
      ["/messages/search", "q", `/messages/search?q=${"a".repeat(501)}`, { maxLength: 500 }],
      ["/conversations/{id}/messages/search", "q", `/conversations/${conversationId}/messages/search?q=${"a".repeat(501)}`, { maxLength: 500 }],
      ["/messages/search", "limit", "/messages/search?q=a&limit=0", { minimum: 1 }],
    ];
    const wrong: string[] = [];
    for (const [docPath, name, path, bound] of cases) {
      expect((await api("GET", path, { token: user.token })).status, path).toBe(400);
      const schema = schemaOf(docPath, name);
      for (const [k, v] of Object.entries(bound)) if (schema[k] !== v) wrong.push(`${docPath} ${name}: ${k} is ${String(schema[k])}, the server enforces ${String(v)}`);
    }
    expect(wrong).toEqual([]);
  });
});

describe("429 without a token", () => {
  it("documents 429 on every write, also on routes without bearer auth: the per-IP limit counts them too", async () => {
    const doc = (await api("GET", "/openapi.json")).body as { paths: Record<string, Record<string, { responses: Record<string, unknown> }>> };
    // An address over its limit in this window and the next (a request at the window's edge lands in either).
    const config = getConfig(env);
    // TEST-NET-3: the other rate-limit tests use 198.51.100.x, and their budgets stay untouched.
    const ip = `203.0.113.${Math.floor(Math.random() * 250) + 1}`;
    const w = Math.floor(Date.now() / 60_000);
    for (const window of [w, w + 1]) await createRedis(config).set(`rl:ip:write:${ip}:${window}`, config.RATE_LIMIT_IP_WRITES_PER_MINUTE, { ex: 180 });
    const login = await api("POST", "/auth/dev-login", { headers: { "cf-connecting-ip": ip }, body: { kahaId: "oa-ip-limited" } });
    expectErrorShape(login, 429);
    const missing: string[] = [];
    for (const [path, operations] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(operations)) {
        if (method !== "get" && !Object.keys(op.responses).includes("429")) missing.push(`${method.toUpperCase()} ${path}: 429`);
      }
    }
    expect(missing).toEqual([]);
  });
});

describe("413", () => {
  it("is documented on every route that takes a body: the 64 KiB limit applies to all of them", async () => {
    const doc = (await api("GET", "/openapi.json")).body as { paths: Record<string, Record<string, { requestBody?: unknown; responses: Record<string, unknown> }>> };
    const user = await newUser("oa");
    const conversationId = await direct(user, await newUser("oa"));
    const big = await api("PUT", `/conversations/${conversationId}/mute`, { token: user.token, rawBody: JSON.stringify({ isMuted: true, pad: "x".repeat(70_000) }), headers: { "content-type": "application/json" } });
    expectErrorShape(big, 413);
    const missing: string[] = [];
    for (const [path, operations] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(operations)) {
        if (op.requestBody && !Object.keys(op.responses).includes("413")) missing.push(`${method.toUpperCase()} ${path}: 413`);
      }
    }
    expect(missing).toEqual([]);
  });
});
