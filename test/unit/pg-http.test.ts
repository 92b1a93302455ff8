// The bridge's HTTP query endpoint (scripts/local/pg-http.ts), driven by the Neon driver's own `neon()` function,
// as the Worker sends its one-statement requests.
import { neon, neonConfig, type NeonQueryFunction } from "@neondatabase/serverless";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startEmbeddedPostgres, type EmbeddedPostgresHandle } from "../../scripts/local/pg-server.js";
import { startPgBridge, type PgBridgeHandle } from "../../scripts/local/pg-bridge.js";
import { startFaultProxy } from "../../scripts/local/fault-proxy.js";

describe("Neon's HTTP query endpoint on the pg bridge", () => {
  let pg: EmbeddedPostgresHandle;
  let bridge: PgBridgeHandle;
  let sql: NeonQueryFunction<false, false>;

  beforeAll(async () => {
    [pg, bridge] = await Promise.all([startEmbeddedPostgres({ dataDir: "memory://", port: 0 }), startPgBridge({ port: 0 })]);
    neonConfig.fetchEndpoint = () => `http://127.0.0.1:${bridge.port}/sql`;
    sql = neon(pg.url);
    await sql`create table if not exists t_http (id int primary key, body text not null, at timestamptz, doc jsonb)`;
  }, 30_000);
  afterAll(async () => {
    await bridge?.close();
    await pg?.close();
  });

  it("answers with values the driver parses by type, parameters included", async () => {
    const at = new Date("2026-11-27T10:11:12.345Z");
    await sql`insert into t_http (id, body, at, doc) values (${1}, ${"héllo"}, ${at}, ${JSON.stringify({ a: [1, 2] })})`;
    const rows = await sql`select id, body, at, doc, null::text as nothing, 9007199254740993::int8 as big, true as yes,
      array[1,2,3] as list, '\\x0102'::bytea as bytes from t_http where id = ${1}`;
    expect(rows).toEqual([
      { id: 1, body: "héllo", at, doc: { a: [1, 2] }, nothing: null, big: "9007199254740993", yes: true, list: [1, 2, 3], bytes: Buffer.from([1, 2]) },
    ]);
    const full = await sql.query("update t_http set body = $1 where id = $2", ["again", 1], { fullResults: true });
    expect({ command: full.command, rowCount: full.rowCount }).toEqual({ command: "UPDATE", rowCount: 1 });
  });

  it("turns a Postgres error into the driver's error with its code, and the endpoint stays usable", async () => {
    await sql`insert into t_http (id, body) values (${2}, ${"two"})`;
    await expect(sql`insert into t_http (id, body) values (${2}, ${"dup"})`).rejects.toMatchObject({ code: "23505", constraint: "t_http_pkey" });
    await expect(sql`selec 1`).rejects.toMatchObject({ code: "42601" });
    expect(await sql`select body from t_http where id = ${2}`).toEqual([{ body: "two" }]);
  });

  it("runs a batch as one transaction: all of it or none", async () => {
    const results = await sql.transaction([sql`insert into t_http (id, body) values (${3}, ${"three"})`, sql`select count(*)::int as n from t_http where id = ${3}`]);
    expect(results[1]).toEqual([{ n: 1 }]);
    await expect(
      sql.transaction([sql`insert into t_http (id, body) values (${4}, ${"four"})`, sql`insert into t_http (id, body) values (${3}, ${"again"})`]),
    ).rejects.toMatchObject({ code: "23505" });
    expect(await sql`select id from t_http where id in (${3}, ${4}) order by id`).toEqual([{ id: 3 }]);
    const readOnly = neon(pg.url, { readOnly: true });
    await expect(readOnly.transaction([readOnly`insert into t_http (id, body) values (${5}, ${"five"})`])).rejects.toMatchObject({ code: "25006" });
  });

  it("counts each query as a round trip, delays it both ways, and refuses while down", async () => {
    const before = bridge.stats();
    await sql`select 1`;
    const after = bridge.stats();
    expect({ http: after.httpQueries - before.httpQueries, exchanges: after.exchanges - before.exchanges, opened: after.opened - before.opened }).toEqual({
      http: 1,
      exchanges: 1,
      opened: 0,
    });
    expect(after.recent.at(-1)).toEqual({ connection: 0, text: "select 1" });

    bridge.setDelay(40);
    const t0 = Date.now();
    await sql`select 1`;
    expect(Date.now() - t0).toBeGreaterThanOrEqual(75);
    bridge.setDelay(0);

    bridge.setDown(true);
    await expect(sql`select 1`).rejects.toThrow(/503/);
    bridge.setDown(false);
    expect(await sql`select 2 as two`).toEqual([{ two: 2 }]);
  });

  it("survives its Postgres connection being reset in the middle of a query: that query fails, the next one works", async () => {
    // Before the fix the run failed on an uncaught ECONNRESET: pg emitted the socket's error on the checked-out
    // client, where nobody listened (CI's fault suite hit it in its reset-after-COMMIT test).
    const proxy = await startFaultProxy({ port: 0, target: `127.0.0.1:${pg.port}` });
    const behind = await startPgBridge({ port: 0, target: proxy.address });
    try {
      neonConfig.fetchEndpoint = () => `http://127.0.0.1:${behind.port}/sql`;
      await sql`select 1`; // the bridge's pool holds a connection through the proxy now
      // The embedded server runs in this process: a slow query would block the reset. The proxy holds it instead.
      proxy.setFault({ delayMs: 400 });
      const started = Date.now();
      // The driver's query promise is lazy: `then` sends it.
      const slow = sql`select 2`.then((rows) => rows);
      await new Promise((r) => setTimeout(r, 100));
      proxy.resetAll();
      proxy.setFault({ delayMs: 0 });
      await expect(slow).rejects.toThrow(/503.*ECONNRESET/);
      expect(Date.now() - started).toBeLessThan(5000);
      expect(await sql`select 4 as four`).toEqual([{ four: 4 }]);
    } finally {
      neonConfig.fetchEndpoint = () => `http://127.0.0.1:${bridge.port}/sql`;
      await behind.close();
      await proxy.close();
    }
  });

  it("only reaches loopback targets, and fails cleanly when nothing listens there", async () => {
    const res = await fetch(`http://127.0.0.1:${bridge.port}/sql`, {
      method: "POST",
      headers: { "Neon-Connection-String": "postgres://u:p@db.example.com:5432/x", "Neon-Raw-Text-Output": "true", "Neon-Array-Mode": "true" },
      body: JSON.stringify({ query: "select 1", params: [] }),
    });
    expect({ status: res.status, text: await res.text() }).toMatchObject({ status: 403, text: expect.stringMatching(/not a loopback/) });
    await expect(neon("postgres://postgres:postgres@127.0.0.1:1/postgres")`select 1`).rejects.toThrow(/503.*unreachable/);
    const bad = await fetch(`http://127.0.0.1:${bridge.port}/sql`, { method: "POST", body: "{" });
    expect(bad.status).toBe(400);
  });
});
