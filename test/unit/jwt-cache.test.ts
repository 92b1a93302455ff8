import { afterEach, describe, expect, it, vi } from "vitest";
import { SignJWT } from "jose";
import { signDevToken, verifyToken } from "../../src/lib/jwt";

const secret = "jwt-cache-test-secret-0123456789abcdef";
const settings = { secret, requireExp: true };
const user = () => ({ id: crypto.randomUUID(), kahaId: "cache-user" });

afterEach(() => {
  vi.useRealTimers();
  vi.restoreAllMocks();
});

describe("verified-token cache", () => {
  it("checks a token's signature once, then answers the same token from memory", async () => {
    const token = await signDevToken(user(), secret);
    const verify = vi.spyOn(crypto.subtle, "verify");
    const first = await verifyToken(token, settings);
    const second = await verifyToken(token, settings);
    expect(second).toEqual(first);
    expect(verify).toHaveBeenCalledTimes(1);
  });

  it("stops accepting a cached token when it expires", async () => {
    vi.useFakeTimers({ toFake: ["Date"] });
    const token = await signDevToken(user(), secret, 30);
    await verifyToken(token, settings);
    vi.setSystemTime(Date.now() + 31_000);
    await expect(verifyToken(token, settings)).rejects.toMatchObject({ status: 401 });
  });

  it("does not let a token verified under one secret through under another, and never caches a failure", async () => {
    const token = await signDevToken(user(), secret);
    await verifyToken(token, settings);
    await expect(verifyToken(token, { ...settings, secret: "another-secret-0123456789abcdefghij" })).rejects.toMatchObject({ status: 401 });
    const forged = `${token.slice(0, -4)}AAAA`;
    await expect(verifyToken(forged, settings)).rejects.toMatchObject({ status: 401 });
    await expect(verifyToken(forged, settings)).rejects.toMatchObject({ status: 401 });
  });

  it("accepts a token whose optional role claim is null, as a token without a role", async () => {
    const u = user();
    const token = await new SignJWT({ ...u, role: null })
      .setProtectedHeader({ alg: "HS256" })
      .setExpirationTime("5m")
      .sign(new TextEncoder().encode(secret));
    expect(await verifyToken(token, settings)).toEqual({ id: u.id, kahaId: u.kahaId, role: undefined, exp: expect.any(Number) });
  });
});
