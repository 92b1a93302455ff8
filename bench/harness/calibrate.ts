// The machine's phase. This VM's speed drifts by tens of percent over hours (a shared host): the same code gave S1
// p50 1.6 ms in one hour and 2.7 in another. Two probes, taken at the start and at the end of a run, let runs be
// compared: a fixed CPU workload, and the round trip between two processes over loopback TCP, which is what each
// hop of the service (client → workerd → bridge → Postgres and back) pays on top of its work.
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import net from "node:net";
import { performance } from "node:perf_hooks";

export interface Calibration {
  /** Median wall time of a fixed workload (hashing and JSON), ms. */
  cpuMs: number;
  /** Loopback TCP round trip to a child process, µs. */
  rttP50Us: number;
  rttP99Us: number;
}

function cpuProbe(): number {
  const block = Buffer.alloc(1024, 7);
  const doc = { items: Array.from({ length: 20 }, (_, i) => ({ id: i, text: `item ${i}`, tags: ["a", "b"] })) };
  const times: number[] = [];
  for (let rep = 0; rep < 5; rep++) {
    const t0 = performance.now();
    for (let i = 0; i < 4000; i++) {
      createHash("sha256").update(block).digest();
      JSON.parse(JSON.stringify(doc));
    }
    times.push(performance.now() - t0);
  }
  return times.sort((a, b) => a - b)[2];
}

/** A child that echoes every byte it reads (plain JavaScript: no loader to start). */
const ECHO = `const s = require("node:net").createServer((c) => { c.setNoDelay(true); c.pipe(c); });
s.listen(0, "127.0.0.1", () => process.stdout.write(String(s.address().port) + "\\n"));
process.stdin.on("end", () => process.exit(0)); process.stdin.resume();`;

async function rttProbe(rounds: number): Promise<number[]> {
  const child = spawn(process.execPath, ["-e", ECHO], { stdio: ["pipe", "pipe", "inherit"] });
  try {
    const port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("the echo child did not start")), 10_000);
      child.stdout.once("data", (d: Buffer) => {
        clearTimeout(timer);
        resolve(Number(d.toString().trim()));
      });
      child.once("error", reject);
      child.once("exit", () => reject(new Error("the echo child exited")));
    });
    const socket = net.connect(port, "127.0.0.1");
    socket.setNoDelay(true);
    await new Promise<void>((resolve, reject) => socket.once("connect", resolve).once("error", reject));
    const samples: number[] = [];
    const payload = Buffer.alloc(32, 1);
    for (let i = 0; i < rounds; i++) {
      const t0 = performance.now();
      await new Promise<void>((resolve) => {
        let got = 0;
        const onData = (d: Buffer) => {
          got += d.length;
          if (got >= payload.length) {
            socket.off("data", onData);
            resolve();
          }
        };
        socket.on("data", onData);
        socket.write(payload);
      });
      if (i >= 50) samples.push((performance.now() - t0) * 1000);
    }
    socket.destroy();
    return samples.sort((a, b) => a - b);
  } finally {
    child.stdin.end();
    child.kill();
  }
}

export async function calibrate(): Promise<Calibration> {
  const cpuMs = cpuProbe();
  const rtt = await rttProbe(2050);
  const at = (p: number) => Math.round(rtt[Math.min(rtt.length - 1, Math.floor(p * rtt.length))]);
  return { cpuMs: Math.round(cpuMs * 10) / 10, rttP50Us: at(0.5), rttP99Us: at(0.99) };
}

export const calibrationText = (c: Calibration | undefined) => (c ? `CPU probe ${c.cpuMs} ms, loopback RTT p50 ${c.rttP50Us} / p99 ${c.rttP99Us} µs` : "–");
