import { execFile, fork } from "node:child_process";
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import { ROOT } from "./stack.js";
import { freePort } from "../local/ports.js";
import { waitForHealth, type WranglerHandle } from "./wrangler.js";
import type { MiniflareHostConfig } from "../local/miniflare-host.js";

/**
 * Runs the Worker in workerd through Miniflare directly: the same bundle (`wrangler deploy --dry-run`), the same
 * bindings (read from wrangler.toml by wrangler itself), but without `wrangler dev`'s proxy workerd in front, which
 * relays every request and WebSocket frame through a second process. The benchmark uses it to measure the Worker
 * rather than the local dev tooling; `npm run dev` and the tests keep `wrangler dev`.
 */
export async function startMiniflare(options: {
  port: number;
  vars: Record<string, string>;
  persistTo: string;
  log: (line: string) => void;
  quiet?: boolean;
}): Promise<WranglerHandle> {
  const bundleDir = path.join(options.persistTo, "bundle");
  const wrangler = path.join(ROOT, "node_modules/wrangler/bin/wrangler.js");
  options.log("  bundling the Worker (wrangler deploy --dry-run) ...");
  // wrangler refuses a config whose assets directory is missing (a fresh clone, before `npm run dev` or `npm test`
  // built the web app). The benchmark serves no assets, so an empty directory is enough.
  await mkdir(path.join(ROOT, "dist/web"), { recursive: true });
  await promisify(execFile)(process.execPath, [wrangler, "deploy", "--dry-run", "--outdir", bundleDir], {
    cwd: ROOT,
    env: { ...process.env, WRANGLER_SEND_METRICS: "false", NO_COLOR: "1" },
  });
  const config: MiniflareHostConfig = {
    port: options.port,
    inspectorPort: await freePort(),
    script: path.join(bundleDir, "index.js"),
    persistTo: path.join(options.persistTo, "state"),
    vars: options.vars,
  };
  // fork() reuses this process's tsx loader flags, so the host can stay TypeScript.
  const child = fork(path.join(ROOT, "scripts/local/miniflare-host.ts"), [], {
    cwd: ROOT,
    env: { ...process.env, MINIFLARE_HOST: JSON.stringify(config) },
    stdio: ["ignore", "pipe", "pipe", "ipc"],
  });
  let output = "";
  const onData = (chunk: Buffer) => {
    const text = chunk.toString();
    output = (output + text).slice(-20_000);
    if (!options.quiet) process.stdout.write(text.replace(/^/gm, "  [miniflare] "));
  };
  child.stdout?.on("data", onData);
  child.stderr?.on("data", onData);
  return waitForHealth(child, options.port, () => output, 90_000, "miniflare");
}
