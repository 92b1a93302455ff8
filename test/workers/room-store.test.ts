import { describe, expect, it } from "vitest";
import { env, runInDurableObject } from "cloudflare:test";
import type { ConversationRoom } from "../../src/durable-objects/conversation-room";
import { RoomStore, SETTLE_IDLE_MS } from "../../src/durable-objects/room/store";
import type { StoredMessage } from "../../src/db/queries/messages";

// The room's SQLite store on its own, in a fresh object's storage: what the outbox flusher relies on.
function freshStore(): Promise<{ run<T>(work: (store: RoomStore, reopen: () => RoomStore) => T): Promise<T> }> {
  const stub = env.CONVERSATION_ROOM.get(env.CONVERSATION_ROOM.newUniqueId());
  return Promise.resolve({
    run: (work) =>
      runInDurableObject(stub, (_instance: ConversationRoom, state) => {
        const open = () => new RoomStore(state.storage.sql, state.storage);
        return work(open(), open);
      }),
  });
}

const conversationId = crypto.randomUUID();
const sender = crypto.randomUUID();

function message(seq: number, content: string, status: StoredMessage["status"], clientMessageId: string | null = null): StoredMessage {
  return {
    id: crypto.randomUUID(),
    conversationId,
    seq,
    senderId: sender,
    clientMessageId,
    type: "text",
    content,
    replyToId: null,
    createdAt: new Date().toISOString(),
    editedAt: null,
    deletedAt: null,
    status,
    eventSeq: seq,
  };
}

const member = (userId: string) => ({ userId, role: "member" as const, joinedAt: new Date().toISOString(), isMuted: false, lastReadSeq: 0, lastReadAt: null, lastDeliveredSeq: 0 });

function append(store: RoomStore, content: string, clientMessageId: string | null = null): StoredMessage {
  return store.appendMessage((seq) => message(seq, content, "pending", clientMessageId), `hash-${content}`);
}

describe("RoomStore outbox", () => {
  it("marks a flushed batch committed, but keeps a message edited during the flush pending", async () => {
    const room = await freshStore();
    await room.run((store, reopen) => {
      store.initialise({ conversationId, type: "group", lastSeq: 0, pgSeqAtInit: 0, clientIdsPrunedBelow: 0, closed: false, heldFrom: 1 }, [], []);
      const [a, b, c] = [append(store, "a"), append(store, "b"), append(store, "c")];
      const inFlight = store.pending();
      expect(inFlight.map((r) => r.message.seq)).toEqual([1, 2, 3]);
      // b is edited while its first version is on its way to Postgres.
      store.updateMessage({ ...b, content: "b, edited", editedAt: new Date().toISOString() });
      store.markFlushed(inFlight);
      expect(store.pending().map((r) => [r.message.seq, r.message.content])).toEqual([[2, "b, edited"]]);
      expect(store.pendingCount()).toBe(1);
      // What is in SQLite, not only in this instance's mirror: a woken room sees the same.
      const woken = reopen();
      expect(woken.pending().map((r) => r.message.seq)).toEqual([2]);
      expect(woken.messageBySeq(a.seq)?.status).toBe("sent");
      expect(woken.messageBySeq(c.seq)?.status).toBe("sent");
      expect(woken.meta()?.lastSeq).toBe(3);
    });
  });

  it("reads a message for a notification without writing the flushed marks: they still ride the next append", async () => {
    const room = await freshStore();
    await room.run((store, reopen) => {
      store.initialise({ conversationId, type: "group", lastSeq: 0, pgSeqAtInit: 0, clientIdsPrunedBelow: 0, closed: false, heldFrom: 1 }, [], []);
      const a = append(store, "a");
      store.markFlushed(store.pending());
      expect(store.peekMessage(a.seq)).toMatchObject({ content: "a" });
      // No write of its own (a settle is a storage commit, holding the room's next frames): SQLite, as a woken room
      // reads it, still has the row pending; the next append writes the mark with its own commit.
      expect(reopen().pendingCount()).toBe(1);
      append(store, "b");
      expect(reopen().pending().map((r) => r.message.seq)).toEqual([2]);
    });
  });

  it("answers a quiet outbox from memory and a woken one from SQLite, with new appends in order", async () => {
    const room = await freshStore();
    await room.run(async (store, reopen) => {
      store.initialise({ conversationId, type: "group", lastSeq: 0, pgSeqAtInit: 0, clientIdsPrunedBelow: 0, closed: false, heldFrom: 1 }, [], []);
      append(store, "one", "c1");
      const woken = reopen();
      append(woken, "two", "c2");
      expect(woken.pending().map((r) => r.message.content)).toEqual(["one", "two"]);
      expect(woken.clientId(sender, "c2")).toEqual({ seq: 2, contentHash: "hash-two" });
      woken.markFlushed(woken.pending());
      expect(woken.pendingCount()).toBe(0);
      // SQLite follows with the next append, in the same commit (a write now would hold the sender's ack behind it)...
      expect(reopen().pendingCount()).toBe(2);
      append(woken, "three", "c3");
      expect(reopen().pending().map((r) => r.message.content)).toEqual(["three"]);
      // ...or, in a quiet room, after a short delay.
      woken.markFlushed(woken.pending());
      await new Promise((r) => setTimeout(r, SETTLE_IDLE_MS + 20));
      expect(reopen().pendingCount()).toBe(0);
      // Typing leases: a sender who was not typing costs nothing; one who was is cleared everywhere.
      expect(woken.clearTyping(sender)).toBe(false);
      woken.setTyping(sender, Date.now() + 5000);
      expect(reopen().typing().map((t) => t.userId)).toEqual([sender]);
      expect(woken.clearTyping(sender)).toBe(true);
      expect(reopen().typing()).toEqual([]);
    });
  });

  it("takes Postgres's view of who is offline for every member at once, but keeps a presence change made after the read", async () => {
    const room = await freshStore();
    await room.run((store, reopen) => {
      const [a, b, c] = [crypto.randomUUID(), crypto.randomUUID(), crypto.randomUUID()];
      store.initialise({ conversationId, type: "group", lastSeq: 0, pgSeqAtInit: 0, clientIdsPrunedBelow: 0, closed: false, heldFrom: 1 }, [a, b, c].map(member), [a, b]);
      expect([...reopen().offlineUsers()].sort()).toEqual([a, b].sort());
      const readAt = Date.now() + 1000;
      // b's session says "online" after the snapshot below was read; c's "offline" came before it.
      store.setReachable(b, true, readAt + 10);
      store.setReachable(c, false, readAt - 10);
      store.adoptOffline([b, c], readAt);
      expect([...reopen().offlineUsers()].sort()).toEqual([c]);
      expect([...store.offlineUsers()]).toEqual([c]);
    });
  });
});

describe("RoomStore member list", () => {
  it("applies a receipt to its member in place: a room of 500 whose devices all acknowledge reads its member list once", async () => {
    const stub = env.CONVERSATION_ROOM.get(env.CONVERSATION_ROOM.newUniqueId());
    await runInDurableObject(stub, (_instance: ConversationRoom, state) => {
      let listReads = 0;
      // The store's SQL, counting the statements that read the whole member list.
      const sql = new Proxy(state.storage.sql, {
        get(target, key) {
          if (key !== "exec") return Reflect.get(target, key);
          return (query: string, ...bindings: unknown[]) => {
            if (/FROM participants/.test(query)) listReads++;
            return target.exec(query, ...(bindings as []));
          };
        },
      });
      const store = new RoomStore(sql, state.storage);
      const ids = Array.from({ length: 500 }, () => crypto.randomUUID());
      store.initialise({ conversationId, type: "group", lastSeq: 0, pgSeqAtInit: 0, clientIdsPrunedBelow: 0, closed: false, heldFrom: 1 }, ids.map(member), []);
      listReads = 0;
      for (const [i, userId] of ids.entries()) {
        const p = store.participant(userId)!;
        store.upsertParticipant({ ...p, lastDeliveredSeq: i + 1 });
      }
      expect(listReads).toBeLessThanOrEqual(1);
      // Copies: changing what a caller got changes nothing stored.
      store.participant(ids[0])!.lastReadSeq = 99;
      store.participants()[1].lastReadSeq = 99;
      // The same list a woken room reads from SQLite, in the same order, a new member last.
      const newcomer = crypto.randomUUID();
      store.upsertParticipant(member(newcomer));
      const woken = new RoomStore(state.storage.sql, state.storage);
      expect(store.participants()).toEqual(woken.participants());
      expect(woken.participants().map((p) => p.userId)).toEqual([...ids, newcomer]);
      expect(woken.participant(ids[499])).toMatchObject({ lastDeliveredSeq: 500, lastReadSeq: 0 });
      expect(woken.participant(ids[0])?.lastReadSeq).toBe(0);
    });
  });
});

describe("RoomStore history backfill", () => {
  const committed = (seq: number, content = `pg ${seq}`): StoredMessage => message(seq, content, "sent");
  const span = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => committed(from + i));
  const meta = { conversationId, type: "group" as const, lastSeq: 10, pgSeqAtInit: 10, clientIdsPrunedBelow: 0, closed: false };

  it("lowers heldFrom only over a complete chunk, keeps the rows it has, and leaves out archived seqs", async () => {
    const room = await freshStore();
    await room.run((store, reopen) => {
      store.initialise({ ...meta, heldFrom: 9 }, [], [], span(9, 10));
      // Seq 4 was edited in the room meanwhile: the chunk's copy of it is stale.
      store.updateMessage({ ...committed(4), content: "edited here", editedAt: new Date().toISOString() });
      // A short chunk (seq 6 missing) claims nothing, though its rows stay.
      expect(store.adoptBackfill(span(5, 8).filter((m) => m.seq !== 6), 5, 8, 0)).toBe(false);
      expect(store.meta()?.heldFrom).toBe(9);
      expect(store.adoptBackfill(span(5, 8), 5, 8, 0)).toBe(true);
      expect(store.meta()?.heldFrom).toBe(5);
      // The archive mark moved to 2 during the read: seqs 1–2 are not adopted, and 3 is where the room holds from.
      expect(store.adoptBackfill(span(1, 4), 1, 4, 2)).toBe(true);
      const woken = reopen();
      expect(woken.meta()?.heldFrom).toBe(3);
      expect(woken.range(1, 10).map((m) => m.seq)).toEqual([3, 4, 5, 6, 7, 8, 9, 10]);
      expect(woken.messageBySeq(4)).toMatchObject({ content: "edited here", status: "pending" });
    });
  });

  it("never claims history for storage from before heldFrom existed, and keeps committed rows past a thousand", async () => {
    const room = await freshStore();
    await room.run((store, reopen) => {
      store.initialise({ ...meta, lastSeq: 0, heldFrom: 1 }, [], []);
      for (let i = 1; i <= 1205; i++) append(store, `m${i}`);
      store.markFlushed(store.pending(Number.MAX_SAFE_INTEGER));
      store.settle();
      expect(store.range(1, 1205).length).toBe(1205);
      expect(store.pendingCount()).toBe(0);
      // Older storage has no heldFrom: it holds nothing for sure, whatever rows are there.
      (store as unknown as { sql: SqlStorage }).sql.exec("DELETE FROM meta WHERE key = 'heldFrom'");
      expect(reopen().meta()?.heldFrom).toBe(1206);
    });
  });
});
