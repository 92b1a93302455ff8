import { describe, expect, it } from "vitest";
import { verifyAuditChains } from "../../src/jobs/audit-verify";
import { api, newUser, type TestUser } from "./helpers";
import { withDb } from "./fixtures";
import { newBusiness, serviceUser } from "./business-helpers";

interface AuditView {
  id: number;
  action: string;
  actorId: string | null;
  targetId: string | null;
  details: Record<string, unknown>;
}

/** The newest id of the global chain: entries after it are this test's and its neighbours'. */
async function globalMark(service: TestUser): Promise<number> {
  const res = await api("GET", "/operations/audit?limit=1", { token: service.token });
  expect(res.status).toBe(200);
  return (res.body.entries[0]?.id as number | undefined) ?? 0;
}

/** A business's entries in the global chain after `mark`, as a moderator reads them (oldest first). */
async function businessEntries(service: TestUser, businessId: string, mark: number) {
  const seen: AuditView[] = [];
  let before: number | null = null;
  do {
    const res: { status: number; body: { entries: AuditView[]; nextBefore: number | null } } = await api("GET", `/operations/audit?limit=100${before ? `&before=${before}` : ""}`, { token: service.token });
    expect(res.status).toBe(200);
    const page = res.body.entries;
    seen.push(...page.filter((e) => e.id > mark));
    before = page.length > 0 && page[page.length - 1].id > mark ? res.body.nextBefore : null;
  } while (before);
  return seen
    .filter((e) => e.details.businessId === businessId)
    .reverse()
    .map(({ action, actorId, targetId, details }) => ({ action, actorId, targetId, details }));
}

async function expectGlobalChainVerified(service: TestUser) {
  const verify = await api("POST", "/operations/audit/verify", { token: service.token, body: { globalOnly: true } });
  expect(verify.status).toBe(200);
  expect(verify.body).toMatchObject({ ok: true, broken: [] });
}

describe("business privilege changes are audited in the global chain", () => {
  it("records who registered and unregistered a business admin, once each", async () => {
    const service = await serviceUser();
    const mark = await globalMark(service);
    const businessId = crypto.randomUUID();
    const user = await newUser("bizadm");
    const admins = `/business/${businessId}/admins/${user.id}`;
    expect((await api("PUT", admins, { token: service.token })).status).toBe(201);
    // Already an admin: nothing changes, nothing is recorded.
    expect((await api("PUT", admins, { token: service.token })).status).toBe(200);
    expect((await api("DELETE", admins, { token: service.token })).status).toBe(204);
    // No longer an admin: a second removal finds nothing and records nothing.
    expect((await api("DELETE", admins, { token: service.token })).status).toBe(404);
    expect(await businessEntries(service, businessId, mark)).toEqual([
      { action: "business.admin_granted", actorId: service.id, targetId: user.id, details: { businessId } },
      { action: "business.admin_revoked", actorId: service.id, targetId: user.id, details: { businessId } },
    ]);
    await expectGlobalChainVerified(service);
  });

  it("records agents registered, changed and removed, and opening hours set and removed, with the admin who did it", async () => {
    const service = await serviceUser();
    const mark = await globalMark(service);
    const biz = await newBusiness();
    const agent = await newUser("bizagent");
    const put = (body: object) => api("PUT", `/business/${biz.id}/agents/${agent.id}`, { token: biz.admin.token, body });
    expect((await put({ skills: ["Billing"] })).status).toBe(201);
    // The same values again change nothing; a new maximum does.
    expect((await put({ skills: ["billing"] })).status).toBe(200);
    expect((await put({ maxConcurrentChats: 2 })).status).toBe(200);
    expect((await api("DELETE", `/business/${biz.id}/agents/${agent.id}`, { token: biz.admin.token })).status).toBe(204);

    const hours = { timezone: "Europe/Berlin", schedule: { monday: { isOpen: true, openTime: "09:00", closeTime: "17:00" } }, holidays: [{ date: "2026-12-25" }] };
    expect((await api("PUT", `/business/${biz.id}/hours`, { token: biz.admin.token, body: hours })).status).toBe(200);
    expect((await api("PUT", `/business/${biz.id}/hours`, { token: biz.admin.token, body: hours })).status).toBe(200);
    expect((await api("DELETE", `/business/${biz.id}/hours`, { token: biz.admin.token })).status).toBe(204);

    const details = { businessId: biz.id };
    expect(await businessEntries(service, biz.id, mark)).toEqual([
      { action: "business.admin_granted", actorId: service.id, targetId: biz.admin.id, details },
      { action: "business.agent_set", actorId: biz.admin.id, targetId: agent.id, details: { ...details, created: true, skills: ["billing"], maxConcurrentChats: 5 } },
      { action: "business.agent_set", actorId: biz.admin.id, targetId: agent.id, details: { ...details, created: false, skills: ["billing"], maxConcurrentChats: 2 } },
      { action: "business.agent_removed", actorId: biz.admin.id, targetId: agent.id, details },
      {
        action: "business.hours_set",
        actorId: biz.admin.id,
        targetId: biz.id,
        details: { ...details, timezone: "Europe/Berlin", schedule: hours.schedule, holidays: 1 },
      },
      { action: "business.hours_removed", actorId: biz.admin.id, targetId: biz.id, details },
    ]);
    await expectGlobalChainVerified(service);
  });

  it("keeps the global chain verified when business changes race each other and other global entries", async () => {
    const service = await serviceUser();
    const biz = await newBusiness();
    const agents = await Promise.all(Array.from({ length: 4 }, () => newUser("bizrace")));
    const results = await Promise.all([
      ...agents.map((a, i) => api("PUT", `/business/${biz.id}/agents/${a.id}`, { token: biz.admin.token, body: { maxConcurrentChats: i + 1 } })),
      ...agents.map((a) => api("PUT", `/business/${biz.id}/admins/${a.id}`, { token: service.token })),
      api("PUT", `/business/${biz.id}/hours`, { token: biz.admin.token, body: { timezone: "UTC", schedule: {} } }),
      // Other writers of the global chain: failed sign-ins.
      ...Array.from({ length: 4 }, () => api("GET", "/conversations", { token: "not-a-token" })),
    ]);
    expect(results.slice(0, 9).map((r) => r.status)).toEqual([201, 201, 201, 201, 201, 201, 201, 201, 200]);
    const report = await withDb((db) => verifyAuditChains(db, { globalOnly: true }));
    expect(report).toMatchObject({ ok: true, broken: [] });
  });
});
