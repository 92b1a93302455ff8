import { createRemoteJWKSet, decodeJwt, decodeProtectedHeader, jwksCache as jwksCacheOption, jwtVerify, SignJWT, type JWTPayload } from "jose";
import { z } from "zod";
import { HttpError } from "./errors";
import { MemoryCache } from "./memory-cache";

export interface AuthUser {
  id: string;
  kahaId: string;
  /** "admin" marks service and admin tokens. */
  role?: string;
  /** Seconds since the epoch; sockets close with 4401 when it passes. */
  exp?: number;
}

export interface JwtSettings {
  secret?: string;
  jwksUrl?: string;
  issuer?: string;
  audience?: string;
  requireExp: boolean;
  /** Minimum time between JWKS refetches (an unknown kid triggers one); defaults to 30 s. */
  jwksCooldownMs?: number;
}

const claimsSchema = z.object({
  // Any version (contract §1): z.uuid() in zod 4 takes RFC 9562 versions and variants only, and refused
  // platform ids that every body field (uuidField) accepts.
  id: z.guid({ message: "claim 'id' must be a UUID" }),
  // Blank is missing: kept as it is, it became the user's name wherever the profile service had none.
  kahaId: z.string().max(200).refine((v) => v.trim().length > 0, { message: "claim 'kahaId' is required" }),
  // Identity providers write absent optional claims as null; that is no role, not a malformed token.
  role: z.string().max(50).nullish(),
  exp: z.number().optional(),
});

/**
 * Leeway for `nbf` (seconds): identity providers set it to their own "now", and an edge whose clock is a moment behind
 * refused a token minted that second. Not for `exp`: sockets close (4401) and tickets end exactly at it.
 */
const NBF_LEEWAY_SECONDS = 30;

const SYMMETRIC = ["HS256"];
const ASYMMETRIC = ["RS256", "ES256"];

// createRemoteJWKSet caches keys and refetches on an unknown `kid` (rotation); keep one per URL per isolate. `fetched`
// is jose's own record of the last successful fetch (it writes `uat` into the object it is given).
interface KeySet {
  resolve: ReturnType<typeof createRemoteJWKSet>;
  fetched: { uat?: number };
  cooldownMs: number;
}
const keySets = new Map<string, KeySet>();
function jwks(url: string, cooldownMs = 30_000): KeySet {
  const key = `${cooldownMs}:${url}`;
  let set = keySets.get(key);
  if (!set) {
    const fetched: { uat?: number } = {};
    const resolve = createRemoteJWKSet(new URL(url), { cooldownDuration: cooldownMs, cacheMaxAge: 10 * 60_000, [jwksCacheOption]: fetched as Record<string, never> });
    set = { resolve, fetched, cooldownMs };
    keySets.set(key, set);
  }
  return set;
}

/**
 * A token whose kid is unknown, minted after our last fetch of the key set, while jose will not fetch again (its
 * cooldown): the identity provider may have rotated to a key we have not seen yet. That is a 503 to retry once the
 * cooldown ends, not a 401 that signs the user out. A kid still unknown after a fetch newer than the token is a 401.
 */
function newKeyNotYetFetched(token: string, set: KeySet): HttpError | undefined {
  const fetchedAt = set.fetched.uat;
  if (fetchedAt === undefined || !set.resolve.coolingDown) return undefined;
  let iat: number | undefined;
  try {
    iat = decodeJwt(token).iat;
  } catch {
    return undefined;
  }
  // iat has whole seconds: a token minted in the second of the fetch may still be newer than it.
  if (typeof iat !== "number" || (iat + 1) * 1000 <= fetchedAt) return undefined;
  const waitSeconds = Math.max(1, Math.ceil((fetchedAt + set.cooldownMs - Date.now()) / 1000));
  return new HttpError(503, "Token signed by a key not fetched yet; try again", { "Retry-After": String(waitSeconds) });
}

// HMAC keys imported once per secret and isolate: jose would import the raw bytes again on every verification.
const hmacKeys = new Map<string, Promise<CryptoKey>>();
function hmacKey(secret: string): Promise<CryptoKey> {
  let key = hmacKeys.get(secret);
  if (!key) {
    key = crypto.subtle.importKey("raw", new TextEncoder().encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["verify"]);
    hmacKeys.set(secret, key);
  }
  return key;
}

/**
 * Tokens already verified by this isolate, until their `exp` (at most VERIFIED_TTL_MS, so a changed key or
 * setting takes effect soon). A client sends the same token with every request and socket; verifying it once
 * saves the signature check, the decoding and the claims validation on the rest. Failures are not cached.
 */
const VERIFIED_TTL_MS = 60_000;
const verified = new MemoryCache<AuthUser>({ maxEntries: 2000, ttlMs: VERIFIED_TTL_MS });
const settingsKey = (s: JwtSettings) => JSON.stringify([s.secret ?? "", s.jwksUrl ?? "", s.issuer ?? "", s.audience ?? "", s.requireExp]);

export class AuthError extends HttpError {
  constructor(readonly reason: string) {
    super(401, "Invalid or missing token");
  }
}

/** Verifies a bearer token against the configured key material; algorithm confusion is impossible by construction. */
export async function verifyToken(token: string, settings: JwtSettings): Promise<AuthUser> {
  const cacheKey = `${settingsKey(settings)}\n${token}`;
  const hit = verified.get(cacheKey);
  if (hit) return hit;
  const user = await verifyUncached(token, settings);
  const now = Date.now();
  verified.set(cacheKey, user, now, user.exp === undefined ? VERIFIED_TTL_MS : user.exp * 1000 - now);
  return user;
}

async function verifyUncached(token: string, settings: JwtSettings): Promise<AuthUser> {
  let alg: string | undefined;
  try {
    alg = decodeProtectedHeader(token).alg;
  } catch {
    throw new AuthError("malformed token");
  }
  const options = {
    issuer: settings.issuer,
    audience: settings.audience,
    requiredClaims: settings.requireExp ? ["exp"] : [],
    clockTolerance: NBF_LEEWAY_SECONDS,
  };
  let payload: JWTPayload;
  let keySet: KeySet | undefined;
  try {
    if (alg && SYMMETRIC.includes(alg) && settings.secret) {
      ({ payload } = await jwtVerify(token, await hmacKey(settings.secret), { ...options, algorithms: SYMMETRIC }));
    } else if (alg && ASYMMETRIC.includes(alg) && settings.jwksUrl) {
      keySet = jwks(settings.jwksUrl, settings.jwksCooldownMs);
      ({ payload } = await jwtVerify(token, keySet.resolve, { ...options, algorithms: ASYMMETRIC }));
    } else {
      throw new AuthError(`algorithm ${alg ?? "none"} is not accepted`);
    }
  } catch (err) {
    if (err instanceof AuthError) throw err;
    if (alg && ASYMMETRIC.includes(alg) && keySetUnreachable(err)) {
      // The identity provider's keys, not the token: a 401 would sign every client out during its outage.
      throw new HttpError(503, "Token keys unavailable; try again", { "Retry-After": "5" });
    }
    const code = (err as { code?: string }).code ?? "ERR_JWT_INVALID";
    const notYetFetched = code === "ERR_JWKS_NO_MATCHING_KEY" && keySet ? newKeyNotYetFetched(token, keySet) : undefined;
    if (notYetFetched) throw notYetFetched;
    throw new AuthError(code);
  }
  // jose applied the leeway to exp too: the token ends at its exp, to the millisecond, as its tickets and sockets do.
  if (typeof payload.exp === "number" && payload.exp * 1000 <= Date.now()) throw new AuthError("ERR_JWT_EXPIRED");
  const claims = claimsSchema.safeParse(payload);
  if (!claims.success) throw new AuthError(claims.error.issues.map((i) => i.message).join(", "));
  return { id: claims.data.id.toLowerCase(), kahaId: claims.data.kahaId, role: claims.data.role ?? undefined, exp: claims.data.exp };
}

/**
 * The key set could not be had (timeout, an error status, a body that is no key set, the network): jose's own codes
 * for those, and anything thrown without a jose code (fetch's TypeError). Not: no key matches the token's kid.
 */
function keySetUnreachable(err: unknown): boolean {
  const e = err as { code?: string; message?: string };
  if (e.code === undefined) return true;
  if (e.code === "ERR_JWKS_TIMEOUT" || e.code === "ERR_JWKS_INVALID") return true;
  return e.code === "ERR_JOSE_GENERIC" && /JSON Web Key Set/i.test(e.message ?? "");
}

/** Local tokens (dev-login, `npm run token`, tests): HS256 with the configured secret. */
export async function signDevToken(
  user: { id: string; kahaId: string; role?: string },
  secret: string,
  ttlSeconds = 3600,
): Promise<string> {
  const jwt = new SignJWT({ id: user.id, kahaId: user.kahaId, ...(user.role ? { role: user.role } : {}) })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setIssuedAt();
  if (ttlSeconds > 0) jwt.setExpirationTime(Math.floor(Date.now() / 1000) + ttlSeconds);
  return jwt.sign(new TextEncoder().encode(secret));
}
