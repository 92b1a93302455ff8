// `npm run bench [-- --quick] [--pg-delay-ms N] [--redis-delay-ms N] [--only S1,S3]`: starts the local stack in this
// process (embedded PGlite unless DATABASE_URL, in-memory Redis unless REDIS_URL) and wrangler dev, then runs the
// scenarios in a child process (bench/run.ts) so that the load generator never shares an event loop with the
// embedded Postgres. Results: bench/results/latest.json and latest.md.
import { fork } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { checkArgs } from "./lib/cli-args.js";
import { freePort } from "./local/ports.js";
import { LOCAL_JWT_SECRET, LOCAL_REDIS_TOKEN, ROOT, startStack, type Stack } from "./lib/stack.js";
import { startWrangler, type WranglerHandle } from "./lib/wrangler.js";
import { startMiniflare } from "./lib/miniflare.js";
import type { ControlReply, ControlRequest, StackInfo } from "../bench/harness/control.js";

const args = process.argv.slice(2);
checkArgs(args, {
  values: ["runtime", "pg-delay-ms", "redis-delay-ms", "only"],
  flags: ["quick", "verbose", "profile"],
  usage: `usage: npm run bench -- [--quick] [--only S1,S3] [--pg-delay-ms N] [--redis-delay-ms N] [--profile]
                         [--runtime=miniflare|wrangler] [--verbose]`,
});
const quick = args.includes("--quick");
/**
 * `miniflare` (default) serves the bundled Worker from one workerd; `wrangler` measures through `wrangler dev`, whose
 * proxy workerd relays every frame and costs CPU on the same two cores.
 */
const runtimeAt = args.indexOf("--runtime");
const runtimeArg = (runtimeAt >= 0 ? args[runtimeAt + 1] : args.find((a) => a.startsWith("--runtime="))?.slice("--runtime=".length)) ?? "miniflare";
if (runtimeArg !== "miniflare" && runtimeArg !== "wrangler") {
  console.error(`✗ bench: --runtime=${runtimeArg} is not known; use --runtime=miniflare (default) or --runtime=wrangler`);
  process.exit(2);
}
const runtime: "miniflare" | "wrangler" = runtimeArg;
/** Hard stop for the whole run (the runner keeps its own, tighter budget and skips what does not fit). */
const WATCHDOG_MS = quick ? 178_000 : 14.8 * 60_000;

/**
 * Extra Worker vars: the harness must not be rate limited. The REST/upgrade limiter stays on (its Redis round trip
 * is part of the cost of a write) with limits the harness cannot reach.
 */
const BENCH_VARS: Record<string, string> = {
  WS_MAX_FRAMES_PER_SECOND: "100000",
  // S6 measures start_typing → typing_start in a closed loop, far above a typist's one start every 2 s.
  WS_TYPING_STARTS_PER_SECOND: "100000",
  RATE_LIMIT_WRITES_PER_MINUTE: "1000000",
  RATE_LIMIT_UPGRADES_PER_MINUTE: "1000000",
};

async function version(pkg: string): Promise<string> {
  try {
    return (JSON.parse(await readFile(path.join(ROOT, "node_modules", pkg, "package.json"), "utf8")) as { version: string }).version;
  } catch {
    return "unknown";
  }
}

/** Share of CPU time the whole machine spent idle over `ms` (from /proc/stat; 1 where it cannot be read). */
async function idleShare(ms: number): Promise<number> {
  const sample = async () => {
    const line = (await readFile("/proc/stat", "utf8")).split("\n")[0].trim().split(/\s+/).slice(1).map(Number);
    return { idle: line[3] + (line[4] ?? 0), total: line.reduce((a, b) => a + b, 0) };
  };
  try {
    const a = await sample();
    await new Promise((r) => setTimeout(r, ms));
    const b = await sample();
    return b.total > a.total ? (b.idle - a.idle) / (b.total - a.total) : 1;
  } catch {
    return 1;
  }
}

/**
 * Waits (up to `maxMs`) for two quiet seconds in a row (≥ 90% idle): a run that starts while a previous one is
 * still closing its sockets, or a test suite runs, measures the other job.
 */
async function waitForQuiet(maxMs: number, log: (line: string) => void): Promise<number> {
  const until = Date.now() + maxMs;
  let quiet = 0;
  let said = false;
  let idle = 1;
  while (Date.now() < until) {
    idle = await idleShare(1000);
    quiet = idle >= 0.9 ? quiet + 1 : 0;
    if (quiet >= 2) return idle;
    if (!said && idle < 0.9) {
      log(`• waiting for the machine to go quiet (${Math.round(idle * 100)}% idle) ...`);
      said = true;
    }
  }
  log(`  still busy after ${maxMs / 1000} s; running anyway (the report says so)`);
  return idle;
}

async function main(): Promise<number> {
  const started = Date.now();
  const log = (line: string) => console.log(line);
  const elapsed = () => `${((Date.now() - started) / 1000).toFixed(1)} s`;
  const tmp = await mkdtemp(path.join(os.tmpdir(), "edge-chat-bench-"));
  let stack: Stack | undefined;
  let wrangler: WranglerHandle | undefined;
  const watchdog = setTimeout(() => {
    console.error(`\n✗ bench: watchdog fired after ${WATCHDOG_MS / 1000} s; stopping.`);
    void cleanup().then(() => process.exit(3));
  }, WATCHDOG_MS);
  watchdog.unref();
  let cleaned = false;
  async function cleanup(): Promise<void> {
    if (cleaned) return;
    cleaned = true;
    await wrangler?.stop().catch(() => {});
    await stack?.stop().catch(() => {});
    await rm(tmp, { recursive: true, force: true }).catch(() => {});
  }
  process.on("SIGINT", () => void cleanup().then(() => process.exit(130)));
  process.on("SIGTERM", () => void cleanup().then(() => process.exit(143)));

  try {
    log(`edge-chat bench (${quick ? "quick" : "full"})`);
    const idleAtStart = await waitForQuiet(quick ? 15_000 : 60_000, log);
    stack = await startStack({
      databaseUrl: process.env.DATABASE_URL || undefined,
      redisUrl: process.env.REDIS_URL || undefined,
      dataDir: "memory://",
      ports: { pg: 0, bridge: 0, redis: 0, profiles: 0 },
      log,
    });
    const port = await freePort();
    const vars = { ...stack.workerVars, ...BENCH_VARS };
    log(`• ${runtime === "wrangler" ? "wrangler dev" : "workerd via Miniflare"} on 127.0.0.1:${port} ...`);
    const start = runtime === "wrangler" ? startWrangler : startMiniflare;
    wrangler = await start({ port, vars, persistTo: path.join(tmp, "wrangler"), log, quiet: !args.includes("--verbose") });
    log(`  stack ready in ${elapsed()}`);
    // wrangler dev watches the source tree; other people's edits reload the Worker mid-run. Count them for the report.
    const reloads = { count: 0, last: "" };
    const watch = (chunk: Buffer) => {
      for (const line of chunk.toString().split("\n")) {
        if (/Reloading local server|Build failed|Local server updated/i.test(line)) {
          if (!/Local server updated/i.test(line)) reloads.count++;
          reloads.last = line.replace(/\x1b\[[0-9;]*m/g, "").trim().slice(0, 160);
        }
      }
    };
    wrangler.process.stdout?.on("data", watch);
    wrangler.process.stderr?.on("data", watch);

    const info: StackInfo = {
      baseUrl: wrangler.url,
      databaseUrl: stack.databaseUrl,
      embeddedPostgres: stack.embeddedPostgres,
      redisUrl: stack.redis.url,
      redisToken: LOCAL_REDIS_TOKEN,
      jwtSecret: LOCAL_JWT_SECRET,
      wranglerPid: wrangler.process.pid ?? 0,
      runtime,
      vars: BENCH_VARS,
      wranglerVersion: await version("wrangler"),
      workerdVersion: await version("@cloudflare/workerd-linux-64"),
    };
    const s = stack;
    // The runner is TypeScript too: fork() reuses this process's tsx loader flags (process.execArgv).
    const child = fork(path.join(ROOT, "bench/run.ts"), args, {
      cwd: ROOT,
      env: { ...process.env, BENCH_STACK: JSON.stringify(info), BENCH_STARTED: String(started), BENCH_IDLE_AT_START: String(idleAtStart) },
      stdio: "inherit",
    });
    child.on("message", (raw: unknown) => {
      const req = raw as ControlRequest;
      const reply = (r: Omit<ControlReply, "id">) => child.connected && child.send({ id: req.id, ...r });
      try {
        const body = req.body;
        switch (body.op) {
          case "pgDelay":
            s.bridge.setDelay(body.ms);
            return reply({ ok: true });
          case "pgDown":
            s.bridge.setDown(body.down);
            return reply({ ok: true });
          case "redisDelay":
            s.redis.setFault({ delayMs: body.ms });
            return reply({ ok: true });
          case "stats":
            return reply({ ok: true, result: { bridge: s.bridge.stats(), profileCalls: s.profiles.stats().calls, redis: s.redis.stats(), reloads: { ...reloads } } });
        }
      } catch (err) {
        reply({ ok: false, error: (err as Error).message });
      }
    });
    const code = await new Promise<number>((resolve) => child.on("exit", (c, signal) => resolve(c ?? (signal ? 1 : 0))));
    log(`bench finished in ${elapsed()} (exit ${code})`);
    return code;
  } finally {
    clearTimeout(watchdog);
    await cleanup();
  }
}

main().then(
  (code) => process.exit(code),
  (err: Error) => {
    console.error(`\n✗ bench: ${err.message}`);
    process.exit(1);
  },
);
