import path from "node:path";
import { fileURLToPath } from "node:url";
import { startEmbeddedPostgres } from "../local/pg-server.js";
import { isLoopbackHost, startPgBridge, type PgBridgeHandle } from "../local/pg-bridge.js";
import { startRedisRest, type RedisRestHandle } from "../local/redis-rest.js";
import { startProfileService, type ProfileServiceHandle } from "../local/profile-service.js";
import { runMigrations } from "./migrate.js";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const LOCAL_JWT_SECRET = "local-development-secret-change-me-0123456789";
export const LOCAL_REDIS_TOKEN = "local-redis-token";
export const LOCAL_PROFILE_TOKEN = "local-profile-token";
/** Guards the fault switches of the local Postgres bridge (tests and the reliability suite use them). */
export const LOCAL_CONTROL_TOKEN = "local-control-token";

export interface StackOptions {
  /** Real server when set (e.g. Debian PostgreSQL in CI); embedded PGlite otherwise. */
  databaseUrl?: string;
  /** Real redis-server behind the REST endpoint when set; in-memory otherwise. */
  redisUrl?: string;
  /** PGlite data directory, or "memory://". */
  dataDir: string;
  ports: { pg: number; bridge: number; redis: number; profiles: number };
  log: (line: string) => void;
}

export interface Stack {
  /** Variables the Worker needs to reach this stack (passed to wrangler dev / miniflare). */
  workerVars: Record<string, string>;
  databaseUrl: string;
  bridge: PgBridgeHandle;
  redis: RedisRestHandle;
  profiles: ProfileServiceHandle;
  embeddedPostgres: boolean;
  stop(): Promise<void>;
}

/** Starts the dependencies in order with progress lines; on any failure stops what already started. */
export async function startStack(options: StackOptions): Promise<Stack> {
  const { log } = options;
  const closers: (() => Promise<void>)[] = [];
  const stop = async () => {
    for (const close of closers.reverse()) await close().catch(() => {});
  };
  try {
    let databaseUrl = options.databaseUrl;
    if (databaseUrl) {
      assertBridgeable(databaseUrl);
      log(`• PostgreSQL: using DATABASE_URL (${redactUrl(databaseUrl)})`);
    } else {
      log(`• PostgreSQL: starting embedded PGlite (${options.dataDir}) ...`);
      const pg = await startEmbeddedPostgres({ dataDir: options.dataDir, port: options.ports.pg, portEnvName: "PG_PORT" });
      closers.push(() => pg.close());
      databaseUrl = pg.url;
      log(`  embedded PostgreSQL on 127.0.0.1:${pg.port}`);
    }
    const bridge = await startPgBridge({ port: options.ports.bridge, portEnvName: "PG_BRIDGE_PORT", controlToken: LOCAL_CONTROL_TOKEN });
    closers.push(() => bridge.close());
    log(`• Postgres WebSocket bridge on 127.0.0.1:${bridge.port}`);

    const bridgeAddress = `127.0.0.1:${bridge.port}`;
    log("• Migrations:");
    const result = await runMigrations({ databaseUrl, bridge: bridgeAddress, dir: path.join(ROOT, "migrations"), log });
    log(`  ${result.applied.length} applied, ${result.skipped} already up to date`);

    const redis = await startRedisRest({
      port: options.ports.redis,
      token: LOCAL_REDIS_TOKEN,
      redisUrl: options.redisUrl,
      portEnvName: "REDIS_REST_PORT",
      urlEnvName: "REDIS_URL",
    });
    closers.push(() => redis.close());
    log(`• Redis REST endpoint on ${redis.url} (${options.redisUrl ? `redis-server at ${redactUrl(options.redisUrl)}` : "in-memory"})`);

    const profiles = await startProfileService({ port: options.ports.profiles, token: LOCAL_PROFILE_TOKEN, portEnvName: "PROFILE_PORT" });
    closers.push(() => profiles.close());
    log(`• Profile service (local fake) on ${profiles.url}`);

    const workerVars: Record<string, string> = {
      DATABASE_URL: databaseUrl,
      PG_BRIDGE: bridgeAddress,
      UPSTASH_REDIS_REST_URL: redis.url,
      UPSTASH_REDIS_REST_TOKEN: LOCAL_REDIS_TOKEN,
      JWT_SECRET: LOCAL_JWT_SECRET,
      PROFILE_SERVICE_URL: profiles.url,
      PROFILE_SERVICE_TOKEN: LOCAL_PROFILE_TOKEN,
      DEV_LOGIN: "true",
    };
    return { workerVars, databaseUrl, bridge, redis, profiles, embeddedPostgres: !options.databaseUrl, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/**
 * The Worker and the migrations reach Postgres through the local bridge, which connects to loopback addresses only.
 * A DATABASE_URL naming another host started everything up to the migrations, which then said the bridge could not be
 * reached ("Is it running?"), though it was: the bridge had refused the host.
 */
function assertBridgeable(databaseUrl: string): void {
  let host: string;
  try {
    host = new URL(databaseUrl).hostname;
  } catch {
    throw new Error(`DATABASE_URL is not a URL (postgres://user:password@127.0.0.1:5432/db): ${redactUrl(databaseUrl)}`);
  }
  if (isLoopbackHost(host)) return;
  throw new Error(
    `DATABASE_URL names ${host}, but the local stack reaches Postgres through its bridge, which connects to this ` +
      `machine (127.0.0.1, localhost, ::1) only. Use a Postgres on this machine, or a tunnel to that one (for example ` +
      `\`ssh -L 5432:${host}:5432 <gateway>\` and DATABASE_URL=postgres://…@127.0.0.1:5432/…), or unset DATABASE_URL ` +
      `for the embedded database.`,
  );
}

export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString();
  } catch {
    return "(unparseable URL)";
  }
}
