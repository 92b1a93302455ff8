import { describe, expect, it } from "vitest";
import { ConfigError, parseConfig } from "../../src/lib/config";

const valid = {
  DATABASE_URL: "postgres://u:p@127.0.0.1:5432/db",
  UPSTASH_REDIS_REST_URL: "http://127.0.0.1:8079",
  UPSTASH_REDIS_REST_TOKEN: "t",
  JWT_SECRET: "x".repeat(32),
  PROFILE_SERVICE_URL: "http://127.0.0.1:8078",
  PROFILE_SERVICE_TOKEN: "p",
};

function issues(env: Record<string, string | undefined>): string {
  try {
    parseConfig(env);
    return "";
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
}

describe("configuration", () => {
  it("applies the documented defaults", () => {
    const c = parseConfig(valid);
    expect(c.JWT_REQUIRE_EXP).toBe(true);
    expect(c.DEV_LOGIN).toBe(false);
    expect(c.MESSAGE_RETENTION_DAYS).toBe(90);
    expect(c.PROFILE_SERVICE_TIMEOUT).toBe(5000);
    expect(c.PROFILE_CACHE_TTL).toBe(86400);
    expect(c.ALLOWED_ORIGINS).toEqual([]);
  });

  it("names the variable that is missing or invalid", () => {
    expect(issues({ ...valid, DATABASE_URL: undefined })).toMatch(/DATABASE_URL/);
    expect(issues({ ...valid, DATABASE_URL: "mysql://x" })).toMatch(/DATABASE_URL: must be a postgres/);
    expect(issues({ ...valid, JWT_SECRET: "short" })).toMatch(/JWT_SECRET: must be at least 32/);
    expect(issues({ ...valid, JWT_SECRET: undefined })).toMatch(/JWT_SECRET: set JWT_SECRET .* or JWKS_URL/);
    expect(issues({ ...valid, PROFILE_SERVICE_TIMEOUT: "soon" })).toMatch(/PROFILE_SERVICE_TIMEOUT: must be an integer/);
    expect(issues({ ...valid, MESSAGE_RETENTION_DAYS: "0" })).toMatch(/MESSAGE_RETENTION_DAYS/);
    expect(issues({ ...valid, DEV_LOGIN: "yes" })).toMatch(/DEV_LOGIN/);
    expect(issues({ ...valid, UPSTASH_REDIS_REST_URL: "not a url" })).toMatch(/UPSTASH_REDIS_REST_URL/);
  });

  it("accepts JWKS without a shared secret and parses lists and booleans", () => {
    const c = parseConfig({ ...valid, JWT_SECRET: "", JWKS_URL: "https://id.example.com/jwks.json", JWT_REQUIRE_EXP: "false", ALLOWED_ORIGINS: "https://a.test, https://b.test" });
    expect(c.JWT_SECRET).toBeUndefined();
    expect(c.JWT_REQUIRE_EXP).toBe(false);
    expect(c.ALLOWED_ORIGINS).toEqual(["https://a.test", "https://b.test"]);
  });

  it("reads allowed origins as browsers send them: a default port written out still matches, a bare host is an error", () => {
    const c = parseConfig({ ...valid, ALLOWED_ORIGINS: "https://A.test:443, http://b.test:80/, https://c.test:8443" });
    expect(c.ALLOWED_ORIGINS).toEqual(["https://a.test", "http://b.test", "https://c.test:8443"]);
    expect(issues({ ...valid, ALLOWED_ORIGINS: "https://a.test, app.example.com" })).toMatch(
      /ALLOWED_ORIGINS: "app.example.com" is not an origin: write it as https:\/\/app.example.com/,
    );
  });

  it("keeps production's dev-login off in wrangler.toml", async () => {
    const { readFile } = await import("node:fs/promises");
    const toml = await readFile(new URL("../../wrangler.toml", import.meta.url), "utf8");
    expect(toml).toMatch(/^DEV_LOGIN = "false"$/m);
  });
});
