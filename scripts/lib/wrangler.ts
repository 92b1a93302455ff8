import { spawn, type ChildProcess } from "node:child_process";
import path from "node:path";
import { appendFile } from "node:fs/promises";
import { ROOT } from "./stack.js";
import { freePort } from "../local/ports.js";

export interface WranglerHandle {
  url: string;
  port: number;
  process: ChildProcess;
  stop(): Promise<void>;
}

/**
 * Runs `wrangler dev` as a child of this process (the wrangler.js process itself, so signals reach it) and waits
 * until /health answers.
 */
export async function startWrangler(options: {
  port: number;
  vars: Record<string, string>;
  persistTo: string;
  log: (line: string) => void;
  quiet?: boolean;
  timeoutMs?: number;
}): Promise<WranglerHandle> {
  const bin = path.join(ROOT, "node_modules/wrangler/bin/wrangler.js");
  // The devtools port defaults to 9229; another job on the same host may hold it, so take a free one.
  const inspectorPort = await freePort();
  const args = [bin, "dev", "--port", String(options.port), "--ip", "127.0.0.1", "--inspector-port", String(inspectorPort), "--persist-to", options.persistTo, "--show-interactive-dev-session=false"];
  for (const [k, v] of Object.entries(options.vars)) args.push("--var", `${k}:${v}`);
  const child = spawn(process.execPath, args, {
    cwd: ROOT,
    env: { ...process.env, CLOUDFLARE_CF_FETCH_ENABLED: "false", WRANGLER_SEND_METRICS: "false", NO_COLOR: "1" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  const logFile = process.env.STACK_WRANGLER_LOG;
  const onData = (chunk: Buffer) => {
    const text = chunk.toString();
    if (logFile) appendFile(logFile, text).catch(() => {});
    output = (output + text).slice(-20_000);
    if (!options.quiet) process.stdout.write(text.replace(/^/gm, "  [wrangler] "));
  };
  child.stdout?.on("data", onData);
  child.stderr?.on("data", onData);
  return waitForHealth(child, options.port, () => output, options.timeoutMs ?? 90_000, "wrangler dev");
}

/** Resolves once `GET /health` on the port answers; stops the child and throws (with its last output) otherwise. */
class ConfigRefused extends Error {}

export async function waitForHealth(child: ChildProcess, port: number, output: () => string, timeoutMs: number, what: string): Promise<WranglerHandle> {
  const url = `http://127.0.0.1:${port}`;
  const stop = () =>
    new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      child.once("exit", () => resolve());
      child.kill("SIGTERM");
      setTimeout(() => child.kill("SIGKILL"), 5000).unref();
    });
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${what} exited (code ${child.exitCode}):\n${output().slice(-4000)}`);
    try {
      const res = await fetch(`${url}/health`);
      if (res.ok) return { url, port, process: child, stop };
      // The Worker is up but refuses its configuration (a bad .dev.vars or --var): waiting cannot fix that.
      const body = (await res.json().catch(() => null)) as { message?: unknown } | null;
      if (typeof body?.message === "string" && body.message.startsWith("Invalid configuration")) {
        await stop();
        throw new ConfigRefused(`${what} refuses its configuration. ${body.message}\nFix the variable named above (.dev.vars, wrangler.toml [vars] or the environment) and start again.`);
      }
    } catch (err) {
      if (err instanceof ConfigRefused) throw err;
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  await stop();
  throw new Error(`${what} did not answer /health within the deadline:\n${output().slice(-4000)}`);
}
