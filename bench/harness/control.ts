// The runner (bench/run.ts) is a child of scripts/bench.ts, which hosts the stack. Fault switches and counters of
// the local stand-ins are reached over the fork IPC channel, so the runner uses the stack's own handles.

export type ControlOp =
  | { op: "pgDelay"; ms: number }
  | { op: "pgDown"; down: boolean }
  | { op: "redisDelay"; ms: number }
  | { op: "stats" };

export interface ControlStats {
  bridge: {
    opened: number;
    current: number;
    rejected: number;
    terminated: number;
    exchanges: number;
    /** See PgBridgeStats.answers (scripts/local/pg-bridge.ts). */
    answers: { count: number; totalMs: number; over10ms: number; over50ms: number; slow: { at: number; connection: number; ms: number }[] };
  };
  profileCalls: number;
  redis: { requests: number; commands: number };
  /** Worker reloads by wrangler dev (source edited during the run) and the last such line. */
  reloads: { count: number; last: string };
}

export interface ControlRequest {
  id: number;
  body: ControlOp;
}
export interface ControlReply {
  id: number;
  ok: boolean;
  result?: unknown;
  error?: string;
}

/** What the host tells the runner about the stack (JSON in BENCH_STACK). */
export interface StackInfo {
  baseUrl: string;
  databaseUrl: string;
  embeddedPostgres: boolean;
  redisUrl: string;
  redisToken: string;
  jwtSecret: string;
  /** The process that owns the Worker's workerd (wrangler dev, or the Miniflare host). */
  wranglerPid: number;
  /** How the Worker is served: Miniflare directly, or through `wrangler dev` and its proxy. */
  runtime: "miniflare" | "wrangler";
  vars: Record<string, string>;
  wranglerVersion: string;
  workerdVersion: string;
}

let nextId = 1;
const waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();

function ensureListener(): void {
  if (process.listenerCount("message") > 0) return;
  process.on("message", (raw: unknown) => {
    const reply = raw as ControlReply;
    const w = waiting.get(reply.id);
    if (!w) return;
    waiting.delete(reply.id);
    if (reply.ok) w.resolve(reply.result);
    else w.reject(new Error(reply.error ?? "control failed"));
  });
}

export function control<T = void>(body: ControlOp): Promise<T> {
  if (!process.send) return Promise.reject(new Error("bench runner must be started by scripts/bench.ts (no IPC channel)"));
  ensureListener();
  const id = nextId++;
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => {
      waiting.delete(id);
      reject(new Error(`control ${body.op}: no answer from the stack host`));
    }, 10_000);
    waiting.set(id, {
      resolve: (v) => {
        clearTimeout(timer);
        resolve(v as T);
      },
      reject,
    });
    process.send!({ id, body } satisfies ControlRequest);
  });
}

/**
 * Postgres's answers to the Worker between two snapshots, for a row of the service: how many, their mean, how many
 * took over 10 ms, and the slowest of those (taken at the bridge; `since` is the first snapshot's Date.now()).
 */
export function pgAnswersBetween(before: ControlStats, after: ControlStats, since: number): Record<string, number | string> {
  const [a, b] = [after.bridge.answers, before.bridge.answers];
  const slow = a.slow.filter((s) => s.at >= since).map((s) => s.ms);
  return {
    "pg answers": a.count - b.count,
    "mean pg answer ms": a.count > b.count ? Math.round(((a.totalMs - b.totalMs) / (a.count - b.count)) * 100) / 100 : "–",
    "pg answers > 10 ms": a.over10ms - b.over10ms,
    "slowest pg answer ms": slow.length > 0 ? Math.max(...slow) : "≤ 10",
  };
}
