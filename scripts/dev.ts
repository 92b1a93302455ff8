// `npm run dev`: the whole local stack with embedded defaults, then wrangler dev. Ctrl-C stops everything.
import path from "node:path";
import { mkdir } from "node:fs/promises";
import { assertPortFree, freePort } from "./local/ports.js";
import { ROOT, startStack } from "./lib/stack.js";
import { explainForDev } from "./lib/migrate.js";
import { startWrangler } from "./lib/wrangler.js";

function portFromEnv(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0 || n > 65535) {
    console.error(`✗ ${name}=${raw} is not a port number (0-65535).`);
    process.exit(2);
  }
  return n;
}

/**
 * Two variables naming one port (PORT=5433 and the embedded Postgres's default): the first service took it, and the
 * failure came minutes later from wrangler, or as "Port 5433 is in use. Set PG_BRIDGE_PORT", naming the wrong one.
 */
function assertDistinctPorts(named: Record<string, number>): void {
  const seen = new Map<number, string>();
  for (const [name, port] of Object.entries(named)) {
    const other = seen.get(port);
    if (port !== 0 && other) {
      console.error(`✗ ${other} and ${name} are both ${port}: each service needs a port of its own. Change one (0 picks any free port).`);
      process.exit(2);
    }
    seen.set(port, name);
  }
}

async function main() {
  const log = (line: string) => console.log(line);
  // PORT=0 (as the port-in-use message offers): a free port, chosen here because wrangler needs a real one.
  const port = portFromEnv("PORT", 8787) || (await freePort());
  const ports = {
    pg: portFromEnv("PG_PORT", 5433),
    bridge: portFromEnv("PG_BRIDGE_PORT", 5434),
    redis: portFromEnv("REDIS_REST_PORT", 8079),
    profiles: portFromEnv("PROFILE_PORT", 8078),
  };
  assertDistinctPorts({ PORT: port, PG_PORT: ports.pg, PG_BRIDGE_PORT: ports.bridge, REDIS_REST_PORT: ports.redis, PROFILE_PORT: ports.profiles });
  console.log("edge-chat: starting the local stack\n");
  await assertPortFree(port, "PORT");
  // DEV_DATA_DIR moves the PGlite and wrangler state out of the checkout (test/e2e/dev.serial.test.ts uses a temp dir).
  const dataDir = path.resolve(ROOT, process.env.DEV_DATA_DIR || ".data");
  await mkdir(dataDir, { recursive: true });
  const databaseUrl = process.env.DATABASE_URL || undefined;
  const stack = await startStack({
    databaseUrl,
    redisUrl: process.env.REDIS_URL || undefined,
    dataDir: path.join(dataDir, "pg"),
    ports,
    log,
  }).catch((err: unknown) => {
    throw explainForDev(err, databaseUrl ? undefined : dataDir);
  });
  log(`• wrangler dev on 127.0.0.1:${port} ...`);
  let wrangler;
  try {
    // The web app (static assets wrangler serves at `/`), built before wrangler starts.
    await (await import("vite")).build({ configFile: path.join(ROOT, "web/vite.config.ts"), logLevel: "warn" });
    wrangler = await startWrangler({ port, vars: stack.workerVars, persistTo: path.join(dataDir, "wrangler"), log, quiet: false });
  } catch (err) {
    await stack.stop();
    throw err;
  }
  const url = wrangler.url;
  // Every command below runs as printed. The token line needs -s: npm's own "> edge-chat@0.1.0 token" header went
  // into $TOKEN with the token, and the curl then sent a header of several lines (answered 400, invalid headers).
  console.log(`
──────────────────────────────────────────────────────────────
 edge-chat is running

   API        ${url}
   Health     ${url}/health   (${url}/health/detailed)
   API docs   ${url}/api/docs
   Web app    ${url}/

 Get a token:
   npm run token -- --kahaId alice
   curl -s -X POST ${url}/auth/dev-login -H 'content-type: application/json' -d '{"kahaId":"alice"}'

 Jobs (the cron does not fire locally), with a service token:
   TOKEN=$(npm run -s token -- --kahaId ops --role admin)
   curl -s -X POST ${url}/operations/jobs/retention.archive/run -H "authorization: Bearer $TOKEN"

 Ctrl-C stops everything.
──────────────────────────────────────────────────────────────
`);
  let stopping = false;
  const shutdown = async () => {
    if (stopping) return;
    stopping = true;
    console.log("\nStopping ...");
    await wrangler.stop();
    await stack.stop();
    console.log("Stopped.");
    process.exit(0);
  };
  process.on("SIGINT", shutdown);
  process.on("SIGTERM", shutdown);
  wrangler.process.on("exit", (code) => {
    if (!stopping) {
      console.error(`wrangler dev exited (code ${code}); stopping the stack.`);
      void shutdown();
    }
  });
}

main().catch((err: Error) => {
  console.error(`\n✗ ${err.message}`);
  process.exit(1);
});
