// A session on workerd's V8 inspector (the port wrangler dev opens, a proxy that wrangler's own session shares):
// the CPU profiler (profiler.ts) and the live-heap probe (heap.ts) both talk to the Worker isolate through it.
import WebSocket from "ws";

export interface InspectorSession {
  /**
   * Sends a command and waits for its answer: the result, or undefined when it failed or nothing came within
   * `timeoutMs` (the proxy does not answer every command: wrangler has enabled some domains already).
   */
  call<T>(method: string, params?: Record<string, unknown>, timeoutMs?: number): Promise<T | undefined>;
  close(): void;
}

/** `firstId`: where this session's command ids start, far from wrangler's and from other sessions'. */
export async function openInspector(url: string, firstId: number): Promise<InspectorSession> {
  const ws = new WebSocket(url, { perMessageDeflate: false });
  await new Promise<void>((resolve, reject) => {
    ws.once("open", () => resolve());
    ws.once("error", reject);
  });
  const waiting = new Map<number, (result: unknown) => void>();
  ws.on("message", (raw) => {
    const msg = JSON.parse(raw.toString()) as { id?: number; result?: unknown; error?: unknown };
    // wrangler's proxy also echoes some commands back (id and method, no result yet): only an answer settles a call.
    if (msg.id !== undefined && ("result" in msg || "error" in msg)) waiting.get(msg.id)?.(msg.result);
  });
  let nextId = firstId;
  return {
    call: <T>(method: string, params: Record<string, unknown> = {}, timeoutMs = 10_000) =>
      new Promise<T | undefined>((resolve) => {
        const id = nextId++;
        const timer = setTimeout(() => {
          waiting.delete(id);
          resolve(undefined);
        }, timeoutMs);
        // A command nobody answers must not hold the process open after the run.
        timer.unref();
        waiting.set(id, (result) => {
          clearTimeout(timer);
          waiting.delete(id);
          resolve(result as T | undefined);
        });
        ws.send(JSON.stringify({ id, method, params }));
      }),
    close: () => ws.close(),
  };
}
