// `npm test`: starts the local stack (embedded Postgres and in-memory Redis by default; DATABASE_URL / REDIS_URL
// for real servers), runs every vitest project against it, and ends with a plain "N passed, N failed" line.
import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { freePort } from "./local/ports.js";
import { ROOT, startStack } from "./lib/stack.js";
import { startWrangler } from "./lib/wrangler.js";

interface JsonReport {
  numPassedTests: number;
  numFailedTests: number;
  numPendingTests: number;
  numTodoTests: number;
}

async function main() {
  // `--faults` (npm run test:faults) runs only the "faults" project (test/reliability: minutes of injected faults);
  // the default run is every project except that one. An explicit --project from the caller wins.
  const faults = process.argv.includes("--faults");
  const passThrough = process.argv.slice(2).filter((a) => a !== "--faults");
  const projectChosen = passThrough.some((a) => a === "--project" || a.startsWith("--project="));
  const projects = projectChosen ? [] : faults ? ["--project=faults"] : ["--project=!faults"];
  const started = Date.now();
  const log = (line: string) => console.log(line);
  const tmp = await mkdtemp(path.join(os.tmpdir(), "edge-chat-test-"));
  const stack = await startStack({
    databaseUrl: process.env.DATABASE_URL || undefined,
    redisUrl: process.env.REDIS_URL || undefined,
    dataDir: "memory://",
    ports: { pg: 0, bridge: 0, redis: 0, profiles: 0 },
    log,
  });
  let code = 1;
  let wrangler: Awaited<ReturnType<typeof startWrangler>> | undefined;
  try {
    const port = await freePort();
    log(`• wrangler dev for end-to-end tests on 127.0.0.1:${port} ...`);
    wrangler = await startWrangler({ port, vars: stack.workerVars, persistTo: path.join(tmp, "wrangler"), log, quiet: true });
    log(`  ready in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    const reportFile = path.join(tmp, "report.json");
    const env = {
      ...process.env,
      STACK_WORKER_VARS: JSON.stringify(stack.workerVars),
      STACK_BASE_URL: wrangler.url,
      STACK_DATABASE_URL: stack.databaseUrl,
      STACK_PG_BRIDGE: stack.workerVars.PG_BRIDGE,
      STACK_REDIS_URL: stack.redis.url,
      STACK_BRIDGE_URL: `http://127.0.0.1:${stack.bridge.port}`,
      STACK_PROFILE_URL: stack.profiles.url,
      STACK_WRANGLER_PID: String(wrangler.process.pid),
      CLOUDFLARE_CF_FETCH_ENABLED: "false",
      WRANGLER_SEND_METRICS: "false",
    };
    const vitest = path.join(ROOT, "node_modules/vitest/vitest.mjs");
    const args = [vitest, "run", "--reporter=default", "--reporter=json", `--outputFile.json=${reportFile}`, ...projects, ...passThrough];
    code = await new Promise<number>((resolve) => {
      const child = spawn(process.execPath, args, { cwd: ROOT, env, stdio: "inherit" });
      child.on("exit", (c) => resolve(c ?? 1));
    });
    try {
      const report = JSON.parse(await readFile(reportFile, "utf8")) as JsonReport;
      const skipped = report.numPendingTests + report.numTodoTests;
      console.log(`\n${report.numPassedTests} passed, ${report.numFailedTests} failed${skipped ? `, ${skipped} skipped` : ""}`);
      if (report.numPassedTests === 0 && code === 0) code = 1;
    } catch {
      console.log("\n0 passed, 1 failed");
      if (code === 0) code = 1;
    }
  } finally {
    await wrangler?.stop();
    await stack.stop();
    await rm(tmp, { recursive: true, force: true }).catch(() => {});
  }
  process.exit(code);
}

main().catch((err: Error) => {
  console.error(`\n✗ ${err.message}`);
  console.log("0 passed, 1 failed");
  process.exit(1);
});
