import { describe, expect, it } from "vitest";
import { sql } from "drizzle-orm";
import { withDb } from "./fixtures";
import { api } from "./helpers";
import { direct, group, send, users } from "./conversation-helpers";
import { openSocket, waitFor, type TestSocket } from "./sockets";

/** The first frame of `type` whose data matches (10 s: an offline change waits for the session's grace alarm). */
const frame = (s: TestSocket, type: string, match: (data: any) => boolean = () => true) =>
  waitFor(() => s.frames.find((f) => f.type === type && match(f.data)), type, 10_000);

const request = (s: TestSocket, type: string, data: unknown, id: string) => {
  s.ws.send(JSON.stringify({ type, data, id }));
  return waitFor(() => s.frames.find((f) => f.id === id), `reply to ${id}`);
};

describe("presence of a user with two devices", () => {
  it("goes offline with lastSeen when the last device left, not when the user came online", async () => {
    const [alice, bob] = await users(2, "md-seen");
    await direct(alice, bob);
    const watcher = await openSocket("/ws", bob);
    await frame(watcher, "connected");
    const [phone, laptop] = [await openSocket("/ws", alice), await openSocket("/ws", alice)];
    const online = await frame(watcher, "presence_update", (d) => d.userId === alice.id && d.status === "online");
    // Some time with both devices up; the laptop's heartbeat is the server's word for "alice was here then".
    await new Promise((r) => setTimeout(r, 300));
    phone.ws.close(1000, "done");
    const ack = await request(laptop, "heartbeat", {}, "hb");
    expect(Date.parse(ack.data.timestamp)).toBeGreaterThan(Date.parse(online.data.lastSeen));
    laptop.ws.close(1000, "done");
    const offline = await frame(watcher, "presence_update", (d) => d.userId === alice.id && d.status === "offline");
    expect(Date.parse(offline.data.lastSeen)).toBeGreaterThanOrEqual(Date.parse(ack.data.timestamp));
    // What get_presence answers from Postgres for an offline contact is the same.
    const seen = await withDb((db) => db.execute<{ seen: string }>(sql`SELECT last_seen_at AS seen FROM users WHERE id = ${alice.id}`));
    expect(new Date(seen.rows[0].seen).toISOString()).toBe(offline.data.lastSeen);
    watcher.ws.close(1000, "done");
  });
});

describe("unread badges of a user with two devices", () => {
  it("a conversation the user is removed from leaves totalUnread on every device", async () => {
    const [admin, bob, carol] = await users(3, "md-rm");
    const gid = await group(admin, [bob, carol]);
    const did = await direct(carol, bob);
    const [phone, laptop] = [await openSocket("/ws", bob), await openSocket("/ws", bob)];
    for (const s of [phone, laptop]) await frame(s, "connected");
    await send(gid, admin, "one");
    await send(gid, admin, "two");
    await send(did, carol, "dm");
    for (const s of [phone, laptop]) await frame(s, "unread_count", (d) => d.totalUnread === 3);
    expect((await api("DELETE", `/conversations/${gid}/participants/${bob.id}`, { token: admin.token })).status).toBe(204);
    for (const s of [phone, laptop]) {
      await frame(s, "conversation_removed", (d) => d.conversationId === gid);
      const badge = await frame(s, "unread_count", (d) => d.conversationId === gid && d.unreadCount === 0);
      expect(badge.data.totalUnread).toBe(1);
    }
    // And REST agrees with what the devices show.
    expect((await api("GET", "/notifications/unread-counts", { token: bob.token })).body.totalUnread).toBe(1);
    for (const s of [phone, laptop]) s.ws.close(1000, "done");
  });
});
