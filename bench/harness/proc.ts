import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import os from "node:os";

function stat(pid: number): { comm: string; ppid: number } | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, "utf8");
    // comm is in parentheses and may contain spaces; fields after it are space separated.
    const close = text.lastIndexOf(")");
    const comm = text.slice(text.indexOf("(") + 1, close);
    const ppid = Number(text.slice(close + 2).split(" ")[1]);
    return { comm, ppid };
  } catch {
    return undefined;
  }
}

function allPids(): number[] {
  return readdirSync("/proc")
    .filter((d) => /^\d+$/.test(d))
    .map(Number);
}

/**
 * The workerd that runs the Worker: wrangler dev starts two (a small proxy and the user worker); the one that has
 * used the most CPU is the user worker.
 */
export function findWorkerd(wranglerPid: number): number | undefined {
  const pids = [...descendants(wranglerPid)].filter((p) => stat(p)?.comm === "workerd");
  return pids.sort((a, b) => cpuMs(b) - cpuMs(a))[0];
}

/** Resident set size in KiB (VmRSS), or NaN when the process is gone. */
export function rssKb(pid: number | undefined): number {
  if (!pid) return NaN;
  try {
    const m = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) : NaN;
  } catch {
    return NaN;
  }
}

/** Processes other than ours that look like test or dev stacks (a sign the machine is shared right now). */
export function otherActivity(ours: Set<number>): { workerd: number; node: number; loadavg: number[] } {
  let workerd = 0;
  let node = 0;
  for (const pid of allPids()) {
    if (ours.has(pid)) continue;
    const s = stat(pid);
    if (!s) continue;
    if (s.comm === "workerd") workerd++;
    else if (s.comm === "node" || s.comm === "MainThread") node++;
  }
  return { workerd, node, loadavg: os.loadavg().map((l) => Math.round(l * 100) / 100) };
}

export function machineInfo() {
  let cpuModel = "unknown";
  try {
    cpuModel = /model name\s*:\s*(.+)/.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1]?.trim() ?? cpuModel;
  } catch {
    // not Linux
  }
  return {
    cores: os.cpus().length,
    cpuModel,
    ramGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    os: `${os.type()} ${os.release()}`,
    node: process.version,
  };
}

export function gitCommit(cwd: string): { commit: string; dirty: boolean } {
  try {
    const commit = execFileSync("git", ["rev-parse", "HEAD"], { cwd, encoding: "utf8" }).trim();
    const dirty = execFileSync("git", ["status", "--porcelain", "--untracked-files=no"], { cwd, encoding: "utf8" }).trim().length > 0;
    return { commit, dirty };
  } catch {
    return { commit: "unknown", dirty: false };
  }
}

/** CPU time (user+system, ms) consumed so far by a process, from /proc/<pid>/stat. */
export function cpuMs(pid: number | undefined): number {
  if (!pid) return NaN;
  try {
    const text = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
    const ticks = Number(fields[11]) + Number(fields[12]);
    return (ticks * 1000) / 100; // CLK_TCK is 100 on Linux
  } catch {
    return NaN;
  }
}

/** root and every process below it. */
export function descendants(root: number): Set<number> {
  const children = new Map<number, number[]>();
  for (const pid of allPids()) {
    const s = stat(pid);
    if (!s) continue;
    const list = children.get(s.ppid) ?? [];
    list.push(pid);
    children.set(s.ppid, list);
  }
  const out = new Set<number>([root]);
  const queue = [root];
  while (queue.length) for (const c of children.get(queue.shift()!) ?? []) if (!out.has(c)) out.add(c), queue.push(c);
  return out;
}

export interface CpuSnapshot {
  server: number;
  host: number;
  runner: number;
}

/** CPU ms used so far by the server under test (workerd or a baseline), the stack host (embedded Postgres, bridge,
 * Redis and profile stand-ins) and this runner (the clients). */
export function cpuSnapshot(serverPid: number | undefined): CpuSnapshot {
  const self = process.cpuUsage();
  return { server: cpuMs(serverPid), host: cpuMs(process.ppid), runner: (self.user + self.system) / 1000 };
}

/**
 * How the work of a phase split between the processes: CPU seconds, or CPU ms per operation when `perOps` is given
 * (e.g. per message) — the cost figure that does not depend on how busy the machine was.
 */
export function cpuSince(before: CpuSnapshot, serverPid: number | undefined, perOps?: number): Record<string, number> {
  const after = cpuSnapshot(serverPid);
  const d = { server: after.server - before.server, host: after.host - before.host, clients: after.runner - before.runner };
  if (perOps) {
    const r = (v: number) => Math.round((v / perOps) * 100) / 100;
    return { "server CPU ms/op": r(d.server), "pg host CPU ms/op": r(d.host), "client CPU ms/op": r(d.clients) };
  }
  const s = (v: number) => Math.round(v / 10) / 100;
  return { "server CPU s": s(d.server), "pg host CPU s": s(d.host), "client CPU s": s(d.clients) };
}


/** A process's soft limit on open files (from /proc/<pid>/limits); undefined when unreadable or unlimited. */
export function openFilesLimit(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const line = readFileSync(`/proc/${pid}/limits`, "utf8").split("\n").find((l) => l.startsWith("Max open files"));
    const soft = line?.trim().split(/\s+/)[3];
    return soft && /^\d+$/.test(soft) ? Number(soft) : undefined;
  } catch {
    return undefined;
  }
}

/** Busy and total CPU time of the whole machine so far (jiffies, from the first line of /proc/stat). */
function machineJiffies(): { busy: number; total: number } {
  const [, ...fields] = readFileSync("/proc/stat", "utf8").split("\n", 1)[0].trim().split(/\s+/);
  const values = fields.map(Number);
  const total = values.reduce((a, b) => a + b, 0);
  const idle = values[3] + (values[4] ?? 0); // idle + iowait
  return { busy: total - idle, total };
}

/**
 * Waits until the machine is quiet: at most `maxBusy` of its CPU in use over a `windowMs` window (all processes:
 * workerd, Postgres, the bridges). After a bulk setup (100,000 rows written, vacuumed and copied into a room)
 * checkpoints, autovacuum and the room's garbage land in whatever is measured next. Bounded by `maxMs`; returns how
 * long it waited and whether it got quiet.
 */
export async function settle(maxBusy = 0.1, windowMs = 1000, maxMs = 30_000): Promise<{ ms: number; quiet: boolean }> {
  const t0 = Date.now();
  let before = machineJiffies();
  while (Date.now() - t0 < maxMs) {
    await new Promise((r) => setTimeout(r, windowMs));
    const after = machineJiffies();
    const busy = (after.busy - before.busy) / Math.max(1, after.total - before.total);
    if (busy <= maxBusy) return { ms: Date.now() - t0, quiet: true };
    before = after;
  }
  return { ms: Date.now() - t0, quiet: false };
}
