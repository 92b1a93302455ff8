// The reliability suite's own Worker: a wrangler dev (own port, own persist dir so Durable Object storage survives a
// restart or a kill -9) whose Postgres path goes Worker → pg-bridge (target = fault proxy) → fault proxy → Postgres.
// The test's own view of Postgres (seeding, the ledger's "persisted") uses the stack's clean bridge, which no fault
// touches. Redis-REST and the profile service are the stack's (their /__control switches), or our own when run
// standalone (scripts/soak.ts without `npm test` around it).
import { execFile, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { cp, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { LOCAL_PROFILE_TOKEN, LOCAL_REDIS_TOKEN, ROOT, startStack, type Stack } from "../../scripts/lib/stack";
import { startWrangler, type WranglerHandle } from "../../scripts/lib/wrangler";
import { startPgBridge, type PgBridgeHandle } from "../../scripts/local/pg-bridge";
import { freePort } from "../../scripts/local/ports";
import { startFaultProxy, type FaultProxyFault, type FaultProxyHandle } from "../../scripts/local/fault-proxy";
import { TruthDb } from "./db";

const run = promisify(execFile);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface FaultStackOptions {
  log?: (line: string) => void;
  /** Extra or overriding Worker vars (e.g. WRITE_THROUGH_DEADLINE_MS). */
  vars?: Record<string, string>;
  /** Start Postgres, Redis-REST and the profile service too (when no `npm test` stack is around). */
  standalone?: boolean;
}

export interface ProcessInfo {
  pid: number;
  ppid: number;
  rssKb: number;
  args: string;
}

async function processTable(): Promise<ProcessInfo[]> {
  const { stdout } = await run("ps", ["-e", "-o", "pid=,ppid=,rss=,args="], { maxBuffer: 8 * 1024 * 1024 });
  return stdout
    .split("\n")
    .map((line) => line.trim().match(/^(\d+)\s+(\d+)\s+(\d+)\s+(.*)$/))
    .filter((m): m is RegExpMatchArray => m !== null)
    .map((m) => ({ pid: Number(m[1]), ppid: Number(m[2]), rssKb: Number(m[3]), args: m[4] }));
}

/** Every descendant of pid. */
async function descendants(pid: number): Promise<ProcessInfo[]> {
  const table = await processTable();
  const out: ProcessInfo[] = [];
  const frontier = [pid];
  while (frontier.length > 0) {
    const parent = frontier.pop()!;
    for (const p of table) {
      if (p.ppid === parent) {
        out.push(p);
        frontier.push(p.pid);
      }
    }
  }
  return out;
}

const WRANGLER_BIN = path.join(ROOT, "node_modules/wrangler/bin/wrangler.js");
const QUIET_ENV = { CLOUDFLARE_CF_FETCH_ENABLED: "false", WRANGLER_SEND_METRICS: "false", NO_COLOR: "1" };

/**
 * Bundles the Worker once (`wrangler deploy --dry-run`) and writes a config that runs that bundle, so the suite's
 * Worker does not rebuild and restart when src/ changes under it (wrangler dev watches its sources; a reload drops
 * every socket and evicts every object, which would be an unplanned fault in the middle of a scenario).
 */
async function freezeWorker(dir: string): Promise<string> {
  const bundle = path.join(dir, "bundle");
  await run(process.execPath, [WRANGLER_BIN, "deploy", "--dry-run", "--outdir", bundle], {
    cwd: ROOT,
    env: { ...process.env, ...QUIET_ENV },
    maxBuffer: 16 * 1024 * 1024,
  });
  let toml = await readFile(path.join(ROOT, "wrangler.toml"), "utf8");
  toml = toml.replace(/^main\s*=.*$/m, `main = ${JSON.stringify(path.join(bundle, "index.js"))}`);
  // Static assets are copied too: wrangler dev watches that directory, and `npm test` rebuilds it.
  const assetsDir = toml.match(/^\[assets\][^[]*?^directory\s*=\s*"([^"]*)"/m)?.[1];
  if (assetsDir && existsSync(path.resolve(ROOT, assetsDir))) {
    const copy = path.join(dir, "assets");
    await cp(path.resolve(ROOT, assetsDir), copy, { recursive: true });
    toml = toml.replace(/^(\[assets\][^[]*?)^directory\s*=\s*"[^"]*"/m, (_m, head: string) => `${head}directory = ${JSON.stringify(copy)}`);
  } else if (assetsDir) {
    // No built web app: serve the API only (an [assets] section pointing nowhere would stop wrangler dev).
    toml = toml.replace(/^\[assets\][\s\S]*?(?=^\[)/m, "");
  }
  const config = path.join(dir, "wrangler.toml");
  await writeFile(config, toml);
  return config;
}

interface WorkerProcess {
  process: WranglerHandle["process"];
  stop(): Promise<void>;
}

/** wrangler dev on a frozen bundle (see freezeWorker), as a direct child so signals reach it. */
async function startFrozenWrangler(options: {
  config: string;
  port: number;
  vars: Record<string, string>;
  persistTo: string;
  quiet: boolean;
}): Promise<WorkerProcess> {
  // An explicit inspector port: the default one is picked by probing, which races with other wranglers on the machine.
  const inspector = await freePort();
  const args = [WRANGLER_BIN, "dev", "-c", options.config, "--no-bundle", "--port", String(options.port), "--ip", "127.0.0.1"];
  args.push("--inspector-port", String(inspector));
  args.push("--persist-to", options.persistTo, "--show-interactive-dev-session=false");
  for (const [k, v] of Object.entries(options.vars)) args.push("--var", `${k}:${v}`);
  const child = spawn(process.execPath, args, { cwd: path.dirname(options.config), env: { ...process.env, ...QUIET_ENV }, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  const onData = (chunk: Buffer) => {
    const text = chunk.toString();
    output = (output + text).slice(-20_000);
    if (!options.quiet) process.stdout.write(text.replace(/^/gm, "  [wrangler] "));
  };
  child.stdout?.on("data", onData);
  child.stderr?.on("data", onData);
  const stop = async () => {
    const tree = await descendants(child.pid ?? -1);
    await new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      child.once("exit", () => resolve());
      child.kill("SIGTERM");
      setTimeout(() => child.kill("SIGKILL"), 5000).unref();
    });
    // Whatever of the tree outlived the wrapper (the CLI process, a runtime) goes now.
    await sleep(200);
    const alive = new Set((await processTable()).map((p) => p.pid));
    killAll(tree.map((p) => p.pid).filter((pid) => alive.has(pid)));
  };
  const deadline = Date.now() + 90_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`wrangler dev exited (code ${child.exitCode}):\n${output.slice(-4000)}`);
    try {
      const res = await fetch(`http://127.0.0.1:${options.port}/health`);
      if (res.ok) return { process: child, stop };
    } catch {
      // not up yet
    }
    await sleep(250);
  }
  await stop();
  throw new Error(`wrangler dev did not answer /health in time:\n${output.slice(-4000)}`);
}

function killAll(pids: number[]): void {
  for (const pid of pids) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
}

async function control(url: string, token: string, fault: unknown): Promise<void> {
  const res = await fetch(`${url}/__control`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify({ fault }),
  });
  if (!res.ok) throw new Error(`control ${url} failed: ${res.status}`);
}

export class FaultStack {
  wrangler!: WorkerProcess;
  /** Set when the Worker runs from a frozen bundle (the default; RELIABILITY_LIVE_SOURCE=1 runs src/ with watching). */
  private frozenConfig: string | undefined;
  private constructor(
    readonly proxy: FaultProxyHandle,
    readonly bridge: PgBridgeHandle,
    readonly db: TruthDb,
    readonly vars: Record<string, string>,
    readonly port: number,
    readonly persistDir: string,
    private readonly redisUrl: string,
    private readonly profileUrl: string,
    private readonly own: Stack | undefined,
    private readonly log: (line: string) => void,
  ) {}

  get base(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  static async start(options: FaultStackOptions = {}): Promise<FaultStack> {
    const log = options.log ?? (() => {});
    let own: Stack | undefined;
    let workerVars: Record<string, string>;
    let cleanBridge: string;
    let redisUrl: string;
    let profileUrl: string;
    if (!options.standalone && process.env.STACK_WORKER_VARS) {
      workerVars = JSON.parse(process.env.STACK_WORKER_VARS) as Record<string, string>;
      cleanBridge = process.env.STACK_PG_BRIDGE!;
      redisUrl = process.env.STACK_REDIS_URL!;
      profileUrl = process.env.STACK_PROFILE_URL!;
    } else {
      own = await startStack({
        databaseUrl: process.env.DATABASE_URL || undefined,
        redisUrl: process.env.REDIS_URL || undefined,
        dataDir: "memory://",
        ports: { pg: 0, bridge: 0, redis: 0, profiles: 0 },
        log,
      });
      workerVars = own.workerVars;
      cleanBridge = own.workerVars.PG_BRIDGE;
      redisUrl = own.redis.url;
      profileUrl = own.profiles.url;
    }
    const pgUrl = new URL(workerVars.DATABASE_URL);
    const proxy = await startFaultProxy({ port: 0, target: `${pgUrl.hostname}:${pgUrl.port || 5432}` });
    const bridge = await startPgBridge({ port: 0, target: proxy.address });
    const db = new TruthDb(workerVars.DATABASE_URL, cleanBridge);
    const vars = { ...workerVars, PG_BRIDGE: `127.0.0.1:${bridge.port}`, ...options.vars };
    const port = await freePort();
    const persistDir = await mkdtemp(path.join(os.tmpdir(), "edge-chat-faults-"));
    const stack = new FaultStack(proxy, bridge, db, vars, port, persistDir, redisUrl, profileUrl, own, log);
    if (!process.env.RELIABILITY_LIVE_SOURCE) {
      const started = Date.now();
      stack.frozenConfig = await freezeWorker(persistDir);
      log(`  Worker bundled in ${((Date.now() - started) / 1000).toFixed(1)} s (frozen: edits to src/ do not restart it)`);
    }
    await stack.startWorker();
    return stack;
  }

  async startWorker(): Promise<void> {
    const started = Date.now();
    // RELIABILITY_VERBOSE=1 shows the Worker's own log lines (wrangler's output) while the scenarios run.
    const quiet = !process.env.RELIABILITY_VERBOSE;
    const persistTo = path.join(this.persistDir, "state");
    this.wrangler = this.frozenConfig
      ? await startFrozenWrangler({ config: this.frozenConfig, port: this.port, vars: this.vars, persistTo, quiet }).catch((err: Error) => {
          // A port taken between probing and binding (busy machine): one more try with fresh ports.
          if (!/Address already in use/.test(err.message)) throw err;
          return startFrozenWrangler({ config: this.frozenConfig!, port: this.port, vars: this.vars, persistTo, quiet });
        })
      : await startWrangler({ port: this.port, vars: this.vars, persistTo, log: this.log, quiet });
    this.log(`  wrangler dev on ${this.base} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  }

  /** Graceful restart (SIGTERM): Durable Objects are evicted, sockets drop, storage stays. */
  async restartWorker(): Promise<void> {
    await this.wrangler.stop();
    await this.startWorker();
  }

  /** The workerd process that runs the Worker's code (wrangler also runs a proxy workerd in front of it). */
  async workerdProcesses(): Promise<ProcessInfo[]> {
    const pid = this.wrangler.process.pid;
    if (!pid) return [];
    return (await descendants(pid)).filter((p) => /workerd/.test(p.args) && /\bserve\b/.test(p.args));
  }

  async userWorkerd(): Promise<ProcessInfo | undefined> {
    const all = await this.workerdProcesses();
    // The runtime of user code is the one with an inspector (--inspect / --inspector-addr); the entry proxy has the
    // fixed --socket-addr port.
    return all.find((p) => /\s--inspect/.test(p.args)) ?? all[all.length - 1];
  }

  /** Resident set size (KiB) of every workerd under our wrangler. */
  async workerdRssKb(): Promise<number> {
    return (await this.workerdProcesses()).reduce((sum, p) => sum + p.rssKb, 0);
  }

  /**
   * kill -9 of the workerd that runs the Worker (no chance to flush, close sockets or finish storage writes in
   * flight), then wrangler itself, then a fresh wrangler on the same port and persist dir.
   */
  async killWorkerdAndRestart(): Promise<{ killedPid: number }> {
    const target = await this.userWorkerd();
    if (!target) throw new Error("no workerd process found under our wrangler");
    const tree = await descendants(this.wrangler.process.pid ?? -1);
    process.kill(target.pid, "SIGKILL");
    // wrangler may notice and exit, or linger with a dead runtime: either way, the whole tree goes too (hard).
    // bin/wrangler.js runs the CLI in a second node process: killing only the wrapper would orphan it (and it
    // would keep a runtime on our port and persist dir).
    await sleep(300);
    killAll(tree.map((p) => p.pid));
    const child = this.wrangler.process;
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
      child.kill("SIGKILL");
      await exited;
    }
    await this.startWorker();
    return { killedPid: target.pid };
  }

  // ── faults ────────────────────────────────────────────────────────────────────────────────────────────────

  /** Postgres, at the fault proxy: {down}, {delayMs}, {resetAfterCommit: n}; {} clears. */
  pg(fault: Partial<FaultProxyFault>): void {
    this.proxy.setFault(fault);
  }

  redis(fault: { down?: boolean; delayMs?: number; garbage?: boolean }): Promise<void> {
    return control(this.redisUrl, LOCAL_REDIS_TOKEN, fault);
  }

  profiles(fault: { delayMs?: number; fail?: boolean; garbage?: boolean; partial?: boolean }): Promise<void> {
    return control(this.profileUrl, LOCAL_PROFILE_TOKEN, fault);
  }

  async clearFaults(): Promise<void> {
    this.pg({});
    await this.redis({});
    await this.profiles({});
  }

  async stop(): Promise<void> {
    await this.clearFaults().catch(() => {});
    await this.wrangler?.stop().catch(() => {});
    await this.db.end();
    await this.bridge.close().catch(() => {});
    await this.proxy.close().catch(() => {});
    await this.own?.stop().catch(() => {});
    await rm(this.persistDir, { recursive: true, force: true }).catch(() => {});
  }
}
