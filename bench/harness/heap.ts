// The Worker isolate's live JS heap (the Durable Objects run in it too), read through workerd's V8 inspector after a
// full collection. RSS alone cannot tell a leak from garbage V8 has not collected yet: in 4- and 5-minute soaks the
// runtime's RSS grew 121 → 242 MiB without collections forced, and 120 → 165 MiB with one every 30 s, while the live
// heap stayed between 10 and 11 MiB (docs/reliability.md, "Live heap").
import WebSocket from "ws";

export interface HeapProbe {
  /** Forces a full collection, then answers the heap still in use (MiB); undefined when the inspector did not answer. */
  liveMiB(): Promise<number | undefined>;
  close(): void;
}

const ANSWER_MS = 10_000;

export async function openHeapProbe(url: string): Promise<HeapProbe> {
  const ws = new WebSocket(url, { perMessageDeflate: false });
  await new Promise<void>((resolve, reject) => {
    ws.once("open", () => resolve());
    ws.once("error", reject);
  });
  const waiting = new Map<number, (result: unknown) => void>();
  ws.on("message", (raw) => {
    const msg = JSON.parse(raw.toString()) as { id?: number; result?: unknown };
    if (msg.id !== undefined) waiting.get(msg.id)?.(msg.result);
  });
  // Ids far from wrangler's own session's, which shares the proxy.
  let nextId = 700_000_000;
  const call = <T>(method: string): Promise<T | undefined> =>
    new Promise((resolve) => {
      const id = nextId++;
      const timer = setTimeout(() => {
        waiting.delete(id);
        resolve(undefined);
      }, ANSWER_MS);
      waiting.set(id, (result) => {
        clearTimeout(timer);
        waiting.delete(id);
        resolve(result as T);
      });
      ws.send(JSON.stringify({ id, method, params: {} }));
    });
  return {
    async liveMiB() {
      await call("HeapProfiler.collectGarbage");
      const usage = await call<{ usedSize: number }>("Runtime.getHeapUsage");
      return usage ? usage.usedSize / 1048576 : undefined;
    },
    close: () => ws.close(),
  };
}
