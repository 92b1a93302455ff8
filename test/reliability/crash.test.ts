import { describe, expect, it } from "vitest";
import { ChatSocket } from "./client";
import { makeUser } from "./db";
import { Ledger } from "./ledger";
import { catchUp, closeAll, closeCodes, expectClean, openRoom, record, type Room, sleep, steadyTraffic, useFaultStack } from "./scenario";
import type { FaultStack } from "./stack";

let stack: FaultStack;
const cleanup = useFaultStack({ WRITE_THROUGH_DEADLINE_MS: "1000" }, (started) => (stack = started));

/**
 * A listening-only device in the room (it never sends, so nothing but catchUp reconnects it). Added straight to
 * Postgres, so it must be added before the room's first use: a room caches its participants and only the
 * participant routes tell it about changes.
 */
async function addListener(room: Room, ledger: Ledger, label: string): Promise<ChatSocket> {
  const user = await makeUser(label);
  await stack.db.query("INSERT INTO users (id, kaha_id) VALUES ($1, $2) ON CONFLICT DO NOTHING", [user.id, user.kahaId]);
  await stack.db.query("INSERT INTO participants (conversation_id, user_id, role) VALUES ($1, $2, 'member')", [room.conversationId, user.id]);
  // The room has not been used yet (no message sent), so it loads its participants from Postgres on first use.
  const s = new ChatSocket({ base: stack.base, conversationId: room.conversationId, user, ledger, label });
  await s.connectRetrying(30_000);
  room.sockets.push(s);
  return s;
}

const highest = (rooms: Room[]) => rooms.map((r) => Math.max(...r.sockets.map((s) => s.highestSeen)));

describe("process crash and Durable Object eviction", () => {
  it("kill -9 of workerd under load, then restart: every acked message reaches Postgres, clients resume", async () => {
    const ledger = new Ledger("kill -9 workerd under load");
    const rooms: Room[] = [];
    for (let k = 0; k < 2; k++) {
      const users = [await makeUser(`k9-${k}a`), await makeUser(`k9-${k}b`), await makeUser(`k9-${k}c`)];
      const conversationId = await stack.db.seedConversation("group", users);
      const room: Room = { conversationId, users, sockets: [] };
      await addListener(room, ledger, `k9-${k}-listener`);
      for (const [i, user] of users.entries()) {
        const s = new ChatSocket({ base: stack.base, conversationId, user, ledger, label: `k9-${k}:${i}` });
        await s.connectRetrying(30_000);
        room.sockets.push(s);
      }
      rooms.push(room);
      cleanup.push(() => closeAll(room.sockets));
    }
    const senders = rooms.flatMap((r) => r.sockets.slice(1));
    const traffic = steadyTraffic(senders, { perSocket: 30, intervalMs: 150, tag: "k9", deadlineMs: 180_000 });
    await sleep(2500);
    const before = ledger.totals();
    const started = Date.now();
    const { killedPid } = await stack.killWorkerdAndRestart();
    const restartMs = Date.now() - started;
    await traffic;
    const tops = highest(rooms);
    for (const [k, room] of rooms.entries()) await catchUp(room.sockets, tops[k], 60_000);
    const r = await ledger.reconcile(stack.db, { drainMs: 60_000, settleMs: 500 });
    record(r, {
      fault: "kill -9 of the workerd running the Worker (then wrangler), new wrangler on the same persist dir",
      killedPid,
      restartMs,
      ackedBeforeKill: before.acked,
      socketCloses: closeCodes(rooms.flatMap((x) => x.sockets)),
    });
    expect(before.acked).toBeGreaterThan(5);
    expect(r.reconnects).toBeGreaterThanOrEqual(rooms.length * 4);
    expectClean(r);
  }, 300_000);

  it("kill -9 with messages still in a room's outbox (Postgres down): they reach Postgres after restart without any client", async () => {
    const ledger = new Ledger("kill -9 with a pending outbox, no client after");
    const room = await openRoom(stack, ledger, 2, "k9q");
    cleanup.push(() => closeAll(room.sockets));
    await room.sockets[0].sendReliably("before the outage", "k9q-0");
    stack.pg({ down: true });
    for (let i = 1; i <= 5; i++) {
      const m = await room.sockets[0].sendOnce(`stuck ${i}`, `k9q-${i}`);
      expect(m.status).toBe("pending");
    }
    await closeAll(room.sockets);
    await stack.killWorkerdAndRestart();
    stack.pg({});
    const upAt = Date.now();
    // Nobody talks to the room: only its alarm (kept in its storage) can move the outbox.
    let arrivedMs: number | undefined;
    while (Date.now() - upAt < 60_000) {
      if ((await stack.db.count([room.conversationId])) >= 6) {
        arrivedMs = Date.now() - upAt;
        break;
      }
      await sleep(500);
    }
    // Whatever the alarm did, a client coming back must see everything (and its arrival flushes the outbox).
    for (const s of room.sockets) await s.connectRetrying(30_000);
    await catchUp(room.sockets, 6, 30_000);
    const r = await ledger.reconcile(stack.db, { drainMs: 30_000, settleMs: 300 });
    record(r, {
      fault: "Postgres down, 5 pending sends, kill -9, restart, Postgres up, no client for 60 s",
      flushedByAlarmWithinMs: arrivedMs ?? "not within 60 s",
    });
    expect(arrivedMs, "the outbox must drain by alarm after a crash, without client traffic").toBeDefined();
    expectClean(r);
  }, 240_000);

  it("Durable Object hibernated mid-stream (idle > 15 s): sockets stay usable, nothing missed", async () => {
    const ledger = new Ledger("DO evicted by hibernation mid-stream");
    const room = await openRoom(stack, ledger, 3, "hib");
    cleanup.push(() => closeAll(room.sockets));
    await steadyTraffic(room.sockets, { perSocket: 5, intervalMs: 100, tag: "hib1" });
    await sleep(20_000);
    const stillOpen = room.sockets.filter((s) => s.open).length;
    await steadyTraffic(room.sockets, { perSocket: 5, intervalMs: 100, tag: "hib2" });
    await catchUp(room.sockets, 30);
    const r = await ledger.reconcile(stack.db, { drainMs: 20_000, settleMs: 300 });
    record(r, {
      fault: "20 s idle (object evicted, sockets hibernated), then more traffic",
      socketsOpenAfterIdle: stillOpen,
      socketCloses: closeCodes(room.sockets),
      closeReasons: room.sockets.flatMap((s) => s.closes.map((c) => c.reason)),
    });
    expect(stillOpen).toBe(3);
    expect(r.reconnects).toBe(0);
    expectClean(r);
  }, 120_000);

  it("Durable Object evicted by a Worker restart mid-stream: sockets reconnect and resume", async () => {
    const ledger = new Ledger("DO evicted by wrangler restart mid-stream");
    // Four members: three send, the fourth only listens (so only catchUp brings it back).
    const room = await openRoom(stack, ledger, 4, "rst");
    cleanup.push(() => closeAll(room.sockets));
    const listener = room.sockets[3];
    const traffic = steadyTraffic(room.sockets.slice(0, 3), { perSocket: 25, intervalMs: 150, tag: "rst", deadlineMs: 120_000 });
    await sleep(1500);
    await stack.restartWorker();
    await traffic;
    await catchUp(room.sockets, Math.max(...room.sockets.map((s) => s.highestSeen)));
    const r = await ledger.reconcile(stack.db, { drainMs: 30_000, settleMs: 300 });
    record(r, { fault: "graceful wrangler restart (SIGTERM) while 3 senders and a listener are active", listenerCloses: listener.closes.length, socketCloses: closeCodes(room.sockets) });
    expect(r.reconnects).toBeGreaterThanOrEqual(4);
    expectClean(r);
  }, 180_000);
});
