// CPU profiles of the Worker isolate (where the Durable Objects run too) through workerd's V8 inspector, which
// wrangler dev starts on a local port. Used by `--profile` to say where the server's CPU per message goes.
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { openInspector } from "./inspector.js";
import { descendants } from "./proc.js";

/** TCP ports a process listens on (from /proc: its socket inodes matched against the tcp tables). */
function listeningPorts(pid: number): number[] {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /socket:\[(\d+)\]/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(m[1]);
    } catch {
      // fd closed meanwhile
    }
  }
  const ports: number[] = [];
  for (const table of ["tcp", "tcp6"]) {
    for (const line of readFileSync(`/proc/${pid}/net/${table}`, "utf8").split("\n").slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols.length > 9 && cols[3] === "0A" && inodes.has(cols[9])) ports.push(parseInt(cols[1].split(":")[1], 16));
    }
  }
  return ports;
}

/**
 * The Worker's inspector. Under wrangler dev: wrangler's inspector proxy (its own small workerd), because the user
 * worker's inspector admits one session and wrangler holds it. Under Miniflare: workerd's own target for the Worker.
 */
export async function findInspector(wranglerPid: number): Promise<string | undefined> {
  for (const pid of descendants(wranglerPid)) {
    if (!/workerd/.test(readFileSync(`/proc/${pid}/comm`, "utf8"))) continue;
    for (const port of listeningPorts(pid)) {
      try {
        const res = await fetch(`http://127.0.0.1:${port}/json`, { signal: AbortSignal.timeout(1000) });
        if (!res.ok) continue;
        const targets = (await res.json()) as { webSocketDebuggerUrl?: string }[];
        const target = targets.find((t) => t.webSocketDebuggerUrl?.endsWith("/ws")) ?? targets.find((t) => t.webSocketDebuggerUrl?.endsWith("/core:user:edge-chat"));
        if (target?.webSocketDebuggerUrl) return target.webSocketDebuggerUrl;
      } catch {
        // not an inspector
      }
    }
  }
  return undefined;
}

export interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; scriptId: string };
  children?: number[];
}
export interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

export interface Hotspot {
  function: string;
  /** Share of the sampled time spent in this function itself. */
  selfPct: number;
  /** Share of the sampled time with this function on the stack (not double-counting recursion). */
  totalPct: number;
}

export interface ProfileResult {
  self: Hotspot[];
  total: Hotspot[];
  /** Self time by bundled module (npm package or src/ file); native calls count for the module that made them. */
  modules: { module: string; selfPct: number; totalPct: number }[];
  samples: number;
  raw: CpuProfile;
}

/** Runs `work` with the sampling profiler on; returns the top functions by self and by inclusive time. */
export async function profile(url: string, work: () => Promise<void>, top = 25): Promise<ProfileResult> {
  const inspector = await openInspector(url, 900_000_000 + Math.floor(Math.random() * 1000) * 10);
  const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));
  try {
    // The proxy does not answer every command (wrangler has enabled some domains already): only the stop is awaited.
    void inspector.call("Profiler.enable");
    void inspector.call("Profiler.setSamplingInterval", { interval: 200 });
    void inspector.call("Profiler.start");
    await pause(300);
    await work();
    const raw = (await inspector.call<{ profile: CpuProfile }>("Profiler.stop", {}, 30_000))?.profile;
    if (!raw) throw new Error("inspector: no profile");
    // The bundle's "// path/of/module" comments tell which module each line belongs to.
    const scriptId = raw.nodes.find((n) => n.callFrame.url.endsWith(".js") && !n.callFrame.url.includes(":"))?.callFrame.scriptId;
    let source = "";
    if (scriptId) {
      // getScriptSource needs the Debugger domain; enabled only now, after sampling, and switched off again.
      void inspector.call("Debugger.enable");
      await pause(300);
      source = (await inspector.call<{ scriptSource: string }>("Debugger.getScriptSource", { scriptId }))?.scriptSource ?? "";
      void inspector.call("Debugger.disable");
    }
    return { ...summarizeProfile(raw, top), modules: byModule(raw, source, top), raw };
  } finally {
    inspector.close();
  }
}

function nameOf(n: ProfileNode): string {
  const f = n.callFrame;
  const file = f.url ? f.url.split("/").pop() : "";
  return `${f.functionName || "(anonymous)"}${file ? ` ${file}:${f.lineNumber + 1}` : ""}`;
}

/** [first line, module] of each module in an esbuild bundle, from its "// node_modules/..." / "// src/..." markers. */
function moduleIndex(source: string): [number, string][] {
  const out: [number, string][] = [];
  source.split("\n").forEach((line, i) => {
    const m = /^\/\/ (?:[./]*[^ ]*?\/)?(node_modules\/(?:@[^/]+\/)?[^/]+|src\/[^ ]+)/.exec(line);
    if (m) out.push([i + 1, m[1].replace(/^node_modules\//, "")]);
  });
  return out;
}

function byModule(p: CpuProfile, source: string, top: number): ProfileResult["modules"] {
  const index = moduleIndex(source);
  const moduleAt = (n: ProfileNode): string | undefined => {
    const f = n.callFrame;
    if (!f.url) return undefined;
    if (f.url.startsWith("node-internal:")) return "(workerd node compat)";
    let lo = 0;
    let hi = index.length - 1;
    let found: string | undefined;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (index[mid][0] <= f.lineNumber + 1) {
        found = index[mid][1];
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return found ?? "(bundle glue)";
  };
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const self = new Map<string, number>();
  const total = new Map<string, number>();
  let all = 0;
  const weight = sampleWeights(p);
  p.samples.forEach((id, i) => {
    const node = byId.get(id);
    const dt = weight[i];
    if (!node || node.callFrame.functionName === "(idle)" || node.callFrame.functionName === "(program)") return;
    all += dt;
    let leafModule: string | undefined;
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const m = moduleAt(byId.get(cur)!);
      if (!m) continue;
      leafModule ??= m;
      if (!seen.has(m)) {
        seen.add(m);
        total.set(m, (total.get(m) ?? 0) + dt);
      }
    }
    const key = leafModule ?? "(native, no JS caller)";
    self.set(key, (self.get(key) ?? 0) + dt);
  });
  return [...self.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([module, t]) => ({ module, selfPct: pct(t, all), totalPct: pct(total.get(module) ?? 0, all) }));
}

/**
 * The time each sample stands for: its delta, capped at four times the median. workerd's sampler sometimes pauses
 * (one gap of 142 ms among deltas of about 1 ms was seen), and the whole gap landed on whichever function the next
 * sample caught: a zod parse once showed as a fifth of the Worker's CPU.
 */
export function sampleWeights(p: Pick<CpuProfile, "timeDeltas" | "samples">): number[] {
  const deltas = p.samples.map((_, i) => Math.max(0, p.timeDeltas[i] ?? 0));
  const sorted = deltas.filter((d) => d > 0).sort((a, b) => a - b);
  const cap = sorted.length ? 4 * sorted[sorted.length >> 1] : 0;
  return deltas.map((d) => Math.min(d, cap));
}

export function summarizeProfile(p: CpuProfile, top: number): { self: Hotspot[]; total: Hotspot[]; samples: number } {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const self = new Map<string, number>();
  const total = new Map<string, number>();
  let all = 0;
  const weight = sampleWeights(p);
  p.samples.forEach((id, i) => {
    const dt = weight[i];
    const node = byId.get(id);
    if (!node || node.callFrame.functionName === "(idle)" || node.callFrame.functionName === "(program)") return;
    all += dt;
    const leaf = nameOf(node);
    self.set(leaf, (self.get(leaf) ?? 0) + dt);
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const name = nameOf(byId.get(cur)!);
      if (seen.has(name)) continue;
      seen.add(name);
      total.set(name, (total.get(name) ?? 0) + dt);
    }
  });
  const rank = (m: Map<string, number>) =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([fn, t]) => ({ function: fn, selfPct: 0, totalPct: 0, t }));
  return {
    self: rank(self).map(({ function: fn, t }) => ({ function: fn, selfPct: pct(t, all), totalPct: pct(total.get(fn) ?? 0, all) })),
    total: rank(total)
      .filter((h) => !/^\(root\)|^\(anonymous\)$/.test(h.function))
      .map(({ function: fn, t }) => ({ function: fn, selfPct: pct(self.get(fn) ?? 0, all), totalPct: pct(t, all) })),
    samples: p.samples.length,
  };
}

const pct = (v: number, all: number) => (all ? Math.round((v / all) * 1000) / 10 : 0);
