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
  testResults?: {
    name: string;
    startTime?: number;
    endTime?: number;
    message?: string;
    assertionResults?: { fullName?: string; title: string; status: string; failureMessages?: string[] }[];
  }[];
}

const firstLine = (text: string | undefined) => (text ?? "").split("\n").find((l) => l.trim())?.trim().slice(0, 200) ?? "";

/**
 * One "FAILED file > test: first line of the error" line per failed test (and per file that failed to load), so
 * the end of a long CI log names what failed: CI keeps only the tail. A test that failed and then passed when run
 * again (TEST_RETRY) is a "FLAKY" line with its first error: it passes, and stays in sight.
 */
function testsToName(report: JsonReport): string[] {
  return (report.testResults ?? []).flatMap((f) => {
    const file = path.relative(ROOT, f.name);
    const tests = (f.assertionResults ?? []).flatMap((t) => {
      const name = `${file} > ${t.fullName ?? t.title}: ${firstLine(t.failureMessages?.[0])}`;
      if (t.status === "failed") return [`FAILED ${name}`];
      return t.status === "passed" && (t.failureMessages?.length ?? 0) > 0 ? [`FLAKY (passed when run again) ${name}`] : [];
    });
    return tests.length === 0 && f.message ? [`FAILED ${file}: ${firstLine(f.message)}`] : tests;
  });
}

/** The slowest files of a pass, so a CI run creeping towards its time limit shows where the minutes go. */
function slowestFiles(report: JsonReport, count = 8): string[] {
  return (report.testResults ?? [])
    .filter((f) => f.startTime !== undefined && f.endTime !== undefined)
    .map((f) => ({ file: path.relative(ROOT, f.name), seconds: ((f.endTime as number) - (f.startTime as number)) / 1000 }))
    .sort((a, b) => b.seconds - a.seconds)
    .slice(0, count)
    .map((f) => `  ${f.seconds.toFixed(1).padStart(6)} s  ${f.file}`);
}

async function main() {
  // `--faults` (npm run test:faults) runs only the "faults" project (test/reliability: minutes of injected faults);
  // the default run is every project except that one. An explicit --project from the caller wins.
  const faults = process.argv.includes("--faults");
  // TEST_EXCLUDE (comma-separated globs left out of every pass: CI's second run, on real servers, leaves out what
  // exercises nothing of Postgres or Redis that the first run did not) reaches vitest.config.ts through the
  // environment: each project's own exclude takes it.
  // TEST_RETRY: how many times a failed test runs again before it counts as failed (CI sets 1: a test that only
  // failed once on a loaded machine is reported FLAKY by name, not a red run; one that fails twice is a failure).
  const retry = Number(process.env.TEST_RETRY ?? 0);
  const passThrough = [
    ...process.argv.slice(2).filter((a) => a !== "--faults"),
    ...(retry > 0 ? [`--retry=${retry}`] : []),
  ];
  const projectChosen = passThrough.some((a) => a === "--project" || a.startsWith("--project="));
  // Two passes by default: everything that can share the stack in parallel, then the "serial" projects (tests that
  // switch shared faults on, e.g. the Postgres bridge down, which would break whatever ran beside them).
  // Positive lists: vitest ORs --project filters, so several negated ones ("!a", "!b") select every project (each
  // one matches "not the other"). The names come from vitest.config.ts, so a new project joins the first pass.
  const projectNames = [...(await readFile(path.join(ROOT, "vitest.config.ts"), "utf8")).matchAll(/\bname:\s*"([\w-]+)"/g)].map((m) => m[1]);
  const asFlags = (names: string[]) => names.map((n) => `--project=${n}`);
  const passes: string[][] = projectChosen
    ? [[]]
    : faults
      ? [["--project=faults"]]
      : [
          asFlags(projectNames.filter((n) => n !== "faults" && !n.endsWith("-serial"))),
          asFlags(projectNames.filter((n) => n.endsWith("-serial"))),
        ].filter((flags) => flags.length > 0); // an empty list would mean "every project"
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
    // The web app (static assets wrangler serves at `/`), built before wrangler starts: the browser tests load it.
    await (await import("vite")).build({ configFile: path.join(ROOT, "web/vite.config.ts"), logLevel: "warn" });
    const port = await freePort();
    log(`• wrangler dev for end-to-end tests on 127.0.0.1:${port} ...`);
    wrangler = await startWrangler({ port, vars: stack.workerVars, persistTo: path.join(tmp, "wrangler"), log, quiet: !process.env.STACK_VERBOSE });
    log(`  ready in ${((Date.now() - started) / 1000).toFixed(1)} s`);
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
    const totals = { passed: 0, failed: 0, skipped: 0 };
    const failures: string[] = [];
    code = 0;
    for (const [i, projects] of passes.entries()) {
      const reportFile = path.join(tmp, `report-${i}.json`);
      // The first pass's files wait on sockets, Postgres and timers far more than they compute (the CPU was 43% idle
      // with one file at a time on 2 cores): two at a time, at least. The serial pass keeps one (its faults are shared).
      const workers = i === 0 && !projectChosen ? [`--maxWorkers=${Math.max(2, os.availableParallelism() - 1)}`] : [];
      const args = [vitest, "run", "--passWithNoTests", "--reporter=default", "--reporter=json", `--outputFile.json=${reportFile}`, ...workers, ...projects, ...passThrough];
      const exit = await new Promise<number>((resolve) => {
        const child = spawn(process.execPath, args, { cwd: ROOT, env, stdio: "inherit" });
        child.on("exit", (c) => resolve(c ?? 1));
      });
      if (exit !== 0) code = exit;
      try {
        const report = JSON.parse(await readFile(reportFile, "utf8")) as JsonReport;
        totals.passed += report.numPassedTests;
        // vitest exits non-zero without a failed test when a file fails to load or an error escapes a test
        // (unhandled rejection): the report then counts 0 failures, and the summary line must not read as green.
        totals.failed += exit !== 0 && report.numFailedTests === 0 ? 1 : report.numFailedTests;
        totals.skipped += report.numPendingTests + report.numTodoTests;
        failures.push(...testsToName(report));
        const slowest = slowestFiles(report);
        if (slowest.length > 0) log(`Slowest files of this pass:\n${slowest.join("\n")}`);
      } catch {
        totals.failed += 1;
        if (code === 0) code = 1;
      }
    }
    if (failures.length > 0) console.log(`\n${failures.join("\n")}`);
    console.log(`\n${totals.passed} passed, ${totals.failed} failed${totals.skipped ? `, ${totals.skipped} skipped` : ""}`);
    if (totals.passed === 0 && code === 0) code = 1;
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
