// A small TCP fault proxy for the reliability suite and the soak run: it sits between the Postgres WebSocket bridge
// (started with `target` pointing here) and Postgres, forwards bytes both ways and can, on command:
//   - delay every chunk (both directions, order preserved),
//   - stop accepting (new connections are reset at once) and cut the open ones,
//   - reset every open connection,
//   - "reset after COMMIT before the reply": watch the client → server stream for a COMMIT query, let it reach the
//     server (so the transaction commits) and cut the connection as soon as the server answers, without relaying
//     the answer. The client then believes its commit failed although it happened: the case idempotent writes exist for.
// Loopback only, like every local stand-in. Control in-process (the returned handle) or over HTTP:
//   POST /__control {fault: {down?, delayMs?, reset?, resetAfterCommit?}, resetStats?}   GET /__control/stats
//
// CLI: tsx scripts/local/fault-proxy.ts --target 127.0.0.1:5433 [--port 0] [--control-port 0] [--token T]
import http from "node:http";
import net from "node:net";
import { fileURLToPath } from "node:url";
import { LOOPBACK_HOST, listenLoopback } from "./ports.js";
import { closeHttpServer, handleControl, isRecord } from "./http-util.js";

export interface FaultProxyOptions {
  /** 0 picks a free port. */
  port: number;
  /** "host:port" of Postgres; must be loopback. */
  target: string;
  /** When set, an HTTP control endpoint listens on controlPort (0 = any) behind this bearer token. */
  controlToken?: string;
  controlPort?: number;
}

export interface FaultProxyFault {
  /** Refuse (reset) new connections and cut the current ones. */
  down: boolean;
  /** Added to every chunk in both directions. */
  delayMs: number;
  /** How many upcoming COMMITs get their connection cut after the server committed, before the reply is relayed. */
  resetAfterCommit: number;
}

export interface FaultProxyStats {
  accepted: number;
  /** Connections reset on arrival while down. */
  refused: number;
  current: number;
  /** Connections cut by reset / down. */
  cut: number;
  /** COMMIT queries seen from clients. */
  commitsSeen: number;
  /** Connections cut after a COMMIT reached the server, reply withheld. */
  commitCuts: number;
  bytesUp: number;
  bytesDown: number;
}

export interface FaultProxyHandle {
  port: number;
  /** "127.0.0.1:PORT": the value for the bridge's `target`. */
  address: string;
  controlUrl?: string;
  close(): Promise<void>;
  setFault(fault: Partial<FaultProxyFault>): void;
  fault(): FaultProxyFault;
  /** Resets every open connection now (TCP RST to both sides). */
  resetAll(): void;
  stats(): FaultProxyStats;
  resetStats(): void;
}

const LOOPBACK = new Set(["127.0.0.1", "localhost", "::1"]);

function parseTarget(value: string): { host: string; port: number } {
  const idx = value.lastIndexOf(":");
  const host = value.slice(0, idx).replace(/^\[|\]$/g, "").toLowerCase();
  const port = Number(value.slice(idx + 1));
  if (idx <= 0 || !Number.isInteger(port) || port <= 0 || port > 65535) throw new Error(`fault-proxy: invalid target "${value}"`);
  if (!LOOPBACK.has(host)) throw new Error(`fault-proxy: target ${host} is not a loopback address`);
  return { host, port };
}

const SSL_REQUEST = 80877103;
const GSSENC_REQUEST = 80877104;
const QUERY = 0x51; // 'Q'
const PARSE = 0x50; // 'P'
const COMMIT_RE = /^\s*(commit|end)(\s+(work|transaction))?\s*;?\s*$/i;
const BEGIN_RE = /^\s*(begin|start\s+transaction)\b/i;
const ROLLBACK_RE = /^\s*(rollback|abort)\b/i;
// A data-changing statement, bare or inside a WITH: outside BEGIN … COMMIT it commits by itself.
const WRITE_RE = /^\s*(insert|update|delete|with\b[\s\S]*\b(insert\s+into|update|delete\s+from)\b)/i;

/**
 * Follows Postgres frontend messages across arbitrary chunking and reports commit points: COMMIT statements, and
 * data-changing statements sent outside an explicit transaction (they commit on their own: the room's flush is one
 * such statement). Statements come as a simple Query or as the statement of an extended-protocol Parse. Only Q and
 * P bodies are buffered, up to 64 KiB.
 */
export class CommitSpotter {
  private typed = false;
  private header = Buffer.alloc(8);
  private headerLen = 0;
  private remaining = 0;
  private capture: Buffer[] | null = null;
  private captureType = 0;
  private opaque = false;
  private inTransaction = false;

  /** Number of commit points completed within this chunk. */
  feed(chunk: Buffer): number {
    let commits = 0;
    let i = 0;
    while (i < chunk.length && !this.opaque) {
      if (this.remaining > 0) {
        const n = Math.min(this.remaining, chunk.length - i);
        if (this.capture) this.capture.push(chunk.subarray(i, i + n));
        this.remaining -= n;
        i += n;
        if (this.remaining === 0 && this.capture) {
          if (this.isCommit(Buffer.concat(this.capture))) commits++;
          this.capture = null;
        }
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
        if (len < 4) {
          this.opaque = true;
          break;
        }
        this.remaining = len - 4;
        this.capture = (type === QUERY || type === PARSE) && this.remaining <= 65_536 && this.remaining > 0 ? [] : null;
        this.captureType = type;
      } else {
        const len = this.header.readInt32BE(0);
        const code = this.header.readInt32BE(4);
        if (len < 8 || len > 1 << 20) {
          this.opaque = true;
          break;
        }
        this.remaining = len - 8;
        this.capture = null;
        if (code !== SSL_REQUEST && code !== GSSENC_REQUEST) this.typed = true;
      }
    }
    return commits;
  }

  private isCommit(body: Buffer): boolean {
    let text: string;
    if (this.captureType === QUERY) {
      text = body.subarray(0, Math.max(0, body.indexOf(0))).toString("utf8");
    } else {
      // Parse: statement name \0, query \0, parameter types.
      const nameEnd = body.indexOf(0);
      if (nameEnd < 0) return false;
      const queryEnd = body.indexOf(0, nameEnd + 1);
      text = body.subarray(nameEnd + 1, queryEnd < 0 ? body.length : queryEnd).toString("utf8");
    }
    if (BEGIN_RE.test(text)) {
      this.inTransaction = true;
      return false;
    }
    if (ROLLBACK_RE.test(text)) {
      this.inTransaction = false;
      return false;
    }
    if (COMMIT_RE.test(text)) {
      this.inTransaction = false;
      return true;
    }
    return !this.inTransaction && WRITE_RE.test(text);
  }
}

/** Ordered, optionally late delivery of chunks (a chunk never overtakes an earlier one when the delay changes). */
class Lane {
  private queue: { due: number; chunk: Buffer; after?: () => void }[] = [];
  private timer: NodeJS.Timeout | null = null;
  constructor(
    private readonly deliver: (chunk: Buffer) => void,
    private readonly delay: () => number,
  ) {}

  /** `after` runs right after this chunk was handed on (e.g. to arm a fault at that exact point of the stream). */
  push(chunk: Buffer, after?: () => void): void {
    const d = this.delay();
    if (d <= 0 && this.queue.length === 0) {
      this.deliver(chunk);
      after?.();
      return;
    }
    this.queue.push({ due: Date.now() + d, chunk, after });
    this.schedule();
  }

  clear(): void {
    this.queue = [];
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private schedule(): void {
    if (this.timer || this.queue.length === 0) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      const now = Date.now();
      while (this.queue.length > 0 && this.queue[0]!.due <= now) {
        const item = this.queue.shift()!;
        this.deliver(item.chunk);
        item.after?.();
      }
      this.schedule();
    }, Math.max(0, this.queue[0]!.due - Date.now()));
  }
}

interface Conn {
  client: net.Socket;
  server: net.Socket;
  up: Lane;
  down: Lane;
  /** A COMMIT of this connection was written to the server: its reply must not be relayed. */
  cutOnReply: boolean;
  done: boolean;
}

const NO_FAULT: FaultProxyFault = { down: false, delayMs: 0, resetAfterCommit: 0 };

function hardReset(socket: net.Socket): void {
  try {
    if (!socket.destroyed) socket.resetAndDestroy();
  } catch {
    socket.destroy();
  }
}

export async function startFaultProxy(opts: FaultProxyOptions): Promise<FaultProxyHandle> {
  const target = parseTarget(opts.target);
  let fault: FaultProxyFault = { ...NO_FAULT };
  const zero = (): Omit<FaultProxyStats, "current"> => ({ accepted: 0, refused: 0, cut: 0, commitsSeen: 0, commitCuts: 0, bytesUp: 0, bytesDown: 0 });
  let counters = zero();
  const conns = new Set<Conn>();

  const kill = (c: Conn): void => {
    if (c.done) return;
    c.done = true;
    conns.delete(c);
    c.up.clear();
    c.down.clear();
    hardReset(c.client);
    hardReset(c.server);
  };

  const resetAll = (): void => {
    for (const c of [...conns]) {
      counters.cut++;
      kill(c);
    }
  };

  const server = net.createServer((client) => {
    client.on("error", () => {});
    if (fault.down) {
      counters.refused++;
      hardReset(client);
      return;
    }
    counters.accepted++;
    client.setNoDelay(true);
    const upstream = net.connect({ host: target.host, port: target.port });
    upstream.setNoDelay(true);
    upstream.on("error", () => {});
    const spotter = new CommitSpotter();
    const conn: Conn = {
      client,
      server: upstream,
      cutOnReply: false,
      done: false,
      up: new Lane(
        (chunk) => {
          if (!conn.done) upstream.write(chunk);
        },
        () => fault.delayMs,
      ),
      down: new Lane(
        (chunk) => {
          if (!conn.done) client.write(chunk);
        },
        () => fault.delayMs,
      ),
    };
    conns.add(conn);

    client.on("data", (chunk: Buffer) => {
      if (conn.done) return;
      counters.bytesUp += chunk.length;
      const commits = spotter.feed(chunk);
      if (commits > 0) {
        counters.commitsSeen += commits;
        if (fault.resetAfterCommit > 0) {
          fault = { ...fault, resetAfterCommit: fault.resetAfterCommit - 1 };
          // Armed once the COMMIT is on its way to the server: whatever the server sends from then on is its answer.
          conn.up.push(chunk, () => {
            conn.cutOnReply = true;
          });
          return;
        }
      }
      conn.up.push(chunk);
    });
    upstream.on("data", (chunk: Buffer) => {
      if (conn.done) return;
      counters.bytesDown += chunk.length;
      if (conn.cutOnReply) {
        // The server answered the COMMIT, so it is durable: withhold the answer and reset both sides.
        counters.commitCuts++;
        kill(conn);
        return;
      }
      conn.down.push(chunk);
    });
    const endBoth = (): void => {
      if (conn.done) return;
      conn.done = true;
      conns.delete(conn);
      client.end();
      upstream.end();
      setTimeout(() => {
        client.destroy();
        upstream.destroy();
      }, 1000).unref();
    };
    client.on("end", endBoth);
    upstream.on("end", endBoth);
    client.on("close", () => kill(conn));
    upstream.on("close", () => kill(conn));
  });

  const port = await listenLoopback(server, opts.port);

  let control: http.Server | undefined;
  let controlUrl: string | undefined;
  const setFault = (f: Partial<FaultProxyFault>): void => {
    fault = {
      down: f.down === true,
      delayMs: typeof f.delayMs === "number" && f.delayMs > 0 ? f.delayMs : 0,
      resetAfterCommit: typeof f.resetAfterCommit === "number" && f.resetAfterCommit > 0 ? Math.floor(f.resetAfterCommit) : 0,
    };
    if (fault.down) resetAll();
  };
  const stats = (): FaultProxyStats => ({ ...counters, current: conns.size });

  if (opts.controlToken) {
    const token = opts.controlToken;
    control = http.createServer((req, res) => {
      void (async () => {
        const path = new URL(req.url ?? "/", "http://proxy").pathname;
        const handled = await handleControl(req, res, path, {
          token,
          snapshot: () => ({ ...stats(), fault }),
          resetStats: () => {
            counters = zero();
          },
          applyFault: (raw) => {
            const f = isRecord(raw) ? raw : {};
            setFault(f as Partial<FaultProxyFault>);
            if (f.reset === true) resetAll();
          },
        });
        if (!handled) res.writeHead(404, { "content-type": "text/plain" }).end("fault-proxy: only /__control\n");
      })();
    });
    const cport = await listenLoopback(control, opts.controlPort ?? 0);
    controlUrl = `http://${LOOPBACK_HOST}:${cport}`;
  }

  return {
    port,
    address: `${LOOPBACK_HOST}:${port}`,
    controlUrl,
    async close() {
      resetAll();
      if (control) await closeHttpServer(control);
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
    setFault,
    fault: () => ({ ...fault }),
    resetAll,
    stats,
    resetStats: () => {
      counters = zero();
    },
  };
}

// ── CLI ──────────────────────────────────────────────────────────────────────────────────────────────────────
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const arg = (name: string): string | undefined => {
    const i = process.argv.indexOf(`--${name}`);
    return i >= 0 ? process.argv[i + 1] : undefined;
  };
  const targetArg = arg("target");
  if (!targetArg) {
    console.error("usage: tsx scripts/local/fault-proxy.ts --target 127.0.0.1:5433 [--port 0] [--control-port 0] [--token T]");
    process.exit(2);
  }
  startFaultProxy({
    port: Number(arg("port") ?? 0),
    target: targetArg,
    controlToken: arg("token") ?? "local-control-token",
    controlPort: Number(arg("control-port") ?? 0),
  }).then(
    (p) => {
      console.log(`fault-proxy on ${p.address} → ${targetArg}; control ${p.controlUrl}`);
      const stop = () => void p.close().then(() => process.exit(0));
      process.on("SIGINT", stop);
      process.on("SIGTERM", stop);
    },
    (err: Error) => {
      console.error(`✗ ${err.message}`);
      process.exit(1);
    },
  );
}
