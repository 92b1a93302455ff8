// `npm run soak -- --minutes N`: a bounded soak run on a stack of its own (embedded Postgres, in-memory Redis-REST,
// fake profile service, fault proxy, wrangler dev). Steady chat in several rooms, 10% of sockets dropped and
// reconnected (resuming) every minute, one Postgres blip and one Redis blip; at the end the message ledger is
// reconciled and the run reports workerd's memory slope, the error rate and the ledger counts.
//
// Options: --minutes N (1..120, default 2)  --rooms R (default 8)  --members M (2..8, default 4)
//          --rate MSGS_PER_SECOND (default 15)  --seed S  --blip-seconds B (default 5)  --json (only the JSON report)
//          --heap (every 30 s a full GC of the Worker isolate through its inspector, and its live JS heap reported)
// Exit code 0 when the ledger is clean (nothing lost, duplicated or out of order), 1 otherwise.
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { checkArgs } from "./lib/cli-args.js";
import { ROOT } from "./lib/stack.js";
import { openHeapProbe, type HeapProbe } from "../bench/harness/heap.js";
import { findInspector } from "../bench/harness/profiler.js";
import { ChatSocket, restSend } from "../test/reliability/client.js";
import { makeUser } from "../test/reliability/db.js";
import { Ledger, summarize } from "../test/reliability/ledger.js";
import { closeCodes } from "../test/reliability/scenario.js";
import { FaultStack } from "../test/reliability/stack.js";

interface Options {
  minutes: number;
  rooms: number;
  members: number;
  rate: number;
  seed: number;
  blipSeconds: number;
  json: boolean;
  heap: boolean;
}

const USAGE = `usage: npm run soak -- [--minutes N] [--rooms R] [--members M] [--rate MSGS_PER_SECOND] [--seed S]
                       [--blip-seconds B] [--json] [--heap]`;
function parseArgs(argv: string[]): Options {
  checkArgs(argv, { values: ["minutes", "rooms", "members", "rate", "seed", "blip-seconds"], flags: ["json", "heap"], usage: USAGE });
  const get = (name: string, fallback: number, min: number, max: number): number => {
    const i = argv.indexOf(`--${name}`);
    const raw = i >= 0 ? argv[i + 1] : argv.find((a) => a.startsWith(`--${name}=`))?.split("=")[1];
    if (raw === undefined) return fallback;
    const n = Number(raw);
    if (!Number.isFinite(n) || n < min || n > max) {
      console.error(`✗ --${name} must be a number between ${min} and ${max} (got ${raw})`);
      process.exit(2);
    }
    return n;
  };
  return {
    minutes: get("minutes", 2, 0.5, 120),
    rooms: Math.round(get("rooms", 8, 1, 100)),
    members: Math.round(get("members", 4, 2, 8)),
    rate: get("rate", 15, 0.5, 500),
    seed: Math.round(get("seed", 42, 0, 2 ** 31)),
    blipSeconds: get("blip-seconds", 5, 1, 60),
    json: argv.includes("--json"),
    heap: argv.includes("--heap"),
  };
}

/** mulberry32: a tiny seeded PRNG, so runs with the same seed make the same choices. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Least-squares slope of y over x. */
function slope(points: { x: number; y: number }[]): number {
  const n = points.length;
  if (n < 2) return 0;
  const mx = points.reduce((s, p) => s + p.x, 0) / n;
  const my = points.reduce((s, p) => s + p.y, 0) / n;
  let num = 0;
  let den = 0;
  for (const p of points) {
    num += (p.x - mx) * (p.y - my);
    den += (p.x - mx) ** 2;
  }
  return den === 0 ? 0 : num / den;
}

async function main(): Promise<void> {
  const opts = parseArgs(process.argv.slice(2));
  const log = (line: string) => {
    if (!opts.json) console.log(line);
  };
  const random = prng(opts.seed);
  const durationMs = opts.minutes * 60_000;
  log(`soak: ${opts.minutes} min, ${opts.rooms} rooms × ${opts.members} members, ~${opts.rate} msg/s, seed ${opts.seed}`);
  const stack = await FaultStack.start({ standalone: true, log, vars: { WRITE_THROUGH_DEADLINE_MS: "1000" } });
  const ledger = new Ledger(`soak ${opts.minutes} min`);
  const sockets: ChatSocket[] = [];
  const counters = { attempts: 0, failedAttempts: 0, restSends: 0, restFailures: 0, drops: 0, pendingAcks: 0 };
  const rss: { x: number; y: number }[] = [];
  /** The Worker's own runtime alone (wrangler dev also runs a proxy workerd in front of it, counted in `rss`). */
  const workerRss: { x: number; y: number }[] = [];
  /** The Worker isolate's live JS heap after a forced GC (--heap). */
  const liveHeap: { x: number; y: number }[] = [];
  let heapProbe: HeapProbe | undefined;
  const started = Date.now();
  let stopping = false;

  try {
    for (let r = 0; r < opts.rooms; r++) {
      const users = [];
      for (let m = 0; m < opts.members; m++) users.push(await makeUser(`soak${r}m${m}`));
      const conversationId = await stack.db.seedConversation(opts.members === 2 ? "direct" : "group", users);
      for (const [m, user] of users.entries()) {
        const s = new ChatSocket({ base: stack.base, conversationId, user, ledger, label: `r${r}:m${m}` });
        await s.connectRetrying(30_000);
        sockets.push(s);
      }
    }
    log(`  ${sockets.length} sockets open; chatting ...`);

    // Steady chat: each socket sends on its own loop, spaced so the total is ~rate msg/s.
    const perSocketMs = (sockets.length / opts.rate) * 1000;
    const loops = sockets.map(async (s, k) => {
      await sleep(random() * perSocketMs);
      let i = 0;
      while (!stopping) {
        const cmid = `soak-${k}-${i++}`;
        const content = `soak ${k}.${i} ${"x".repeat(Math.floor(random() * 200))}`;
        const viaRest = random() < 0.05;
        const t0 = Date.now();
        try {
          if (viaRest) {
            counters.restSends++;
            let res = await restSend(stack.base, ledger, s.opts.conversationId, s.opts.user, content, cmid);
            while (!res.message && !stopping) {
              counters.restFailures++;
              await sleep(500);
              res = await restSend(stack.base, ledger, s.opts.conversationId, s.opts.user, content, cmid);
            }
          } else {
            // sendReliably retries with the same clientMessageId; count the attempts that failed along the way.
            for (;;) {
              counters.attempts++;
              try {
                await s.ensureOpen();
                const m = await s.sendOnce(content, cmid);
                if (m.status === "pending") counters.pendingAcks++;
                break;
              } catch {
                counters.failedAttempts++;
                if (stopping && Date.now() - t0 > 60_000) throw new Error("gave up");
                await sleep(250);
              }
            }
          }
        } catch {
          // recorded in the ledger as unacked
        }
        const wait = perSocketMs * (0.5 + random()) - (Date.now() - t0);
        if (wait > 0) await sleep(wait);
      }
    });

    // Chaos: 10% of sockets dropped every minute (they reconnect and resume), one Postgres and one Redis blip.
    const chaos = (async () => {
      const pgAt = started + durationMs * 0.35;
      const redisAt = started + durationMs * 0.65;
      let nextDrop = started + 60_000 / 2;
      let pgDone = false;
      let redisDone = false;
      while (!stopping) {
        const now = Date.now();
        if (now >= nextDrop) {
          const n = Math.max(1, Math.round(sockets.length * 0.1));
          const victims = [...sockets].sort(() => random() - 0.5).slice(0, n);
          for (const v of victims) v.terminate();
          counters.drops += victims.length;
          log(`  +${((now - started) / 1000).toFixed(0)}s dropped ${victims.length} sockets`);
          // Idle listeners come back on their own, as an app would.
          for (const v of victims) void sleep(200 + random() * 2000).then(() => v.ensureOpen().catch(() => {}));
          nextDrop += 60_000;
        }
        if (!pgDone && now >= pgAt) {
          pgDone = true;
          log(`  +${((now - started) / 1000).toFixed(0)}s Postgres down for ${opts.blipSeconds}s`);
          stack.pg({ down: true });
          void sleep(opts.blipSeconds * 1000).then(() => stack.pg({}));
        }
        if (!redisDone && now >= redisAt) {
          redisDone = true;
          log(`  +${((now - started) / 1000).toFixed(0)}s Redis down for ${opts.blipSeconds}s`);
          await stack.redis({ down: true });
          void sleep(opts.blipSeconds * 1000).then(() => stack.redis({}));
        }
        await sleep(250);
      }
    })();

    if (opts.heap) {
      const url = await findInspector(stack.wrangler.process.pid ?? -1);
      if (!url) throw new Error("--heap: the Worker's inspector was not found under wrangler dev");
      heapProbe = await openHeapProbe(url);
    }
    const sampler = (async () => {
      for (let i = 0; !stopping; i++) {
        const x = (Date.now() - started) / 60_000;
        // Every sixth sample (30 s): a collection forced more often would change what the RSS shows.
        const live = heapProbe && i % 6 === 0 ? await heapProbe.liveMiB() : undefined;
        if (live !== undefined) liveHeap.push({ x, y: live });
        rss.push({ x, y: (await stack.workerdRssKb()) / 1024 });
        workerRss.push({ x, y: ((await stack.userWorkerd())?.rssKb ?? NaN) / 1024 });
        await sleep(5000);
      }
    })();

    const progress = setInterval(() => {
      const t = ledger.totals();
      log(`  +${((Date.now() - started) / 1000).toFixed(0)}s sent ${t.sent}, acked ${t.acked} (pending ${t.pending}), rss ${rss.at(-1)?.y.toFixed(0) ?? "?"} MiB (Worker runtime ${workerRss.at(-1)?.y.toFixed(0) ?? "?"})`);
    }, 15_000);

    await sleep(durationMs);
    stopping = true;
    clearInterval(progress);
    await Promise.all([...loops, chaos, sampler]);
    await stack.clearFaults();
    log("  traffic stopped; reconciling ...");
    const top = new Map<string, number>();
    for (const s of sockets) top.set(s.opts.conversationId, Math.max(top.get(s.opts.conversationId) ?? 0, s.highestSeen));
    const deadline = Date.now() + 60_000;
    for (const s of sockets) {
      while (s.highestSeen < (top.get(s.opts.conversationId) ?? 0) && Date.now() < deadline) {
        if (!s.open) await s.connectRetrying(10_000).catch(() => {});
        else await sleep(100);
      }
    }
    const report = await ledger.reconcile(stack.db, { drainMs: 60_000, settleMs: 1000 });
    const warm = rss.filter((p) => p.x >= Math.min(0.5, opts.minutes / 4));
    const result = {
      at: new Date().toISOString(),
      options: opts,
      durationMin: (Date.now() - started) / 60_000,
      ledger: { ...report, details: report.details.slice(0, 20) },
      throughputMsgPerSec: report.sent / (durationMs / 1000),
      errors: {
        wsAttempts: counters.attempts,
        wsFailedAttempts: counters.failedAttempts,
        restSends: counters.restSends,
        restFailures: counters.restFailures,
        errorRate: (counters.failedAttempts + counters.restFailures) / Math.max(1, counters.attempts + counters.restSends),
        errorFrames: sockets.reduce((n, s) => n + s.errors.length, 0),
      },
      pendingAcks: counters.pendingAcks,
      socketDrops: counters.drops,
      /** Close codes clients saw: 1006 from our drops (terminate) and from any Worker restart/reload. */
      socketCloses: closeCodes(sockets),
      memory: {
        samples: rss.length,
        startMiB: rss[0]?.y ?? 0,
        endMiB: rss.at(-1)?.y ?? 0,
        peakMiB: Math.max(0, ...rss.map((p) => p.y)),
        slopeMiBPerMin: slope(warm),
        /** The second half alone: growth that flattens is warm-up, growth that does not is a leak candidate. */
        secondHalfSlopeMiBPerMin: slope(rss.filter((p) => p.x >= opts.minutes / 2)),
        series: rss.map((p) => [Number(p.x.toFixed(3)), Number(p.y.toFixed(1))]),
        /** The same for the Worker's runtime alone, without wrangler's proxy process. */
        worker: {
          startMiB: workerRss[0]?.y ?? 0,
          endMiB: workerRss.at(-1)?.y ?? 0,
          slopeMiBPerMin: slope(workerRss.filter((p) => p.x >= Math.min(0.5, opts.minutes / 4))),
          secondHalfSlopeMiBPerMin: slope(workerRss.filter((p) => p.x >= opts.minutes / 2)),
        },
        /** --heap: the Worker isolate's JS heap still live after a full collection. */
        liveHeap: opts.heap
          ? {
              startMiB: liveHeap[0]?.y ?? 0,
              endMiB: liveHeap.at(-1)?.y ?? 0,
              slopeMiBPerMin: slope(liveHeap),
              series: liveHeap.map((p) => [Number(p.x.toFixed(3)), Number(p.y.toFixed(2))]),
            }
          : undefined,
      },
    };
    const dir = path.join(ROOT, ".data", "reliability");
    await mkdir(dir, { recursive: true });
    await writeFile(path.join(dir, "soak-last.json"), JSON.stringify(result, null, 2));
    if (opts.json) console.log(JSON.stringify(result, null, 2));
    else {
      log("");
      log(summarize(report));
      log(
        `errors: ${result.errors.wsFailedAttempts + result.errors.restFailures} failed attempts of ${result.errors.wsAttempts + result.errors.restSends} ` +
          `(rate ${(result.errors.errorRate * 100).toFixed(2)}%), ${result.errors.errorFrames} error frames; ${counters.pendingAcks} acks pending; ` +
          `${counters.drops} sockets dropped by the chaos loop, closes seen ${JSON.stringify(result.socketCloses)}`,
      );
      log(
        `memory (workerd RSS): ${result.memory.startMiB.toFixed(0)} → ${result.memory.endMiB.toFixed(0)} MiB, peak ${result.memory.peakMiB.toFixed(0)} MiB, ` +
          `slope ${result.memory.slopeMiBPerMin.toFixed(2)} MiB/min over ${warm.length} samples (second half ${result.memory.secondHalfSlopeMiBPerMin.toFixed(2)} MiB/min); ` +
          `Worker runtime alone ${result.memory.worker.startMiB.toFixed(0)} → ${result.memory.worker.endMiB.toFixed(0)} MiB, ` +
          `slope ${result.memory.worker.slopeMiBPerMin.toFixed(2)} (second half ${result.memory.worker.secondHalfSlopeMiBPerMin.toFixed(2)}) MiB/min`,
      );
      const heap = result.memory.liveHeap;
      if (heap) log(`live JS heap after a full GC (Worker isolate): ${heap.startMiB.toFixed(1)} → ${heap.endMiB.toFixed(1)} MiB, slope ${heap.slopeMiBPerMin.toFixed(2)} MiB/min over ${liveHeap.length} samples`);
      for (const d of report.details.slice(0, 10)) log(`  ${d}`);
      log(`report: ${path.relative(ROOT, path.join(dir, "soak-last.json"))}`);
    }
    const clean = report.lost === 0 && report.duplicated === 0 && report.outOfOrder === 0 && report.mismatched === 0 && report.pgGaps === 0;
    process.exitCode = clean ? 0 : 1;
  } finally {
    stopping = true;
    heapProbe?.close();
    for (const s of sockets) s.terminate();
    await stack.stop();
  }
}

main().then(
  () => process.exit(process.exitCode ?? 0),
  (err: Error) => {
    console.error(`✗ ${err.stack ?? err.message}`);
    process.exit(1);
  },
);
