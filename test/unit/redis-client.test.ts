import { describe, expect, it } from "vitest";
import { createRedis } from "../../src/lib/redis";

const config = (url: string, token: string) => ({ UPSTASH_REDIS_REST_URL: url, UPSTASH_REDIS_REST_TOKEN: token });

describe("createRedis", () => {
  it("hands out one client per endpoint and token, not one per call", () => {
    const a = createRedis(config("http://127.0.0.1:1", "t1"));
    expect(createRedis(config("http://127.0.0.1:1", "t1"))).toBe(a);
    const other = createRedis(config("http://127.0.0.1:1", "t2"));
    expect(other).not.toBe(a);
    expect(createRedis(config("http://127.0.0.1:2", "t2"))).not.toBe(other);
  });
});
