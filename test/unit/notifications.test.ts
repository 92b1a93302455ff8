import { describe, expect, it } from "vitest";
import { NotificationBatcher } from "../../src/durable-objects/room/notifications";
import type { Message } from "../../src/protocol/resources";

const message = (seq: number, senderId: string) => ({ id: `m${seq}`, conversationId: "c1", seq, senderId }) as unknown as Message;

function setup() {
  const calls: { userId: string; seqs: number[]; muted: boolean }[] = [];
  let release: () => void = () => {};
  let gate = Promise.resolve();
  const work: Promise<void>[] = [];
  const batcher = new NotificationBatcher({
    recipients: () => [
      { userId: "alice", isMuted: false, lastReadSeq: 0 },
      { userId: "bob", isMuted: true, lastReadSeq: 0 },
    ],
    // The room's copy is the queued one (the workers test covers a message deleted before its batch).
    current: (m) => m,
    deliver: async (userId, batch) => {
      calls.push({ userId, seqs: batch.messages.map((m) => m.seq), muted: batch.muted });
      await gate;
    },
    keepAlive: (p) => work.push(p),
    onFailed: () => {},
  });
  const hold = () => {
    gate = new Promise((r) => (release = r));
  };
  return { batcher, calls, work, hold, release: () => release() };
}

describe("NotificationBatcher", () => {
  it("sends one call per recipient per batch: messages that arrive while a batch is out go together, in order", async () => {
    const t = setup();
    t.hold();
    t.batcher.push(message(1, "alice"));
    await new Promise((r) => setTimeout(r, 5));
    t.batcher.push(message(2, "alice"));
    t.batcher.push(message(3, "bob"));
    t.release();
    await Promise.all(t.work);
    expect(t.work).toHaveLength(1);
    expect(t.calls).toEqual([
      { userId: "bob", seqs: [1], muted: true },
      { userId: "alice", seqs: [3], muted: false },
      { userId: "bob", seqs: [2], muted: true },
    ]);
  });

  it("lets the current task finish first: messages pushed in one task go out as one batch", async () => {
    const t = setup();
    t.batcher.push(message(1, "alice"));
    t.batcher.push(message(2, "alice"));
    expect(t.calls).toEqual([]);
    await Promise.all(t.work);
    expect(t.calls).toEqual([{ userId: "bob", seqs: [1, 2], muted: true }]);
  });

  it("never tells a sender about their own message, and starts again after a quiet spell", async () => {
    const t = setup();
    t.batcher.push(message(1, "alice"));
    await Promise.all(t.work);
    t.batcher.push(message(2, "bob"));
    await Promise.all(t.work);
    expect(t.work).toHaveLength(2);
    expect(t.calls.map((c) => [c.userId, c.seqs])).toEqual([
      ["bob", [1]],
      ["alice", [2]],
    ]);
  });

  it("leaves out what a recipient has read by the time the batch goes (on a device with the conversation open)", async () => {
    const calls: { userId: string; seqs: number[] }[] = [];
    const work: Promise<void>[] = [];
    const batcher = new NotificationBatcher({
      recipients: () => [
        { userId: "bob", isMuted: false, lastReadSeq: 2 },
        { userId: "carol", isMuted: false, lastReadSeq: 3 },
      ],
      current: (m) => m,
      deliver: async (userId, batch) => {
        calls.push({ userId, seqs: batch.messages.map((m) => m.seq) });
      },
      keepAlive: (p) => work.push(p),
      onFailed: () => {},
    });
    for (const seq of [2, 3]) batcher.push(message(seq, "alice"));
    await Promise.all(work);
    expect(calls).toEqual([{ userId: "bob", seqs: [3] }]);
  });
});
