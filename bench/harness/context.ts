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

export function makeHttp(baseUrl: string) {
  return async function http<T>(method: string, path: string, token?: string, body?: unknown): Promise<HttpResult<T>> {
    const t0 = now();
    const res = await fetch(`${baseUrl}${path}`, {
      method,
      headers: {
        ...(token ? { authorization: `Bearer ${token}` } : {}),
        ...(body !== undefined ? { "content-type": "application/json" } : {}),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(15_000),
    });
    const text = await res.text();
    const ms = now() - t0;
    let parsed: unknown = undefined;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      parsed = text;
    }
    return { status: res.status, body: parsed as T, ms };
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
