import { describe, expect, it } from "vitest";
import { sql } from "drizzle-orm";
import { appendAudit, chained } from "../../src/db/queries/audit";
import { anchorRun, chainOf, verify } from "./audit-helpers";
import { tamperAudit, withDb } from "./fixtures";

describe("audit anchors kept outside Postgres", () => {
  // What the chain alone cannot see: without the anchor both verifications below said ok.
  it("catch the newest entries of a chain removed by whoever can switch the trigger off", async () => {
    const { conversationId, ids } = await chainOf(3);
    await anchorRun();
    expect(await verify(conversationId)).toMatchObject({ ok: true, rows: 3, anchoredChains: 1, anchorsUnavailable: false });

    await tamperAudit(sql`DELETE FROM audit_log WHERE id = ${ids[2]}`);
    expect(await verify(conversationId)).toMatchObject({
      ok: false,
      rows: 2,
      firstBroken: { conversationId, id: ids[2], reason: "anchored_entry_missing" },
    });

    // New entries after the removal do not move the anchor past it: the break stays visible.
    await withDb((db) => appendAudit(db, [{ conversationId, actorId: null, action: "test.after", details: {} }]));
    const run = await anchorRun();
    expect(run.status === "ok" && run.details.held).toBeGreaterThanOrEqual(1);
    expect((await verify(conversationId)).firstBroken).toEqual({ conversationId, id: ids[2], reason: "anchored_entry_missing" });
  });

  it("catch a chain rewritten from some entry on, consistent in itself", async () => {
    const { conversationId, ids } = await chainOf(3);
    await anchorRun();
    // The last two entries recomputed with other details: every link and hash of the rewritten chain holds.
    const rows = await withDb((db) => db.execute<{ hash: string }>(sql`SELECT hash FROM audit_log WHERE id = ${ids[0]}`));
    const second = await chained(rows.rows[0].hash, { conversationId, actorId: null, action: "test.entry1", details: { n: 100 } });
    const third = await chained(second.hash, { conversationId, actorId: null, action: "test.entry2", details: { n: 200 } });
    for (const [id, row] of [
      [ids[1], second],
      [ids[2], third],
    ] as const) {
      await tamperAudit(
        sql`UPDATE audit_log SET details = ${JSON.stringify(row.details)}::jsonb, created_at = ${row.createdAt.toISOString()}::timestamptz,
                   prev_hash = ${row.prevHash}, hash = ${row.hash} WHERE id = ${id}`,
      );
    }
    expect(await verify(conversationId)).toMatchObject({
      ok: false,
      rows: 3,
      broken: [{ conversationId, id: ids[2], reason: "anchored_entry_changed" }],
    });
  });

  it("catch a chain removed whole when that conversation is verified", async () => {
    const { conversationId } = await chainOf(2);
    await anchorRun();
    await tamperAudit(sql`DELETE FROM audit_log WHERE conversation_id = ${conversationId}::uuid`);
    expect(await verify(conversationId)).toMatchObject({ ok: false, rows: 0, firstBroken: { conversationId, reason: "anchored_entry_missing" } });
  });

  it("leave a chain with no anchor yet to its own checks", async () => {
    const { conversationId } = await chainOf(2);
    // No run of the job since (unless another file's Cron run made one): no false alarm either way.
    expect(await verify(conversationId)).toMatchObject({ ok: true, rows: 2, broken: [] });
  });
});
