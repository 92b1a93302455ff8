// A manual run while another run holds the job's lease. Serial: it holds the lease of a real job (the route runs
// only those), which other files' Cron and manual runs would otherwise find taken.
import { describe, expect, it } from "vitest";
import { sql } from "drizzle-orm";
import { api, newUser } from "./helpers";
import { withDb } from "./fixtures";

describe("manual job runs", () => {
  it("a manual run skipped because another run holds the lease is not audited as a run", async () => {
    const service = await newUser("svc", "admin");
    const name = "tickets.expire";
    // Another run holds the lease (started a moment ago, not finished).
    await withDb((db) =>
      db.execute(sql`INSERT INTO job_runs (job, started_at, finished_at, rows, details) VALUES (${name}, now(), NULL, 0, '{}'::jsonb)
        ON CONFLICT (job) DO UPDATE SET started_at = now(), finished_at = NULL`),
    );
    let res;
    try {
      res = await api("POST", `/operations/jobs/${name}/run`, { token: service.token });
    } finally {
      await withDb((db) => db.execute(sql`UPDATE job_runs SET finished_at = now() WHERE job = ${name} AND finished_at IS NULL`));
    }
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ job: name, status: "skipped" });
    const audit = await withDb((db) =>
      db.execute<{ details: Record<string, unknown> }>(
        sql`SELECT details FROM audit_log WHERE action = 'admin.job_run' AND actor_id = ${service.id}::uuid AND target_id = ${name}`,
      ),
    );
    expect(audit.rows).toHaveLength(1);
    expect(audit.rows[0].details).toMatchObject({ status: "skipped", skipped: true });
  });

  it("a run whose audit entry fails to write answers with its report (not a 500 that invites a second run), and the entry follows", { timeout: 30_000 }, async () => {
    const service = await newUser("svc", "admin");
    const fn = `refuse_job_audit_${service.id.replace(/-/g, "")}`;
    const entries = () =>
      withDb((db) => db.execute(sql`SELECT 1 FROM audit_log WHERE action = 'admin.job_run' AND actor_id = ${service.id}::uuid AND target_id = 'tickets.expire'`));
    // Postgres refuses this one entry (as it would refuse anything for a moment).
    await withDb(async (db) => {
      await db.execute(sql.raw(`CREATE FUNCTION ${fn}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
        IF NEW.actor_id = '${service.id}' THEN RAISE EXCEPTION 'audit write refused by the test'; END IF; RETURN NEW; END $$`));
      await db.execute(sql.raw(`CREATE TRIGGER ${fn} BEFORE INSERT ON audit_log FOR EACH ROW EXECUTE FUNCTION ${fn}()`));
    });
    let res;
    try {
      res = await api("POST", "/operations/jobs/tickets.expire/run", { token: service.token });
    } finally {
      await withDb(async (db) => {
        await db.execute(sql.raw(`DROP TRIGGER ${fn} ON audit_log`));
        await db.execute(sql.raw(`DROP FUNCTION ${fn}()`));
      });
    }
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ job: "tickets.expire", status: "ok" });
    for (let until = Date.now() + 15_000; (await entries()).rows.length === 0 && Date.now() < until; ) await new Promise((r) => setTimeout(r, 200));
    expect((await entries()).rows).toHaveLength(1);
  });
});
