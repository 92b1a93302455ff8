// Retention and audit edge cases: what the audit log must record whatever a client sends, and what the retention
// jobs must leave alone when the conversation changes under them (legal hold, an edit racing the archive move).
import { describe, expect, it } from "vitest";
import { sql } from "drizzle-orm";
import { api, expectErrorShape, signWith } from "./helpers";
import { withDb } from "./fixtures";

async function waitUntilTrue(check: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > until) throw new Error("condition not reached in time");
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe("audit of authentication failures", () => {
  it("records a failure whose request path carries an encoded NUL (jsonb refuses \\u0000: the entry was lost)", { timeout: 30_000 }, async () => {
    const claimed = crypto.randomUUID();
    const forged = await signWith({ id: claimed, kahaId: "mallory", exp: Math.floor(Date.now() / 1000) + 60 }, "n".repeat(40));
    const res = await api("GET", `/conversations/${crypto.randomUUID()}%00/messages`, { token: forged, headers: { "cf-connecting-ip": "192.0.2.78" } });
    expectErrorShape(res, 401);
    let details: Record<string, unknown> | undefined;
    await waitUntilTrue(async () => {
      const rows = await withDb((db) =>
        db.execute<{ details: Record<string, unknown> }>(sql`SELECT details FROM audit_log WHERE action = 'auth.failed' AND target_id = ${claimed}`),
      );
      details = rows.rows[0]?.details;
      return details !== undefined;
    });
    expect(details).toMatchObject({ reasonClass: "signature", ip: "192.0.2.78", method: "GET" });
    expect(String(details!.path)).toMatch(/^\/conversations\/[0-9a-f-]{36}.+\/messages$/);
  });

  it("records a failure whose path is cut through a surrogate pair (half an emoji is refused the same way)", { timeout: 30_000 }, async () => {
    // The path is kept to 200 UTF-16 units.
    const other = crypto.randomUUID();
    const token = await signWith({ id: other, kahaId: "mallory", exp: Math.floor(Date.now() / 1000) + 60 }, "n".repeat(40));
    const id = `${"a".repeat(200 - "/conversations/".length - 1)}${encodeURIComponent("\u{1F600}")}`;
    expectErrorShape(await api("GET", `/conversations/${id}/messages`, { token }), 401);
    await waitUntilTrue(async () => {
      const rows = await withDb((db) => db.execute(sql`SELECT 1 FROM audit_log WHERE action = 'auth.failed' AND target_id = ${other}`));
      return rows.rows.length > 0;
    });
  });
});
