import { describe, expect, it } from "vitest";
import { env, runInDurableObject } from "cloudflare:test";
import type { UserSession } from "../../src/durable-objects/user-session";
import { direct, send, users } from "./conversation-helpers";
import { openSocket, waitFor } from "./sockets";

describe("UserSession's Postgres connections", () => {
  it("serves a connect (online, badges) and the contacts' presence asked right after on one connection", async () => {
    const [alice, bob] = await users(2, "sessiondb");
    const id = await direct(alice, bob);
    await send(id, alice, "an unread for bob, so his connect sends a badge");
    const session = env.USER_SESSION.get(env.USER_SESSION.idFromName(bob.id));
    let connections = 0;
    await runInDurableObject(session, (instance: UserSession) => {
      instance.db().$client.on("connect", () => connections++);
    });

    const phone = await openSocket("/ws", bob);
    await waitFor(() => phone.frames.find((f) => f.type === "unread_count" && f.data.conversationId === id), "badge on connect");
    phone.ws.send(JSON.stringify({ type: "get_presence", id: "p1", data: { userIds: [alice.id] } }));
    const state = await waitFor(() => phone.frames.find((f) => f.type === "presence_state" && f.id === "p1"), "presence_state");
    expect(state.data.presences).toEqual([expect.objectContaining({ userId: alice.id, status: "offline" })]);
    // A pool per call opened one connection for the online publish, one for the badges and one for get_presence.
    expect(connections).toBe(1);
    phone.ws.close(1000, "done");
  });
});
