import { createMiddleware } from "hono/factory";
import type { Redis } from "@upstash/redis/cloudflare";
import { getConfig, type Config } from "./config";
import { createRedis } from "./redis";
import type { Logger } from "./log";

/**
 * Counters and gauges shared by every isolate and Durable Object, kept in Redis (two hashes) and exposed by
 * `GET /metrics` in the Prometheus text format.
 *
 * `metrics.count(name, n, labels?)` only adds to this isolate's in-memory batch; `flushSoon` writes the batch with
 * ONE pipeline (HINCRBY per distinct series, HSET for gauges) under `waitUntil`, at most every
 * METRICS_FLUSH_INTERVAL_MS. So a request costs no Redis round trip of its own for metrics, and a busy isolate
 * writes a few commands every few seconds however many requests it serves. A flush that fails puts its counts
 * back; an isolate evicted before its next flush loses at most one interval of counts (acceptable for metrics).
 *
 * Label values must come from small fixed sets (status classes, kinds): never ids, paths or user input.
 */

export type Labels = Record<string, string | number | boolean>;

export const COUNTERS_KEY = "metrics:counters";
export const GAUGES_KEY = "metrics:gauges";
export const METRIC_PREFIX = "edgechat_";

const NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

const escapeLabel = (v: string) => v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n").slice(0, 100);

/** The series key: `name{a="1",b="2"}` with labels sorted, or the bare name. */
export function seriesKey(name: string, labels?: Labels): string {
  if (!NAME.test(name)) throw new Error(`invalid metric name ${JSON.stringify(name)}`);
  const entries = Object.entries(labels ?? {})
    .filter(([k]) => NAME.test(k))
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  if (entries.length === 0) return name;
  return `${name}{${entries.map(([k, v]) => `${k}="${escapeLabel(String(v))}"`).join(",")}}`;
}

export interface MetricsSnapshot {
  counters: Map<string, number>;
  gauges: Map<string, number>;
}

export class MetricsBatch {
  private counters = new Map<string, number>();
  private gauges = new Map<string, number>();
  lastFlushAt = 0;

  count(name: string, n = 1, labels?: Labels): void {
    if (!Number.isFinite(n) || n === 0) return;
    const key = seriesKey(name, labels);
    this.counters.set(key, (this.counters.get(key) ?? 0) + Math.round(n));
  }

  gauge(name: string, value: number, labels?: Labels): void {
    if (!Number.isFinite(value)) return;
    this.gauges.set(seriesKey(name, labels), value);
  }

  get empty(): boolean {
    return this.counters.size === 0 && this.gauges.size === 0;
  }

  /** Hands over everything counted so far and starts a new batch. */
  take(): MetricsSnapshot {
    const out = { counters: this.counters, gauges: this.gauges };
    this.counters = new Map();
    this.gauges = new Map();
    return out;
  }

  /** Puts back a batch whose write failed (newer gauge values win). */
  restore(s: MetricsSnapshot): void {
    for (const [k, n] of s.counters) this.counters.set(k, (this.counters.get(k) ?? 0) + n);
    for (const [k, v] of s.gauges) if (!this.gauges.has(k)) this.gauges.set(k, v);
  }
}

/** This isolate's batch: the Worker, and any Durable Object, count into it. */
export const metrics = new MetricsBatch();

type PipelineRedis = Pick<Redis, "pipeline">;

/** Writes the batch with one pipeline; resolves to the number of series written. On failure the counts go back. */
export async function flushMetrics(redis: PipelineRedis, batch: MetricsBatch = metrics): Promise<number> {
  batch.lastFlushAt = Date.now();
  if (batch.empty) return 0;
  const snapshot = batch.take();
  const p = redis.pipeline();
  for (const [key, n] of snapshot.counters) p.hincrby(COUNTERS_KEY, key, n);
  if (snapshot.gauges.size > 0) p.hset(GAUGES_KEY, Object.fromEntries(snapshot.gauges));
  try {
    await p.exec();
  } catch (err) {
    batch.restore(snapshot);
    throw err;
  }
  return snapshot.counters.size + snapshot.gauges.size;
}

let lastFailureLog = 0;

/** Flushes under waitUntil when the interval has passed (or when forced); never throws. */
export function flushSoon(
  config: Pick<Config, "UPSTASH_REDIS_REST_URL" | "UPSTASH_REDIS_REST_TOKEN" | "METRICS_FLUSH_INTERVAL_MS">,
  waitUntil: ((work: Promise<unknown>) => void) | undefined,
  options: { force?: boolean; log?: Logger; batch?: MetricsBatch } = {},
): void {
  const batch = options.batch ?? metrics;
  if (batch.empty) return;
  if (!options.force && Date.now() - batch.lastFlushAt < config.METRICS_FLUSH_INTERVAL_MS) return;
  batch.lastFlushAt = Date.now();
  const work = flushMetrics(createRedis(config), batch).catch((err: unknown) => {
    // At most one line per minute per isolate while Redis is down.
    if (Date.now() - lastFailureLog > 60_000) {
      lastFailureLog = Date.now();
      options.log?.warn("metrics flush failed", { error: (err as Error).message?.slice(0, 200) });
    }
  });
  try {
    if (waitUntil) waitUntil(work);
  } catch {
    // No live execution context: the promise runs on regardless.
  }
}

export async function readMetrics(redis: Pick<Redis, "hgetall">): Promise<{ counters: Record<string, number>; gauges: Record<string, number> }> {
  const [counters, gauges] = await Promise.all([redis.hgetall(COUNTERS_KEY), redis.hgetall(GAUGES_KEY)]);
  const numbers = (h: Record<string, unknown> | null) =>
    Object.fromEntries(Object.entries(h ?? {}).map(([k, v]) => [k, Number(v)]).filter(([, v]) => Number.isFinite(v as number)));
  return { counters: numbers(counters), gauges: numbers(gauges) };
}

const HELP: Record<string, string> = {
  http_requests_total: "HTTP requests by class (read, write, upgrade) and status class",
  http_request_duration_ms_sum: "Total latency of HTTP requests in milliseconds, by class",
  http_request_duration_ms_count: "Number of HTTP requests timed, by class",
  messages_sent_total: "Messages accepted by conversation rooms, once each, by transport (via=rest|ws); idempotent retries not counted",
  fanout_frames_total: "Frames sent to sockets by conversation rooms (reported by the rooms)",
  ratelimit_rejected_total: "Requests answered 429 by the REST/upgrade rate limiter",
  ratelimit_failopen_total: "Requests let through because the rate limiter could not reach Redis",
  auth_failures_total: "Authentication failures by reason class",
  audit_auth_failures_suppressed_total: "Auth failures not written to the audit log (per-IP or global audit cap reached)",
  profile_cache_hits_total: "Profile ids looked up and answered from a cache layer (layer=memory|redis), one per id",
  profile_cache_misses_total: "Profile ids looked up that had to be asked of the profile service, one per id",
  profile_cache_hit_ratio: "profile_cache_hits_total / (hits + misses)",
  outbox_backlog_messages: "Messages waiting in room outboxes for Postgres, as last seen by the outbox sweeper",
  outbox_backlog_rooms: "Rooms with a pending outbox, as last seen by the outbox sweeper",
  archive_messages_moved_total: "Messages moved to message_archive by the retention job",
  purge_rows_total: "Rows whose soft-deleted content was purged (audit entries redacted, tombstones blanked)",
  job_runs_total: "Job runs by job and outcome",
  job_last_run_timestamp_seconds: "When the job last finished (from job_runs)",
  job_last_duration_ms: "Duration of the job's last run (from job_runs)",
  job_last_rows: "Rows the job's last run handled (from job_runs)",
  job_last_ok: "1 when the job's last run succeeded (from job_runs)",
};

export interface Sample {
  name: string;
  labels?: Labels;
  value: number;
  type: "counter" | "gauge";
}

const familyOf = (key: string) => {
  const i = key.indexOf("{");
  return i < 0 ? key : key.slice(0, i);
};

/** Prometheus text exposition (format 0.0.4), every family prefixed with `edgechat_`. */
export function renderPrometheus(stored: { counters: Record<string, number>; gauges: Record<string, number> }, extra: Sample[] = []): string {
  const families = new Map<string, { type: string; lines: string[] }>();
  const add = (type: string, key: string, value: number) => {
    const family = familyOf(key);
    let f = families.get(family);
    if (!f) families.set(family, (f = { type, lines: [] }));
    f.lines.push(`${METRIC_PREFIX}${key} ${Number.isInteger(value) ? value : value.toFixed(6)}`);
  };
  for (const [k, v] of Object.entries(stored.counters)) add("counter", k, v);
  for (const [k, v] of Object.entries(stored.gauges)) add("gauge", k, v);
  const sum = (family: string) =>
    Object.entries(stored.counters)
      .filter(([k]) => familyOf(k) === family)
      .reduce((a, [, v]) => a + v, 0);
  const hits = sum("profile_cache_hits_total");
  const misses = sum("profile_cache_misses_total");
  if (hits + misses > 0) add("gauge", "profile_cache_hit_ratio", hits / (hits + misses));
  for (const s of extra) add(s.type, seriesKey(s.name, s.labels), s.value);
  const out: string[] = [];
  for (const [name, f] of [...families].sort(([a], [b]) => (a < b ? -1 : 1))) {
    if (HELP[name]) out.push(`# HELP ${METRIC_PREFIX}${name} ${HELP[name]}`);
    out.push(`# TYPE ${METRIC_PREFIX}${name} ${f.type}`);
    out.push(...f.lines.sort());
  }
  return out.join("\n") + "\n";
}

/** read | write | upgrade: the request classes the rate limiter and the metrics share. */
export function requestClass(method: string, upgradeHeader: string | undefined): "read" | "write" | "upgrade" {
  const m = method.toUpperCase();
  if (m === "POST" || m === "PUT" || m === "PATCH" || m === "DELETE") return "write";
  if (m === "GET" && upgradeHeader?.toLowerCase() === "websocket") return "upgrade";
  return "read";
}

/** Counts every request (class, status class, latency); flushes the batch when due. Sends are counted by the rooms. */
export const requestMetrics = createMiddleware(async (c, next) => {
  const started = Date.now();
  await next();
  const cls = requestClass(c.req.method, c.req.header("upgrade"));
  const status = c.res.status;
  metrics.count("http_requests_total", 1, { class: cls, status: `${Math.floor(status / 100)}xx` });
  metrics.count("http_request_duration_ms_sum", Date.now() - started, { class: cls });
  metrics.count("http_request_duration_ms_count", 1, { class: cls });
  let config: Config;
  try {
    config = getConfig(c.env as object);
  } catch {
    return;
  }
  let waitUntil: ((work: Promise<unknown>) => void) | undefined;
  try {
    const ctx = c.executionCtx;
    waitUntil = (work) => ctx.waitUntil(work);
  } catch {
    waitUntil = undefined;
  }
  flushSoon(config, waitUntil, { log: c.get("log") as Logger | undefined });
});
