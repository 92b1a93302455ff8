// Baseline (b): the conventional Node stack this service replaces. Socket.IO 4 rooms, one Postgres INSERT per message
// (the `pg` package, pool of 10, on the same Postgres and the same `messages` table with its indexes), broadcast to
// the room and acknowledge the sender after the insert. seq comes from an in-process counter (a single node).
// No auth on the handshake (it would cost the same once per connection). Started by the bench runner; reports its
// port over IPC.
import http from "node:http";
import { randomUUID } from "node:crypto";
import pg from "pg";
import { Server } from "socket.io";

const databaseUrl = process.env.DATABASE_URL;
if (!databaseUrl) throw new Error("socketio-pg: DATABASE_URL is required");
const pool = new pg.Pool({ connectionString: databaseUrl, max: 10 });
pool.on("error", () => {});

const seqs = new Map<string, Promise<number>>();
/** Next seq of a room: max(seq) once, then counted here (promise chain keeps concurrent sends ordered). */
function nextSeq(room: string): Promise<number> {
  const prev = seqs.get(room) ?? pool.query<{ s: string }>("SELECT coalesce(max(seq), 0) AS s FROM messages WHERE conversation_id = $1", [room]).then((r) => Number(r.rows[0].s));
  const next = prev.then((s) => s + 1);
  seqs.set(room, next);
  return next;
}

const server = http.createServer();
const io = new Server(server, { transports: ["websocket"], perMessageDeflate: false, serveClient: false });

io.on("connection", (socket) => {
  const room = String(socket.handshake.query.room ?? "");
  const senderId = String(socket.handshake.query.user ?? randomUUID());
  void socket.join(room);
  socket.emit("ready", { conversationId: room });
  socket.on("send_message", async (data: { content: string; clientMessageId: string }, ack?: (reply: unknown) => void) => {
    try {
      const seq = await nextSeq(room);
      const message = {
        id: randomUUID(),
        conversationId: room,
        seq,
        senderId,
        clientMessageId: data.clientMessageId,
        type: "text",
        content: data.content,
        createdAt: new Date().toISOString(),
        status: "sent",
      };
      await pool.query(
        `INSERT INTO messages (id, conversation_id, seq, sender_id, client_message_id, type, content, created_at, event_seq)
         VALUES ($1, $2, $3, $4, $5, 'text', $6, $7, $3)`,
        [message.id, room, seq, senderId, message.clientMessageId, message.content, message.createdAt],
      );
      io.to(room).emit("new_message", { message });
      ack?.({ clientMessageId: data.clientMessageId, status: "sent", message });
    } catch (err) {
      ack?.({ clientMessageId: data.clientMessageId, status: "error", error: (err as Error).message });
    }
  });
});

server.listen(0, "127.0.0.1", () => {
  const addr = server.address();
  process.send?.({ port: typeof addr === "object" && addr ? addr.port : 0 });
});
process.on("disconnect", () => {
  void pool.end().finally(() => process.exit(0));
});
