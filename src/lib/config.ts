import { z } from "zod";
import { normalizeOrigin } from "./origin";

/**
 * Configuration from wrangler vars/secrets (contract §8). Parsed once per isolate; a bad value fails with a
 * message naming the variable, both here (Worker) and in the dev script (Node) which share this schema.
 */
const bool = (fallback: boolean) =>
  z
    .enum(["true", "false", "1", "0", ""])
    .optional()
    .transform((v) => (v === undefined || v === "" ? fallback : v === "true" || v === "1"));

const int = (fallback: number, min: number, max: number) =>
  z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined || v === "") return fallback;
      const n = Number(v);
      if (!Number.isInteger(n) || n < min || n > max) {
        ctx.addIssue({ code: "custom", message: `must be an integer between ${min} and ${max}` });
        return z.NEVER;
      }
      return n;
    });

const optionalUrl = z
  .string()
  .optional()
  .transform((v) => (v === "" ? undefined : v))
  .pipe(z.url().optional());

const optionalText = z
  .string()
  .optional()
  .transform((v) => (v === "" ? undefined : v));

export const configSchema = z
  .object({
    DATABASE_URL: z.string().regex(/^postgres(ql)?:\/\//, "must be a postgres:// connection string"),
    /** Local development only: host:port of the WebSocket-to-TCP bridge in front of Postgres. */
    PG_BRIDGE: optionalText,
    UPSTASH_REDIS_REST_URL: z.url(),
    UPSTASH_REDIS_REST_TOKEN: z.string().min(1),
    JWT_SECRET: optionalText.pipe(z.string().min(32, "must be at least 32 characters").optional()),
    JWKS_URL: optionalUrl,
    JWT_ISSUER: optionalText,
    JWT_AUDIENCE: optionalText,
    JWT_REQUIRE_EXP: bool(true),
    PROFILE_SERVICE_URL: z.url(),
    PROFILE_SERVICE_TOKEN: z.string().min(1),
    PROFILE_SERVICE_TIMEOUT: int(5000, 50, 60_000),
    PROFILE_CACHE_TTL: int(86_400, 10, 30 * 86_400),
    // Kept as browsers send them (normalizeOrigin): "https://App.example.com:443/" matches "https://app.example.com".
    ALLOWED_ORIGINS: optionalText.transform((v, ctx) => {
      const origins: string[] = [];
      for (const entry of (v ?? "").split(",").map((s) => s.trim()).filter(Boolean)) {
        const origin = normalizeOrigin(entry);
        if (origin) origins.push(origin);
        else ctx.addIssue({ code: "custom", message: `"${entry}" is not an origin: write it as https://${entry.replace(/^[a-z]+:\/+/i, "")}` });
      }
      return origins;
    }),
    MESSAGE_RETENTION_DAYS: int(90, 1, 36_500),
    DEV_LOGIN: bool(false),
    SERVICE_VERSION: optionalText.transform((v) => v ?? "0.0.0"),
    /** Seconds without activity before an online user becomes away (contract §6, default 5 min). */
    PRESENCE_AWAY_AFTER: int(300, 5, 86_400),
    /** Frames a socket may send per second before it gets rate_limited and is closed (1008). */
    WS_MAX_FRAMES_PER_SECOND: int(200, 1, 100_000),
    /** start_typing frames a user may send per second in a conversation (all their sockets); more get rate_limited. */
    WS_TYPING_STARTS_PER_SECOND: int(4, 1, 100_000),
    /** Deadline for the Postgres commit before a send is acknowledged as pending. */
    WRITE_THROUGH_DEADLINE_MS: int(2000, 10, 60_000),
    // Operations (src/jobs, src/worker/middleware/rate-limit.ts, src/lib/metrics.ts); 0 turns a rate limit off.
    /** Days a soft-deleted message's previous content is kept (audit log, tombstones) before the purge job removes it. */
    DELETED_CONTENT_GRACE_DAYS: int(30, 0, 36_500),
    /** REST writes (POST/PUT/PATCH/DELETE, read marks included) per user per minute; per client IP below. */
    RATE_LIMIT_WRITES_PER_MINUTE: int(300, 0, 1_000_000),
    RATE_LIMIT_IP_WRITES_PER_MINUTE: int(1200, 0, 10_000_000),
    /** WebSocket upgrades (and realtime tickets) per user per minute; per client IP below. */
    RATE_LIMIT_UPGRADES_PER_MINUTE: int(60, 0, 1_000_000),
    RATE_LIMIT_IP_UPGRADES_PER_MINUTE: int(300, 0, 10_000_000),
    /** Wall-clock budget of one run of a batch job (archiving, purge), so a Cron invocation stays bounded. */
    JOB_TIME_BUDGET_MS: int(20_000, 100, 600_000),
    /** Rows moved per archiving statement. */
    ARCHIVE_BATCH_SIZE: int(500, 1, 10_000),
    /** How often an isolate writes its accumulated counters to Redis (0: after every request). */
    METRICS_FLUSH_INTERVAL_MS: int(5000, 0, 600_000),
  })
  .refine((c) => c.JWT_SECRET !== undefined || c.JWKS_URL !== undefined, {
    message: "set JWT_SECRET (HS256) or JWKS_URL (RS256/ES256)",
    path: ["JWT_SECRET"],
  });

export type Config = z.output<typeof configSchema>;

export class ConfigError extends Error {
  constructor(readonly issues: string[]) {
    super(`Invalid configuration: ${issues.join("; ")}`);
    this.name = "ConfigError";
  }
}

export function parseConfig(source: Record<string, unknown>): Config {
  const strings: Record<string, string | undefined> = {};
  for (const key of Object.keys(configSchema.shape)) {
    const value = source[key];
    strings[key] = typeof value === "string" ? value : value === undefined || value === null ? undefined : String(value);
  }
  const result = configSchema.safeParse(strings);
  if (result.success) return result.data;
  throw new ConfigError(result.error.issues.map((i) => `${i.path.join(".") || "config"}: ${i.message}`));
}

const cache = new WeakMap<object, Config>();

/** Memoised per bindings object, so a request pays for parsing once per isolate. */
export function getConfig(env: object): Config {
  let config = cache.get(env);
  if (!config) {
    config = parseConfig(env as Record<string, unknown>);
    cache.set(env, config);
  }
  return config;
}
