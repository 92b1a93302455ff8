import type { Summary } from "./hist.js";
import { calibrationText } from "./calibrate.js";

/** One line of results: a latency distribution (ms) and/or plain values, for one scenario, target and case. */
export interface Row {
  scenario: string;
  target: string;
  case: string;
  summary?: Summary;
  /** Non-latency figures (counts, rates, memory), shown in the notes column. */
  values?: Record<string, number | string>;
  note?: string;
}

export interface ScenarioResult {
  id: string;
  title: string;
  status: "done" | "skipped" | "failed";
  reason?: string;
  seconds: number;
  rows: Row[];
}

export interface Check {
  target: string;
  value: string;
  status: "PASS" | "MISS" | "N/A";
}

export interface Ratio {
  what: string;
  edge: number;
  baseline: string;
  baselineValue: number;
  /** edge / baseline for latencies (lower is better), baseline / edge... never: always edge ÷ baseline. */
  ratio: number;
}

export interface Report {
  meta: Record<string, unknown>;
  scenarios: ScenarioResult[];
  checks: Check[];
  ratios: Ratio[];
}

export class Results {
  readonly scenarios: ScenarioResult[] = [];

  rows(): Row[] {
    return this.scenarios.flatMap((s) => s.rows);
  }

  find(scenario: string, target: string, kase: string): Row | undefined {
    return this.rows().find((r) => r.scenario === scenario && r.target === target && r.case === kase);
  }
}

const f = (v: number | undefined, digits = 2): string => (v === undefined || Number.isNaN(v) ? "–" : v >= 100 ? v.toFixed(0) : v.toFixed(digits));

function valuesText(values: Row["values"]): string {
  if (!values) return "";
  return Object.entries(values)
    .map(([k, v]) => `${k}=${typeof v === "number" ? (Number.isInteger(v) ? v : v.toFixed(2)) : v}`)
    .join(", ");
}

export function renderMarkdown(report: Report): string {
  const m = report.meta as Record<string, any>;
  const lines: string[] = [];
  lines.push(`# edge-chat benchmark (${m.mode})`);
  lines.push("");
  lines.push(
    `${m.date} · commit ${String(m.git?.commit ?? "").slice(0, 10)}${m.git?.dirty ? " (dirty)" : ""} · ${m.machine?.cores} cores ${m.machine?.cpuModel} · ${m.machine?.ramGiB} GiB · Node ${m.machine?.node} · wrangler ${m.wrangler} · workerd ${m.workerd} · Worker served by ${m.runtime === "wrangler" ? "wrangler dev (through its proxy)" : "Miniflare (one workerd, no dev proxy)"}`,
  );
  lines.push(
    `Postgres: ${m.postgres} · Redis: ${m.redis} · injected latency pg ${m.pgDelayMs} ms, redis ${m.redisDelayMs} ms · machine ${m.busy ? "BUSY" : "quiet"} (${m.activity})${m.workerReloads ? ` · ⚠ Worker reloaded ${m.workerReloads}× by source edits during the run` : ""}`,
  );
  if (m.calibration) {
    lines.push(`Machine phase (bench/harness/calibrate.ts): at the start ${calibrationText(m.calibration.start)}; at the end ${calibrationText(m.calibration.end)}`);
  }
  lines.push("");
  lines.push("Latencies in ms (HdrHistogram, µs resolution). Open-loop latencies count from the intended send time.");
  lines.push("");
  lines.push("| Scenario | Target | Case | n | p50 | p90 | p99 | max | Notes |");
  lines.push("|---|---|---|---:|---:|---:|---:|---:|---|");
  for (const s of report.scenarios) {
    if (s.status !== "done" && s.rows.length === 0) {
      lines.push(`| ${s.id} ${s.title} | – | **${s.status.toUpperCase()}** | | | | | | ${s.reason ?? ""} |`);
      continue;
    }
    for (const r of s.rows) {
      const sm = r.summary;
      const notes = [valuesText(r.values), r.note].filter(Boolean).join("; ");
      lines.push(
        `| ${r.scenario} | ${r.target} | ${r.case} | ${sm ? sm.count : ""} | ${f(sm?.p50)} | ${f(sm?.p90)} | ${f(sm?.p99)} | ${f(sm?.max)} | ${notes} |`,
      );
    }
    if (s.status !== "done") lines.push(`| ${s.id} | – | **${s.status.toUpperCase()}** (partial) | | | | | | ${s.reason ?? ""} |`);
  }
  lines.push("");
  lines.push("## Targets");
  lines.push("");
  lines.push("| Target | Measured | Result |");
  lines.push("|---|---|---|");
  for (const c of report.checks) lines.push(`| ${c.target} | ${c.value} | ${c.status} |`);
  lines.push("");
  lines.push(...ratioMatrix(report.ratios));
  lines.push("## Ratios to the baselines (edge ÷ baseline; < 1 means edge is lower)");
  lines.push("");
  lines.push("| Metric | edge | Baseline | Baseline value | Ratio |");
  lines.push("|---|---:|---|---:|---:|");
  for (const r of report.ratios) lines.push(`| ${r.what} | ${f(r.edge)} | ${r.baseline} | ${f(r.baselineValue)} | ${f(r.ratio)} |`);
  lines.push("");
  lines.push(`Scenario durations: ${report.scenarios.map((s) => `${s.id} ${s.seconds.toFixed(0)} s`).join(", ")}.`);
  return lines.join("\n") + "\n";
}

/**
 * The ratios at a glance: a row per metric, a column per baseline (edge ÷ baseline), so the README can quote one
 * table instead of the long list below it. A metric a baseline did not measure shows "–".
 */
export function ratioMatrix(ratios: Ratio[]): string[] {
  if (ratios.length === 0) return [];
  const baselines = [...new Set(ratios.map((r) => r.baseline))];
  const metrics = new Map<string, { edge: number; by: Map<string, number> }>();
  for (const r of ratios) {
    const m = metrics.get(r.what) ?? { edge: r.edge, by: new Map<string, number>() };
    m.by.set(r.baseline, r.ratio);
    metrics.set(r.what, m);
  }
  const lines = ["## Ratios at a glance (edge ÷ baseline; < 1 means edge is lower, except where higher is better)", ""];
  lines.push(`| Metric | edge | ${baselines.map((b) => `÷ ${b}`).join(" | ")} |`);
  lines.push(`|---|---:|${baselines.map(() => "---:").join("|")}|`);
  for (const [what, m] of metrics) lines.push(`| ${what} | ${f(m.edge)} | ${baselines.map((b) => f(m.by.get(b))).join(" | ")} |`);
  lines.push("");
  return lines;
}
