// `--profile`: where the Worker's CPU goes per operation. Profiles the isolate (Worker + Durable Objects) while a
// closed loop of WebSocket sends runs, then REST sends, history pages and socket connects; writes the raw
// .cpuprofile files next to the results.
import { writeFile } from "node:fs/promises";
import path from "node:path";
import type { Ctx } from "../harness/context.js";
import { closedLoop } from "../harness/load.js";
import { findInspector, profile, type Hotspot, type ProfileResult } from "../harness/profiler.js";
import type { Row } from "../harness/report.js";

const mods = (r: ProfileResult, n: number) =>
  r.modules
    .slice(0, n)
    .map((m) => `${m.selfPct}% ${m.module}`)
    .join(" · ");

const fmt = (h: Hotspot[], key: "selfPct" | "totalPct", n: number) =>
  h
    .slice(0, n)
    .map((x) => `${x[key]}% ${x.function}`)
    .join(" · ");

export async function profileScenario(ctx: Ctx, outDir: string): Promise<Row[]> {
  const url = await findInspector(ctx.stack.wranglerPid);
  if (!url) throw new Error("the Worker's inspector was not found");
  const rows: Row[] = [];

  const room = await ctx.edge.createRoom(2);
  const [sender, receiver] = [await room.connect(0), await room.connect(1)];
  await closedLoop(sender, 20, "pw-");
  const ws = await profile(url, async () => {
    await closedLoop(sender, ctx.size(200, 1000), "pf-");
  });
  sender.close();
  receiver.close();
  await writeFile(path.join(outDir, "profile-ws-send.cpuprofile"), JSON.stringify(ws.raw));
  rows.push({ scenario: "PROF", target: "edge", case: "WS send→ack: self time by module", note: mods(ws, 14) });
  rows.push({ scenario: "PROF", target: "edge", case: "WS send→ack: top self time", note: fmt(ws.self, "selfPct", 12) });
  rows.push({ scenario: "PROF", target: "edge", case: "WS send→ack: top inclusive time", note: fmt(ws.total, "totalPct", 15) });

  // The same loop in a conversation of 101 sockets: what each delivery costs the room beyond the 2-socket send.
  const big = await ctx.edge.createRoom(101);
  const fan = await Promise.all(Array.from({ length: 101 }, (_, i) => big.connect(i)));
  await closedLoop(fan[0], 20, "pfw-");
  const fanned = await profile(url, async () => {
    await closedLoop(fan[0], ctx.size(100, 500), "pff-");
  });
  for (const s of fan) s.close();
  await writeFile(path.join(outDir, "profile-ws-fanout.cpuprofile"), JSON.stringify(fanned.raw));
  rows.push({ scenario: "PROF", target: "edge", case: "WS send→ack, 100 receivers: self time by module", note: mods(fanned, 14) });
  rows.push({ scenario: "PROF", target: "edge", case: "WS send→ack, 100 receivers: top self time", note: fmt(fanned.self, "selfPct", 12) });
  rows.push({ scenario: "PROF", target: "edge", case: "WS send→ack, 100 receivers: top inclusive time", note: fmt(fanned.total, "totalPct", 15) });

  const users = ctx.edge.users(room);
  const rest = await profile(url, async () => {
    for (let i = 0; i < ctx.size(100, 500); i++) {
      await ctx.http("POST", `/conversations/${room.id}/messages`, users[0].token, { content: `profiled ${i}`, clientMessageId: `pr-${i}` });
    }
  });
  await writeFile(path.join(outDir, "profile-rest-send.cpuprofile"), JSON.stringify(rest.raw));
  rows.push({ scenario: "PROF", target: "edge", case: "REST send→201: self time by module", note: mods(rest, 14) });
  rows.push({ scenario: "PROF", target: "edge", case: "REST send→201: top self time", note: fmt(rest.self, "selfPct", 12) });
  rows.push({ scenario: "PROF", target: "edge", case: "REST send→201: top inclusive time", note: fmt(rest.total, "totalPct", 15) });
  const page = await profile(url, async () => {
    for (let i = 0; i < ctx.size(100, 500); i++) await ctx.http("GET", `/conversations/${room.id}/messages?limit=50`, users[0].token);
  });
  await writeFile(path.join(outDir, "profile-rest-history.cpuprofile"), JSON.stringify(page.raw));
  rows.push({ scenario: "PROF", target: "edge", case: "REST history page: self time by module", note: mods(page, 14) });
  rows.push({ scenario: "PROF", target: "edge", case: "REST history page: top self time", note: fmt(page.self, "selfPct", 12) });
  rows.push({ scenario: "PROF", target: "edge", case: "REST history page: top inclusive time", note: fmt(page.total, "totalPct", 15) });
  // Opening a conversation on a room that is already loaded: upgrade, auth, the room's accept and `ready` frame.
  const connects = await profile(url, async () => {
    for (let i = 0; i < ctx.size(100, 300); i++) (await room.connect(i % 2)).close();
  });
  await writeFile(path.join(outDir, "profile-ws-connect.cpuprofile"), JSON.stringify(connects.raw));
  rows.push({ scenario: "PROF", target: "edge", case: "WS connect→ready: self time by module", note: mods(connects, 14) });
  rows.push({ scenario: "PROF", target: "edge", case: "WS connect→ready: top self time", note: fmt(connects.self, "selfPct", 12) });
  rows.push({ scenario: "PROF", target: "edge", case: "WS connect→ready: top inclusive time", note: fmt(connects.total, "totalPct", 15) });
  for (const r of rows) ctx.log(`  ${r.case}: ${r.note}`);
  return rows;
}
