// S11: write-through lag (send → row visible in Postgres) and outbox drain after a Postgres outage.
import { JsonWs, now, sleep, WsChatSocket } from "../harness/clients.js";
import type { Ctx } from "../harness/context.js";
import { control } from "../harness/control.js";
import { newHist, recordMs, summarize } from "../harness/hist.js";
import { openLoop } from "../harness/load.js";
import type { Row } from "../harness/report.js";

async function pair(ctx: Ctx, prefix: string) {
  const users = await ctx.db.createUsers(2, prefix, ctx.stack.jwtSecret);
  const id = await ctx.db.seedConversation(users.map((u) => u.id));
  const url = `${ctx.stack.baseUrl.replace(/^http/, "ws")}/conversations/${id}/ws`;
  const a = new WsChatSocket(await JsonWs.connect(url, { authorization: `Bearer ${users[0].token}` }));
  const b = new WsChatSocket(await JsonWs.connect(url, { authorization: `Bearer ${users[1].token}` }));
  return { id, a, b };
}

export async function s11Lag(ctx: Ctx): Promise<Row[]> {
  const { id, a, b } = await pair(ctx, "s11l");
  const n = ctx.size(40, 300);
  const hDelivery = newHist();
  const hAck = newHist();
  const hVisible = newHist();
  const hLag = newHist();
  let polls = 0;
  const tStart = now();
  try {
    for (let i = -5; i < n; i++) {
      if (now() - tStart > ctx.size(5, 30) * 1000) break;
      const cmid = `s11l-${i}`;
      let tAck = 0;
      let tDel = 0;
      a.onAck = (c, t) => {
        if (c === cmid) tAck = t;
      };
      b.onMessage = (c, t) => {
        if (c === cmid) tDel = t;
      };
      const t0 = now();
      a.sendMessage(cmid, `lag ${i}`);
      let tVisible = 0;
      const until = t0 + 10_000;
      while (now() < until) {
        polls++;
        const rows = await ctx.db.query("SELECT 1 FROM messages WHERE conversation_id = $1 AND client_message_id = $2", [id, cmid]);
        if (rows.length) {
          tVisible = now();
          break;
        }
      }
      while ((!tAck || !tDel) && now() < until) await sleep(1);
      if (i < 0 || !tVisible || !tAck || !tDel) continue;
      recordMs(hDelivery, tDel - t0);
      recordMs(hAck, tAck - t0);
      recordMs(hVisible, tVisible - t0);
      recordMs(hLag, Math.max(0.001, tVisible - tDel));
    }
  } finally {
    a.close();
    b.close();
  }
  ctx.log(`  S11 lag: delivery p50 ${summarize(hDelivery).p50} ms, visible p50 ${summarize(hVisible).p50} ms`);
  const note = "visible = first successful poll (SELECT by client id in a loop); resolution ≈ one query";
  return [
    { scenario: "S11", target: "edge", case: "send → delivery at the other socket", summary: summarize(hDelivery) },
    { scenario: "S11", target: "edge", case: "send → ack (committed)", summary: summarize(hAck) },
    { scenario: "S11", target: "edge", case: "send → row visible in Postgres", summary: summarize(hVisible), values: { polls }, note },
    { scenario: "S11", target: "edge", case: "write-through lag: delivery → row visible", summary: summarize(hLag) },
  ];
}

export async function s11Outage(ctx: Ctx): Promise<Row[]> {
  const outageMs = ctx.size(2000, 10_000);
  const rate = 50;
  const { id, a, b } = await pair(ctx, "s11o");
  const prefix = "s11o-";
  let drainMs = NaN;
  let persisted = 0;
  let result;
  try {
    await control({ op: "pgDown", down: true });
    const tDown = now();
    // Open loop through the outage; acks come back "pending" after WRITE_THROUGH_DEADLINE_MS.
    const sending = openLoop({ senders: [a], receiver: b, rate, durationMs: outageMs, prefix, drainMs: 15_000 });
    await sleep(Math.max(0, outageMs - (now() - tDown)));
    await control({ op: "pgDown", down: false });
    if (ctx.pgDelayMs) await control({ op: "pgDelay", ms: ctx.pgDelayMs });
    const tUp = now();
    result = await sending;
    const until = tUp + ctx.size(20_000, 60_000);
    for (;;) {
      persisted = await ctx.db.countMessages(id, prefix);
      if (persisted >= result.sent) {
        drainMs = now() - tUp;
        break;
      }
      if (now() > until) break;
      await sleep(50);
    }
  } finally {
    await control({ op: "pgDown", down: false });
    a.close();
    b.close();
  }
  ctx.log(`  S11 outage ${outageMs / 1000} s: ${persisted}/${result?.sent} rows in Postgres ${Number.isNaN(drainMs) ? "NOT drained in time" : `${Math.round(drainMs)} ms after recovery`}`);
  return [
    {
      scenario: "S11",
      target: "edge",
      case: `Postgres down ${outageMs / 1000} s while sending ${rate}/s: send→ack`,
      summary: result?.ack,
      values: { sent: result?.sent ?? 0, ...(result?.statuses ?? {}), "delivery p99": result?.delivery?.p99 ?? NaN },
    },
    {
      scenario: "S11",
      target: "edge",
      case: "outbox drain: Postgres back → all rows persisted",
      values: { "drain ms": Math.round(drainMs), persisted, sent: result?.sent ?? 0 },
      note: Number.isNaN(drainMs) ? `not drained within ${ctx.size(20, 60)} s` : "retries follow the room's alarm backoff",
    },
  ];
}
