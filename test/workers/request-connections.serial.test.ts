import { describe, expect, it } from "vitest";
import { direct, group, users } from "./conversation-helpers";
import { bridgeStats } from "./fixtures";
import { api } from "./helpers";

/**
 * A Worker request cannot keep connections between requests, so each one it opens is a new Neon connection in
 * production (WebSocket, TLS, startup): queries run in parallel on a fresh pool each pay for one.
 */
async function connectionsOpenedBy(request: () => Promise<void>): Promise<number> {
  // The least of three: another object's pool (an alarm, a flush) may connect meanwhile, never fewer.
  const opened: number[] = [];
  for (let i = 0; i < 3; i++) {
    const before = (await bridgeStats()).opened;
    await request();
    opened.push((await bridgeStats()).opened - before);
  }
  return Math.min(...opened);
}

describe("Postgres connections per request", () => {
  it("the conversation list and one conversation each cost one connection", async () => {
    const [me, a, b] = await users(3, "listconn");
    const first = await direct(me, a);
    await direct(me, b);
    await group(me, [a, b], "Three");
    expect((await api("GET", "/conversations", { token: me.token })).status).toBe(200);

    const list = await connectionsOpenedBy(async () => {
      const res = await api("GET", "/conversations", { token: me.token });
      expect(res.status).toBe(200);
      expect(res.body.conversations).toHaveLength(3);
    });
    const one = await connectionsOpenedBy(async () => {
      const res = await api("GET", `/conversations/${first}`, { token: me.token });
      expect(res.status).toBe(200);
      expect(res.body.participants).toHaveLength(2);
    });
    expect({ list, one }).toEqual({ list: 1, one: 1 });
  });
});
