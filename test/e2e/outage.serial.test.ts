import { afterEach, describe, expect, it } from "vitest";
import { Client, faults, http, login, pool, seedConversation, until, type User, socketPool, pgSeqs } from "./harness";

/** Postgres outages, injected at the shared bridge: a serial pass, so no other test runs while it is down. */
const sockets = socketPool();
const { open, connect } = sockets;

afterEach(async () => {
  sockets.closeAll();
  await faults.postgres({});
});

describe("Postgres outages", () => {
  it("keeps acking as pending while Postgres is down, and loses nothing once it returns", async () => {
    const [a, b] = [await login(), await login()];
    const id = await seedConversation("direct", [a, b]);
    const [ca, cb] = [await connect(id, a), await connect(id, b)];
    await ca.request("send_message", { content: "before", clientMessageId: "d0" }, "message_ack");
    await faults.postgres({ down: true });
    const acks = [];
    for (let i = 1; i <= 5; i++) acks.push(await ca.request("send_message", { content: `during ${i}`, clientMessageId: `d${i}` }, "message_ack", 15_000));
    expect(acks.map((f) => f.data.message.status)).toEqual(["pending", "pending", "pending", "pending", "pending"]);
    expect(acks.map((f) => f.data.message.seq)).toEqual([2, 3, 4, 5, 6]);
    await until(async () => (cb.all("new_message").length >= 6 ? true : undefined));
    await faults.postgres({});
    const seqs = await until(async () => {
      const s = await pgSeqs(id);
      return s.length === 6 ? s : undefined;
    }, 40_000, 500);
    expect(seqs).toEqual([1, 2, 3, 4, 5, 6]);
    const history = await http("GET", `/conversations/${id}/messages`, b.token);
    expect(history.body.messages.map((m: { seq: number; status: string }) => [m.seq, m.status])).toEqual(
      [1, 2, 3, 4, 5, 6].map((s) => [s, "sent"]),
    );
  }, 90_000);


  it("a replay that cannot be served says so and closes 1013 instead of leaving the socket silent", async () => {
    const [a, b] = [await login(), await login()];
    const id = await seedConversation("direct", [a, b]);
    const db = pool();
    try {
      // History written before the room's storage existed: the room adopts only the newest 100 when it starts, and
      // reads the rest in from Postgres in the background.
      await db.query(
        `INSERT INTO messages (id, conversation_id, seq, sender_id, type, content, created_at, event_seq)
         SELECT gen_random_uuid(), $1, g, $2, 'text', 'old ' || g, now(), g FROM generate_series(1, 120) AS g`,
        [id, a.id],
      );
    } finally {
      await db.end();
    }
    // Slow answers, so the background read of seq 1–20, which starts right after the room loads, is still on its
    // way when Postgres goes down: the room holds only 21–120.
    await faults.postgres({ delayMs: 200 });
    (await connect(id, b)).close();
    await faults.postgres({ down: true });
    // A short absence is covered by the room's own rows.
    const recent = await Client.connect(`/conversations/${id}/ws?afterSeq=110`, b.token);
    open.push(recent);
    await recent.next("ready");
    expect((await recent.next("resumed")).data).toMatchObject({ fromSeq: 111, toSeq: 120 });
    const late = await Client.connect(`/conversations/${id}/ws?afterSeq=0`, b.token);
    open.push(late);
    await late.next("ready");
    expect((await late.next("error")).data.code).toBe("unavailable");
    expect((await late.waitClosed()).code).toBe(1013);
  });

});
