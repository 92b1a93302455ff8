import type { PGlite } from "@electric-sql/pglite";

// Extended-query messages that continue a batch ended by Sync: Parse, Bind, Describe, Execute, Close, Flush.
const MID_BATCH = new Set([0x50, 0x42, 0x44, 0x45, 0x43, 0x48]);

/**
 * PGlite is one backend session shared by every socket. PGLiteSocketServer queues single protocol messages and only
 * keeps one socket's messages together inside a transaction, so outside one, two sockets' Parse/Bind/Execute batches
 * interleave and bind each other's unnamed statement ("unnamed prepared statement does not exist", or worse, the
 * other query's rows). Handing the server a view of the database that also reports "in a transaction" from a batch's
 * first message to its Sync keeps each batch whole; real Postgres needs none of this.
 */
export function keepBatchesTogether(db: PGlite): PGlite {
  let midBatch = false;
  return new Proxy(db, {
    get(target, prop) {
      if (prop === "isInTransaction") return () => midBatch || target.isInTransaction();
      if (prop === "execProtocolRawStream") {
        return (message: Uint8Array, options: Parameters<PGlite["execProtocolRawStream"]>[1]) => {
          midBatch = MID_BATCH.has(message[0]);
          return target.execProtocolRawStream(message, options);
        };
      }
      if (prop === "exec") {
        // The server's own ROLLBACK after a socket vanished mid-transaction or mid-batch ends the batch too.
        return (query: string, options?: Parameters<PGlite["exec"]>[1]) => {
          midBatch = false;
          return target.exec(query, options);
        };
      }
      const value: unknown = Reflect.get(target, prop, target);
      return typeof value === "function" ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
}
