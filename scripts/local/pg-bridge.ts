// WebSocket-to-TCP bridge for @neondatabase/serverless in local dev/test (Neon's own proxy is not available here).
// Client side: neonConfig.wsProxy = (h, p) => `127.0.0.1:BRIDGEPORT/v2?address=${h}:${p}` with useSecureWebSocket,
// pipelineTLS and pipelineConnect all false.
import http from "node:http";
import net from "node:net";
import type { Duplex } from "node:stream";
import { WebSocketServer, type WebSocket, type RawData } from "ws";
import { LOOPBACK_HOST, listenLoopback } from "./ports.js";
import { handleControl, isRecord } from "./http-util.js";
import { createSqlEndpoint } from "./pg-http.js";

export interface PgBridgeOptions {
  /** 0 picks a free port. */
  port: number;
  /** Further restricts targets ("host" or "host:port" entries); targets must be loopback regardless. */
  allowedTargets?: string[];
  portEnvName?: string;
  /** "host:port" every connection goes to instead of the address in the query (e.g. a fault proxy). Must be loopback. */
  target?: string;
  /** Enables POST /__control {fault: {down?, delayMs?, cut?}} and GET /__control/stats for out-of-process tests. */
  controlToken?: string;
}

export interface PgBridgeStats {
  /** Statements (or batches) sent over HTTP to `POST /sql`, Neon's query endpoint: no connection of their own. */
  httpQueries: number;
  /** Connections whose WebSocket was accepted. */
  opened: number;
  /** Connections currently open. */
  current: number;
  /** Upgrades refused (down, bad or forbidden address). */
  rejected: number;
  /** Connections closed because the client sent Terminate. */
  terminated: number;
  /**
   * Sync and simple Query messages from clients: each is a point where the client waits for the server's
   * ReadyForQuery, so this counts round trips (a statement through the Neon driver is one). A query over HTTP is
   * one too.
   */
  exchanges: number;
  /** The newest statements (start of their text), oldest first, each with the number of its connection (0: HTTP). */
  recent: { connection: number; text: string }[];
  /**
   * How long Postgres took to answer, as the bridge sees it: from a Sync or Query sent on a connection that was
   * waiting for nothing to the first bytes back (an injected delay counts once, on the way there). Tells a stall
   * in Postgres from one in the Worker. Counts are cumulative (`totalMs` sums every answer, for a mean between two
   * snapshots); `slow` holds the newest answers over SLOW_ANSWER_MS.
   */
  answers: { count: number; totalMs: number; over10ms: number; over50ms: number; slow: { at: number; connection: number; ms: number }[] };
}

export interface PgBridgeHandle {
  /** ws://127.0.0.1:PORT */
  url: string;
  port: number;
  /** Ready-made value for neonConfig.wsProxy. */
  wsProxy: (host: string, port: string | number) => string;
  close(): Promise<void>;
  /** Delays every chunk in both directions by ms (order preserved); 0 turns it off. */
  setDelay(ms: number): void;
  /** true refuses new connections and cuts the current ones. */
  setDown(down: boolean): void;
  /** Destroys every current connection abruptly. */
  cutAll(): void;
  stats(): PgBridgeStats;
}

const LOOPBACK_NAMES = new Set(["127.0.0.1", "localhost", "::1"]);

/** Whether the bridge may connect to this host (a URL's hostname: IPv6 in brackets is accepted). */
export const isLoopbackHost = (host: string): boolean => LOOPBACK_NAMES.has(host.replace(/^\[|\]$/g, ""));

interface Target {
  host: string;
  port: number;
}

function parseHostPort(value: string): Target | null {
  const idx = value.lastIndexOf(":");
  if (idx <= 0) return null;
  let host = value.slice(0, idx);
  const port = Number(value.slice(idx + 1));
  if (host.startsWith("[") && host.endsWith("]")) host = host.slice(1, -1);
  if (!Number.isInteger(port) || port <= 0 || port > 65535) return null;
  return { host: host.toLowerCase(), port };
}

/** Why a target is refused, or null when it may be used. */
function refuseReason(t: Target, allowed: string[] | undefined): string | null {
  if (!LOOPBACK_NAMES.has(t.host)) return `target ${t.host}:${t.port} is not a loopback address`;
  if (allowed && !allowed.some((a) => a === t.host || a === `${t.host}:${t.port}`)) {
    return `target ${t.host}:${t.port} is not in allowedTargets`;
  }
  return null;
}

/**
 * Forwards chunks to a sink, optionally late, never out of order: each chunk is due at arrival + the delay
 * in force at arrival, and a chunk waits for the one before it even when the delay was lowered meanwhile.
 */
class DelayedPipe {
  private queue: { due: number; chunk: Buffer | null }[] = [];
  private timer: NodeJS.Timeout | null = null;
  constructor(
    private readonly write: (chunk: Buffer) => void,
    private readonly end: () => void,
    private readonly delayMs: () => number,
  ) {}

  push(chunk: Buffer | null): void {
    const delay = this.delayMs();
    if (delay <= 0 && this.queue.length === 0) {
      this.deliver(chunk);
      return;
    }
    this.queue.push({ due: Date.now() + delay, chunk });
    this.schedule();
  }

  clear(): void {
    this.queue = [];
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private deliver(chunk: Buffer | null): void {
    if (chunk === null) this.end();
    else this.write(chunk);
  }

  private schedule(): void {
    if (this.timer || this.queue.length === 0) return;
    const wait = Math.max(0, this.queue[0]!.due - Date.now());
    this.timer = setTimeout(() => {
      this.timer = null;
      const now = Date.now();
      while (this.queue.length > 0 && this.queue[0]!.due <= now) this.deliver(this.queue.shift()!.chunk);
      this.schedule();
    }, wait);
  }
}

const SSL_REQUEST = 80877103;
const GSSENC_REQUEST = 80877104;
const TERMINATE = 0x58; // 'X'
const SYNC = 0x53; // 'S'
const QUERY = 0x51; // 'Q'
const PARSE = 0x50; // 'P'
const STATEMENT_PREFIX = 120;
const RECENT_STATEMENTS = 100;

/**
 * Tracks Postgres frontend message boundaries across arbitrary chunking: to spot Terminate, to count round trips,
 * and to report the start of each statement's text (tests check the order of a request's statements).
 * Before startup, messages are [int32 len][int32 code] with no type byte; SSL/GSSENC requests may precede
 * the startup message. After it, every message is [type][int32 len incl. itself].
 */
export class FrontendScanner {
  private typed = false;
  private header = Buffer.alloc(8);
  private headerLen = 0;
  private skip = 0;
  /** Set when the stream stops looking like the protocol (e.g. TLS after an accepted SSLRequest). */
  private opaque = false;
  /** The first bytes of a Parse or Query message's body while it is skipped. */
  private capture: { type: number; bytes: Buffer; len: number } | undefined;
  /** Sync and Query messages seen (see PgBridgeStats.exchanges). */
  exchanges = 0;

  constructor(private readonly onStatement?: (text: string) => void) {}

  /** Returns the offset just past a Terminate message within chunk, or -1. */
  feed(chunk: Buffer): number {
    let i = 0;
    while (i < chunk.length && !this.opaque) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, chunk.length - i);
        if (this.capture) this.collect(chunk.subarray(i, i + n), this.skip === n);
        this.skip -= n;
        i += n;
        continue;
      }
      const want = this.typed ? 5 : 8;
      const n = Math.min(want - this.headerLen, chunk.length - i);
      chunk.copy(this.header, this.headerLen, i, i + n);
      this.headerLen += n;
      i += n;
      if (this.headerLen < want) break;
      this.headerLen = 0;
      if (this.typed) {
        const type = this.header[0]!;
        const len = this.header.readInt32BE(1);
        if (len < 4) this.opaque = true;
        else if (type === TERMINATE && len === 4) return i;
        else {
          if (type === SYNC || type === QUERY) this.exchanges++;
          if (this.onStatement && (type === PARSE || type === QUERY) && len > 4) this.capture = { type, bytes: Buffer.alloc(STATEMENT_PREFIX), len: 0 };
          this.skip = len - 4;
        }
      } else {
        const len = this.header.readInt32BE(0);
        const code = this.header.readInt32BE(4);
        if (len < 8 || len > 1 << 20) this.opaque = true;
        else {
          this.skip = len - 8;
          if (code !== SSL_REQUEST && code !== GSSENC_REQUEST) this.typed = true;
        }
      }
    }
    return -1;
  }

  private collect(part: Buffer, last: boolean): void {
    const c = this.capture!;
    c.len += part.copy(c.bytes, c.len, 0, Math.min(part.length, c.bytes.length - c.len));
    if (!last) return;
    this.capture = undefined;
    const body = c.bytes.subarray(0, c.len);
    // Parse: statement name, NUL, then the text; Query: the text. Either ends at a NUL (or where the prefix stops).
    const start = c.type === PARSE ? body.indexOf(0) + 1 : 0;
    const end = body.indexOf(0, start);
    this.onStatement!(body.subarray(start, end < 0 ? body.length : end).toString("utf8"));
  }
}

interface Conn {
  ws: WebSocket;
  tcp: net.Socket;
  up: DelayedPipe;
  down: DelayedPipe;
  /** performance.now() of the exchange the connection waits on an answer for. */
  waitingSince?: number;
}

const SLOW_ANSWER_MS = 10;
const SLOW_ANSWERS_KEPT = 100;

export async function startPgBridge(opts: PgBridgeOptions): Promise<PgBridgeHandle> {
  let delayMs = 0;
  let down = false;
  const counters = { opened: 0, rejected: 0, terminated: 0, exchanges: 0, httpQueries: 0 };
  const recent: PgBridgeStats["recent"] = [];
  const answers: PgBridgeStats["answers"] = { count: 0, totalMs: 0, over10ms: 0, over50ms: 0, slow: [] };
  const answered = (connection: number, ms: number): void => {
    answers.count++;
    answers.totalMs += ms;
    if (ms <= SLOW_ANSWER_MS) return;
    answers.over10ms++;
    if (ms > 50) answers.over50ms++;
    answers.slow.push({ at: Date.now(), connection, ms: Math.round(ms * 10) / 10 });
    if (answers.slow.length > SLOW_ANSWERS_KEPT) answers.slow.shift();
  };
  const answerStats = (): PgBridgeStats["answers"] => ({ ...answers, slow: [...answers.slow] });
  const conns = new Set<Conn>();

  const fixedTarget = opts.target ? parseHostPort(opts.target) : null;
  if (opts.target) {
    const why = fixedTarget ? refuseReason(fixedTarget, undefined) : `invalid target "${opts.target}"`;
    if (why) throw new Error(`pg-bridge: ${why}`);
  }

  const noteStatement = (connection: number, text: string): void => {
    recent.push({ connection, text: text.slice(0, STATEMENT_PREFIX) });
    if (recent.length > RECENT_STATEMENTS) recent.shift();
  };
  const sqlEndpoint = createSqlEndpoint({
    route: (requested) => {
      const why = refuseReason(requested, opts.allowedTargets);
      return why ? { refused: why } : { target: fixedTarget ?? requested };
    },
    isDown: () => down,
    delayMs: () => delayMs,
    onQuery: (texts) => {
      counters.httpQueries++;
      counters.exchanges++;
      for (const text of texts) noteStatement(0, text);
    },
    onAnswer: (ms) => answered(0, ms),
  });

  const server = http.createServer((req, res) => {
    void (async () => {
      const path = new URL(req.url ?? "/", "http://bridge").pathname;
      if (path === "/sql") return sqlEndpoint.handle(req, res);
      if (
        opts.controlToken &&
        (await handleControl(req, res, path, {
          token: opts.controlToken,
          snapshot: () => ({ ...counters, current: conns.size, recent: [...recent], answers: answerStats(), down, delayMs }),
          resetStats: () => {},
          applyFault: (fault) => {
            const f = isRecord(fault) ? fault : {};
            down = f.down === true;
            delayMs = typeof f.delayMs === "number" && f.delayMs > 0 ? f.delayMs : 0;
            if (down || f.cut === true) cutAll();
          },
        }))
      ) {
        return;
      }
      res.writeHead(426, { "content-type": "text/plain" }).end("pg-bridge: WebSocket upgrade required\n");
    })();
  });
  // Compression would only cost CPU on loopback, and the Neon driver's frames are already small binary messages.
  const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false });

  const refuse = (socket: Duplex, status: number, reason: string): void => {
    counters.rejected++;
    socket.on("error", () => {}); // a client hanging up first is not our problem
    socket.end(`HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\npg-bridge: ${reason}\n`);
    setTimeout(() => socket.destroy(), 1000).unref();
  };

  server.on("upgrade", (req, socket, head) => {
    const url = new URL(req.url ?? "/", "http://bridge");
    if (down) return refuse(socket, 503, "bridge is down (fault injection)");
    if (url.pathname !== "/v2" && url.pathname !== "/") return refuse(socket, 404, `unknown path ${url.pathname}`);
    const requested = parseHostPort(url.searchParams.get("address") ?? "");
    if (!requested) return refuse(socket, 400, "missing or invalid ?address=host:port");
    const why = refuseReason(requested, opts.allowedTargets);
    if (why) return refuse(socket, 403, why);
    const target = fixedTarget ?? requested;
    wss.handleUpgrade(req, socket, head, (ws) => bridge(ws, target));
  });

  function bridge(ws: WebSocket, target: Target): void {
    const connection = ++counters.opened;
    ws.binaryType = "nodebuffer";
    const tcp = net.connect({ host: target.host, port: target.port });
    tcp.setNoDelay(true);
    const scanner = new FrontendScanner((text) => noteStatement(connection, text));
    let finished = false;

    /** "abort" drops both sides at once; otherwise the TCP side is ended and the ws gets a close frame. */
    const finish = (how: "abort" | { code: number; reason?: string }): void => {
      if (finished) return;
      finished = true;
      conns.delete(conn);
      conn.up.clear();
      conn.down.clear();
      if (how === "abort") {
        tcp.destroy();
        ws.terminate();
        return;
      }
      tcp.end();
      // The peer should close its half promptly; don't let a stuck one outlive the connection.
      setTimeout(() => tcp.destroy(), 1000).unref();
      if (ws.readyState === ws.OPEN) ws.close(how.code, how.reason);
    };

    const conn: Conn = {
      ws,
      tcp,
      up: new DelayedPipe(
        (chunk) => tcp.write(chunk),
        () => {
          // Terminate reached the server: PGlite keeps the socket open after it, so hang up ourselves,
          // otherwise the driver waits forever for the close and pool.end() never resolves.
          counters.terminated++;
          finish({ code: 1000 });
        },
        () => delayMs,
      ),
      down: new DelayedPipe(
        (chunk) => {
          if (ws.readyState === ws.OPEN) ws.send(chunk, { binary: true });
        },
        () => finish({ code: 1000 }),
        () => delayMs,
      ),
    };
    conns.add(conn);

    ws.on("message", (data: RawData) => {
      if (finished) return;
      const chunk = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
      const seen = scanner.exchanges;
      const end = scanner.feed(chunk);
      counters.exchanges += scanner.exchanges - seen;
      if (scanner.exchanges > seen) conn.waitingSince ??= performance.now();
      if (end < 0) {
        conn.up.push(chunk);
        return;
      }
      conn.up.push(chunk.subarray(0, end));
      conn.up.push(null);
    });
    ws.on("close", () => finish("abort"));
    ws.on("error", () => finish("abort"));
    tcp.on("data", (chunk: Buffer) => {
      if (conn.waitingSince !== undefined) answered(connection, performance.now() - conn.waitingSince);
      conn.waitingSince = undefined;
      conn.down.push(chunk);
    });
    tcp.on("end", () => conn.down.push(null));
    tcp.on("error", (err) => {
      tcp.destroy();
      // Close reasons are limited to 123 bytes.
      finish({ code: 1011, reason: `pg-bridge: ${err.message}`.slice(0, 120) });
    });
    tcp.on("close", () => {
      // A close without "end" (reset) has no queued data worth waiting for.
      if (!tcp.readableEnded) finish("abort");
    });
  }

  const cutAll = (): void => {
    sqlEndpoint.cutAll();
    for (const c of [...conns]) {
      conns.delete(c);
      c.up.clear();
      c.down.clear();
      c.tcp.destroy();
      c.ws.terminate();
    }
  };

  const port = await listenLoopback(server, opts.port, opts.portEnvName);

  return {
    url: `ws://${LOOPBACK_HOST}:${port}`,
    port,
    wsProxy: (host, p) => `${LOOPBACK_HOST}:${port}/v2?address=${host}:${p}`,
    async close() {
      cutAll();
      await sqlEndpoint.close();
      wss.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
    setDelay(ms) {
      delayMs = Math.max(0, ms);
    },
    setDown(value) {
      down = value;
      if (value) cutAll();
    },
    cutAll,
    stats: () => ({ ...counters, current: conns.size, recent: [...recent], answers: answerStats() }),
  };
}
