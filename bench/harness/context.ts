import http from "node:http";
import { now } from "./clients.js";
import type { StackInfo } from "./control.js";
import type { BenchDb } from "./db.js";
import type { Row } from "./report.js";
import type { ChatTarget, edgeTarget } from "./targets.js";

/** Everything a scenario gets. Sizes come from `size(quick, full)` so both modes share one code path. */
export interface Ctx {
  quick: boolean;
  stack: StackInfo;
  db: BenchDb;
  edge: ReturnType<typeof edgeTarget>;
  /** Baselines that started (absent when a baseline could not start). */
  baselines: ChatTarget[];
  /** The runtime's floor (workerd-floor, workerd-sqlite): in S1, S3, S8 and S12, to tell workerd's cost from ours. */
  references: ChatTarget[];
  /** The workerd running the Worker (found again if wrangler restarted it). */
  workerd(): number | undefined;
  /** The serving process of a target: workerd for the service, the baseline's own process otherwise. */
  serverPid(target: ChatTarget): number | undefined;
  pgDelayMs: number;
  redisDelayMs: number;
  log(line: string): void;
  /** Seconds left before the runner's budget is spent. */
  remaining(): number;
  size<T>(quick: T, full: T): T;
  http<T = any>(method: string, path: string, token?: string, body?: unknown): Promise<HttpResult<T>>;
  redis(command: string[]): Promise<unknown>;
}

export interface HttpResult<T> {
  status: number;
  body: T;
  /** Request start to full body, ms. */
  ms: number;
}

export type Scenario = (ctx: Ctx) => Promise<Row[]>;

/**
 * HTTP requests over node:http with a keep-alive pool. Node's fetch (undici) spent about 2 ms of client CPU per
 * request here, on the same two cores as the server under test; this client spends a fraction of that.
 */
export function makeHttp(baseUrl: string) {
  const base = new URL(baseUrl);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  return function request<T>(method: string, path: string, token?: string, body?: unknown): Promise<HttpResult<T>> {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const headers: Record<string, string | number> = {};
    if (token) headers.authorization = `Bearer ${token}`;
    if (payload !== undefined) {
      headers["content-type"] = "application/json";
      headers["content-length"] = Buffer.byteLength(payload);
    }
    return new Promise((resolve, reject) => {
      const t0 = now();
      const req = http.request({ host: base.hostname, port: base.port, method, path, headers, agent, timeout: 15_000 }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("error", reject);
        res.on("end", () => {
          const ms = now() - t0;
          const text = Buffer.concat(chunks).toString("utf8");
          let parsed: unknown = undefined;
          try {
            parsed = text ? JSON.parse(text) : undefined;
          } catch {
            parsed = text;
          }
          resolve({ status: res.statusCode ?? 0, body: parsed as T, ms });
        });
      });
      req.on("timeout", () => req.destroy(new Error(`${method} ${path}: no answer within 15 s`)));
      req.on("error", reject);
      req.end(payload);
    });
  };
}

/** Upstash REST: POST / with a JSON command array and the bearer token. */
export function makeRedis(url: string, token: string) {
  return async (command: string[]): Promise<unknown> => {
    const res = await fetch(url, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify(command),
      signal: AbortSignal.timeout(10_000),
    });
    if (!res.ok) throw new Error(`redis ${command[0]}: HTTP ${res.status}`);
    return ((await res.json()) as { result?: unknown }).result;
  };
}
