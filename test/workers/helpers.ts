import { env, SELF } from "cloudflare:test";
import { SignJWT } from "jose";
import { devUserId } from "../../src/lib/ids";
import { signDevToken } from "../../src/lib/jwt";

export interface TestUser {
  id: string;
  kahaId: string;
  token: string;
}

let counter = 0;

/** A fresh user with a valid token; kahaIds are unique per call so test files never share users. */
export async function newUser(prefix = "user", role?: string): Promise<TestUser> {
  const kahaId = `${prefix}-${Date.now().toString(36)}-${(counter++).toString(36)}-${Math.random().toString(36).slice(2, 6)}`;
  const id = await devUserId(kahaId);
  const token = await signDevToken({ id, kahaId, role }, env.JWT_SECRET, 3600);
  return { id, kahaId, token };
}

export async function signWith(claims: Record<string, unknown>, secret = env.JWT_SECRET, alg = "HS256"): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg }).sign(new TextEncoder().encode(secret));
}

export interface ApiResponse<T = any> {
  status: number;
  body: T;
  headers: Headers;
}

export async function api<T = any>(
  method: string,
  path: string,
  options: { token?: string; body?: unknown; rawBody?: string; headers?: Record<string, string> } = {},
): Promise<ApiResponse<T>> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  let body: string | undefined = options.rawBody;
  if (options.body !== undefined) {
    headers["content-type"] = "application/json";
    body = JSON.stringify(options.body);
  }
  const res = await SELF.fetch(`http://chat.test${path}`, { method, headers, body });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    // not JSON
  }
  return { status: res.status, body: parsed as T, headers: res.headers };
}

export function expectErrorShape(res: ApiResponse, status: number) {
  if (res.status !== status) throw new Error(`expected ${status}, got ${res.status}: ${JSON.stringify(res.body)}`);
  const b = res.body as Record<string, unknown>;
  if (b.statusCode !== status || typeof b.error !== "string" || b.message === undefined || typeof b.requestId !== "string") {
    throw new Error(`not the contract's error shape: ${JSON.stringify(b)}`);
  }
  if (res.headers.get("x-request-id") !== b.requestId) throw new Error("X-Request-Id header does not match the body");
  expectJsonHeaders(res);
}

/** Contract §1: every JSON answer says its charset and forbids sniffing. */
export function expectJsonHeaders(res: ApiResponse) {
  const type = res.headers.get("content-type");
  if (type !== "application/json; charset=utf-8") throw new Error(`Content-Type is ${type}, not application/json; charset=utf-8`);
  if (res.headers.get("x-content-type-options") !== "nosniff") throw new Error("X-Content-Type-Options: nosniff is missing");
}
