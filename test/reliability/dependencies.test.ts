import { describe, expect, it } from "vitest";
import WebSocket from "ws";
import { ChatSocket, restSend } from "./client";
import { makeUser } from "./db";
import { Ledger } from "./ledger";
import { catchUp, closeAll, closeCodes, expectClean, openRoom, percentile, record, type Room, sleep, steadyTraffic, useFaultStack } from "./scenario";
import type { FaultStack } from "./stack";

let stack: FaultStack;
// Short profile TTL so cached profiles go stale within a test; a profile timeout well under the test's patience.
const cleanup = useFaultStack({ WRITE_THROUGH_DEADLINE_MS: "1000", PROFILE_CACHE_TTL: "10", PROFILE_SERVICE_TIMEOUT: "1500" }, (started) => (stack = started));

interface SideStats {
  historyStatuses: Record<string, number>;
  historyMs: number[];
  restSendStatuses: Record<string, number>;
  senderKinds: Record<string, number>;
}

/** WebSocket traffic plus, in parallel, REST history reads and REST sends: the service must keep doing all three. */
async function trafficWithReads(room: Room, ledger: Ledger, tag: string): Promise<SideStats & { ackMs: number[] }> {
  const stats: SideStats = { historyStatuses: {}, historyMs: [], restSendStatuses: {}, senderKinds: {} };
  let done = false;
  const reader = (async () => {
    let i = 0;
    while (!done) {
      const user = room.users[i % room.users.length];
      const started = Date.now();
      const res = await fetch(`${stack.base}/conversations/${room.conversationId}/messages?limit=20`, {
        headers: { authorization: `Bearer ${user.token}` },
      });
      stats.historyMs.push(Date.now() - started);
      stats.historyStatuses[res.status] = (stats.historyStatuses[res.status] ?? 0) + 1;
      const body = (await res.json().catch(() => undefined)) as { messages?: { sender?: { stale?: boolean; name?: string } }[] } | undefined;
      for (const m of body?.messages ?? []) {
        const kind = !m.sender ? "none" : m.sender.stale ? "stale" : "profile";
        stats.senderKinds[kind] = (stats.senderKinds[kind] ?? 0) + 1;
      }
      if (i % 3 === 0) {
        const sent = await restSend(stack.base, ledger, room.conversationId, user, `${tag} rest ${i}`, `${tag}-rest-${i}`);
        stats.restSendStatuses[sent.status] = (stats.restSendStatuses[sent.status] ?? 0) + 1;
        if (!sent.message) await restSend(stack.base, ledger, room.conversationId, user, `${tag} rest ${i}`, `${tag}-rest-${i}`);
      }
      i++;
      await sleep(150);
    }
  })();
  const ackMs = await steadyTraffic(room.sockets, { perSocket: 12, intervalMs: 400, tag });
  done = true;
  await reader;
  return { ...stats, ackMs };
}

async function runDependencyScenario(name: string, tag: string, fault: () => Promise<void>, label: string) {
  const ledger = new Ledger(name);
  const room = await openRoom(stack, ledger, 3, tag);
  cleanup.push(() => closeAll(room.sockets));
  await fault();
  const stats = await trafficWithReads(room, ledger, tag);
  await stack.clearFaults();
  await catchUp(room.sockets, Math.max(...room.sockets.map((s) => s.highestSeen)));
  const r = await ledger.reconcile(stack.db, { drainMs: 30_000, settleMs: 300 });
  record(r, {
    fault: label,
    historyStatuses: stats.historyStatuses,
    historyP50ms: percentile(stats.historyMs, 50),
    historyP99ms: percentile(stats.historyMs, 99),
    restSendStatuses: stats.restSendStatuses,
    senderProfiles: stats.senderKinds,
    ackP50ms: percentile(stats.ackMs, 50),
    ackP99ms: percentile(stats.ackMs, 99),
    socketCloses: closeCodes(room.sockets),
  });
  return { r, stats };
}

describe("Redis and profile-service faults: sends and history keep working", () => {
  it("Redis down (every REST call 503)", async () => {
    const { r, stats } = await runDependencyScenario("Redis down", "rdown", () => stack.redis({ down: true }), "Redis-REST answers 503");
    expect(Object.keys(stats.historyStatuses)).toEqual(["200"]);
    expectClean(r, { pgGaps: false });
  });

  it("Redis slow (every call 3 s)", async () => {
    const { r, stats } = await runDependencyScenario("Redis slow 3 s", "rslow", () => stack.redis({ delayMs: 3000 }), "Redis-REST delays each request 3 s");
    expect(Object.keys(stats.historyStatuses)).toEqual(["200"]);
    // The cache is given ~300 ms per wait on the request path, not 3 s.
    expect(percentile(stats.historyMs, 50)).toBeLessThan(2000);
    expectClean(r, { pgGaps: false });
  });

  it("Redis answering garbage (200 with a body that is not JSON)", async () => {
    const { r, stats } = await runDependencyScenario("Redis garbage", "rgarb", () => stack.redis({ garbage: true }), "Redis-REST answers 200 with invalid JSON");
    expect(Object.keys(stats.historyStatuses)).toEqual(["200"]);
    expectClean(r, { pgGaps: false });
  });

  it("profile service timing out: placeholder or stale profiles, sends and history unaffected", async () => {
    // Warm the caches, let the entries expire (TTL 10 s), then make the service hang past its timeout.
    const ledger = new Ledger("profile service timing out");
    const room = await openRoom(stack, ledger, 3, "prof");
    cleanup.push(() => closeAll(room.sockets));
    await steadyTraffic(room.sockets, { perSocket: 2, intervalMs: 100, tag: "prof-warm" });
    for (const u of room.users) {
      await fetch(`${stack.base}/conversations/${room.conversationId}/messages`, { headers: { authorization: `Bearer ${u.token}` } });
    }
    await sleep(11_000);
    await stack.profiles({ delayMs: 10_000 });
    const stats = await trafficWithReads(room, ledger, "prof");
    await stack.clearFaults();
    await catchUp(room.sockets, Math.max(...room.sockets.map((s) => s.highestSeen)));
    const r = await ledger.reconcile(stack.db, { drainMs: 30_000, settleMs: 300 });
    record(r, {
      fault: "profile service answers after 10 s (timeout 1.5 s), cache entries expired",
      historyStatuses: stats.historyStatuses,
      historyP50ms: percentile(stats.historyMs, 50),
      historyP99ms: percentile(stats.historyMs, 99),
      restSendStatuses: stats.restSendStatuses,
      senderProfiles: stats.senderKinds,
      ackP50ms: percentile(stats.ackMs, 50),
      ackP99ms: percentile(stats.ackMs, 99),
      socketCloses: closeCodes(room.sockets),
    });
    expect(Object.keys(stats.historyStatuses)).toEqual(["200"]);
    expect(stats.senderKinds.none ?? 0).toBe(0);
    expect(stats.senderKinds.stale ?? 0).toBeGreaterThan(0);
    expectClean(r, { pgGaps: false });
  }, 120_000);

  it("a socket that resumes while a send waits on a slow profile lookup sees that seq once (resume/broadcast race)", async () => {
    const ledger = new Ledger("resume during a slow send");
    const a = await makeUser("race-a");
    const b = await makeUser("race-b");
    const conversationId = await stack.db.seedConversation("direct", [a, b]);
    const sender = new ChatSocket({ base: stack.base, conversationId, user: a, ledger, label: "race:a" });
    await sender.connectRetrying(30_000);
    cleanup.push(() => sender.terminate());
    // A cold room profile cache and a hanging profile service: the send stores seq 1, then waits ~1.5 s for the
    // sender's profile before it broadcasts.
    await stack.profiles({ delayMs: 10_000 });
    const ack = sender.sendOnce("hello", "race-1");
    await sleep(300);
    const ws = new WebSocket(`${stack.base.replace(/^http/, "ws")}/conversations/${conversationId}/ws?afterSeq=0`, {
      headers: { authorization: `Bearer ${b.token}` },
    });
    cleanup.push(() => ws.terminate());
    const frames: { type: string; data: any }[] = [];
    ws.on("message", (raw) => frames.push(JSON.parse(raw.toString())));
    await ack;
    await sleep(2500);
    const seqs = frames.filter((f) => f.type === "new_message").map((f) => f.data.message.seq as number);
    appendRace(seqs, frames.map((f) => f.type));
    expect(seqs, `frames: ${frames.map((f) => f.type).join(",")}`).toEqual([1]);
  }, 60_000);
});

function appendRace(seqs: number[], types: string[]): void {
  record(
    {
      scenario: "resume during a slow send (race repro)",
      conversations: 1, sent: 1, acked: 1, ackedPending: 0, unacked: 0, persisted: 1, pgRows: 1, receivers: 1,
      expectedDeliveries: 1, delivered: seqs.length > 0 ? 1 : 0, deliveryFrames: seqs.length, reconnects: 0,
      lost: seqs.length === 0 ? 1 : 0, duplicated: Math.max(0, seqs.length - 1), outOfOrder: 0, mismatched: 0, overlap: 0, pgGaps: 0,
      details: [],
    },
    { fault: "profile service hangs (10 s, timeout 1.5 s); B connects with ?afterSeq=0 while A's send waits for A's profile", frames: types },
  );
}
