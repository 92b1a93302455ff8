// S3 fan-out: one sender, N receiving sockets in one conversation; first and last delivery per message.
import { now, pool, sleep, WsChatSocket, type ChatSocket } from "../harness/clients.js";
import type { Ctx } from "../harness/context.js";
import { newHist, recordMs, summarize } from "../harness/hist.js";
import { cpuSince, cpuSnapshot } from "../harness/proc.js";
import type { Row } from "../harness/report.js";
import type { ChatTarget } from "../harness/targets.js";

const CONNECT_CONCURRENCY = 32;

export async function fanOut(ctx: Ctx, target: ChatTarget, receivers: number, messages: number, maxSeconds: number): Promise<Row[]> {
  const room = await target.createRoom(receivers + 1);
  const connectHist = newHist();
  const cpuConnect = cpuSnapshot(ctx.serverPid(target));
  const t0 = now();
  const sockets: ChatSocket[] = await pool(receivers + 1, CONNECT_CONCURRENCY, async (i) => {
    const t = now();
    const s = await room.connect(i);
    recordMs(connectHist, now() - t);
    return s;
  });
  const connectWall = now() - t0;
  const readyBytes = Math.max(...sockets.map((s) => (s instanceof WsChatSocket ? s.readyBytes : 0)));
  const connectCpu = cpuSince(cpuConnect, ctx.serverPid(target), receivers + 1);
  const [sender, ...rx] = sockets;
  const first = newHist();
  const last = newHist();
  const ack = newHist();
  let incomplete = 0;
  const errors: Record<string, number> = {};
  const cpuSend = cpuSnapshot(ctx.serverPid(target));
  let sentCount = 0;
  let sendCpu: Record<string, number> = {};
  try {
    let current = "";
    let got = 0;
    let tFirst = 0;
    let tLast = 0;
    let tAck = 0;
    let done: (() => void) | undefined;
    const check = () => {
      if (got === rx.length && tAck > 0) done?.();
    };
    for (const s of rx) {
      s.onMessage = (cmid, t) => {
        if (cmid !== current) return;
        if (got === 0) tFirst = t;
        got++;
        if (got === rx.length) tLast = t;
        check();
      };
    }
    sender.onAck = (cmid, t) => {
      if (cmid !== current) return;
      tAck = t;
      check();
    };
    sender.onError = (message) => {
      errors[message] = (errors[message] ?? 0) + 1;
    };
    let tStart = now();
    const timeoutMs = receivers >= 1000 ? 30_000 : 5_000;
    for (let i = receivers >= 1000 ? -1 : -3; i < messages; i++) {
      current = `s3-${receivers}-${i}`;
      got = 0;
      tAck = 0;
      const complete = new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), timeoutMs);
        done = () => {
          clearTimeout(timer);
          resolve(true);
        };
      });
      const ts = now();
      sentCount++;
      sender.sendMessage(current, `fan-out ${i}`);
      const ok = await complete;
      if (!ok) {
        incomplete++;
        const closed = sockets.filter((s) => s.closed).length;
        const key = `timeout (${got}/${rx.length} delivered, ack ${tAck ? "yes" : "no"}, ${closed} sockets closed)`;
        errors[key] = (errors[key] ?? 0) + 1;
      } else if (i >= 0) {
        recordMs(first, tFirst - ts);
        recordMs(last, tLast - ts);
        recordMs(ack, tAck - ts);
      }
      // The time cap counts from the first measured message and still lets a slow server give 5 samples.
      const measuring = i >= 0 ? now() - tStart : 0;
      if (i === -1) tStart = now();
      const enough = first.totalCount >= 5 ? measuring > maxSeconds * 1000 : measuring > 3 * maxSeconds * 1000;
      if (incomplete >= 3 || enough || ctx.remaining() < 5) break;
      await sleep(2);
    }
    sendCpu = cpuSince(cpuSend, ctx.serverPid(target), sentCount);
  } finally {
    for (const s of sockets) s.close();
  }
  const values = { receivers, incomplete, ...errors, ...sendCpu };
  ctx.log(`  S3 ${target.name} ×${receivers}: first p50 ${summarize(first).p50} ms, last p50 ${summarize(last).p50} ms, p99 ${summarize(last).p99} ms`);
  return [
    { scenario: "S3", target: target.name, case: `${receivers} sockets: first delivery`, summary: summarize(first), values },
    { scenario: "S3", target: target.name, case: `${receivers} sockets: last delivery`, summary: summarize(last) },
    { scenario: "S3", target: target.name, case: `${receivers} sockets: sender ack`, summary: summarize(ack) },
    {
      scenario: "S3",
      target: target.name,
      case: `${receivers} sockets: connect (upgrade→ready)`,
      summary: summarize(connectHist),
      values: { "wall s": Math.round(connectWall / 10) / 100, concurrency: CONNECT_CONCURRENCY, ...(readyBytes ? { "ready frame KiB": Math.round(readyBytes / 102.4) / 10 } : {}), ...connectCpu },
    },
  ];
}

/** S3 at 2, 8 and 100 receiving sockets, on the service, both baselines and the runtime's floor. */
export async function s3(ctx: Ctx): Promise<Row[]> {
  const rows: Row[] = [];
  for (const target of [ctx.edge, ...ctx.baselines, ...ctx.references]) {
    for (const n of [2, 8, 100]) {
      if (ctx.remaining() < 10) {
        rows.push({ scenario: "S3", target: target.name, case: `${n} sockets`, note: "skipped: time budget" });
        continue;
      }
      rows.push(...(await fanOut(ctx, target, n, ctx.size(30, 200), ctx.size(5, 20))));
      await sleep(300);
    }
  }
  return rows;
}

/** S3 at 1000 receiving sockets (1001 users seeded in Postgres, one socket each), on the service. */
export async function s3Large(ctx: Ctx): Promise<Row[]> {
  return fanOut(ctx, ctx.edge, 1000, ctx.size(3, 30), ctx.size(20, 60));
}
