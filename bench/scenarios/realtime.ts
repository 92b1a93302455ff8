// S6 typing, S7 presence transitions and wake from hibernation.
import { JsonWs, now, pool, sleep, WsChatSocket } from "../harness/clients.js";
import type { Ctx } from "../harness/context.js";
import type { ControlStats } from "../harness/control.js";
import { control } from "../harness/control.js";
import { newHist, recordMs, summarize } from "../harness/hist.js";
import type { Row } from "../harness/report.js";
import { orFailedRow, s6Sdk, type TypingRoundTrip } from "./sdk.js";

const wsUrl = (ctx: Ctx, path: string) => `${ctx.stack.baseUrl.replace(/^http/, "ws")}${path}`;
const auth = (token: string) => ({ authorization: `Bearer ${token}` });

export async function s6(ctx: Ctx): Promise<Row[]> {
  const users = await ctx.db.createUsers(2, "s6", ctx.stack.jwtSecret);
  const id = await ctx.db.seedConversation(users.map((u) => u.id));
  const a = await JsonWs.connect(wsUrl(ctx, `/conversations/${id}/ws`), auth(users[0].token));
  const b = await JsonWs.connect(wsUrl(ctx, `/conversations/${id}/ws`), auth(users[1].token));
  const start = newHist();
  const stop = newHist();
  const n = ctx.size(60, 500);
  const roundTrip: TypingRoundTrip = async () => {
    const started = b.next((f) => f.type === "typing_start" && f.data.userId === users[0].id);
    const t0 = now();
    a.send("start_typing");
    const s = await started;
    const stopped = b.next((f) => f.type === "typing_stop" && f.data.userId === users[0].id);
    const t1 = now();
    a.send("stop_typing");
    const e = await stopped;
    return { start: s.t - t0, stop: e.t - t1 };
  };
  const rows: Row[] = [];
  try {
    for (let i = -5; i < n; i++) {
      const r = await roundTrip();
      if (i < 0) continue;
      recordMs(start, r.start);
      recordMs(stop, r.stop);
    }
    ctx.log(`  S6: typing_start p50 ${summarize(start).p50} ms p99 ${summarize(start).p99} ms`);
    rows.push(
      { scenario: "S6", target: "edge", case: "start_typing → typing_start at the other socket", summary: summarize(start) },
      { scenario: "S6", target: "edge", case: "stop_typing → typing_stop at the other socket", summary: summarize(stop) },
    );
    rows.push(...(await orFailedRow(ctx, "S6", "typing", () => s6Sdk(ctx, roundTrip, n))));
  } finally {
    a.close();
    b.close();
  }
  return rows;
}

export async function s7Presence(ctx: Ctx): Promise<Row[]> {
  const n = ctx.size(15, 100);
  const [watcher] = await ctx.db.createUsers(1, "s7w", ctx.stack.jwtSecret);
  const others = await ctx.db.createUsers(n + 3, "s7u", ctx.stack.jwtSecret);
  // A direct conversation with each: they are the watcher's contacts.
  await ctx.db.seedConversations(
    others.map((u) => [watcher.id, u.id]),
    "direct",
  );
  const w = await JsonWs.connect(wsUrl(ctx, "/ws"), auth(watcher.token), "connected");
  const online = newHist();
  const away = newHist();
  let missed = 0;
  try {
    for (let i = 0; i < others.length; i++) {
      const u = others[i];
      const seen = w.next((f) => f.type === "presence_update" && f.data.userId === u.id && f.data.status === "online", 5000);
      const t0 = now();
      let sock: JsonWs | undefined;
      try {
        sock = await JsonWs.connect(wsUrl(ctx, "/ws"), auth(u.token), "connected");
        const { t } = await seen;
        const wentAway = w.next((f) => f.type === "presence_update" && f.data.userId === u.id && f.data.status === "away", 5000);
        const t1 = now();
        sock.send("set_presence", { status: "away" });
        const a = await wentAway;
        if (i >= 3) {
          recordMs(online, t - t0);
          recordMs(away, a.t - t1);
        }
      } catch {
        missed++;
      } finally {
        sock?.close();
      }
      if (missed >= 3) break;
    }
  } finally {
    w.close();
  }
  ctx.log(`  S7 presence: connect→online p50 ${summarize(online).p50} ms, p99 ${summarize(online).p99} ms (missed ${missed})`);
  return [
    {
      scenario: "S7",
      target: "edge",
      case: "user socket connect → presence_update(online) at a contact",
      summary: summarize(online),
      values: { missed },
      note: "measured from the upgrade request",
    },
    { scenario: "S7", target: "edge", case: "set_presence away → presence_update(away) at a contact", summary: summarize(away) },
  ];
}

export interface WakeFixture {
  rooms: { a: WsChatSocket; b: WsChatSocket }[];
  idleSince: number;
}

/** Rooms with two sockets each and one message sent; after this they are left idle so their objects hibernate. */
export async function s7WakePrepare(ctx: Ctx): Promise<WakeFixture> {
  const k = ctx.size(6, 20);
  const users = await ctx.db.createUsers(2 * k, "s7h", ctx.stack.jwtSecret);
  const ids = await ctx.db.seedConversations(Array.from({ length: k }, (_, i) => [users[2 * i].id, users[2 * i + 1].id]));
  const rooms = await pool(k, 5, async (i) => {
    const a = new WsChatSocket(await JsonWs.connect(wsUrl(ctx, `/conversations/${ids[i]}/ws`), auth(users[2 * i].token)));
    const b = new WsChatSocket(await JsonWs.connect(wsUrl(ctx, `/conversations/${ids[i]}/ws`), auth(users[2 * i + 1].token)));
    await sendAndWait(a, b, `s7h-warm-${i}`);
    return { a, b };
  });
  return { rooms, idleSince: now() };
}

function sendAndWait(a: WsChatSocket, b: WsChatSocket, cmid: string): Promise<{ ack: number; delivery: number }> {
  return new Promise((resolve, reject) => {
    const t0 = now();
    let ack = 0;
    let delivery = 0;
    const timer = setTimeout(() => reject(new Error("no ack/delivery in 10 s")), 10_000);
    const check = () => {
      if (!ack || !delivery) return;
      clearTimeout(timer);
      a.onAck = undefined;
      b.onMessage = undefined;
      resolve({ ack: ack - t0, delivery: delivery - t0 });
    };
    a.onAck = (id, t) => {
      if (id !== cmid) return;
      ack = t;
      check();
    };
    b.onMessage = (id, t) => {
      if (id !== cmid) return;
      delivery = t;
      check();
    };
    a.sendMessage(cmid, "wake up");
  });
}

/** Objects are evicted after ~10–15 s idle; an idle pool connection (closed by its own 10 s timer) delays that. */
export const IDLE_MS = 30_000;

export async function s7WakeMeasure(ctx: Ctx, fx: WakeFixture): Promise<Row[]> {
  const idle = now() - fx.idleSince;
  if (idle < IDLE_MS) await sleep(IDLE_MS - idle);
  const idleS = Math.round((now() - fx.idleSince) / 100) / 10;
  const before = await control<ControlStats>({ op: "stats" });
  const firstAck = newHist();
  const firstDel = newHist();
  const warmAck = newHist();
  const warmDel = newHist();
  let lost = 0;
  try {
    for (const [i, r] of fx.rooms.entries()) {
      // A Worker reload (source edited) drops the sockets: such a room cannot be measured.
      if (r.a.closed || r.b.closed) {
        lost++;
        continue;
      }
      try {
        const cold = await sendAndWait(r.a, r.b, `s7h-cold-${i}`);
        const warm = await sendAndWait(r.a, r.b, `s7h-again-${i}`);
        recordMs(firstAck, cold.ack);
        recordMs(firstDel, cold.delivery);
        recordMs(warmAck, warm.ack);
        recordMs(warmDel, warm.delivery);
      } catch {
        lost++;
      }
    }
  } finally {
    for (const r of fx.rooms) r.a.close(), r.b.close();
  }
  const after = await control<ControlStats>({ op: "stats" });
  const values = { rooms: fx.rooms.length, lost, "idle s": idleS, "redis requests during wakes": after.redis.requests - before.redis.requests };
  ctx.log(`  S7 wake: first ack p50 ${summarize(firstAck).p50} ms vs warm ${summarize(warmAck).p50} ms`);
  return [
    {
      scenario: "S7",
      target: "edge",
      case: "wake: first send after idle → ack",
      summary: summarize(firstAck),
      values,
      note: "workerd evicts a room about 10 s after its last event (test/workers/hibernation.serial.test.ts); Redis requests do not show it, because profiles are cached in the isolate, which outlives the object",
    },
    { scenario: "S7", target: "edge", case: "wake: first send after idle → delivery", summary: summarize(firstDel) },
    { scenario: "S7", target: "edge", case: "wake: second send → ack (warm)", summary: summarize(warmAck) },
    { scenario: "S7", target: "edge", case: "wake: second send → delivery (warm)", summary: summarize(warmDel) },
  ];
}
