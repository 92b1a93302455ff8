import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { exportJWK, generateKeyPair, SignJWT, type JWK } from "jose";
import { verifyToken } from "../../src/lib/jwt";

/** RS256/ES256 verification against a JWKS endpoint, including key rotation by `kid`. */
let server: http.Server;
let keys: JWK[] = [];
let fetches = 0;
let url = "";

beforeAll(async () => {
  server = http.createServer((req, res) => {
    if (req.url?.includes("broken")) return void res.writeHead(500).end("down");
    fetches++;
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ keys }));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks.json`;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

async function keyPair(alg: "RS256" | "ES256", kid: string) {
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true });
  const jwk = { ...(await exportJWK(publicKey)), kid, alg, use: "sig" };
  return { jwk, sign: (claims: Record<string, unknown>, headerKid = kid) => new SignJWT(claims).setProtectedHeader({ alg, kid: headerKid }).sign(privateKey) };
}

const id = "6f7c1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b";
const claims = () => ({ id, kahaId: "jwks-user", exp: Math.floor(Date.now() / 1000) + 300, iss: "https://id.example", aud: "chat" });
const settings = () => ({ jwksUrl: url, issuer: "https://id.example", audience: "chat", requireExp: true, jwksCooldownMs: 200 });

describe("JWKS verification", () => {
  it("accepts RS256 and ES256 tokens signed by published keys, with issuer and audience enforced", async () => {
    const rsa = await keyPair("RS256", "rsa-1");
    const ec = await keyPair("ES256", "ec-1");
    keys = [rsa.jwk, ec.jwk];
    expect(await verifyToken(await rsa.sign(claims()), settings())).toMatchObject({ id, kahaId: "jwks-user" });
    expect(await verifyToken(await ec.sign(claims()), settings())).toMatchObject({ id });
    await expect(verifyToken(await rsa.sign({ ...claims(), aud: "other" }), settings())).rejects.toMatchObject({ status: 401 });
    await expect(verifyToken(await rsa.sign({ ...claims(), iss: "https://evil.example" }), settings())).rejects.toMatchObject({ status: 401 });
  });

  it("picks up a rotated key by its new kid, and rejects keys that are not published", async () => {
    const before = fetches;
    const rotated = await keyPair("RS256", "rsa-2");
    const stranger = await keyPair("RS256", "rsa-x");
    keys = [...keys, rotated.jwk];
    await new Promise((r) => setTimeout(r, 250));
    expect(await verifyToken(await rotated.sign(claims()), settings())).toMatchObject({ id });
    expect(fetches).toBeGreaterThan(before);
    await expect(verifyToken(await stranger.sign(claims(), "rsa-1"), settings())).rejects.toMatchObject({ status: 401 });
  });

  it("answers 503 with Retry-After, not 401, for a key minted after the last fetch while a refetch is not yet allowed", async () => {
    // Every key made before the cooldown starts: an RSA key pair took over the 1.5 s cooldown on a busy CI machine.
    const [current, rotated, stale] = await Promise.all([keyPair("RS256", "rsa-cool-1"), keyPair("RS256", "rsa-cool-2"), keyPair("RS256", "rsa-cool-x")]);
    keys = [current.jwk];
    const cool = { ...settings(), jwksCooldownMs: 2500 };
    // Fetches the set (the kid is new to the cached set), which starts the cooldown.
    expect(await verifyToken(await current.sign(claims()), cool)).toMatchObject({ id });
    keys = [current.jwk, rotated.jwk];
    const minted = await rotated.sign({ ...claims(), iat: Math.floor(Date.now() / 1000) });
    const refused = await verifyToken(minted, cool).catch((e: unknown) => e);
    expect(refused).toMatchObject({ status: 503 });
    expect(Number((refused as { headers?: Record<string, string> }).headers?.["Retry-After"])).toBeGreaterThanOrEqual(1);
    // A token minted well before the last fetch, by a key that fetch did not have, is no rotation: 401 at once.
    await expect(verifyToken(await stale.sign({ ...claims(), iat: Math.floor(Date.now() / 1000) - 60 }), cool)).rejects.toMatchObject({ status: 401 });
    await new Promise((r) => setTimeout(r, 2600));
    expect(await verifyToken(minted, cool)).toMatchObject({ id });
  });

  it("never accepts an HS256 token when only JWKS is configured (algorithm confusion)", async () => {
    const forged = await new SignJWT(claims()).setProtectedHeader({ alg: "HS256", kid: "rsa-1" }).sign(new TextEncoder().encode(JSON.stringify(keys[0])));
    await expect(verifyToken(forged, settings())).rejects.toMatchObject({ status: 401 });
  });

  it("answers 503 (retry), not 401 (sign in again), when the key set cannot be fetched", async () => {
    const signer = await keyPair("RS256", "rsa-down");
    keys = [signer.jwk];
    const token = await signer.sign(claims());
    for (const jwksUrl of [url.replace("jwks.json", "broken/jwks.json"), "http://127.0.0.1:1/jwks.json"]) {
      await expect(verifyToken(token, { ...settings(), jwksUrl })).rejects.toMatchObject({ status: 503 });
    }
    // A token signed by a key that is not published is still the caller's problem.
    const stranger = await keyPair("RS256", "rsa-unknown");
    await expect(verifyToken(await stranger.sign(claims()), settings())).rejects.toMatchObject({ status: 401 });
  });
});
