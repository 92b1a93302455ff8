// Child process of scripts/lib/miniflare.ts: one Miniflare instance serving the bundled Worker on a fixed port.
import path from "node:path";
import { Miniflare } from "miniflare";
import { unstable_getMiniflareWorkerOptions } from "wrangler";

export interface MiniflareHostConfig {
  port: number;
  inspectorPort: number;
  /** The bundle's entry module (its directory is the modules root). */
  script: string;
  persistTo: string;
  vars: Record<string, string>;
}

async function main(): Promise<void> {
  const config = JSON.parse(process.env.MINIFLARE_HOST ?? "null") as MiniflareHostConfig | null;
  if (!config) throw new Error("miniflare-host: MINIFLARE_HOST is not set (start it through scripts/lib/miniflare.ts)");
  const { workerOptions } = unstable_getMiniflareWorkerOptions(path.resolve("wrangler.toml"));
  // Static assets (the web app) are not part of what the benchmark measures.
  const { assets: _assets, ...worker } = workerOptions;
  const mf = new Miniflare({
    host: "127.0.0.1",
    port: config.port,
    inspectorPort: config.inspectorPort,
    defaultPersistRoot: config.persistTo,
    workers: [
      {
        ...worker,
        name: "edge-chat",
        modules: true,
        modulesRoot: path.dirname(config.script),
        scriptPath: config.script,
        bindings: { ...(worker.bindings ?? {}), ...config.vars },
      },
    ],
  });
  await mf.ready;
  const stop = () => void mf.dispose().finally(() => process.exit(0));
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  process.on("disconnect", stop);
}

main().catch((err: Error) => {
  console.error(`✗ miniflare-host: ${err.message}`);
  process.exit(1);
});
