import { describe, expect, it } from "vitest";
import { sql } from "drizzle-orm";
import { verifyAuditChains } from "../../src/jobs/audit-verify";
import { api, newUser } from "./helpers";
import { withDb } from "./fixtures";

describe("membership changes are audited", () => {
  it("records adds, role changes, removals and promotions in the conversation's verified chain", async () => {
    const [admin, a, b, c] = await Promise.all([newUser("aud-admin"), newUser("aud-a"), newUser("aud-b"), newUser("aud-c")]);
    const created = await api("POST", "/conversations/group", { token: admin.token, body: { participantIds: [a.id, b.id] } });
    expect(created.status).toBe(201);
    const id = created.body.id as string;
    expect((await api("POST", `/conversations/${id}/participants`, { token: admin.token, body: { userId: c.id } })).status).toBe(201);
    expect((await api("PUT", `/conversations/${id}/participants/${a.id}/role`, { token: admin.token, body: { role: "admin" } })).status).toBe(200);
    expect((await api("DELETE", `/conversations/${id}/participants/${c.id}`, { token: admin.token })).status).toBe(204);
    expect((await api("DELETE", `/conversations/${id}/participants/${b.id}`, { token: b.token })).status).toBe(204);
    const rows = await withDb(async (db) => {
      const r = await db.execute<{ action: string; actor_id: string | null; target_id: string }>(
        sql`SELECT action, actor_id, target_id FROM audit_log WHERE conversation_id = ${id} ORDER BY id`,
      );
      return r.rows;
    });
    expect(rows).toEqual([
      { action: "participant.added", actor_id: admin.id, target_id: c.id },
      { action: "participant.role_changed", actor_id: admin.id, target_id: a.id },
      { action: "participant.removed", actor_id: admin.id, target_id: c.id },
      { action: "participant.left", actor_id: b.id, target_id: b.id },
    ]);
    const report = await withDb((db) => verifyAuditChains(db, { conversationId: id }));
    expect(report).toMatchObject({ ok: true, rows: 4 });
  });
});
