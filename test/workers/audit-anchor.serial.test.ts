import { describe, expect, it } from "vitest";
import { sql } from "drizzle-orm";
import { chained } from "../../src/db/queries/audit";
import { auditLog } from "../../src/db/schema";
import { ANCHORS_KEY } from "../../src/jobs/audit-anchor-store";
import { createRedis } from "../../src/lib/redis";
import { anchorRun, chainOf, config, verify } from "./audit-helpers";
import { withDb } from "./fixtures";

/**
 * Wipes every anchor in the shared Redis: in the serial pass, where no other file runs beside it (run with the others,
 * it took away the anchor a test of the verify script had just written, test/unit/operations.test.ts).
 */
describe("audit anchors kept outside Postgres", () => {
  it("anchor every chain again after Redis lost the anchors (a flush, a new Redis, `npm run dev` restarted)", async () => {
    const { conversationId } = await chainOf(2);
    await anchorRun();
    expect(await verify(conversationId)).toMatchObject({ ok: true, anchoredChains: 1 });
    // Every anchor gone at once, as a Redis that lost its data has them (other files' chains only lose their anchors
    // until the next run: no test elsewhere counts them).
    await createRedis(config).del(ANCHORS_KEY);
    expect(await verify(conversationId)).toMatchObject({ ok: true, anchoredChains: 0 });
    // The chain has no new entries: only a run that starts over from the oldest entry anchors it again.
    await anchorRun();
    expect(await verify(conversationId)).toMatchObject({ ok: true, anchoredChains: 1 });
  });

  // The embedded Postgres runs one transaction at a time, so the entry's id is taken first and the entry written
  // later, standing in for a transaction still open across the first run. Serial: another file's run in between
  // would find no open transaction and rightly move the position past that id.
  it("anchor an entry whose transaction committed after a run had read past its id", async () => {
    const late = await withDb((db) => db.execute<{ id: string }>(sql`SELECT nextval(pg_get_serial_sequence('audit_log', 'id')) AS id`));
    // Meanwhile another chain's entry, with a newer id, commits, and a run reads past both ids.
    await chainOf(1);
    await anchorRun();
    // Then the first entry commits; its chain gets no newer entry.
    const conversationId = crypto.randomUUID();
    const row = await chained(null, { conversationId, actorId: null, action: "test.late", details: {} });
    await withDb((db) => db.insert(auditLog).values({ ...row, id: Number(late.rows[0].id) }));
    await anchorRun();
    expect(await verify(conversationId)).toMatchObject({ ok: true, rows: 1, anchoredChains: 1 });
  });
});
