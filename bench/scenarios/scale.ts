// S5 many conversations at once (connect time, workerd memory, a send in each); S12 memory per idle socket.
import { readdirSync } from "node:fs";
import { JsonWs, now, pool, sleep, WsChatSocket } from "../harness/clients.js";
import type { Ctx } from "../harness/context.js";
import { newHist, recordMs, summarize } from "../harness/hist.js";
import { cpuSince, cpuSnapshot, openFilesLimit, rssKb } from "../harness/proc.js";
import { control, type ControlStats } from "../harness/control.js";
import type { Row } from "../harness/report.js";
import type { ChatTarget } from "../harness/targets.js";

const PER_CONVERSATION = 5;
const CONNECT_CONCURRENCY = 32;
/**
 * Open files the Worker's workerd holds per client WebSocket. Under wrangler dev about five: two sockets (the
 * client's, and the hop from wrangler's proxy) and two or three pipes (measured: 300 sockets, 600–900 pipes).
 * Served by Miniflare directly, about one (S5 reports it as "workerd fds per socket": 0.9 at 4000 sockets).
 * Past its open-files limit workerd dies ("accept: Too many open files").
 */
const FDS_WRANGLER = 6;
const FDS_MINIFLARE = 2;

function openFds(pid: number | undefined): number {
  try {
    return pid ? readdirSync(`/proc/${pid}/fd`).length : NaN;
  } catch {
    return NaN;
  }
}

export interface S5Fixture {
  conversations: number;
  sockets: (WsChatSocket | undefined)[];
}

/** S5, first half: every conversation's sockets, as fast as the client allows; the sockets stay open for s5Send. */
export async function s5Connect(ctx: Ctx): Promise<{ rows: Row[]; fixture: S5Fixture }> {
  const wanted = ctx.size(100, 1000);
  const fdLimit = openFilesLimit(ctx.workerd());
  const fdsPerSocket = ctx.stack.runtime === "wrangler" ? FDS_WRANGLER : FDS_MINIFLARE;
  const fit = fdLimit === undefined ? wanted : Math.floor((fdLimit * 0.8) / fdsPerSocket / PER_CONVERSATION);
  const conversations = Math.min(wanted, fit);
  if (conversations < wanted) {
    ctx.log(`  S5: workerd may open ${fdLimit} files: ${conversations} conversations instead of ${wanted} (about ${fdsPerSocket} per socket)`);
  }
  // 50 users, each in conversations/10 of the conversations (5 distinct members per conversation).
  const users = await ctx.db.createUsers(50, "s5", ctx.stack.jwtSecret);
  const lists = Array.from({ length: conversations }, (_, c) =>
    Array.from({ length: PER_CONVERSATION }, (_, j) => users[(c * PER_CONVERSATION + j * 11) % users.length].id),
  );
  for (const l of lists) if (new Set(l).size !== l.length) throw new Error("S5: duplicate member");
  const ids = await ctx.db.seedConversations(lists);
  const tokenOf = new Map(users.map((u) => [u.id, u.token]));
  const wsBase = ctx.stack.baseUrl.replace(/^http/, "ws");

  await sleep(1000);
  const rssBefore = rssKb(ctx.workerd());
  const fdsBefore = openFds(ctx.workerd());
  const connect = newHist();
  const failures: Record<string, number> = {};
  const cpu = cpuSnapshot(ctx.workerd());
  // Postgres connections through the bridge while rooms start: each room opens its own pool.
  const bridgeBefore = await control<ControlStats>({ op: "stats" });
  // Each room opens its own Postgres connection to load (production goes through Neon's pooler); rooms that start
  // while the server is at max_connections answer their upgrades 503 until a connection frees up.
  const maxConnections = Number((await ctx.db.query<{ max_connections: string }>("SHOW max_connections"))[0]?.max_connections ?? NaN);
  let peakPg = 0;
  const poll = setInterval(() => {
    void control<ControlStats>({ op: "stats" }).then((st) => (peakPg = Math.max(peakPg, st.bridge.current)));
  }, 100);
  const t0 = now();
  const total = conversations * PER_CONVERSATION;
  // Socket k: conversation k / 5, member k % 5 — a conversation's members connect together, as when a group comes online.
  const connectDeadline = t0 + ctx.size(20, 120) * 1000;
  let abandoned = 0;
  const sockets = await pool(total, CONNECT_CONCURRENCY, async (k) => {
    if (now() > connectDeadline) {
      abandoned++;
      return undefined;
    }
    const c = Math.floor(k / PER_CONVERSATION);
    const member = k % PER_CONVERSATION;
    const t = now();
    try {
      const ws = await JsonWs.connect(`${wsBase}/conversations/${ids[c]}/ws`, { authorization: `Bearer ${tokenOf.get(lists[c][member])}` });
      recordMs(connect, now() - t);
      return new WsChatSocket(ws);
    } catch (err) {
      const key = (err as Error).message.slice(0, 60);
      failures[key] = (failures[key] ?? 0) + 1;
      return undefined;
    }
  });
  const connectWall = now() - t0;
  clearInterval(poll);
  const bridgeAfter = await control<ControlStats>({ op: "stats" });
  const connectCpu = cpuSince(cpu, ctx.workerd(), Math.max(1, sockets.filter(Boolean).length));
  await sleep(2000);
  const rssAfter = rssKb(ctx.workerd());
  const open = sockets.filter(Boolean).length;
  const fdsPer = (openFds(ctx.workerd()) - fdsBefore) / Math.max(1, open);
  const complete = Array.from({ length: conversations }, (_, c) => sockets.slice(c * PER_CONVERSATION, (c + 1) * PER_CONVERSATION).every(Boolean)).filter(Boolean).length;
  ctx.log(`  S5: ${open}/${total} sockets in ${(connectWall / 1000).toFixed(1)} s; workerd RSS ${Math.round(rssBefore / 1024)} → ${Math.round(rssAfter / 1024)} MiB`);
  const deltaMiB = (rssAfter - rssBefore) / 1024;
  const rows: Row[] = [
    {
      scenario: "S5",
      target: "edge",
      case: `${conversations} conversations × ${PER_CONVERSATION} sockets: connect`,
      summary: summarize(connect),
      values: {
        open,
        "conversations with all 5 open": complete,
        "wall s": Math.round(connectWall / 100) / 10,
        concurrency: CONNECT_CONCURRENCY,
        "RSS before MiB": Math.round(rssBefore / 1024),
        "RSS after MiB": Math.round(rssAfter / 1024),
        "KiB per conversation": Math.round((rssAfter - rssBefore) / conversations),
        "workerd fds per socket": Math.round(fdsPer * 10) / 10,
        ...(abandoned ? { "not tried (time cap)": abandoned } : {}),
        ...connectCpu,
        "pg connections opened": bridgeAfter.bridge.opened - bridgeBefore.bridge.opened,
        "pg connections peak": peakPg,
        "pg max_connections": maxConnections,
        ...(conversations < wanted ? { "capped from": wanted, "workerd open-files limit": fdLimit ?? 0 } : {}),
        ...failures,
      },
      note: Number.isNaN(deltaMiB) ? "workerd pid not found: no memory figures" : undefined,
    },
  ];
  return { rows, fixture: { conversations, sockets } };
}

/** S5, second half: one send in each conversation whose five sockets are open (member 0 sends), 16 at a time. */
export async function s5Send(ctx: Ctx, fx: S5Fixture): Promise<Row[]> {
  const { conversations, sockets } = fx;
  const ack = newHist();
  const last = newHist();
  const misses: Record<string, number> = {};
  let incomplete = 0;
  const sendDeadline = now() + ctx.size(15, 60) * 1000;
  let notTried = 0;
  try {
    await pool(conversations, 16, async (c) => {
      if (now() > sendDeadline) {
        notTried++;
        return;
      }
      const members = Array.from({ length: PER_CONVERSATION }, (_, j) => sockets[c * PER_CONVERSATION + j]);
      const [sender, ...rx] = members;
      if (!sender || rx.some((s) => !s || s.closed) || sender.closed) return;
      const cmid = `s5-${c}`;
      const t = now();
      let got = 0;
      let acked = false;
      const ok = await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), 10_000);
        const check = () => {
          if (acked && got === rx.length) {
            clearTimeout(timer);
            resolve(true);
          }
        };
        sender.onAck = (id, ta) => {
          if (id !== cmid) return;
          recordMs(ack, ta - t);
          acked = true;
          check();
        };
        sender.onError = (message) => {
          misses[`error: ${message.slice(0, 60)}`] = (misses[`error: ${message.slice(0, 60)}`] ?? 0) + 1;
        };
        for (const s of rx) {
          s!.onMessage = (id, tm) => {
            if (id !== cmid) return;
            if (++got === rx.length) recordMs(last, tm - t);
            check();
          };
        }
        sender.sendMessage(cmid, `hello conversation ${c}`);
      });
      if (!ok) {
        incomplete++;
        const key = `timeout (${got}/${rx.length} delivered, ack ${acked ? "yes" : "no"})`;
        misses[key] = (misses[key] ?? 0) + 1;
      }
    });
  } finally {
    for (const s of sockets) s?.close();
  }
  const rssEnd = rssKb(ctx.workerd());
  ctx.log(`  S5 sends: ack p50 ${summarize(ack).p50} ms (${ack.totalCount} conversations, ${incomplete} incomplete)`);
  return [
    {
      scenario: "S5",
      target: "edge",
      case: "then one send in each: send→ack",
      summary: summarize(ack),
      values: { incomplete, ...misses, ...(notTried ? { "not tried (time cap)": notTried } : {}), "RSS after sends MiB": Math.round(rssEnd / 1024) },
    },
    { scenario: "S5", target: "edge", case: "then one send in each: last of 4 deliveries", summary: summarize(last) },
  ];
}

/**
 * RSS of the serving process before and after `count` idle sockets in one conversation of count/10 users (10 sockets
 * each, the room's cap), so the per-socket "ready" frame stays small.
 */
async function idleSockets(ctx: Ctx, target: ChatTarget, pidOf: () => number | undefined, count: number): Promise<Row> {
  const wave = Math.ceil(count / 2);
  const waves = 3;
  // At most 10 sockets per user over all waves (the service's per-user cap).
  const users = Math.ceil((wave * (waves + 1)) / 10);
  const room = await target.createRoom(users);
  // Read after createRoom: the runtime's floor starts its process there.
  const pid = pidOf();
  const open = (offset: number) => pool(wave, CONNECT_CONCURRENCY, (i) => room.connect((offset + i) % users).catch(() => undefined));
  // A first wave absorbs one-time costs (the room itself, compiled code, buffers and allocator arenas the first
  // sockets grow); then each wave's RSS delta is measured, and the median is reported: a garbage collection that
  // returns memory during one wave makes that delta too small, even negative.
  const rss0 = rssKb(pid);
  const all = await open(0);
  const perWave: number[] = [];
  let opened = 0;
  let wall = 0;
  for (let w = 1; w <= waves; w++) {
    await sleep(1500);
    const before = rssKb(pid);
    const t0 = now();
    const sockets = await open(w * wave);
    wall += now() - t0;
    await sleep(1500);
    const n = sockets.filter(Boolean).length;
    opened += n;
    perWave.push((rssKb(pid) - before) / Math.max(1, n));
    all.push(...sockets);
  }
  // Idle long enough for the room to hibernate (workerd evicts an idle object after about 10 s): the sockets stay
  // open, held by the runtime, and the object's memory can go.
  let hibernated: number | undefined;
  if (target.name === "edge") {
    await sleep(ctx.size(12_000, 20_000));
    hibernated = (rssKb(pid) - rss0) / Math.max(1, opened + wave);
  }
  for (const s of all) s?.close();
  const perSocket = [...perWave].sort((a, b) => a - b)[Math.floor(waves / 2)];
  const kib = (v: number) => Math.round(v * 10) / 10;
  ctx.log(`  S12 ${target.name}: waves of ${wave} sockets: ${perWave.map((v) => v.toFixed(1)).join(" / ")} KiB/socket`);
  return {
    scenario: "S12",
    target: target.name,
    case: `idle sockets in one conversation (${users} users): RSS per socket, median of ${waves} waves of ${wave}`,
    values: {
      open: opened + wave,
      "KiB per socket": kib(perSocket),
      "waves KiB per socket": perWave.map(kib).join(" / "),
      ...(hibernated !== undefined ? { "KiB per socket once the room hibernated (all sockets, from before the first)": kib(hibernated) } : {}),
      "RSS MiB": Math.round(rssKb(pid) / 1024),
      "connect wall s": Math.round(wall / 100) / 10,
    },
    note: target.name === "edge" || target.name.startsWith("workerd") ? "workerd process (VmRSS)" : "baseline node process (VmRSS)",
  };
}

export async function s12(ctx: Ctx): Promise<Row[]> {
  const count = ctx.size(300, 1000);
  const rows = [await idleSockets(ctx, ctx.edge, () => ctx.workerd(), count)];
  // One of the floor's two targets is enough: both are the same workerd, and memory per socket does not store.
  for (const b of [...ctx.baselines, ...ctx.references.filter((t) => t.name === "workerd-floor")]) rows.push(await idleSockets(ctx, b, () => b.pid, count));
  return rows;
}
