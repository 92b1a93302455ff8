// The `npm run audit:verify` command (scripts/verify-audit.ts): usage there.
import { readFile } from "node:fs/promises";
import path from "node:path";
import { parseArgs } from "node:util";
import { Pool, neonConfig } from "@neondatabase/serverless";
import { drizzle } from "drizzle-orm/neon-serverless";
import { Redis } from "@upstash/redis";
import WebSocket from "ws";
import { isUuid } from "../../src/lib/ids.js";
import { signDevToken } from "../../src/lib/jwt.js";
import { verifyAuditChains, type VerifyReport } from "../../src/jobs/audit-verify.js";
import { readAnchors } from "../../src/jobs/audit-anchor-store.js";
import { retentionSettings } from "../../src/db/queries/maintenance.js";
import { explainConnectFailure, nodePool } from "./migrate.js";
import { LOCAL_JWT_SECRET, ROOT } from "./stack.js";

/** The most rows the Worker's route verifies per call (POST /operations/audit/verify). */
const WORKER_MAX_ROWS = 200_000;

async function devVars(): Promise<Record<string, string>> {
  try {
    const text = await readFile(path.join(ROOT, ".dev.vars"), "utf8");
    const out: Record<string, string> = {};
    for (const line of text.split("\n")) {
      const m = /^\s*([A-Z0-9_]+)\s*=\s*(.*?)\s*$/.exec(line);
      if (m) out[m[1]] = m[2].replace(/^"(.*)"$/, "$1");
    }
    return out;
  } catch {
    return {};
  }
}

type Scope = { conversationId?: string; globalOnly: boolean; maxRows?: number };
type Env = Record<string, string | undefined>;

/** `anchorsKnown` false: no Redis endpoint configured here, so no anchor was read (the Worker always reads them). */
async function direct(options: Scope, env: Env): Promise<VerifyReport & { anchorsKnown: boolean }> {
  const vars = await devVars();
  const databaseUrl = env.DATABASE_URL || vars.DATABASE_URL;
  const bridge = env.PG_BRIDGE ?? vars.PG_BRIDGE;
  if (!databaseUrl) throw new Error("set DATABASE_URL (or run from a checkout with .dev.vars)");
  let pool: Pool;
  if (bridge) {
    pool = nodePool(databaseUrl, bridge, 2);
  } else {
    // Neon: the driver's own secure WebSocket endpoint.
    neonConfig.webSocketConstructor = WebSocket;
    pool = new Pool({ connectionString: databaseUrl, max: 2 });
    pool.on("error", () => {});
  }
  // The anchors the audit.anchor job keeps in Redis, when this checkout knows the endpoint.
  const redisUrl = env.UPSTASH_REDIS_REST_URL || vars.UPSTASH_REDIS_REST_URL;
  const redisToken = env.UPSTASH_REDIS_REST_TOKEN || vars.UPSTASH_REDIS_REST_TOKEN;
  const redis = redisUrl && redisToken ? new Redis({ url: redisUrl, token: redisToken, retry: { retries: 0 }, enableTelemetry: false }) : undefined;
  try {
    // A connection that cannot be made says which endpoint and variable, as `npm run migrate` does.
    const probe = await pool.connect().catch((err: unknown) => {
      throw explainConnectFailure(err, databaseUrl, bridge || undefined);
    });
    probe.release();
    const db = drizzle({ client: pool });
    const report = await verifyAuditChains(db, { ...options, anchors: redis && ((chains) => readAnchors(redis, chains)) });
    // As the Worker's route answers 404: an id unknown to both the conversations and the audit log is a mistake.
    if (options.conversationId && report.empty && !(await retentionSettings(db, options.conversationId))) throw unknownConversation(options.conversationId);
    return { ...report, anchorsKnown: redis !== undefined };
  } finally {
    await pool.end().catch(() => {});
  }
}

function unknownConversation(id: string): Error {
  return new Error(`conversation ${id} not found: no such conversation, and no audit entry or anchor for it`);
}

async function viaWorker(url: string, token: string, options: Scope): Promise<VerifyReport & { anchorsKnown: boolean }> {
  const res = await fetch(`${url.replace(/\/+$/, "")}/operations/audit/verify`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify({ ...options, maxRows: options.maxRows ?? WORKER_MAX_ROWS }),
  });
  const body = (await res.json().catch(() => ({}))) as VerifyReport & { message?: unknown };
  if (res.status === 404 && options.conversationId) throw unknownConversation(options.conversationId);
  if (!res.ok) throw new Error(`the Worker answered ${res.status}: ${JSON.stringify(body.message ?? body)}`);
  return { ...body, anchorsKnown: true };
}

export interface VerifyOutput {
  out(line: string): void;
  err(line: string): void;
}

/**
 * The whole command: `args` as after `npm run audit:verify --`, the variables it reads from `env`. Answers the exit
 * code (usage and connection errors are reported on `err` and answer 2). In a module of its own so the tests run it
 * in-process: a `tsx` start per case cost about 3 s of CPU on CI's two cores.
 */
export async function verifyAuditCli(args: string[], env: Env, io: VerifyOutput): Promise<number> {
  try {
    return await run(args, env, io);
  } catch (err) {
    io.err(`audit:verify: ${(err as Error).message}`);
    return 2;
  }
}

const USAGE = `usage: npm run audit:verify -- [--conversation <id> | --global] [--max-rows <n>] [--json]
         (straight from Postgres: DATABASE_URL, and PG_BRIDGE for the local bridge; both default to .dev.vars)
       npm run audit:verify -- --url https://chat.example.com --token <service token> [--conversation <id>]
exit codes: 0 intact, 1 a chain is broken, 2 usage or connection error, 3 incomplete (row cap), 4 nothing to verify`;

const OPTIONS = {
  help: { type: "boolean", short: "h", default: false },
  conversation: { type: "string" },
  global: { type: "boolean", default: false },
  url: { type: "string" },
  token: { type: "string" },
  json: { type: "boolean", default: false },
  "max-rows": { type: "string" },
} as const;

/** --help printed "Unknown option '--help'" and nothing else, exit 2; a mistyped option did not show the options. */
function parseOptions(args: string[]) {
  try {
    return parseArgs({ args, options: OPTIONS }).values;
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${USAGE}`);
  }
}

async function run(args: string[], env: Env, io: VerifyOutput): Promise<number> {
  const values = parseOptions(args);
  if (values.help) {
    io.out(USAGE);
    return 0;
  }
  if (values.conversation && !isUuid(values.conversation)) throw new Error(`--conversation ${values.conversation} is not a UUID`);
  // Straight from Postgres --global was dropped and the conversation's chain alone verified (through the Worker, a 400).
  if (values.conversation && values.global) throw new Error("use either --conversation <id> or --global, not both");
  const maxRows = values["max-rows"] === undefined ? undefined : Number(values["max-rows"]);
  if (maxRows !== undefined && !(Number.isInteger(maxRows) && maxRows >= 1)) throw new Error(`--max-rows ${values["max-rows"]} is not a positive integer`);
  const options: Scope = { conversationId: values.conversation?.toLowerCase(), globalOnly: values.global ?? false, maxRows };
  let report: VerifyReport & { anchorsKnown: boolean };
  if (values.url) {
    let token = values.token ?? env.AUDIT_VERIFY_TOKEN;
    if (!token && /^https?:\/\/(127\.0\.0\.1|localhost)(:|\/|$)/.test(values.url)) {
      token = await signDevToken({ id: "00000000-0000-4000-8000-000000000001", kahaId: "audit-verify", role: "admin" }, env.JWT_SECRET || LOCAL_JWT_SECRET, 300);
    }
    if (!token) throw new Error("--url needs --token <service token> (or AUDIT_VERIFY_TOKEN)");
    report = await viaWorker(values.url, token, options);
  } else {
    report = await direct(options, env);
  }
  const { anchorsKnown, ...answer } = report;
  if (values.json) {
    io.out(JSON.stringify(answer, null, 2));
  } else {
    const scope = options.conversationId ? `conversation ${options.conversationId}` : options.globalOnly ? "global chain" : "all chains";
    io.out(`audit log (${scope}): ${report.chains} chain(s), ${report.rows} row(s), ${report.redactedRows} redacted`);
    io.out(
      !anchorsKnown
        ? "  anchors: not checked (set UPSTASH_REDIS_REST_URL and UPSTASH_REDIS_REST_TOKEN, or use --url)"
        : report.anchorsUnavailable
        ? "  anchors: Redis unreachable; only each chain's own consistency was checked"
        : `  anchors: ${report.anchoredChains} chain(s) checked against the audit.anchor job's copy`,
    );
    for (const b of report.broken) {
      io.out(`  BROKEN chain ${b.conversationId ?? "global"}: first broken row id=${b.id} (${b.reason})`);
    }
    io.out(verdict(report, options.maxRows ?? (values.url ? WORKER_MAX_ROWS : undefined)));
  }
  return exitCode(report);
}

// A report cut short by the row cap says nothing about the rows after it: never OK.
function verdict(report: VerifyReport, cap: number | undefined): string {
  if (!report.ok) return `FAILED: ${report.broken.length} broken chain(s)${report.complete ? "" : " (and verification incomplete)"}`;
  if (report.empty) return "NOTHING TO VERIFY: no audit entry in scope (a conversation made through the API always has its first one)";
  if (!report.complete) {
    return `INCOMPLETE: verified ${report.rows} row(s) and stopped at the row cap${cap ? ` (${cap})` : ""}; later rows were not checked (no break found in those checked)`;
  }
  return "OK: every chain verifies";
}

function exitCode(report: VerifyReport): number {
  if (!report.ok) return 1;
  if (report.empty) return 4;
  return report.complete ? 0 : 3;
}

