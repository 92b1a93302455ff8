import { afterAll, beforeAll, describe, expect, it } from "vitest";
import pg from "pg";
import { CommitSpotter, startFaultProxy, type FaultProxyHandle } from "../../scripts/local/fault-proxy";

/** The fault proxy itself, against the stack's Postgres with a plain `pg` client (no Worker involved). */
const target = (() => {
  const raw = process.env.STACK_WORKER_VARS;
  if (!raw) throw new Error("Run with `npm run test:faults` (it starts the stack).");
  const url = new URL((JSON.parse(raw) as { DATABASE_URL: string }).DATABASE_URL);
  return { url, address: `${url.hostname}:${url.port || 5432}` };
})();

let proxy: FaultProxyHandle;
const table = `fault_proxy_probe_${process.pid}`;

async function client(port: number): Promise<pg.Client> {
  const c = new pg.Client({
    host: "127.0.0.1",
    port,
    user: decodeURIComponent(target.url.username) || "postgres",
    password: decodeURIComponent(target.url.password) || undefined,
    database: target.url.pathname.slice(1) || "postgres",
  });
  c.on("error", () => {});
  await c.connect();
  return c;
}

beforeAll(async () => {
  proxy = await startFaultProxy({ port: 0, target: target.address });
  const c = await client(Number(target.url.port || 5432));
  await c.query(`CREATE TABLE IF NOT EXISTS ${table} (id int PRIMARY KEY)`);
  await c.end();
});

afterAll(async () => {
  await proxy?.close();
  const c = await client(Number(target.url.port || 5432));
  await c.query(`DROP TABLE IF EXISTS ${table}`);
  await c.end();
});

async function rows(): Promise<number[]> {
  const c = await client(Number(target.url.port || 5432));
  try {
    return (await c.query<{ id: number }>(`SELECT id FROM ${table} ORDER BY id`)).rows.map((r) => r.id);
  } finally {
    await c.end();
  }
}

describe("fault proxy", () => {
  it("spots commit points across chunk boundaries, in simple and extended protocol", () => {
    const spot = new CommitSpotter();
    const startup = Buffer.alloc(8);
    startup.writeInt32BE(8, 0);
    startup.writeInt32BE(196608, 4);
    const q = (text: string) => {
      const body = Buffer.from(`${text}\0`);
      const head = Buffer.alloc(5);
      head[0] = 0x51;
      head.writeInt32BE(body.length + 4, 1);
      return Buffer.concat([head, body]);
    };
    const parse = (text: string) => {
      const body = Buffer.concat([Buffer.from(`\0${text}\0`), Buffer.alloc(2)]);
      const head = Buffer.alloc(5);
      head[0] = 0x50;
      head.writeInt32BE(body.length + 4, 1);
      return Buffer.concat([head, body]);
    };
    const stream = Buffer.concat([
      startup,
      q("BEGIN"),
      q("insert into t values (1)"),
      q("commit"),
      parse("COMMIT;"),
      q("SELECT 'commit'"),
      // A write outside BEGIN … COMMIT commits by itself (the room's one-statement flush); inside one it does not.
      parse("WITH written AS (INSERT INTO t VALUES (2) RETURNING 1) SELECT count(*) FROM written"),
      q("begin"),
      q("update t set x = 1"),
      q("rollback"),
    ]);
    let total = 0;
    for (let i = 0; i < stream.length; i += 3) total += spot.feed(stream.subarray(i, i + 3));
    expect(total).toBe(3);
  });

  it("reset after COMMIT: the client sees an error, the row is committed", async () => {
    proxy.setFault({ resetAfterCommit: 1 });
    const c = await client(proxy.port);
    await c.query("BEGIN");
    await c.query(`INSERT INTO ${table} (id) VALUES (1)`);
    await expect(c.query("COMMIT")).rejects.toThrow();
    await c.end().catch(() => {});
    expect(await rows()).toContain(1);
    expect(proxy.stats().commitCuts).toBe(1);
    // Extended protocol (Parse/Bind/Execute) is caught as well.
    proxy.setFault({ resetAfterCommit: 1 });
    const d = await client(proxy.port);
    await d.query("BEGIN");
    await d.query({ text: `INSERT INTO ${table} (id) VALUES ($1)`, values: [2] });
    await expect(d.query({ text: "COMMIT", queryMode: "extended" } as pg.QueryConfig)).rejects.toThrow();
    await d.end().catch(() => {});
    expect(await rows()).toEqual([1, 2]);
    expect(proxy.fault().resetAfterCommit).toBe(0);
  });

  it("down refuses and cuts, delay delays, and a cleared fault passes traffic again", async () => {
    const c = await client(proxy.port);
    proxy.setFault({ down: true });
    await expect(c.query("SELECT 1")).rejects.toThrow();
    await expect(client(proxy.port)).rejects.toThrow();
    proxy.setFault({ delayMs: 300 });
    const d = await client(proxy.port);
    const started = Date.now();
    await d.query("SELECT 1");
    expect(Date.now() - started).toBeGreaterThanOrEqual(550); // 300 ms each way
    proxy.setFault({});
    const t = Date.now();
    await d.query("SELECT 1");
    expect(Date.now() - t).toBeLessThan(300);
    await d.end();
  });
});
