import { describe, expect, it } from "vitest";
import { env, runInDurableObject } from "cloudflare:test";
import type { BusinessDesk } from "../../src/durable-objects/business-desk";
import { DeskStore, type QueueEntry } from "../../src/durable-objects/business/store";

// The desk's SQLite queue on its own, in a fresh object's storage: the places customers are told.
function withStore<T>(work: (store: DeskStore) => T): Promise<T> {
  const stub = env.BUSINESS_DESK.get(env.BUSINESS_DESK.newUniqueId());
  return runInDurableObject(stub, (_instance: BusinessDesk, state) => work(new DeskStore(state.storage.sql, state.storage.kv)));
}

const arrival = (conversationId: string): Omit<QueueEntry, "seq"> => ({
  conversationId,
  customerId: crypto.randomUUID(),
  category: null,
  preferredAgentId: null,
  enqueuedAt: Date.now(),
});

const places = (store: DeskStore, ids: string[]) => ids.map((id) => store.position(id));

describe("the desk's queue after a failed write", () => {
  it("gives a reservation put back, and a conversation that lost its agent meanwhile, places of their own", async () => {
    const result = await withStore((store) => {
      const first = store.enqueue(arrival("first"));
      store.enqueue(arrival("second"));
      // "first" is reserved for an agent (out of the queue while its write runs); meanwhile another conversation
      // loses its agent and goes to the front; then the write fails and "first" comes back.
      store.dequeue("first");
      store.enqueue(arrival("orphan"), true);
      store.requeue(first);
      return { places: places(store, ["first", "orphan", "second"]), order: store.queue().map((q) => q.conversationId) };
    });
    // "first" is back at its own place, behind the conversation that went to the front while it was out.
    expect(result.places).toEqual([2, 1, 3]);
    expect(result.order).toEqual(["orphan", "first", "second"]);
  });

  it("gives each assignment undone after a restart a place of its own", async () => {
    const result = await withStore((store) => {
      store.enqueue(arrival("waiting"));
      // After a restart, unsynced assignments whose writes fail again go back to the queue without a seq of their own.
      for (const id of ["undone-1", "undone-2"]) store.requeue({ ...arrival(id), seq: 0 });
      return places(store, ["undone-1", "undone-2", "waiting"]);
    });
    expect([...result].sort()).toEqual([1, 2, 3]);
    expect(result[2]).toBe(3);
  });

  it("keeps a requeued conversation's place when nobody took it", async () => {
    const result = await withStore((store) => {
      const ids = ["a", "b", "c"];
      const entries = ids.map((id) => store.enqueue(arrival(id)));
      store.dequeue("b");
      store.requeue(entries[1]);
      return places(store, ids);
    });
    expect(result).toEqual([1, 2, 3]);
  });
});
