// Baseline (a): the floor. A minimal room server on plain `ws`: no auth, no storage, no validation beyond JSON.parse.
// It speaks the service's frames (ready, send_message → new_message to the room + message_ack to the sender), so the
// same client measures both. Started by the bench runner as a child process; reports its port over IPC.
import { randomUUID } from "node:crypto";
import { WebSocketServer, type WebSocket } from "ws";

const rooms = new Map<string, { sockets: Set<WebSocket>; seq: number }>();
const wss = new WebSocketServer({ host: "127.0.0.1", port: 0, perMessageDeflate: false });

wss.on("connection", (ws, req) => {
  const params = new URL(req.url ?? "/", "http://floor").searchParams;
  const roomId = params.get("room") ?? "default";
  const senderId = params.get("user") ?? "anonymous";
  let room = rooms.get(roomId);
  if (!room) rooms.set(roomId, (room = { sockets: new Set(), seq: 0 }));
  const r = room;
  r.sockets.add(ws);
  ws.send(JSON.stringify({ type: "ready", data: { conversationId: roomId, lastSeq: r.seq } }));
  ws.on("message", (raw) => {
    let frame: { type?: string; id?: string; data?: { content?: string; clientMessageId?: string } };
    try {
      frame = JSON.parse(raw.toString());
    } catch {
      return;
    }
    if (frame.type !== "send_message" || !frame.data) return;
    const message = {
      id: randomUUID(),
      conversationId: roomId,
      seq: ++r.seq,
      senderId,
      clientMessageId: frame.data.clientMessageId,
      type: "text",
      content: frame.data.content,
      createdAt: new Date().toISOString(),
      status: "sent",
    };
    const out = JSON.stringify({ type: "new_message", data: { message } });
    for (const peer of r.sockets) peer.send(out);
    ws.send(JSON.stringify({ type: "message_ack", data: { clientMessageId: message.clientMessageId, message }, id: frame.id }));
  });
  ws.on("close", () => r.sockets.delete(ws));
  ws.on("error", () => {});
});

wss.on("listening", () => {
  const addr = wss.address();
  process.send?.({ port: typeof addr === "object" && addr ? addr.port : 0 });
});
process.on("disconnect", () => process.exit(0));
