// Reference (c): the runtime's floor. The ws floor's room, written as one Durable Object per room in workerd with
// the same hibernation API the service uses (acceptWebSocket, webSocketMessage, getWebSockets), served by Miniflare
// in its own workerd: no auth, no validation beyond JSON.parse. With `?store=1` each message is also inserted into
// the object's SQLite before it is sent, so its frames wait for the commit as the service's do (the output gate).
// `GET /page` is S8's floor: the Worker asks the room (an RPC) for a page of 50 rows from the object's SQLite, which
// it fills with `rows` messages on first use, and answers it as JSON: the request path of a history page with no
// auth, no validation and no profiles.
// The difference between this and the plain-ws floor is what workerd itself costs; the difference between this and
// the service is what the service's own work costs. Started by the bench runner; reports its port over IPC.
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { Miniflare } from "miniflare";

const SCRIPT = /* js */ `
import { DurableObject } from "cloudflare:workers";

export class Room extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    this.seq = 0;
    this.tableReady = false;
    this.historyReady = false;
  }

  async fetch(request) {
    const params = new URL(request.url).searchParams;
    const pair = new WebSocketPair();
    const user = params.get("user") ?? "anonymous";
    this.ctx.acceptWebSocket(pair[1]);
    pair[1].serializeAttachment({ user, store: params.get("store") === "1" });
    pair[1].send(JSON.stringify({ type: "ready", data: { conversationId: params.get("room"), lastSeq: this.seq } }));
    return new Response(null, { status: 101, webSocket: pair[0] });
  }

  webSocketMessage(ws, raw) {
    let frame;
    try {
      frame = JSON.parse(typeof raw === "string" ? raw : new TextDecoder().decode(raw));
    } catch {
      return;
    }
    if (!frame || frame.type !== "send_message" || !frame.data) return;
    const { user, store } = ws.deserializeAttachment();
    const message = {
      id: crypto.randomUUID(),
      conversationId: "room",
      seq: ++this.seq,
      senderId: user,
      clientMessageId: frame.data.clientMessageId,
      type: "text",
      content: frame.data.content,
      createdAt: new Date().toISOString(),
      status: "sent",
    };
    if (store) {
      if (!this.tableReady) {
        this.ctx.storage.sql.exec("CREATE TABLE IF NOT EXISTS m (seq INTEGER PRIMARY KEY, id TEXT, sender TEXT, content TEXT)");
        this.tableReady = true;
      }
      this.ctx.storage.sql.exec("INSERT INTO m VALUES (?, ?, ?, ?)", message.seq, message.id, user, message.content);
    }
    const out = JSON.stringify({ type: "new_message", data: { message } });
    for (const peer of this.ctx.getWebSockets()) peer.send(out);
    ws.send(JSON.stringify({ type: "message_ack", data: { clientMessageId: message.clientMessageId, message }, id: frame.id }));
  }

  /** A page of the \`rows\`-message history, as the service's room serves recent pages from its own storage. */
  page(rows, before, limit) {
    if (!this.historyReady) {
      this.ctx.storage.sql.exec("CREATE TABLE IF NOT EXISTS h (seq INTEGER PRIMARY KEY, id TEXT, sender TEXT, content TEXT, created TEXT)");
      const held = this.ctx.storage.sql.exec("SELECT count(*) AS n FROM h").one().n;
      if (held < rows) {
        this.ctx.storage.sql.exec(
          \`WITH RECURSIVE g(n) AS (SELECT ? UNION ALL SELECT n + 1 FROM g WHERE n < ?)
           INSERT INTO h SELECT n, lower(hex(randomblob(16))), 'u' || (n % 10), 'lorem ipsum message ' || n, ? FROM g\`,
          held + 1,
          rows,
          new Date().toISOString(),
        );
      }
      this.historyReady = true;
    }
    const found = this.ctx.storage.sql.exec("SELECT * FROM h WHERE seq < ? ORDER BY seq DESC LIMIT ?", before, limit + 1).toArray();
    const messages = found.slice(0, limit).reverse().map((r) => ({
      id: r.id,
      conversationId: "room",
      seq: r.seq,
      senderId: r.sender,
      clientMessageId: null,
      type: "text",
      content: r.content,
      replyToId: null,
      createdAt: r.created,
      editedAt: null,
      deletedAt: null,
      status: "sent",
    }));
    return { messages, hasMore: found.length > limit };
  }

  webSocketClose(ws) {
    try {
      ws.close(1000, "bye");
    } catch {
      // already closed
    }
  }
}

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const q = url.searchParams;
    const stub = env.ROOM.get(env.ROOM.idFromName(q.get("room") ?? "default"));
    if (url.pathname === "/page") {
      return Response.json(await stub.page(Number(q.get("rows") ?? 1000), Number(q.get("before") ?? 1e15), Number(q.get("limit") ?? 50)));
    }
    if (request.headers.get("upgrade") !== "websocket") return new Response("websocket only", { status: 426 });
    return stub.fetch(request);
  },
};
`;

async function main(): Promise<void> {
  // On disk, as the service's objects are: an in-memory SQLite would make the stored variant's commit free.
  const state = mkdtempSync(path.join(os.tmpdir(), "workerd-floor-"));
  const mf = new Miniflare({
    host: "127.0.0.1",
    port: 0,
    modules: true,
    script: SCRIPT,
    compatibilityDate: "2026-04-20",
    durableObjects: { ROOM: { className: "Room", useSQLite: true } },
    durableObjectsPersist: state,
  });
  const url = await mf.ready;
  process.send?.({ port: Number(url.port) });
  const stop = () =>
    void mf.dispose().finally(() => {
      rmSync(state, { recursive: true, force: true });
      process.exit(0);
    });
  process.on("SIGTERM", stop);
  process.on("disconnect", stop);
}

main().catch((err: Error) => {
  console.error(`✗ workerd-floor: ${err.message}`);
  process.exit(1);
});
