// `--profile`: where the Worker's CPU goes per operation. Profiles the isolate (Worker + Durable Objects) while a
// closed loop of WebSocket sends runs, then REST sends, history pages, conversation lists and socket connects;
// writes the raw .cpuprofile files next to the results.
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
  /** Writes the raw profile as `profile-<file>.cpuprofile` and adds its three rows. */
  const keep = async (file: string, label: string, r: ProfileResult): Promise<void> => {
    await writeFile(path.join(outDir, `profile-${file}.cpuprofile`), JSON.stringify(r.raw));
    rows.push({ scenario: "PROF", target: "edge", case: `${label}: self time by module`, note: mods(r, 14) });
    rows.push({ scenario: "PROF", target: "edge", case: `${label}: top self time`, note: fmt(r.self, "selfPct", 12) });
    rows.push({ scenario: "PROF", target: "edge", case: `${label}: top inclusive time`, note: fmt(r.total, "totalPct", 15) });
  };

  const room = await ctx.edge.createRoom(2);
  const [sender, receiver] = [await room.connect(0), await room.connect(1)];
  await closedLoop(sender, 20, "pw-");
  const ws = await profile(url, async () => {
    await closedLoop(sender, ctx.size(200, 1000), "pf-");
  });
  sender.close();
  receiver.close();
  await keep("ws-send", "WS send→ack", ws);

  // The same loop in a conversation of 101 sockets: what each delivery costs the room beyond the 2-socket send.
  const big = await ctx.edge.createRoom(101);
  const fan = await Promise.all(Array.from({ length: 101 }, (_, i) => big.connect(i)));
  await closedLoop(fan[0], 20, "pfw-");
  const fanned = await profile(url, async () => {
    await closedLoop(fan[0], ctx.size(100, 500), "pff-");
  });
  for (const s of fan) s.close();
  await keep("ws-fanout", "WS send→ack, 100 receivers", fanned);

  const users = ctx.edge.users(room);
  const rest = await profile(url, async () => {
    for (let i = 0; i < ctx.size(100, 500); i++) {
      await ctx.http("POST", `/conversations/${room.id}/messages`, users[0].token, { content: `profiled ${i}`, clientMessageId: `pr-${i}` });
    }
  });
  await keep("rest-send", "REST send→201", rest);
  const page = await profile(url, async () => {
    for (let i = 0; i < ctx.size(100, 500); i++) await ctx.http("GET", `/conversations/${room.id}/messages?limit=50`, users[0].token);
  });
  await keep("rest-history", "REST history page", page);
  // The conversation list of a user in 20 conversations (S10's list): one statement over HTTP, then the views.
  const [me, ...others] = await ctx.db.createUsers(21, "profl", ctx.stack.jwtSecret);
  const ids = await ctx.db.seedConversations(others.slice(0, 20).map((u, i) => [me.id, u.id, others[(i + 1) % 20].id]));
  for (const [i, id] of ids.entries()) await ctx.db.bulkMessages(id, [others[i].id], 1);
  for (let i = 0; i < 20; i++) await ctx.http("GET", "/conversations?limit=20", me.token);
  const list = await profile(url, async () => {
    for (let i = 0; i < ctx.size(100, 300); i++) await ctx.http("GET", "/conversations?limit=20", me.token);
  });
  await keep("rest-list", "REST conversation list of 20", list);
  // Opening a conversation on a room that is already loaded: upgrade, auth, the room's accept and `ready` frame.
  const connects = await profile(url, async () => {
    for (let i = 0; i < ctx.size(100, 300); i++) (await room.connect(i % 2)).close();
  });
  await keep("ws-connect", "WS connect→ready", connects);
  for (const r of rows) ctx.log(`  ${r.case}: ${r.note}`);
  return rows;
}
