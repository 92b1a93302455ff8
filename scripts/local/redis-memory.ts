// In-memory Redis subset behind the Upstash REST stand-in: enough of the command set for the app and its tests,
// with Redis's reply shapes and error texts. Expiry is lazy (checked on access), like a Redis with no active expiry.
import { OK, ReplyError, SimpleString, type Reply } from "./resp.js";

interface DataByType {
  string: string;
  hash: Map<string, string>;
  set: Set<string>;
  zset: Map<string, number>;
  list: string[];
}
type TypeName = keyof DataByType;
type DataOf<T extends TypeName> = DataByType[T];
type Value = { [K in TypeName]: { type: K; data: DataByType[K] } }[TypeName];

interface Entry {
  value: Value;
  /** Epoch ms, or null for no expiry. */
  expiresAt: number | null;
}

/** Thrown inside a handler and turned into an error reply for that one command. */
class CommandError extends Error {}

const WRONGTYPE = "WRONGTYPE Operation against a key holding the wrong kind of value";
const NOT_INT = "ERR value is not an integer or out of range";
const SYNTAX = "ERR syntax error";

function toInt(s: string): number {
  if (!/^[+-]?\d+$/.test(s)) throw new CommandError(NOT_INT);
  const n = Number(s);
  if (!Number.isSafeInteger(n)) throw new CommandError(NOT_INT);
  return n;
}

function toFloat(s: string): number {
  const lower = s.toLowerCase();
  if (lower === "inf" || lower === "+inf") return Infinity;
  if (lower === "-inf") return -Infinity;
  const n = Number(s);
  if (s.trim() === "" || Number.isNaN(n)) throw new CommandError("ERR value is not a valid float");
  return n;
}

function formatScore(n: number): string {
  if (n === Infinity) return "inf";
  if (n === -Infinity) return "-inf";
  return String(n);
}

/** Redis glob (*, ?, [abc], [^a], [a-z], backslash escapes) as an anchored RegExp. */
export function globToRegExp(pattern: string): RegExp {
  let re = "";
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === "*") re += "[\\s\\S]*";
    else if (c === "?") re += "[\\s\\S]";
    else if (c === "\\" && i + 1 < pattern.length) re += escapeRe(pattern[++i]!);
    else if (c === "[") {
      const close = pattern.indexOf("]", i + 2);
      if (close < 0) {
        re += "\\[";
        continue;
      }
      let body = pattern.slice(i + 1, close);
      const negate = body.startsWith("^");
      if (negate) body = body.slice(1);
      re += `[${negate ? "^" : ""}${body.replace(/[\]\\]/g, "\\$&")}]`;
      i = close;
    } else re += escapeRe(c);
  }
  return new RegExp(`^${re}$`);
}

function escapeRe(c: string): string {
  return c.replace(/[.*+?^${}()|[\]\\/-]/g, "\\$&");
}

/** Normalises Redis's inclusive, possibly negative start/stop indexes against a length. */
function indexRange(start: number, stop: number, len: number): [number, number] | null {
  let s = start < 0 ? len + start : start;
  let e = stop < 0 ? len + stop : stop;
  if (s < 0) s = 0;
  if (e >= len) e = len - 1;
  return s > e || s >= len ? null : [s, e];
}

interface ScoreBound {
  value: number;
  exclusive: boolean;
}

function parseBound(s: string): ScoreBound {
  const exclusive = s.startsWith("(");
  try {
    return { value: toFloat(exclusive ? s.slice(1) : s), exclusive };
  } catch {
    throw new CommandError("ERR min or max is not a float");
  }
}

function aboveMin(score: number, min: ScoreBound): boolean {
  return min.exclusive ? score > min.value : score >= min.value;
}

function belowMax(score: number, max: ScoreBound): boolean {
  return max.exclusive ? score < max.value : score <= max.value;
}

type Handler = (args: string[]) => Reply;

interface CommandSpec {
  /** Arguments after the command name. */
  min: number;
  max: number;
  fn: Handler;
}

export class MemoryRedis {
  private readonly entries = new Map<string, Entry>();
  private readonly commands: Record<string, CommandSpec>;

  constructor(private readonly now: () => number = Date.now) {
    this.commands = this.buildCommands();
  }

  /** Runs one command; errors come back as ReplyError values, never as exceptions. */
  exec(command: readonly string[]): Reply {
    const check = this.validate(command);
    if (check) return check;
    const spec = this.commands[command[0]!.toLowerCase()]!;
    try {
      return spec.fn(command.slice(1));
    } catch (err) {
      if (err instanceof CommandError) return new ReplyError(err.message);
      throw err;
    }
  }

  /** Like MULTI/EXEC: unknown commands and arity errors abort the whole batch before anything runs. */
  execAtomic(commands: readonly (readonly string[])[]): Reply[] | ReplyError {
    if (commands.some((c) => this.validate(c) !== null)) {
      return new ReplyError("EXECABORT Transaction discarded because of previous errors.");
    }
    return commands.map((c) => this.exec(c));
  }

  private validate(command: readonly string[]): ReplyError | null {
    const name = command[0] ?? "";
    const spec = this.commands[name.toLowerCase()];
    if (!spec) return new ReplyError(`ERR unknown command '${name}'`);
    const n = command.length - 1;
    if (n < spec.min || n > spec.max) {
      return new ReplyError(`ERR wrong number of arguments for '${name.toLowerCase()}' command`);
    }
    return null;
  }

  // ---- keyspace primitives -------------------------------------------------------------------------------

  private live(key: string): Entry | undefined {
    const e = this.entries.get(key);
    if (e && e.expiresAt !== null && e.expiresAt <= this.now()) {
      this.entries.delete(key);
      return undefined;
    }
    return e;
  }

  private read<T extends TypeName>(key: string, type: T): DataOf<T> | undefined {
    const e = this.live(key);
    if (!e) return undefined;
    if (e.value.type !== type) throw new CommandError(WRONGTYPE);
    return e.value.data as DataOf<T>;
  }

  private readOrCreate<T extends TypeName>(key: string, type: T, make: () => DataOf<T>): DataOf<T> {
    const existing = this.read(key, type);
    if (existing !== undefined) return existing;
    const data = make();
    this.entries.set(key, { value: { type, data } as Value, expiresAt: null });
    return data;
  }

  /** Collections never exist empty in Redis. */
  private dropIfEmpty(key: string, size: number): void {
    if (size === 0) this.entries.delete(key);
  }

  private setString(key: string, value: string, expiresAt: number | null): void {
    this.entries.set(key, { value: { type: "string", data: value }, expiresAt });
  }

  private liveKeys(): string[] {
    const keys: string[] = [];
    for (const key of [...this.entries.keys()]) if (this.live(key)) keys.push(key);
    return keys;
  }

  private setExpiry(key: string, at: number, flag: string | undefined): number {
    const e = this.live(key);
    if (!e) return 0;
    const current = e.expiresAt ?? Infinity;
    switch (flag?.toUpperCase()) {
      case undefined:
        break;
      case "NX":
        if (e.expiresAt !== null) return 0;
        break;
      case "XX":
        if (e.expiresAt === null) return 0;
        break;
      case "GT":
        if (!(at > current)) return 0;
        break;
      case "LT":
        if (!(at < current)) return 0;
        break;
      default:
        throw new CommandError(`ERR Unsupported option ${flag}`);
    }
    if (at <= this.now()) this.entries.delete(key);
    else e.expiresAt = at;
    return 1;
  }

  private ttl(key: string, unitMs: number): number {
    const e = this.live(key);
    if (!e) return -2;
    if (e.expiresAt === null) return -1;
    return Math.round((e.expiresAt - this.now()) / unitMs);
  }

  private incrBy(key: string, delta: number): number {
    const current = this.read(key, "string");
    const base = current === undefined ? 0 : toInt(current);
    const next = base + delta;
    if (!Number.isSafeInteger(next)) throw new CommandError("ERR increment or decrement would overflow");
    const expiresAt = this.live(key)?.expiresAt ?? null;
    this.setString(key, String(next), expiresAt);
    return next;
  }

  private sortedZ(key: string): [string, number][] {
    const z = this.read(key, "zset");
    if (!z) return [];
    return [...z.entries()].sort((a, b) => a[1] - b[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  }

  private flattenZ(items: [string, number][], withScores: boolean): string[] {
    return withScores ? items.flatMap(([m, s]) => [m, formatScore(s)]) : items.map(([m]) => m);
  }

  // ---- commands --------------------------------------------------------------------------------------------

  private buildCommands(): Record<string, CommandSpec> {
    const c = (min: number, max: number, fn: Handler): CommandSpec => ({ min, max, fn });
    const ANY = Infinity;
    const notSupported = (name: string): CommandSpec =>
      c(0, ANY, () => new ReplyError(`ERR ${name} is not supported by the local in-memory Redis (set REDIS_URL to use a real redis-server)`));

    return {
      ping: c(0, 1, (a) => (a.length ? a[0]! : new SimpleString("PONG"))),
      echo: c(1, 1, (a) => a[0]!),

      get: c(1, 1, ([k]) => this.read(k!, "string") ?? null),
      set: c(2, ANY, (a) => this.set(a)),
      setex: c(3, 3, ([k, s, v]) => this.set([k!, v!, "EX", s!])),
      psetex: c(3, 3, ([k, ms, v]) => this.set([k!, v!, "PX", ms!])),
      setnx: c(2, 2, ([k, v]) => (this.set([k!, v!, "NX"]) === null ? 0 : 1)),
      getdel: c(1, 1, ([k]) => {
        const v = this.read(k!, "string");
        if (v === undefined) return null;
        this.entries.delete(k!);
        return v;
      }),
      mget: c(1, ANY, (keys) =>
        keys.map((k) => {
          const e = this.live(k);
          return e?.value.type === "string" ? e.value.data : null;
        }),
      ),
      mset: c(2, ANY, (a) => {
        if (a.length % 2 !== 0) throw new CommandError("ERR wrong number of arguments for 'mset' command");
        for (let i = 0; i < a.length; i += 2) this.setString(a[i]!, a[i + 1]!, null);
        return OK;
      }),
      incr: c(1, 1, ([k]) => this.incrBy(k!, 1)),
      decr: c(1, 1, ([k]) => this.incrBy(k!, -1)),
      incrby: c(2, 2, ([k, d]) => this.incrBy(k!, toInt(d!))),
      decrby: c(2, 2, ([k, d]) => this.incrBy(k!, -toInt(d!))),

      del: c(1, ANY, (keys) => keys.filter((k) => this.live(k) && this.entries.delete(k)).length),
      unlink: c(1, ANY, (keys) => keys.filter((k) => this.live(k) && this.entries.delete(k)).length),
      exists: c(1, ANY, (keys) => keys.filter((k) => this.live(k)).length),
      type: c(1, 1, ([k]) => new SimpleString(this.live(k!)?.value.type ?? "none")),
      expire: c(2, 3, ([k, s, f]) => this.setExpiry(k!, this.now() + toInt(s!) * 1000, f)),
      pexpire: c(2, 3, ([k, ms, f]) => this.setExpiry(k!, this.now() + toInt(ms!), f)),
      expireat: c(2, 3, ([k, s, f]) => this.setExpiry(k!, toInt(s!) * 1000, f)),
      pexpireat: c(2, 3, ([k, ms, f]) => this.setExpiry(k!, toInt(ms!), f)),
      ttl: c(1, 1, ([k]) => this.ttl(k!, 1000)),
      pttl: c(1, 1, ([k]) => this.ttl(k!, 1)),
      persist: c(1, 1, ([k]) => {
        const e = this.live(k!);
        if (!e || e.expiresAt === null) return 0;
        e.expiresAt = null;
        return 1;
      }),

      hset: c(3, ANY, ([k, ...fv]) => {
        if (fv.length % 2 !== 0) throw new CommandError("ERR wrong number of arguments for 'hset' command");
        const h = this.readOrCreate(k!, "hash", () => new Map());
        let added = 0;
        for (let i = 0; i < fv.length; i += 2) {
          if (!h.has(fv[i]!)) added++;
          h.set(fv[i]!, fv[i + 1]!);
        }
        return added;
      }),
      hget: c(2, 2, ([k, f]) => this.read(k!, "hash")?.get(f!) ?? null),
      hmget: c(2, ANY, ([k, ...fs]) => {
        const h = this.read(k!, "hash");
        return fs.map((f) => h?.get(f) ?? null);
      }),
      hgetall: c(1, 1, ([k]) => [...(this.read(k!, "hash") ?? new Map<string, string>())].flat()),
      hdel: c(2, ANY, ([k, ...fs]) => {
        const h = this.read(k!, "hash");
        if (!h) return 0;
        const removed = fs.filter((f) => h.delete(f)).length;
        this.dropIfEmpty(k!, h.size);
        return removed;
      }),
      hexists: c(2, 2, ([k, f]) => (this.read(k!, "hash")?.has(f!) ? 1 : 0)),
      hlen: c(1, 1, ([k]) => this.read(k!, "hash")?.size ?? 0),
      hkeys: c(1, 1, ([k]) => [...(this.read(k!, "hash")?.keys() ?? [])]),
      hvals: c(1, 1, ([k]) => [...(this.read(k!, "hash")?.values() ?? [])]),
      hincrby: c(3, 3, ([k, f, d]) => {
        const h = this.readOrCreate(k!, "hash", () => new Map());
        const current = h.get(f!);
        let base: number;
        try {
          base = current === undefined ? 0 : toInt(current);
        } catch {
          throw new CommandError("ERR hash value is not an integer");
        }
        const next = base + toInt(d!);
        h.set(f!, String(next));
        return next;
      }),

      sadd: c(2, ANY, ([k, ...ms]) => {
        const s = this.readOrCreate(k!, "set", () => new Set());
        let added = 0;
        for (const m of ms) if (!s.has(m) && s.add(m)) added++;
        return added;
      }),
      srem: c(2, ANY, ([k, ...ms]) => {
        const s = this.read(k!, "set");
        if (!s) return 0;
        const removed = ms.filter((m) => s.delete(m)).length;
        this.dropIfEmpty(k!, s.size);
        return removed;
      }),
      smembers: c(1, 1, ([k]) => [...(this.read(k!, "set") ?? [])]),
      sismember: c(2, 2, ([k, m]) => (this.read(k!, "set")?.has(m!) ? 1 : 0)),
      scard: c(1, 1, ([k]) => this.read(k!, "set")?.size ?? 0),

      zadd: c(3, ANY, (a) => this.zadd(a)),
      zincrby: c(3, 3, ([k, d, m]) => {
        const z = this.readOrCreate(k!, "zset", () => new Map());
        const next = (z.get(m!) ?? 0) + toFloat(d!);
        if (Number.isNaN(next)) throw new CommandError("ERR resulting score is not a number (NaN)");
        z.set(m!, next);
        return formatScore(next);
      }),
      zrem: c(2, ANY, ([k, ...ms]) => {
        const z = this.read(k!, "zset");
        if (!z) return 0;
        const removed = ms.filter((m) => z.delete(m)).length;
        this.dropIfEmpty(k!, z.size);
        return removed;
      }),
      zscore: c(2, 2, ([k, m]) => {
        const s = this.read(k!, "zset")?.get(m!);
        return s === undefined ? null : formatScore(s);
      }),
      zcard: c(1, 1, ([k]) => this.read(k!, "zset")?.size ?? 0),
      zcount: c(3, 3, ([k, min, max]) => {
        const lo = parseBound(min!);
        const hi = parseBound(max!);
        return this.sortedZ(k!).filter(([, s]) => aboveMin(s, lo) && belowMax(s, hi)).length;
      }),
      zrange: c(3, ANY, (a) => this.zrange(a)),
      zrevrange: c(3, 4, ([k, start, stop, ws]) => {
        if (ws !== undefined && ws.toUpperCase() !== "WITHSCORES") throw new CommandError(SYNTAX);
        return this.zrange([k!, start!, stop!, "REV", ...(ws ? ["WITHSCORES"] : [])]);
      }),
      zrangebyscore: c(3, ANY, ([k, min, max, ...rest]) => this.zrange([k!, min!, max!, "BYSCORE", ...rest])),
      zremrangebyscore: c(3, 3, ([k, min, max]) => {
        const z = this.read(k!, "zset");
        if (!z) return 0;
        const lo = parseBound(min!);
        const hi = parseBound(max!);
        let removed = 0;
        for (const [m, s] of [...z]) if (aboveMin(s, lo) && belowMax(s, hi) && z.delete(m)) removed++;
        this.dropIfEmpty(k!, z.size);
        return removed;
      }),

      lpush: c(2, ANY, ([k, ...vs]) => {
        const l = this.readOrCreate(k!, "list", () => []);
        for (const v of vs) l.unshift(v);
        return l.length;
      }),
      rpush: c(2, ANY, ([k, ...vs]) => this.readOrCreate(k!, "list", () => []).push(...vs)),
      lpop: c(1, 2, ([k, n]) => this.pop(k!, n, "left")),
      rpop: c(1, 2, ([k, n]) => this.pop(k!, n, "right")),
      llen: c(1, 1, ([k]) => this.read(k!, "list")?.length ?? 0),
      lrange: c(3, 3, ([k, start, stop]) => {
        const l = this.read(k!, "list") ?? [];
        const r = indexRange(toInt(start!), toInt(stop!), l.length);
        return r ? l.slice(r[0], r[1] + 1) : [];
      }),
      ltrim: c(3, 3, ([k, start, stop]) => {
        const l = this.read(k!, "list");
        if (!l) return OK;
        const r = indexRange(toInt(start!), toInt(stop!), l.length);
        const kept = r ? l.slice(r[0], r[1] + 1) : [];
        l.splice(0, l.length, ...kept);
        this.dropIfEmpty(k!, l.length);
        return OK;
      }),

      keys: c(1, 1, ([p]) => {
        const re = globToRegExp(p!);
        return this.liveKeys().filter((k) => re.test(k));
      }),
      scan: c(1, ANY, (a) => this.scan(a)),
      dbsize: c(0, 0, () => this.liveKeys().length),
      flushall: c(0, 1, () => {
        this.entries.clear();
        return OK;
      }),
      flushdb: c(0, 1, () => {
        this.entries.clear();
        return OK;
      }),
      info: c(0, ANY, () => {
        const keys = this.liveKeys();
        const expires = keys.filter((k) => this.entries.get(k)?.expiresAt !== null).length;
        return [
          "# Server",
          "redis_version:7.2.0",
          "redis_mode:standalone",
          "local_backend:memory",
          "",
          "# Keyspace",
          `db0:keys=${keys.length},expires=${expires},avg_ttl=0`,
          "",
        ].join("\r\n");
      }),

      eval: notSupported("EVAL"),
      evalsha: notSupported("EVALSHA"),
      eval_ro: notSupported("EVAL_RO"),
      evalsha_ro: notSupported("EVALSHA_RO"),
      script: notSupported("SCRIPT"),
    };
  }

  private set(a: string[]): Reply {
    const [key, value, ...opts] = a as [string, string, ...string[]];
    let expiresAt: number | null = null;
    let keepTtl = false;
    let nx = false;
    let xx = false;
    let get = false;
    for (let i = 0; i < opts.length; i++) {
      const o = opts[i]!.toUpperCase();
      const arg = (): number => {
        const v = opts[++i];
        if (v === undefined) throw new CommandError(SYNTAX);
        const n = toInt(v);
        if (n <= 0) throw new CommandError("ERR invalid expire time in 'set' command");
        return n;
      };
      if (o === "NX") nx = true;
      else if (o === "XX") xx = true;
      else if (o === "GET") get = true;
      else if (o === "KEEPTTL") keepTtl = true;
      else if (o === "EX") expiresAt = this.now() + arg() * 1000;
      else if (o === "PX") expiresAt = this.now() + arg();
      else if (o === "EXAT") expiresAt = arg() * 1000;
      else if (o === "PXAT") expiresAt = arg();
      else throw new CommandError(SYNTAX);
    }
    if (nx && xx) throw new CommandError(SYNTAX);
    const existing = this.live(key);
    if (get && existing && existing.value.type !== "string") throw new CommandError(WRONGTYPE);
    const old = existing?.value.type === "string" ? existing.value.data : null;
    if ((nx && existing) || (xx && !existing)) return get ? old : null;
    if (keepTtl && existing) expiresAt = existing.expiresAt;
    this.setString(key, value, expiresAt);
    return get ? old : OK;
  }

  private zadd(a: string[]): Reply {
    const [key, ...rest] = a as [string, ...string[]];
    const flags = new Set<string>();
    let i = 0;
    while (i < rest.length && ["NX", "XX", "GT", "LT", "CH", "INCR"].includes(rest[i]!.toUpperCase())) {
      flags.add(rest[i++]!.toUpperCase());
    }
    const pairs = rest.slice(i);
    if (pairs.length === 0 || pairs.length % 2 !== 0) throw new CommandError(SYNTAX);
    if (flags.has("NX") && (flags.has("XX") || flags.has("GT") || flags.has("LT"))) {
      throw new CommandError("ERR XX and NX options at the same time are not compatible");
    }
    if (flags.has("INCR") && pairs.length !== 2) {
      throw new CommandError("ERR INCR option supports a single increment-element pair");
    }
    const scores = pairs.filter((_, j) => j % 2 === 0).map(toFloat);
    const z = this.readOrCreate(key, "zset", () => new Map());
    let changed = 0;
    let added = 0;
    let incrResult: number | null = null;
    for (let j = 0; j < scores.length; j++) {
      const member = pairs[j * 2 + 1]!;
      const old = z.get(member);
      let score = scores[j]!;
      if (flags.has("INCR")) score += old ?? 0;
      if (old === undefined ? flags.has("XX") : flags.has("NX")) continue;
      if (old !== undefined && ((flags.has("GT") && !(score > old)) || (flags.has("LT") && !(score < old)))) continue;
      z.set(member, score);
      incrResult = score;
      if (old === undefined) added++;
      else if (old !== score) changed++;
    }
    this.dropIfEmpty(key, z.size);
    if (flags.has("INCR")) return incrResult === null ? null : formatScore(incrResult);
    return flags.has("CH") ? added + changed : added;
  }

  private zrange(a: string[]): Reply {
    const [key, startArg, stopArg, ...opts] = a as [string, string, string, ...string[]];
    let byScore = false;
    let rev = false;
    let withScores = false;
    let limit: [number, number] | null = null;
    for (let i = 0; i < opts.length; i++) {
      const o = opts[i]!.toUpperCase();
      if (o === "BYSCORE") byScore = true;
      else if (o === "REV") rev = true;
      else if (o === "WITHSCORES") withScores = true;
      else if (o === "LIMIT" && i + 2 < opts.length) limit = [toInt(opts[++i]!), toInt(opts[++i]!)];
      else throw new CommandError(o === "BYLEX" ? "ERR BYLEX is not supported by the local in-memory Redis" : SYNTAX);
    }
    if (limit && !byScore) {
      throw new CommandError("ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX");
    }
    const sorted = this.sortedZ(key);
    let items: [string, number][];
    if (byScore) {
      // With REV the caller passes max first, as in Redis.
      const lo = parseBound(rev ? stopArg : startArg);
      const hi = parseBound(rev ? startArg : stopArg);
      items = sorted.filter(([, s]) => aboveMin(s, lo) && belowMax(s, hi));
      if (rev) items.reverse();
      if (limit) items = limit[1] < 0 ? items.slice(limit[0]) : items.slice(limit[0], limit[0] + limit[1]);
    } else {
      const ordered = rev ? sorted.reverse() : sorted;
      const r = indexRange(toInt(startArg), toInt(stopArg), ordered.length);
      items = r ? ordered.slice(r[0], r[1] + 1) : [];
    }
    return this.flattenZ(items, withScores);
  }

  private pop(key: string, countArg: string | undefined, side: "left" | "right"): Reply {
    const l = this.read(key, "list");
    const count = countArg === undefined ? null : toInt(countArg);
    if (!l) return null;
    const n = Math.min(count ?? 1, l.length);
    const taken = side === "left" ? l.splice(0, n) : l.splice(l.length - n, n).reverse();
    this.dropIfEmpty(key, l.length);
    return count === null ? (taken[0] ?? null) : taken;
  }

  /** The cursor is an offset into the key list: good enough for a store that is not rehashing underneath. */
  private scan(a: string[]): Reply {
    const cursor = toInt(a[0]!);
    let match: RegExp | null = null;
    let count = 10;
    let type: string | null = null;
    let withType = false;
    for (let i = 1; i < a.length; i++) {
      const o = a[i]!.toUpperCase();
      if (o === "MATCH" && i + 1 < a.length) match = globToRegExp(a[++i]!);
      else if (o === "COUNT" && i + 1 < a.length) count = Math.max(1, toInt(a[++i]!));
      else if (o === "TYPE" && i + 1 < a.length) type = a[++i]!.toLowerCase();
      else if (o === "WITHTYPE") withType = true;
      else throw new CommandError(SYNTAX);
    }
    const keys = this.liveKeys();
    const page = keys.slice(cursor, cursor + count);
    const next = cursor + count >= keys.length ? 0 : cursor + count;
    const found = page.filter(
      (k) => (!match || match.test(k)) && (!type || this.entries.get(k)?.value.type === type),
    );
    const out = withType ? found.flatMap((k) => [k, this.entries.get(k)!.value.type]) : found;
    return [String(next), out];
  }
}
