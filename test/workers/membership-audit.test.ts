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
    // The role each already has: answered as a change would be, but nothing happened, so nothing is audited.
    const again = await api("PUT", `/conversations/${id}/participants/${a.id}/role`, { token: admin.token, body: { role: "admin" } });
    expect(again.status).toBe(200);
    expect(again.body).toMatchObject({ userId: a.id, role: "admin" });
    expect((await api("PUT", `/conversations/${id}/participants/${b.id}/role`, { token: admin.token, body: { role: "member" } })).body).toMatchObject({ userId: b.id, role: "member" });
    expect((await api("DELETE", `/conversations/${id}/participants/${c.id}`, { token: admin.token })).status).toBe(204);
    expect((await api("DELETE", `/conversations/${id}/participants/${b.id}`, { token: b.token })).status).toBe(204);
    const rows = await withDb(async (db) => {
      const r = await db.execute<{ action: string; actor_id: string | null; target_id: string }>(
        sql`SELECT action, actor_id, target_id FROM audit_log WHERE conversation_id = ${id} ORDER BY id`,
      );
      return r.rows;
    });
    expect(rows).toEqual([
      { action: "conversation.created", actor_id: admin.id, target_id: id },
      { action: "participant.added", actor_id: admin.id, target_id: c.id },
      { action: "participant.role_changed", actor_id: admin.id, target_id: a.id },
      { action: "participant.removed", actor_id: admin.id, target_id: c.id },
      { action: "participant.left", actor_id: b.id, target_id: b.id },
    ]);
    const report = await withDb((db) => verifyAuditChains(db, { conversationId: id }));
    expect(report).toMatchObject({ ok: true, rows: 5 });
  });
});

const createdEntries = (conversationId: string) =>
  withDb(async (db) => {
    const r = await db.execute<{ actor_id: string | null; details: Record<string, unknown> }>(
      sql`SELECT actor_id, details FROM audit_log WHERE conversation_id = ${conversationId} AND action = 'conversation.created' ORDER BY id`,
    );
    return r.rows;
  });

describe("conversation creation starts the audit chain", () => {
  it("records a group's creator, name and initial members as the first entry of its chain", async () => {
    const [admin, a, b] = await Promise.all([newUser("aud-admin"), newUser("aud-a"), newUser("aud-b")]);
    const service = await newUser("aud-svc", "admin");
    const created = await api("POST", "/conversations/group", { token: admin.token, body: { name: "Launch", participantIds: [a.id, b.id, a.id] } });
    expect(created.status).toBe(201);
    const id = created.body.id as string;
    expect((await api("PATCH", `/conversations/${id}`, { token: admin.token, body: { name: "Launch 2" } })).status).toBe(200);
    expect((await api("DELETE", `/conversations/${id}/participants/${b.id}`, { token: b.token })).status).toBe(204);

    // The audit route lists newest first: the creation is the oldest entry, at the root of the chain.
    const audit = await api("GET", `/conversations/${id}/audit`, { token: service.token });
    expect(audit.status).toBe(200);
    const oldest = audit.body.entries.at(-1);
    expect(oldest).toMatchObject({ action: "conversation.created", actorId: admin.id, targetId: id, prevHash: null });
    expect(oldest.details).toEqual({ type: "group", name: "Launch", memberIds: [admin.id, a.id, b.id] });
    expect(audit.body.entries.filter((e: { action: string }) => e.action === "conversation.created")).toHaveLength(1);
    const report = await withDb((db) => verifyAuditChains(db, { conversationId: id }));
    expect(report).toMatchObject({ ok: true });
  });

  it("records a direct conversation once, however often and however concurrently it is asked for", async () => {
    const [a, b] = await Promise.all([newUser("aud-a"), newUser("aud-b")]);
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        i % 2 === 0
          ? api("POST", "/conversations/direct", { token: a.token, body: { targetUserId: b.id } })
          : api("POST", "/conversations/direct", { token: b.token, body: { targetUserId: a.id } }),
      ),
    );
    const ids = new Set(results.map((r) => r.body.id as string));
    expect(ids.size).toBe(1);
    const [id] = ids;
    expect((await api("POST", "/conversations/direct", { token: a.token, body: { targetUserId: b.id } })).status).toBe(200);
    const entries = await createdEntries(id);
    expect(entries).toHaveLength(1);
    // Whoever's request won the race is the creator; the other side is the second member.
    const winners = results.flatMap((r, i) => (r.status === 201 ? [i % 2 === 0 ? [a.id, b.id] : [b.id, a.id]] : []));
    expect(winners).toHaveLength(1);
    expect(entries).toEqual([{ actor_id: winners[0][0], details: { type: "direct", memberIds: winners[0] } }]);
  });

  it("records a business conversation when it opens, not when the customer asks again", async () => {
    const customer = await newUser("aud-customer");
    const businessId = crypto.randomUUID();
    const results = await Promise.all(
      Array.from({ length: 4 }, () => api("POST", "/conversations/business", { token: customer.token, body: { businessId } })),
    );
    const id = results[0].body.id as string;
    expect((await api("POST", "/conversations/business", { token: customer.token, body: { businessId } })).status).toBe(200);
    const entries = await createdEntries(id);
    expect(entries).toEqual([{ actor_id: customer.id, details: { type: "business", businessId, memberIds: [customer.id] } }]);
  });
});

interface AuditView {
  action: string;
  actorId: string | null;
  targetId: string | null;
  details: Record<string, unknown>;
  prevHash: string | null;
  hash: string;
}

/** The chain as a moderator reads it (service token, the audit route), oldest first. */
async function chainOf(id: string, token: string): Promise<AuditView[]> {
  const res = await api("GET", `/conversations/${id}/audit?limit=100`, { token });
  expect(res.status).toBe(200);
  return (res.body.entries as AuditView[]).reverse();
}

describe("renaming a group is audited", () => {
  it("records who renamed it and the old and new name, in the chain a moderator reads and verifies", async () => {
    const [admin, a, b] = await Promise.all([newUser("ren-admin"), newUser("ren-a"), newUser("ren-b")]);
    const service = await newUser("ren-svc", "admin");
    const created = await api("POST", "/conversations/group", { token: admin.token, body: { participantIds: [a.id, b.id] } });
    expect(created.status).toBe(201);
    const id = created.body.id as string;
    // Quotes, a backslash and non-ASCII: the hash input is built partly in SQL, and must be the verifier's byte for byte.
    const abusive = 'Ünïcode "quoted" \\ 🚀 name';
    for (const name of ["Launch", abusive]) {
      const res = await api("PATCH", `/conversations/${id}`, { token: admin.token, body: { name } });
      expect({ status: res.status, name: res.body.name }).toEqual({ status: 200, name });
    }
    // A member may not rename, and the same name again changes nothing: neither leaves an entry.
    expect((await api("PATCH", `/conversations/${id}`, { token: a.token, body: { name: "Mine" } })).status).toBe(403);
    const again = await api("PATCH", `/conversations/${id}`, { token: admin.token, body: { name: abusive } });
    expect({ status: again.status, name: again.body.name }).toEqual({ status: 200, name: abusive });

    const chain = await chainOf(id, service.token);
    expect(chain.map((e) => e.action)).toEqual(["conversation.created", "conversation.renamed", "conversation.renamed"]);
    expect(chain.slice(1).map(({ actorId, targetId, details }) => ({ actorId, targetId, details }))).toEqual([
      { actorId: admin.id, targetId: id, details: { from: null, to: "Launch" } },
      { actorId: admin.id, targetId: id, details: { from: "Launch", to: abusive } },
    ]);
    for (let i = 1; i < chain.length; i++) expect(chain[i].prevHash).toBe(chain[i - 1].hash);
    // A group admin reads the same log.
    expect((await chainOf(id, admin.token)).map((e) => e.hash)).toEqual(chain.map((e) => e.hash));

    const verify = await api("POST", "/operations/audit/verify", { token: service.token, body: { conversationId: id } });
    expect(verify.status).toBe(200);
    expect(verify.body).toMatchObject({ ok: true, rows: 3, broken: [] });
  });

  it("keeps one verified chain when renames race each other and other audited changes", async () => {
    const [admin, other, a, b, c] = await Promise.all(["ren-admin", "ren-other", "ren-a", "ren-b", "ren-c"].map((p) => newUser(p)));
    const service = await newUser("ren-svc", "admin");
    const created = await api("POST", "/conversations/group", { token: admin.token, body: { name: "Start", participantIds: [other.id, a.id, b.id] } });
    const id = created.body.id as string;
    expect((await api("PUT", `/conversations/${id}/participants/${other.id}/role`, { token: admin.token, body: { role: "admin" } })).status).toBe(200);

    const renames = Array.from({ length: 6 }, (_, i) =>
      api("PATCH", `/conversations/${id}`, { token: (i % 2 ? other : admin).token, body: { name: `Race ${i}` } }),
    );
    const others = [
      api("POST", `/conversations/${id}/participants`, { token: admin.token, body: { userId: c.id } }),
      api("PUT", `/conversations/${id}/participants/${a.id}/role`, { token: other.token, body: { role: "admin" } }),
    ];
    const results = await Promise.all([...renames, ...others]);
    // A rename that lost the race three times in a row is refused (503, retry); every other one is recorded.
    const renamed = results.slice(0, 6).filter((r) => r.status === 200);
    expect(results.slice(0, 6).every((r) => r.status === 200 || r.status === 503)).toBe(true);
    expect(renamed.length).toBeGreaterThan(0);
    expect(results.slice(6).map((r) => r.status)).toEqual([201, 200]);

    const chain = await chainOf(id, service.token);
    const renames2 = chain.filter((e) => e.action === "conversation.renamed").map((e) => e.details as { from: string; to: string });
    expect(renames2).toHaveLength(renamed.length);
    // Each rename replaced the name the one before it set: no lost or invented `from`.
    let name = "Start";
    for (const r of renames2) {
      expect(r.from).toBe(name);
      name = r.to;
    }
    expect((await api("GET", `/conversations/${id}`, { token: admin.token })).body.name).toBe(name);
    const report = await withDb((db) => verifyAuditChains(db, { conversationId: id }));
    expect(report).toMatchObject({ ok: true, rows: chain.length });
  });
});

describe("asking again for a conversation brings back who left, audited", () => {
  const rejoined = (actorId: string, targetId: string, role: string) => ({ action: "participant.added", actorId, targetId, details: { role, rejoined: true } });
  const shape = ({ action, actorId, targetId, details }: AuditView) => ({ action, actorId, targetId, details });

  it("records each member a direct conversation brings back, after their leaving, in the verified chain", async () => {
    const [a, b] = await Promise.all([newUser("rej-a"), newUser("rej-b")]);
    const service = await newUser("rej-svc", "admin");
    const ask = (from: typeof a, to: typeof a) => api("POST", "/conversations/direct", { token: from.token, body: { targetUserId: to.id } });
    const id = (await ask(a, b)).body.id as string;
    // b leaves; a asks again and b is back.
    expect((await api("DELETE", `/conversations/${id}/participants/${b.id}`, { token: b.token })).status).toBe(204);
    const back = await ask(a, b);
    expect({ status: back.status, id: back.body.id, members: back.body.participants.length }).toEqual({ status: 200, id, members: 2 });
    // Both leave; b asks again and both are back: two entries from one request, chained one after the other.
    expect((await api("DELETE", `/conversations/${id}/participants/${a.id}`, { token: a.token })).status).toBe(204);
    expect((await api("DELETE", `/conversations/${id}/participants/${b.id}`, { token: b.token })).status).toBe(204);
    expect((await ask(b, a)).body.participants).toHaveLength(2);
    // Nobody had left: nothing to record.
    expect((await ask(a, b)).status).toBe(200);

    const chain = await chainOf(id, service.token);
    expect(chain.slice(1).map(shape)).toEqual([
      { action: "participant.left", actorId: b.id, targetId: b.id, details: { role: "member" } },
      rejoined(a.id, b.id, "member"),
      { action: "participant.left", actorId: a.id, targetId: a.id, details: { role: "member" } },
      { action: "participant.left", actorId: b.id, targetId: b.id, details: { role: "member" } },
      rejoined(b.id, b.id, "member"),
      rejoined(b.id, a.id, "member"),
    ]);
    for (let i = 1; i < chain.length; i++) expect(chain[i].prevHash).toBe(chain[i - 1].hash);
    const verify = await api("POST", "/operations/audit/verify", { token: service.token, body: { conversationId: id } });
    expect(verify.body).toMatchObject({ ok: true, rows: 7, broken: [] });
  });

  it("records a business customer brought back to their open conversation", async () => {
    const customer = await newUser("rej-customer");
    const service = await newUser("rej-svc", "admin");
    const businessId = crypto.randomUUID();
    const id = (await api("POST", "/conversations/business", { token: customer.token, body: { businessId } })).body.id as string;
    // Leaving through the API closes a business conversation; an open one the customer is out of (data from before
    // that rule) is what a repeat request brings them back to.
    await withDb((db) => db.execute(sql`UPDATE participants SET left_at = now() WHERE conversation_id = ${id} AND user_id = ${customer.id}`));
    const again = await api("POST", "/conversations/business", { token: customer.token, body: { businessId } });
    expect({ status: again.status, id: again.body.id }).toEqual({ status: 200, id });
    expect((await api("POST", "/conversations/business", { token: customer.token, body: { businessId } })).status).toBe(200);

    const chain = await chainOf(id, service.token);
    expect(chain.map(shape).slice(1)).toEqual([rejoined(customer.id, customer.id, "customer")]);
    const verify = await api("POST", "/operations/audit/verify", { token: service.token, body: { conversationId: id } });
    expect(verify.body).toMatchObject({ ok: true, rows: 2 });
  });

  it("keeps one verified chain, with one entry per actual return, when both sides leave and ask again concurrently", async () => {
    const [a, b] = await Promise.all([newUser("rej-a"), newUser("rej-b")]);
    const id = (await api("POST", "/conversations/direct", { token: a.token, body: { targetUserId: b.id } })).body.id as string;
    for (let round = 0; round < 4; round++) {
      const left = await Promise.all([a, b].map((u) => api("DELETE", `/conversations/${id}/participants/${u.id}`, { token: u.token })));
      expect(left.map((r) => r.status)).toEqual([204, 204]);
      const asked = await Promise.all([
        api("POST", "/conversations/direct", { token: a.token, body: { targetUserId: b.id } }),
        api("POST", "/conversations/direct", { token: b.token, body: { targetUserId: a.id } }),
        api("POST", "/conversations/direct", { token: a.token, body: { targetUserId: b.id } }),
      ]);
      expect(asked.map((r) => [r.status, r.body.id])).toEqual([[200, id], [200, id], [200, id]]);
    }
    const rows = await withDb(async (db) => {
      const r = await db.execute<{ action: string; target_id: string }>(sql`SELECT action, target_id FROM audit_log WHERE conversation_id = ${id} ORDER BY id`);
      return r.rows;
    });
    // Every leave is followed, for that member, by exactly one return.
    for (const u of [a, b]) {
      const mine = rows.filter((r) => r.target_id === u.id).map((r) => r.action);
      expect(mine).toEqual(Array.from({ length: 4 }, () => ["participant.left", "participant.added"]).flat());
    }
    const report = await withDb((db) => verifyAuditChains(db, { conversationId: id }));
    expect(report).toMatchObject({ ok: true, rows: 17 });
  });
});
