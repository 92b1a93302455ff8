import { describe, expect, it } from "vitest";
import { env, runInDurableObject } from "cloudflare:test";
import type { ConversationRoom } from "../../src/durable-objects/conversation-room";
import type { TestUser } from "./helpers";
import { postgres, seedConversation } from "./fixtures";
import { openSocket, waitFor } from "./sockets";

// workerd evicts an idle object ~10 s after its last event; hibernatable sockets stay open across it.
// Idle Postgres connections close after 1 s (src/db/client.ts); 18 s leaves room for both.
const IDLE_MS = 18_000;

const connect = (conversationId: string, user: TestUser) => openSocket(`/conversations/${conversationId}/ws`, user);

const MARK = "__markedBeforeIdle";
const room = (id: string) => env.CONVERSATION_ROOM.get(env.CONVERSATION_ROOM.idFromName(id));
const session = (userId: string) => env.USER_SESSION.get(env.USER_SESSION.idFromName(userId));

describe("ConversationRoom hibernation", () => {
  it("is evicted while idle with sockets open, and wakes with every socket's identity", { timeout: 60_000 }, async () => {
    const { id, users } = await seedConversation("group", 3);
    const [alice, bob, carol] = users;
    const sockets = [await connect(id, alice), await connect(id, bob), await connect(id, carol)];
    for (const s of sockets) await waitFor(() => s.frames.find((f) => f.type === "ready"), "ready");
    sockets[0].ws.send(JSON.stringify({ type: "send_message", data: { content: "before", clientMessageId: "c1" }, id: "f1" }));
    await waitFor(() => sockets[0].frames.find((f) => f.type === "message_ack"), "first ack");
    // Alice's and Bob's user sockets hibernate in their sessions meanwhile.
    const userSockets = [await openSocket("/ws", alice), await openSocket("/ws", bob)];
    for (const s of userSockets) await waitFor(() => s.frames.find((f) => f.type === "connected"), "connected");
    // A mark on this instance only: a woken object is a new instance without it.
    for (const stub of [room(id), session(alice.id)]) {
      await runInDurableObject(stub, (instance: object) => {
        (instance as Record<string, boolean>)[MARK] = true;
      });
    }

    await new Promise((r) => setTimeout(r, IDLE_MS));

    // Bob speaks first after the wake: his socket must still be Bob's, not a stranger's or nobody's. Postgres is
    // slow now: the woken room checked its member list 18 s ago (the check is in storage), so the delivery does not
    // wait for a re-read of it (which took a new connection and a round trip, each 4 × 300 ms here).
    await postgres({ delayMs: 300 });
    let delivered: number;
    try {
      const sentAt = Date.now();
      sockets[1].ws.send(JSON.stringify({ type: "send_message", data: { content: "after", clientMessageId: "c2" }, id: "f2" }));
      for (const s of [sockets[0], sockets[2]]) {
        const msg = await waitFor(() => s.frames.find((f) => f.type === "new_message" && f.data.message.seq === 2), "broadcast after wake");
        expect(msg.data.message).toMatchObject({ senderId: bob.id, content: "after" });
      }
      delivered = Date.now() - sentAt;
      await waitFor(() => sockets[1].frames.find((f) => f.type === "message_ack"), "ack after wake");
    } finally {
      await postgres({});
    }
    expect(delivered).toBeLessThan(600);
    const ack = sockets[1].frames.find((f) => f.type === "message_ack")!;
    expect(ack.data.message).toMatchObject({ seq: 2, senderId: bob.id });
    // Per-socket state after the wake: Carol's read receipt and typing are attributed to Carol.
    sockets[2].ws.send(JSON.stringify({ type: "mark_as_read", data: { seq: 2 }, id: "r1" }));
    sockets[2].ws.send(JSON.stringify({ type: "start_typing", id: "t1" }));
    const read = await waitFor(() => sockets[0].frames.find((f) => f.type === "message_read"), "read receipt after wake");
    expect(read.data).toMatchObject({ userId: carol.id, lastReadSeq: 2 });
    const typing = await waitFor(() => sockets[0].frames.find((f) => f.type === "typing_start"), "typing after wake");
    expect(typing.data).toMatchObject({ userId: carol.id });
    const sameInstance = await runInDurableObject(room(id), (instance: ConversationRoom) => MARK in instance);
    expect(sameInstance).toBe(false);
    // Alice's woken session still counts her hibernated socket as a device: she is online, not offline.
    userSockets[1].ws.send(JSON.stringify({ type: "get_presence", data: { userIds: [alice.id] }, id: "p1" }));
    const presence = await waitFor(() => userSockets[1].frames.find((f) => f.id === "p1"), "presence after wake");
    expect(presence.data.presences).toEqual([expect.objectContaining({ userId: alice.id, status: "online" })]);
    expect(await runInDurableObject(session(alice.id), (instance: object) => MARK in instance)).toBe(false);
    for (const s of [...sockets, ...userSockets]) s.ws.close(1000, "done");
  });
});
