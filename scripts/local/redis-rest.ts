// Local stand-in for Upstash Redis's REST API, as @upstash/redis 1.39 speaks it:
//   POST /            ["SET","k","v"]            -> {result} | {error} (400)
//   POST /pipeline    [["SET","k","v"],["GET","k"]] -> [{result}|{error}, ...]
//   POST /multi-exec  same, run atomically        -> [...] or {error} (400) when the transaction aborts
// With "Upstash-Encoding: base64" every string in a result is base64 (UTF-8), except a top-level "OK" status.
// Backed by an in-memory store, or by a real redis-server when redisUrl is given.
import http from "node:http";
import { LOOPBACK_HOST, listenLoopback } from "./ports.js";
import { MemoryRedis } from "./redis-memory.js";
import { ReplyError, RespClient, SimpleString, type Reply } from "./resp.js";
import {
  closeHttpServer,
  handleControl,
  hasBearer,
  pickFields,
  readBody,
  sendGarbage,
  sendJson,
  sleep,
  tryParseJson,
} from "./http-util.js";

export interface RedisRestOptions {
  /** 0 picks a free port. */
  port: number;
  token: string;
  /** redis://host:port of a real redis-server; default is the in-memory store. */
  redisUrl?: string;
  portEnvName?: string;
  /** The variable that set redisUrl, named in the error when that server does not answer (REDIS_URL). */
  urlEnvName?: string;
}

export interface RedisRestFault {
  /** Answer every REST request with 503. */
  down: boolean;
  /** Added before each REST request is handled. */
  delayMs: number;
  /** Run the commands but answer 200 with a body that is not JSON. */
  garbage: boolean;
}

export interface RedisRestStats {
  /** REST requests received (control requests excluded). */
  requests: number;
  /** Commands executed (a pipeline of 3 counts 3). */
  commands: number;
}

export interface RedisRestHandle {
  /** http://127.0.0.1:PORT, the value for UPSTASH_REDIS_REST_URL. */
  url: string;
  port: number;
  token: string;
  backend: "memory" | "redis";
  close(): Promise<void>;
  /** Replaces the whole fault state: fields left out are reset (setFault({}) clears all faults). */
  setFault(fault: Partial<RedisRestFault>): void;
  fault(): RedisRestFault;
  stats(): RedisRestStats;
  resetStats(): void;
}

type Command = string[];

interface Backend {
  kind: "memory" | "redis";
  run(commands: Command[]): Promise<Reply[]>;
  /** Either one reply per command, or the error that aborted the transaction. */
  runAtomic(commands: Command[]): Promise<Reply[] | ReplyError>;
  close(): Promise<void>;
}

function memoryBackend(): Backend {
  const store = new MemoryRedis();
  return {
    kind: "memory",
    run: async (commands) => commands.map((c) => store.exec(c)),
    runAtomic: async (commands) => store.execAtomic(commands),
    close: async () => {},
  };
}

function redisBackend(url: string): Backend {
  const client = RespClient.fromUrl(url);
  return {
    kind: "redis",
    run: (commands) => client.send(commands),
    async runAtomic(commands) {
      const replies = await client.send([["MULTI"], ...commands, ["EXEC"]]);
      const exec = replies[replies.length - 1];
      if (Array.isArray(exec)) return exec;
      if (exec instanceof ReplyError) return exec;
      return new ReplyError("EXECABORT Transaction discarded");
    },
    close: () => client.close(),
  };
}

/** Converts a reply to the JSON Upstash sends; `top` matters because only a top-level "OK" stays unencoded. */
function toJson(reply: Reply, base64: boolean, top: boolean): unknown {
  const enc = (s: string): string => (base64 ? Buffer.from(s, "utf8").toString("base64") : s);
  if (reply === null || typeof reply === "number") return reply;
  if (typeof reply === "string") return enc(reply);
  if (reply instanceof SimpleString) return top && reply.value === "OK" ? "OK" : enc(reply.value);
  if (reply instanceof ReplyError) return enc(reply.message); // only reachable when nested in an array
  return reply.map((r) => toJson(r, base64, false));
}

function entry(reply: Reply, base64: boolean): { result: unknown } | { error: string } {
  return reply instanceof ReplyError ? { error: reply.message } : { result: toJson(reply, base64, true) };
}

function asCommand(v: unknown): Command | null {
  if (!Array.isArray(v) || v.length === 0) return null;
  const out: Command = [];
  for (const a of v) {
    if (typeof a === "string") out.push(a);
    else if (typeof a === "number" || typeof a === "boolean") out.push(String(a));
    else return null;
  }
  return out;
}

function asCommandList(v: unknown): Command[] | null {
  if (!Array.isArray(v) || v.length === 0) return null;
  const out: Command[] = [];
  for (const c of v) {
    const cmd = asCommand(c);
    if (!cmd) return null;
    out.push(cmd);
  }
  return out;
}

const NO_FAULT: RedisRestFault = { down: false, delayMs: 0, garbage: false };

/**
 * A redis-server that does not answer (not started, a wrong port, a password this client does not send) fails the
 * start, naming the URL and its variable. It used to start anyway: every command then failed, rate limits failed
 * open and profiles went uncached, and `npm run dev` printed "edge-chat is running".
 */
async function checkReachable(backend: Backend, url: string, envName: string | undefined): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error("no answer within 3 s")), 3000);
  });
  try {
    const [reply] = await Promise.race([backend.run([["PING"]]), timeout]);
    if (reply instanceof ReplyError) throw new Error(reply.message);
  } catch (err) {
    await backend.close().catch(() => {});
    const named = envName ? `${envName}=${redactRedisUrl(url)}` : redactRedisUrl(url);
    const unset = envName ? `, or leave ${envName} unset to use the in-memory store` : "";
    throw new Error(`Could not reach redis-server at ${named} (${(err as Error).message}). Start it, or fix the URL${unset}.`);
  } finally {
    clearTimeout(timer);
  }
}

function redactRedisUrl(url: string): string {
  return url.replace(/\/\/([^@/]*)@/, "//***@");
}

export async function startRedisRest(opts: RedisRestOptions): Promise<RedisRestHandle> {
  let backend: Backend;
  try {
    backend = opts.redisUrl ? redisBackend(opts.redisUrl) : memoryBackend();
  } catch (err) {
    throw new Error(opts.urlEnvName ? `${opts.urlEnvName}: ${(err as Error).message}` : (err as Error).message);
  }
  if (opts.redisUrl) await checkReachable(backend, opts.redisUrl, opts.urlEnvName);
  let fault: RedisRestFault = { ...NO_FAULT };
  const counters: RedisRestStats = { requests: 0, commands: 0 };

  const setFault = (f: Partial<RedisRestFault>): void => {
    fault = { ...NO_FAULT, ...f, delayMs: Math.max(0, f.delayMs ?? 0) };
  };
  const resetStats = (): void => {
    counters.requests = 0;
    counters.commands = 0;
  };

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const path = new URL(req.url ?? "/", "http://local").pathname;
    const control = await handleControl(req, res, path, {
      token: opts.token,
      applyFault: (raw) => setFault(pickFields(raw, { down: "boolean", delayMs: "number", garbage: "boolean" }) as Partial<RedisRestFault>),
      resetStats,
      snapshot: () => ({ ...counters, fault }),
    });
    if (control) return;

    counters.requests++;
    if (fault.down) return sendJson(res, 503, { error: "Service Unavailable (injected fault)" });
    if (fault.delayMs > 0) await sleep(fault.delayMs);
    if (!hasBearer(req, opts.token)) return sendJson(res, 401, { error: "Unauthorized" });
    if (req.method !== "POST") return sendJson(res, 405, { error: "Method not allowed: the client only POSTs" });
    if (path !== "/" && path !== "/pipeline" && path !== "/multi-exec") {
      return sendJson(res, 404, { error: `ERR unsupported path ${path}` });
    }

    const body = tryParseJson(await readBody(req));
    const base64 = req.headers["upstash-encoding"] === "base64";
    const commands = path === "/" ? [asCommand(body)] : asCommandList(body);
    if (!commands || commands.some((c) => c === null)) {
      return sendJson(res, 400, { error: "ERR failed to parse command" });
    }
    const cmds = commands as Command[];
    counters.commands += cmds.length;

    let replies: Reply[] | ReplyError;
    try {
      replies = path === "/multi-exec" ? await backend.runAtomic(cmds) : await backend.run(cmds);
    } catch (err) {
      return sendJson(res, 503, { error: `ERR backend unavailable: ${(err as Error).message}` });
    }
    if (fault.garbage) return sendGarbage(res);
    if (replies instanceof ReplyError) return sendJson(res, 400, { error: replies.message });
    if (path === "/") {
      const only = replies[0] ?? null;
      // Upstash answers a failed single command with HTTP 400; the client then throws with the message.
      return sendJson(res, only instanceof ReplyError ? 400 : 200, entry(only, base64));
    }
    sendJson(res, 200, replies.map((r) => entry(r, base64)));
  }

  const server = http.createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) sendJson(res, 500, { error: `ERR internal: ${(err as Error).message}` });
      else res.destroy();
    });
  });

  let port: number;
  try {
    port = await listenLoopback(server, opts.port, opts.portEnvName);
  } catch (err) {
    await backend.close();
    throw err;
  }

  return {
    url: `http://${LOOPBACK_HOST}:${port}`,
    port,
    token: opts.token,
    backend: backend.kind,
    async close() {
      await closeHttpServer(server);
      await backend.close();
    },
    setFault,
    fault: () => ({ ...fault }),
    stats: () => ({ ...counters }),
    resetStats,
  };
}
