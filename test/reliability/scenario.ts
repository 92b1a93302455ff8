// Shared pieces of the fault scenarios: rooms of connected clients, steady traffic, results on disk.
import { appendFileSync, mkdirSync } from "node:fs";
import path from "node:path";
import { afterAll, afterEach, beforeAll, expect } from "vitest";
import { ROOT } from "../../scripts/lib/stack";
import { ChatSocket } from "./client";
import { makeUser, type ChatUser } from "./db";
import { summarize, type Ledger, type ReconcileReport } from "./ledger";
import { FaultStack } from "./stack";

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * One fault stack per test file (started before the first test, stopped after the last); after each test its
 * cleanups run and every fault is switched off. Returns the list a test pushes its cleanups onto.
 */
export function useFaultStack(vars: Record<string, string>, onStart: (stack: FaultStack) => void): (() => Promise<void> | void)[] {
  const cleanup: (() => Promise<void> | void)[] = [];
  let stack: FaultStack | undefined;
  beforeAll(async () => {
    stack = await FaultStack.start({ vars });
    onStart(stack);
  });
  afterEach(async () => {
    for (const fn of cleanup.splice(0)) await fn();
    await stack?.clearFaults();
  });
  afterAll(async () => {
    await stack?.stop();
  });
  return cleanup;
}

/** The ledger's verdict: nothing lost, doubled, reordered or altered; everything acked, persisted and delivered. */
export function expectClean(r: ReconcileReport, options: { pgGaps?: boolean } = {}): void {
  const summary = `${summarize(r)}\n${r.details.join("\n")}`;
  expect(r.lost, summary).toBe(0);
  expect(r.duplicated, summary).toBe(0);
  expect(r.outOfOrder, summary).toBe(0);
  expect(r.mismatched, summary).toBe(0);
  if (options.pgGaps !== false) expect(r.pgGaps, summary).toBe(0);
  expect(r.acked, summary).toBe(r.sent);
  expect(r.persisted, summary).toBe(r.sent);
  expect(r.delivered, summary).toBe(r.expectedDeliveries);
}

/** Where each scenario's counts go (vitest hides the logs of passing tests); docs/reliability.md is built from it. */
export const RESULTS_FILE = process.env.RELIABILITY_RESULTS ?? path.join(ROOT, ".data", "reliability", "last-run.jsonl");

export function record(report: ReconcileReport, extra: Record<string, unknown> = {}): void {
  mkdirSync(path.dirname(RESULTS_FILE), { recursive: true });
  const { details, ...counts } = report;
  appendFileSync(RESULTS_FILE, `${JSON.stringify({ at: new Date().toISOString(), ...counts, ...extra, details: details.slice(0, 10) })}\n`);
}

export interface Room {
  conversationId: string;
  users: ChatUser[];
  sockets: ChatSocket[];
}

/** A conversation seeded in Postgres with one connected socket per member. */
export async function openRoom(stack: FaultStack, ledger: Ledger, members: number, name: string): Promise<Room> {
  const users: ChatUser[] = [];
  for (let i = 0; i < members; i++) users.push(await makeUser(`${name}${i}`));
  const conversationId = await stack.db.seedConversation(members === 2 ? "direct" : "group", users);
  const sockets = users.map(
    (user, i) => new ChatSocket({ base: stack.base, conversationId, user, ledger, label: `${name}:${i}` }),
  );
  for (const s of sockets) await s.connectRetrying(30_000);
  return { conversationId, users, sockets };
}

/**
 * Every socket sends `perSocket` messages, one every `intervalMs` (staggered), each retried until acked.
 * Resolves with the time each ack took.
 */
export async function steadyTraffic(
  sockets: ChatSocket[],
  options: { perSocket: number; intervalMs: number; tag: string; deadlineMs?: number; onAck?: (ms: number, status: string) => void },
): Promise<number[]> {
  const latencies: number[] = [];
  await Promise.all(
    sockets.map(async (s, k) => {
      await sleep((options.intervalMs / sockets.length) * k);
      for (let i = 0; i < options.perSocket; i++) {
        const started = Date.now();
        const m = await s.sendReliably(`${options.tag} ${k}.${i}`, `${options.tag}-${k}-${i}`, options.deadlineMs ?? 120_000);
        const ms = Date.now() - started;
        latencies.push(ms);
        options.onAck?.(ms, m.status ?? "sent");
        const rest = options.intervalMs - ms;
        if (rest > 0) await sleep(rest);
      }
    }),
  );
  return latencies;
}

/** Reopens every socket that dropped (resuming after its highest seq) and waits until each has seen `upTo`. */
export async function catchUp(sockets: ChatSocket[], upTo: number, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (const s of sockets) {
    while (s.highestSeen < upTo) {
      if (Date.now() > deadline) return;
      if (!s.open) {
        await s.connectRetrying(Math.max(1000, deadline - Date.now())).catch(() => {});
        continue;
      }
      await sleep(100);
    }
  }
}

export function percentile(values: number[], p: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/** Close codes the server sent, over all sockets and incarnations (e.g. {"1006": 3}). */
export function closeCodes(sockets: ChatSocket[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const s of sockets) for (const c of s.closes) out[c.code] = (out[c.code] ?? 0) + 1;
  return out;
}

export async function closeAll(sockets: ChatSocket[]): Promise<void> {
  for (const s of sockets) s.terminate();
}
