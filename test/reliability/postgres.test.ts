import { describe, expect, it } from "vitest";
import WebSocket from "ws";
import { restSend } from "./client";
import { Ledger } from "./ledger";
import { catchUp, closeAll, expectClean, openRoom, percentile, record, sleep, steadyTraffic, useFaultStack } from "./scenario";
import type { FaultStack } from "./stack";

let stack: FaultStack;
const cleanup = useFaultStack({ WRITE_THROUGH_DEADLINE_MS: "1000" }, (started) => (stack = started));

const maxSeq = (r: { sockets: { highestSeen: number }[] }) => Math.max(...r.sockets.map((s) => s.highestSeen));

describe("Postgres faults (through the fault proxy)", () => {
  it("baseline without faults: the ledger balances", async () => {
    const ledger = new Ledger("baseline (no fault)");
    const room = await openRoom(stack, ledger, 4, "base");
    cleanup.push(() => closeAll(room.sockets));
    const lat = await steadyTraffic(room.sockets, { perSocket: 15, intervalMs: 50, tag: "base" });
    for (let i = 0; i < 5; i++) await restSend(stack.base, ledger, room.conversationId, room.users[i % 4], `rest ${i}`, `base-rest-${i}`);
    const n = ledger.totals().acked;
    await catchUp(room.sockets, n);
    const r = await ledger.reconcile(stack.db, { drainMs: 20_000, settleMs: 300 });
    record(r, { fault: "none", ackP50ms: percentile(lat, 50), ackP99ms: percentile(lat, 99) });
    expectClean(r);
    expect(r.ackedPending).toBe(0);
  });

  it("Postgres stopped for 30 s during sends: acks continue as pending, every row arrives after it returns", async () => {
    const ledger = new Ledger("Postgres down 30 s");
    const room = await openRoom(stack, ledger, 3, "down");
    cleanup.push(() => closeAll(room.sockets));
    const statuses: string[] = [];
    const traffic = steadyTraffic(room.sockets, {
      perSocket: 25,
      intervalMs: 1500,
      tag: "down",
      onAck: (_ms, status) => statuses.push(status),
    });
    await sleep(4000);
    stack.pg({ down: true });
    const downAt = Date.now();
    // A REST send and a history read while it is down: measured, not required to succeed.
    const restDuring = await restSend(stack.base, ledger, room.conversationId, room.users[0], "rest while down", "down-rest-1").catch(
      (e: Error) => ({ status: -1, error: e.message }),
    );
    const historyDuring = await fetch(`${stack.base}/conversations/${room.conversationId}/messages`, {
      headers: { authorization: `Bearer ${room.users[1].token}` },
    }).then((res) => res.status);
    // A second device connecting during the outage (the upgrade provisions the user in Postgres): measured.
    const upgradeDuring = await new Promise<number>((resolve) => {
      const ws = new WebSocket(`${stack.base.replace(/^http/, "ws")}/conversations/${room.conversationId}/ws`, {
        headers: { authorization: `Bearer ${room.users[2].token}` },
      });
      ws.once("open", () => {
        ws.terminate();
        resolve(101);
      });
      ws.once("unexpected-response", (_q, res) => resolve(res.statusCode ?? 0));
      ws.once("error", () => resolve(0));
    });
    const pendingBefore = statuses.length;
    await sleep(30_000 - (Date.now() - downAt));
    const acksDuringOutage = statuses.slice(pendingBefore);
    stack.pg({});
    const upAt = Date.now();
    // How long until everything acked during the outage is in Postgres (flushes go in seq order, so a row count
    // reaching the number of acks so far means the backlog is through).
    const ackedAtRecovery = ledger.totals().acked;
    const backlogDrained = (async () => {
      while (Date.now() - upAt < 90_000) {
        if ((await stack.db.count([room.conversationId])) >= ackedAtRecovery) return Date.now() - upAt;
        await sleep(200);
      }
      return -1;
    })();
    await traffic;
    // The REST send refused during the outage is retried by its client now, with the same clientMessageId.
    if (!("message" in restDuring) || !restDuring.message) {
      await restSend(stack.base, ledger, room.conversationId, room.users[0], "rest while down", "down-rest-1");
    }
    await catchUp(room.sockets, maxSeq(room));
    const r = await ledger.reconcile(stack.db, { drainMs: 90_000, settleMs: 500 });
    const drainedMs = await backlogDrained;
    record(r, {
      fault: "proxy down 30 s (connections reset, new ones refused)",
      acksDuringOutage: acksDuringOutage.length,
      pendingAcksDuringOutage: acksDuringOutage.filter((s) => s === "pending").length,
      restSendDuringOutage: restDuring.status,
      historyDuringOutage: historyDuring,
      newSocketDuringOutage: upgradeDuring,
      backlogAtRecovery: ackedAtRecovery,
      backlogDrainedMs: drainedMs,
      proxy: stack.proxy.stats(),
    });
    expect(acksDuringOutage.length).toBeGreaterThan(10);
    expect(acksDuringOutage.every((s) => s === "pending")).toBe(true);
    expectClean(r);
  }, 240_000);

  it("Postgres answering after 5 s: sends are acked pending, nothing lost or doubled", async () => {
    const ledger = new Ledger("Postgres replies delayed 5 s");
    const room = await openRoom(stack, ledger, 3, "slow");
    cleanup.push(() => closeAll(room.sockets));
    const statuses: string[] = [];
    const lat: number[] = [];
    stack.pg({ delayMs: 5000 });
    await steadyTraffic(room.sockets, {
      perSocket: 12,
      intervalMs: 1000,
      tag: "slow",
      onAck: (ms, s) => {
        statuses.push(s);
        lat.push(ms);
      },
    });
    stack.pg({});
    await catchUp(room.sockets, maxSeq(room));
    const r = await ledger.reconcile(stack.db, { drainMs: 90_000, settleMs: 500 });
    record(r, {
      fault: "proxy delays every chunk 5 s (both directions) while sending",
      pendingAcks: statuses.filter((s) => s === "pending").length,
      ackP50ms: percentile(lat, 50),
      ackMaxMs: Math.max(...lat),
    });
    // The ack waits for the commit at most the write-through deadline (1 s here), whatever Postgres does.
    expect(Math.max(...lat)).toBeLessThan(5000);
    expectClean(r);
  }, 240_000);

  it("connection reset after COMMIT, before the reply: the retried flush stores nothing twice", async () => {
    const ledger = new Ledger("reset after COMMIT before reply");
    const room = await openRoom(stack, ledger, 3, "commit");
    cleanup.push(() => closeAll(room.sockets));
    stack.proxy.resetStats();
    stack.pg({ resetAfterCommit: 6 });
    await steadyTraffic(room.sockets, { perSocket: 15, intervalMs: 300, tag: "commit" });
    // Edits too: a retried flush of an update must not double anything either.
    stack.pg({});
    await catchUp(room.sockets, maxSeq(room));
    const r = await ledger.reconcile(stack.db, { drainMs: 60_000, settleMs: 500 });
    const proxy = stack.proxy.stats();
    record(r, { fault: "proxy resets the connection after 6 COMMITs reached Postgres, reply withheld", commitCuts: proxy.commitCuts, commitsSeen: proxy.commitsSeen });
    expect(proxy.commitCuts).toBeGreaterThanOrEqual(3);
    expectClean(r);
  }, 180_000);

  it("socket cut after the message is stored but before the ack: a retry with the same clientMessageId gives one message", async () => {
    const ledger = new Ledger("socket cut before ack, client retries");
    const room = await openRoom(stack, ledger, 2, "cut");
    cleanup.push(() => closeAll(room.sockets));
    const [sender, watcher] = room.sockets;
    // A slow commit holds the ack back (up to the 1 s deadline) after the room has stored and broadcast the message.
    stack.pg({ delayMs: 400 });
    let cutsBeforeAck = 0;
    for (let i = 0; i < 8; i++) {
      const cmid = `cut-${i}`;
      const seen = watcher.highestSeen;
      const attempt = sender.sendOnce(`cut ${i}`, cmid).then(
        () => "acked",
        () => "dropped",
      );
      // The watcher sees the broadcast, so the message is in the room's storage: cut the sender now.
      while (watcher.highestSeen <= seen) await sleep(2);
      sender.terminate();
      if ((await attempt) === "dropped") cutsBeforeAck++;
      await sender.sendReliably(`cut ${i}`, cmid, 30_000);
    }
    // The REST path: the request is abandoned once the message is visible, then retried.
    for (let i = 0; i < 4; i++) {
      const cmid = `cut-rest-${i}`;
      const seen = watcher.highestSeen;
      const abort = new AbortController();
      const attempt = restSend(stack.base, ledger, room.conversationId, room.users[0], `cut rest ${i}`, cmid, abort.signal).then(
        (res) => res.status,
        () => 0,
      );
      while (watcher.highestSeen <= seen) await sleep(2);
      abort.abort();
      const first = await attempt;
      const retry = await restSend(stack.base, ledger, room.conversationId, room.users[0], `cut rest ${i}`, cmid);
      expect([200, 201]).toContain(retry.status);
      if (first === 0) expect(retry.status).toBe(200);
    }
    stack.pg({});
    await catchUp(room.sockets, maxSeq(room));
    const r = await ledger.reconcile(stack.db, { drainMs: 30_000, settleMs: 500 });
    record(r, { fault: "sender's socket terminated / HTTP request aborted between broadcast and ack; retried", cutsBeforeAck });
    expect(cutsBeforeAck).toBeGreaterThanOrEqual(4);
    expectClean(r);
  }, 180_000);
});
