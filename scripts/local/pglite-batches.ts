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
  const named = new SharedNamedStatements();
  return new Proxy(db, {
    get(target, prop) {
      if (prop === "isInTransaction") return () => midBatch || target.isInTransaction();
      if (prop === "execProtocolRawStream") {
        return (message: Uint8Array, options: Parameters<PGlite["execProtocolRawStream"]>[1]) => {
          midBatch = MID_BATCH.has(message[0]);
          return named.exec(message, options, (m, o) => target.execProtocolRawStream(m, o));
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

type StreamOptions = Parameters<PGlite["execProtocolRawStream"]>[1];
type Exec = (message: Uint8Array, options: StreamOptions) => Promise<void>;

const PARSE = 0x50;
const PARSE_COMPLETE = Uint8Array.of(0x31, 0, 0, 0, 4);

/**
 * Named prepared statements live per connection in Postgres, but PGlite has one session for every socket: the
 * second socket to prepare "room_flush_v1" would get "prepared statement already exists". A Parse of a name the
 * session already holds with the same text is answered ParseComplete without reaching PGlite (the existing
 * statement is the one the client asked for); a different text still goes through and fails as it should.
 */
class SharedNamedStatements {
  private readonly prepared = new Map<string, string>();
  private readonly decoder = new TextDecoder();

  exec(message: Uint8Array, options: StreamOptions, next: Exec): Promise<void> {
    const parse = message[0] === PARSE ? this.readParse(message) : undefined;
    if (!parse || parse.name === "") return next(message, options);
    if (this.prepared.get(parse.name) === parse.text) {
      options?.onRawData?.(PARSE_COMPLETE);
      return Promise.resolve();
    }
    return next(message, {
      ...options,
      onRawData: (data: Uint8Array) => {
        if (data[0] === PARSE_COMPLETE[0]) this.prepared.set(parse.name, parse.text);
        options?.onRawData?.(data);
      },
    });
  }

  /** Parse: 'P', int32 length, statement name (C string), query text (C string), parameter types. */
  private readParse(message: Uint8Array): { name: string; text: string } | undefined {
    const nameEnd = message.indexOf(0, 5);
    const textEnd = nameEnd < 0 ? -1 : message.indexOf(0, nameEnd + 1);
    if (textEnd < 0) return undefined;
    return { name: this.decoder.decode(message.subarray(5, nameEnd)), text: this.decoder.decode(message.subarray(nameEnd + 1, textEnd)) };
  }
}
