import { Redis } from "@upstash/redis/cloudflare";
import type { Config } from "./config";

let shared: { key: string; client: Redis } | undefined;

/**
 * The Upstash client, with retries off: a cache that is down must cost one failed round trip, not five with backoff;
 * callers treat failures as misses. One client per isolate and endpoint: it holds no I/O (each command is a fetch of
 * its own), and building one was a tenth of a WebSocket upgrade's CPU (the rate limiter needs one per request).
 */
export function createRedis(config: Pick<Config, "UPSTASH_REDIS_REST_URL" | "UPSTASH_REDIS_REST_TOKEN">): Redis {
  const key = `${config.UPSTASH_REDIS_REST_URL}\n${config.UPSTASH_REDIS_REST_TOKEN}`;
  if (shared?.key === key) return shared.client;
  const client = new Redis({
    url: config.UPSTASH_REDIS_REST_URL,
    token: config.UPSTASH_REDIS_REST_TOKEN,
    // `retry: false` still makes two attempts in 1.39 (off by one); zero retries is one attempt.
    retry: { retries: 0 },
    enableTelemetry: false,
  });
  shared = { key, client };
  return client;
}

export async function withTimeout<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      work,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    if (timer) clearTimeout(timer);
  }
}
