// The SDK (src/client) as an app in Node would use it, measured against the raw JsonWs client in the same run.
// The scenarios' own rows use the raw client so that client overhead is not charged to the server; these rows show
// what the SDK adds on top. Raw and SDK take turns (blocks of sends, or single typing round trips), each in a room
// of its own of the same size, so that both see the same machine: this VM's speed drifts between runs and within one.
import { now, type ChatSocket } from "../harness/clients.js";
import type { Ctx } from "../harness/context.js";
import { newHist, recordMs, summarize, type Hist, type Summary } from "../harness/hist.js";
import { closedLoop } from "../harness/load.js";
import type { Row } from "../harness/report.js";
import { deflateNegotiated, SdkChatSocket, sdkConversation, typingSeenAt } from "../harness/sdk.js";

export const SDK_TARGET = "edge via SDK";
/** Closed-loop sends per turn in S1: long enough that a turn is not dominated by switching, short enough to mix well. */
const S1_BLOCK = 10;

interface Side {
  hist: Hist;
  cpuMs: number;
}

const side = (): Side => ({ hist: newHist(), cpuMs: 0 });
const round = (v: number) => Math.round(v * 100) / 100;

/** The SDK's figures next to the raw client's from the same turns: the overhead is the difference. */
function comparison(sdk: Summary, raw: Summary, cpu?: { sdk: Side; raw: Side }): Record<string, number> {
  const out: Record<string, number> = {
    "raw p50": raw.p50,
    "raw p99": raw.p99,
    "SDK overhead p50 ms": round(sdk.p50 - raw.p50),
    "SDK overhead p99 ms": round(sdk.p99 - raw.p99),
  };
  if (cpu) {
    // This process also parses the receivers' frames; they are the same for both sides, so the difference is the SDK's.
    out["client CPU ms/op"] = round(cpu.sdk.cpuMs / Math.max(1, cpu.sdk.hist.totalCount));
    out["raw client CPU ms/op"] = round(cpu.raw.cpuMs / Math.max(1, cpu.raw.hist.totalCount));
  }
  return out;
}

/**
 * A broken SDK case is a row saying so: it must not take the scenario's own rows (the server's figures) down with it.
 */
export async function orFailedRow(ctx: Ctx, scenario: string, kase: string, work: () => Promise<Row[]>): Promise<Row[]> {
  try {
    return await work();
  } catch (err) {
    ctx.log(`  ✗ ${scenario} ${SDK_TARGET} failed: ${(err as Error).stack ?? err}`);
    return [{ scenario, target: SDK_TARGET, case: kase, note: `FAILED: ${(err as Error).message.slice(0, 200)}` }];
  }
}

/**
 * The raw sender with its own new_message as the acknowledgement: what send() resolves on in the SDK. The room
 * broadcasts a message (to the sender's socket too) once it is in the room's storage, and acks only after the
 * Postgres commit; the SDK settles send() on whichever comes first, so that is the raw figure to compare with.
 */
function echoAsAck(raw: ChatSocket): ChatSocket {
  const face: ChatSocket = {
    sendMessage: (cmid, content) => raw.sendMessage(cmid, content),
    get closed() {
      return raw.closed;
    },
    close: () => raw.close(),
  };
  raw.onMessage = (cmid, t) => face.onAck?.(cmid, t, "echo");
  raw.onError = (message) => face.onError?.(message);
  return face;
}

/**
 * S1 through ChatClient.conversation(id).send(): from the call to the promise resolving with the stored message.
 * `raw` is the JsonWs sender of S1's own rows, still in its room; the SDK sender gets a new room with a raw receiver.
 */
export async function s1Sdk(ctx: Ctx, raw: ChatSocket, n: number): Promise<Row> {
  const room = await ctx.edge.createRoom(2);
  const conversation = await sdkConversation(ctx.stack.baseUrl, ctx.edge.users(room)[0].token, room.id);
  const sdk = new SdkChatSocket(conversation);
  const receiver = await room.connect(1);
  const rawEcho = echoAsAck(raw);
  try {
    await closedLoop(sdk, 20, "s1s-warm-"); // room init and the SDK's code paths through the JIT
    const sides = { raw: side(), sdk: side() };
    const statuses: Record<string, number> = {};
    for (let i = 0, turn = 0; i < n; i += S1_BLOCK, turn++) {
      const order = turn % 2 === 0 ? (["raw", "sdk"] as const) : (["sdk", "raw"] as const);
      let timedOut = false;
      for (const kind of order) {
        const before = process.cpuUsage();
        const r = await closedLoop(kind === "sdk" ? sdk : rawEcho, Math.min(S1_BLOCK, n - i), `s1${kind}-${i}-`);
        const used = process.cpuUsage(before);
        sides[kind].cpuMs += (used.user + used.system) / 1000;
        sides[kind].hist.add(r.hist);
        if (kind === "sdk") for (const [k, v] of Object.entries(r.statuses)) statuses[k] = (statuses[k] ?? 0) + v;
        if (r.statuses.timeout) timedOut = true;
      }
      if (timedOut) break; // a lost ack costs 10 s each: stop rather than run past the budget
    }
    const summary = summarize(sides.sdk.hist);
    ctx.log(`  S1 ${SDK_TARGET}: send() resolved p50 ${summary.p50} ms p99 ${summary.p99} ms (raw echo in the same turns ${summarize(sides.raw.hist).p50} / ${summarize(sides.raw.hist).p99})`);
    return {
      scenario: "S1",
      target: SDK_TARGET,
      case: "closed loop send() → resolved (own message back, before the Postgres commit)",
      summary,
      values: {
        ...statuses,
        ...comparison(summary, summarize(sides.raw.hist), sides),
        "permessage-deflate": deflateNegotiated(conversation) ? "negotiated" : "no",
      },
      note: `ChatClient in Node with ws; raw = send → own new_message at the JsonWs sender above, taking turns of ${S1_BLOCK} sends with the SDK`,
    };
  } finally {
    raw.onMessage = raw.onError = undefined;
    sdk.close();
    receiver.close();
  }
}

/** One raw S6 round trip (start_typing → typing_start, stop_typing → typing_stop at the other socket), in ms. */
export type TypingRoundTrip = () => Promise<{ start: number; stop: number }>;

/**
 * S6 with both ends on the SDK: typing() → the other SDK socket's "typing" event, then stopTyping() → its end.
 * `raw` runs one round trip of S6's own raw pair, alternating with the SDK's.
 */
export async function s6Sdk(ctx: Ctx, raw: TypingRoundTrip, n: number): Promise<Row[]> {
  const users = await ctx.db.createUsers(2, "s6s", ctx.stack.jwtSecret);
  const id = await ctx.db.seedConversation(users.map((u) => u.id));
  const a = await sdkConversation(ctx.stack.baseUrl, users[0].token, id);
  const b = await sdkConversation(ctx.stack.baseUrl, users[1].token, id).catch((err: Error) => {
    a.close();
    throw err;
  });
  const hists = { start: newHist(), stop: newHist(), rawStart: newHist(), rawStop: newHist() };
  const sdkRoundTrip = async () => {
    const started = typingSeenAt(b, users[0].id, true);
    const t0 = now();
    a.typing();
    const start = (await started) - t0;
    const stopped = typingSeenAt(b, users[0].id, false);
    const t1 = now();
    a.stopTyping();
    return { start, stop: (await stopped) - t1 };
  };
  try {
    for (let i = -5; i < n; i++) {
      for (const kind of i % 2 === 0 ? (["raw", "sdk"] as const) : (["sdk", "raw"] as const)) {
        const r = kind === "sdk" ? await sdkRoundTrip() : await raw();
        if (i < 0) continue;
        recordMs(kind === "sdk" ? hists.start : hists.rawStart, r.start);
        recordMs(kind === "sdk" ? hists.stop : hists.rawStop, r.stop);
      }
    }
  } finally {
    a.close();
    b.close();
  }
  const [start, stop] = [summarize(hists.start), summarize(hists.stop)];
  ctx.log(`  S6 ${SDK_TARGET}: typing p50 ${start.p50} ms p99 ${start.p99} ms (raw in the same turns ${summarize(hists.rawStart).p50} / ${summarize(hists.rawStart).p99})`);
  const note = "ChatClient in Node with ws at both ends; raw = the JsonWs pair above, taking turns with the SDK";
  return [
    { scenario: "S6", target: SDK_TARGET, case: "typing() → typing event at the other socket", summary: start, values: comparison(start, summarize(hists.rawStart)), note },
    { scenario: "S6", target: SDK_TARGET, case: "stopTyping() → typing end at the other socket", summary: stop, values: comparison(stop, summarize(hists.rawStop)), note },
  ];
}
