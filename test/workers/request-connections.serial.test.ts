import { describe, expect, it } from "vitest";
import { direct, group, users } from "./conversation-helpers";
import { sql } from "drizzle-orm";
import { bridgeStats, withDb } from "./fixtures";
import { api } from "./helpers";
import { newBusiness, registerAgent } from "./business-helpers";

/**
 * A Worker request cannot keep connections between requests, so each one it opens is a new Neon connection in
 * production (WebSocket, TLS, startup): queries run in parallel on a fresh pool each pay for one. A statement sent
 * over HTTP opens none (the bridge counts it as a round trip).
 */
async function costOf(request: () => Promise<void>, setup?: () => Promise<void>): Promise<{ connections: number; roundTrips: number }> {
  // The least of three: another object's pool (an alarm, a flush) may use Postgres meanwhile, never less.
  const seen: { connections: number; roundTrips: number }[] = [];
  for (let i = 0; i < 3; i++) {
    await setup?.();
    const before = await bridgeStats();
    await request();
    const after = await bridgeStats();
    seen.push({ connections: after.opened - before.opened, roundTrips: after.exchanges - before.exchanges });
  }
  return { connections: Math.min(...seen.map((s) => s.connections)), roundTrips: Math.min(...seen.map((s) => s.roundTrips)) };
}

describe("Postgres connections and round trips per request", () => {
  it("the list (both kinds of page), one conversation, its unread count and receipts, and asking again for a direct conversation each cost one statement over HTTP and no connection", async () => {
    const [me, a, b] = await users(3, "listconn");
    const first = await direct(me, a);
    await direct(me, b);
    const threesome = await group(me, [a, b], "Three");
    expect((await api("GET", "/conversations", { token: me.token })).status).toBe(200);

    const list = await costOf(async () => {
      const res = await api("GET", "/conversations", { token: me.token });
      expect(res.status).toBe(200);
      expect(res.body.conversations).toHaveLength(3);
    });
    const one = await costOf(async () => {
      const res = await api("GET", `/conversations/${first}`, { token: me.token });
      expect(res.status).toBe(200);
      expect(res.body.participants).toHaveLength(2);
    });
    const numbered = await costOf(async () => {
      const res = await api("GET", "/conversations?page=1&limit=2", { token: me.token });
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({ total: 3, hasMore: true });
      expect(res.body.conversations).toHaveLength(2);
    });
    const unread = await costOf(async () => {
      const res = await api("GET", `/conversations/${first}/unread-count`, { token: me.token });
      expect(res.body).toEqual({ conversationId: first, unreadCount: 0 });
    });
    const receipts = await costOf(async () => {
      const res = await api("GET", `/conversations/${first}/read-receipts`, { token: me.token });
      expect(res.body.participants.map((p: { userId: string }) => p.userId).sort()).toEqual([me.id, a.id].sort());
    });
    const again = await costOf(async () => {
      const res = await api("POST", "/conversations/direct", { token: me.token, body: { targetUserId: a.id } });
      expect({ status: res.status, id: res.body.id, members: res.body.participants.length }).toEqual({ status: 200, id: first, members: 2 });
    });
    let renames = 0;
    const renamed = await costOf(async () => {
      const name = `Renamed ${++renames}`;
      const res = await api("PATCH", `/conversations/${threesome}`, { token: me.token, body: { name } });
      expect({ status: res.status, name: res.body.name, members: res.body.participants.length }).toEqual({ status: 200, name, members: 3 });
    });
    const unchanged = await costOf(async () => {
      const res = await api("PATCH", `/conversations/${threesome}`, { token: me.token, body: { name: `Renamed ${renames}` } });
      expect({ status: res.status, name: res.body.name }).toEqual({ status: 200, name: `Renamed ${renames}` });
    });
    let muted = false;
    const mute = await costOf(async () => {
      muted = !muted;
      const res = await api("PUT", `/conversations/${threesome}/mute`, { token: me.token, body: { isMuted: muted } });
      expect(res.body).toEqual({ conversationId: threesome, isMuted: muted });
    });
    // A rename reads (membership and view) and writes, with its audit entry in the same statement: two round trips,
    // both over HTTP. The same name again writes nothing: one. A mute is the membership check and the UPDATE, then,
    // after the response, the caller's view for their other devices: three.
    const twice = { connections: 0, roundTrips: 2 };
    expect({ renamed, unchanged, mute }).toEqual({ renamed: twice, unchanged: { connections: 0, roundTrips: 1 }, mute: { connections: 0, roundTrips: 3 } });
    // Each is one statement over HTTP (Neon's query endpoint): no connection to open.
    const once = { connections: 0, roundTrips: 1 };
    expect({ list, one, numbered, unread, receipts, again }).toEqual({ list: once, one: once, numbered: once, unread: once, receipts: once, again: once });
  });
});

describe("creating a conversation", () => {
  it("is one statement: a group costs two round trips with its view, a new direct conversation three (looked up first)", async () => {
    const people = await users(10, "create");
    const [me] = people;
    expect((await api("GET", "/conversations", { token: me.token })).status).toBe(200);
    let n = 1;
    // Members never seen before: their placeholder users rows are part of the same statement.
    const created = await costOf(async () => {
      const res = await api("POST", "/conversations/group", { token: me.token, body: { participantIds: [people[n++].id, people[n++].id] } });
      expect({ status: res.status, members: res.body.participants?.length }).toEqual({ status: 201, members: 3 });
    });
    const direct = await costOf(async () => {
      const res = await api("POST", "/conversations/direct", { token: me.token, body: { targetUserId: people[n++].id } });
      expect({ status: res.status, members: res.body.participants?.length }).toEqual({ status: 201, members: 2 });
    });
    expect({ created, direct }).toEqual({ created: { connections: 1, roundTrips: 2 }, direct: { connections: 1, roundTrips: 3 } });
  });
});

describe("asking again for a direct conversation the other side left", () => {
  it("brings them back, with the audit entry, in the statement that looked up the conversation: four round trips", async () => {
    const [me, other] = await users(2, "rejoinconn");
    const id = await direct(me, other);
    const rejoined = await costOf(
      async () => {
        const res = await api("POST", "/conversations/direct", { token: me.token, body: { targetUserId: other.id } });
        expect({ status: res.status, id: res.body.id, members: res.body.participants.length }).toEqual({ status: 200, id, members: 2 });
      },
      async () => {
        expect((await api("DELETE", `/conversations/${id}/participants/${other.id}`, { token: other.token })).status).toBe(204);
      },
    );
    // The found-with-the-other-gone lookup, the create that conflicts, the lookup-return-and-audit, the view.
    expect(rejoined).toEqual({ connections: 1, roundTrips: 4 });
  });
});

describe("the caller's users row", () => {
  it("is upserted over HTTP after a read's response, not before its query, and the request opens no connection", async () => {
    const [me, other] = await users(2, "listfirst");
    await withDb((db) => db.execute(sql`INSERT INTO users (id, kaha_id) VALUES (${me.id}, ${me.kahaId}), (${other.id}, ${other.kahaId})`));
    const before = await bridgeStats();
    const res = await api("GET", "/conversations", { token: me.token });
    expect(res.status).toBe(200);
    // The upsert runs under waitUntil once the response is out; the bridge lists statements as they arrive.
    let after: string[] = [];
    let stats = before;
    for (let i = 0; i < 100; i++) {
      stats = await bridgeStats();
      const http = stats.recent.filter((s) => s.connection === 0).map((s) => s.text.slice(0, 20));
      const list = http.findLastIndex((t) => t.startsWith("select") && t.includes('"conversation'));
      after = list < 0 ? [] : http.slice(list + 1);
      if (after.includes('insert into "users" ')) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(after).toEqual(['insert into "users" ']);
    expect({ opened: stats.opened - before.opened, httpQueries: stats.httpQueries - before.httpQueries }).toEqual({ opened: 0, httpQueries: 2 });
  });
});

describe("a business admin's reads", () => {
  it("the agents (as one of them sees them) and whether it is open now cost no connection, one statement each over HTTP", async () => {
    const biz = await newBusiness();
    const [agent] = await users(1, "bizconn");
    await registerAgent(biz, agent);
    const agents = await costOf(async () => {
      const res = await api("GET", `/business/${biz.id}/agents`, { token: agent.token });
      expect(res.body.agents.map((a: { userId: string }) => a.userId)).toEqual([agent.id]);
    });
    const hours = await costOf(async () => {
      expect((await api("GET", `/business/${biz.id}/hours/status`, { token: agent.token })).body).toMatchObject({ isOpen: true });
    });
    // The agents: the admin check, then the list. The status: the hours.
    expect({ agents, hours }).toEqual({ agents: { connections: 0, roundTrips: 2 }, hours: { connections: 0, roundTrips: 1 } });
  });
});
