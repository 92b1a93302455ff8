// The Worker isolate's live JS heap (the Durable Objects run in it too), read through workerd's V8 inspector after a
// full collection. RSS alone cannot tell a leak from garbage V8 has not collected yet: in 4- and 5-minute soaks the
// runtime's RSS grew 121 → 242 MiB without collections forced, and 120 → 165 MiB with one every 30 s, while the live
// heap stayed between 10 and 11 MiB (docs/reliability.md, "Live heap").
import { openInspector } from "./inspector.js";

export interface HeapProbe {
  /** Forces a full collection, then answers the heap still in use (MiB); undefined when the inspector did not answer. */
  liveMiB(): Promise<number | undefined>;
  close(): void;
}

export async function openHeapProbe(url: string): Promise<HeapProbe> {
  // Ids far from wrangler's own session's, which shares the proxy.
  const inspector = await openInspector(url, 700_000_000);
  return {
    async liveMiB() {
      await inspector.call("HeapProfiler.collectGarbage");
      const usage = await inspector.call<{ usedSize: number }>("Runtime.getHeapUsage");
      return usage ? usage.usedSize / 1048576 : undefined;
    },
    close: () => inspector.close(),
  };
}
