import { expect } from "vitest";
import { SELF } from "cloudflare:test";
import type { TestUser } from "./helpers";

/** A WebSocket opened through the Worker, with every frame it has received so far. */
export interface TestSocket {
  ws: WebSocket;
  frames: { type: string; data: any; id?: string }[];
}

/** Upgrades `path` (a conversation's `/conversations/:id/ws` or the user socket `/ws`) as `user`. */
export async function openSocket(path: string, user: TestUser): Promise<TestSocket> {
  const res = await SELF.fetch(new Request(`http://chat.test${path}`, { headers: { Upgrade: "websocket", authorization: `Bearer ${user.token}` } }));
  expect(res.status).toBe(101);
  const ws = res.webSocket!;
  const frames: TestSocket["frames"] = [];
  ws.addEventListener("message", (e) => {
    frames.push(JSON.parse(String(e.data)));
  });
  ws.accept();
  return { ws, frames };
}

export async function waitFor<T>(probe: () => T | undefined, what: string, timeoutMs = 5000): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const found = probe();
    if (found !== undefined) return found;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
