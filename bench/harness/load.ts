import { now, sleep, type ChatSocket } from "./clients.js";
import { newHist, recordMs, summarize, type Hist, type Summary } from "./hist.js";

const content = (i: number) => `bench message ${i}: the quick brown fox jumps over the lazy dog`;

/** Closed loop: one message in flight; the next is sent when the previous one is acknowledged. */
export async function closedLoop(sender: ChatSocket, n: number, prefix: string, timeoutMs = 10_000): Promise<{ hist: Hist; statuses: Record<string, number> }> {
  const hist = newHist();
  const statuses: Record<string, number> = {};
  let waiting: { cmid: string; resolve: (status: string) => void } | undefined;
  sender.onAck = (cmid, _t, status) => {
    if (waiting?.cmid === cmid) waiting.resolve(status);
  };
  sender.onError = (message) => {
    waiting?.resolve(`error ${message}`);
  };
  for (let i = 0; i < n; i++) {
    const cmid = `${prefix}${i}`;
    const t0 = now();
    const status = await new Promise<string>((resolve) => {
      const timer = setTimeout(() => resolve("timeout"), timeoutMs);
      waiting = {
        cmid,
        resolve: (s) => {
          clearTimeout(timer);
          resolve(s);
        },
      };
      sender.sendMessage(cmid, content(i));
    });
    const t1 = now();
    statuses[status] = (statuses[status] ?? 0) + 1;
    if (status === "timeout") break;
    recordMs(hist, t1 - t0);
  }
  sender.onAck = undefined;
  return { hist, statuses };
}

export interface OpenLoopResult {
  offeredRate: number;
  sent: number;
  acked: number;
  /** Acks by status ("sent", "pending", "error ..."). */
  statuses: Record<string, number>;
  /** Send→ack, measured from the intended send time (no coordinated omission). */
  ack: Summary;
  /** Intended send → new_message at one receiving socket. */
  delivery?: Summary;
  delivered: number;
  /** Sends per second the scheduler actually managed (a client-side limit shows up here). */
  achievedRate: number;
  /** ms from the first intended send to the last ack (or the drain deadline). */
  wallMs: number;
}

/**
 * Open loop: message i is due at start + i/rate whatever happened to earlier ones; the senders take turns. Latency
 * is counted from the due time, so a server that falls behind is charged for the queueing it causes.
 */
export async function openLoop(o: {
  senders: ChatSocket[];
  receiver?: ChatSocket;
  rate: number;
  durationMs: number;
  prefix: string;
  drainMs?: number;
}): Promise<OpenLoopResult> {
  const total = Math.max(1, Math.floor((o.rate * o.durationMs) / 1000));
  const due = new Float64Array(total);
  const ackHist = newHist();
  const delHist = newHist();
  const statuses: Record<string, number> = {};
  let acked = 0;
  let delivered = 0;
  let lastAck = 0;
  const indexOf = (cmid: string): number => {
    if (!cmid?.startsWith(o.prefix)) return -1;
    const i = Number(cmid.slice(o.prefix.length));
    return Number.isInteger(i) && i >= 0 && i < total ? i : -1;
  };
  let allAcked: (() => void) | undefined;
  for (const s of o.senders) {
    s.onAck = (cmid, t, status) => {
      const i = indexOf(cmid);
      if (i < 0) return;
      statuses[status] = (statuses[status] ?? 0) + 1;
      recordMs(ackHist, t - due[i]);
      acked++;
      lastAck = t;
      if (acked >= total) allAcked?.();
    };
    s.onError = (message) => {
      statuses[`error ${message}`] = (statuses[`error ${message}`] ?? 0) + 1;
    };
  }
  if (o.receiver) {
    o.receiver.onMessage = (cmid, t) => {
      const i = indexOf(cmid);
      if (i < 0) return;
      recordMs(delHist, t - due[i]);
      delivered++;
    };
  }
  const interval = 1000 / o.rate;
  const start = now();
  let sent = 0;
  await new Promise<void>((resolve) => {
    const tick = () => {
      const t = now();
      const upTo = Math.min(total, Math.floor((t - start) / interval) + 1);
      while (sent < upTo) {
        due[sent] = start + sent * interval;
        o.senders[sent % o.senders.length].sendMessage(`${o.prefix}${sent}`, content(sent));
        sent++;
      }
      if (sent >= total) resolve();
      else setTimeout(tick, Math.max(0, Math.min(1, start + sent * interval - now())));
    };
    tick();
  });
  const sendEnd = now();
  if (acked < total) {
    await Promise.race([new Promise<void>((r) => (allAcked = r)), sleep(o.drainMs ?? 10_000)]);
  }
  await sleep(20); // stragglers at the receiver
  for (const s of o.senders) s.onAck = s.onError = undefined;
  if (o.receiver) o.receiver.onMessage = undefined;
  return {
    offeredRate: o.rate,
    sent,
    acked,
    statuses,
    ack: summarize(ackHist),
    delivery: o.receiver ? summarize(delHist) : undefined,
    delivered,
    achievedRate: Math.round((sent / Math.max(1, sendEnd - start)) * 1000),
    wallMs: Math.round((acked >= total ? lastAck : now()) - start),
  };
}
