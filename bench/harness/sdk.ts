import WebSocket from "ws";
import { ChatClient, type ChatApiError, type ConversationSocket } from "../../src/client/index.js";
import { now, type ChatSocket } from "./clients.js";

/** Opens the SDK's socket of one conversation in Node, as its docs say: `ws` as the WebSocket class, header auth. */
export async function sdkConversation(baseUrl: string, token: string, conversationId: string, timeoutMs = 15_000): Promise<ConversationSocket> {
  // One attempt: a socket that cannot connect should fail the case, not retry in the background while it is measured.
  const chat = new ChatClient({ baseUrl, token, WebSocket, maxAttempts: 1 });
  // The bench Worker allows WS_MAX_FRAMES_PER_SECOND=100000; the SDK's default pacing (80 sends a second, sized for the
  // default 200 frames) would make S1's closed loop measure waiting in the outbox rather than the SDK.
  const socket = chat.conversation(conversationId, { sendsPerSecond: 100_000 });
  if (socket.state !== "open") {
    const change = await socket.next("state", (s) => s.state === "open" || s.state === "closed", timeoutMs).catch((err: Error) => {
      socket.close();
      throw err;
    });
    if (change.state === "closed") throw new Error(`SDK socket closed before it was open: ${change.reason ?? "no reason"}`);
  }
  return socket;
}

/** Whether the SDK's `ws` socket negotiated permessage-deflate (it offers it; JsonWs does not), which costs CPU per frame. */
export function deflateNegotiated(socket: ConversationSocket): boolean {
  return /permessage-deflate/.test((socket.socket as WebSocket | undefined)?.extensions ?? "");
}

/**
 * The SDK's conversation socket behind the harness's ChatSocket face. Unlike JsonWs, the times are taken where an
 * app would see the event (the send promise settling, the listener running), so the SDK's parsing, outbox and
 * promise bookkeeping are inside the measured latency: that is what this client is for.
 */
export class SdkChatSocket implements ChatSocket {
  onAck?: ChatSocket["onAck"];
  onMessage?: ChatSocket["onMessage"];
  onError?: ChatSocket["onError"];

  constructor(readonly socket: ConversationSocket) {
    socket.on("new_message", ({ message }) => {
      if (message.clientMessageId) this.onMessage?.(message.clientMessageId, now());
    });
  }

  sendMessage(clientMessageId: string, content: string): void {
    this.socket.send(content, { clientMessageId }).then(
      (message) => this.onAck?.(clientMessageId, now(), message.status),
      (err: ChatApiError) => this.onError?.(`${err.code}: ${err.message}`),
    );
  }

  get closed(): boolean {
    return this.socket.state === "closed";
  }

  close(): void {
    this.socket.close();
  }
}

/** When the SDK socket emits the `typing` event for this user going to `isTyping` (taken in the listener). */
export function typingSeenAt(socket: ConversationSocket, userId: string, isTyping: boolean, timeoutMs = 10_000): Promise<number> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`SDK: no typing ${isTyping ? "start" : "end"} within ${timeoutMs} ms`));
    }, timeoutMs);
    const off = socket.on("typing", (e) => {
      if (e.userId !== userId || e.isTyping !== isTyping) return;
      const t = now();
      off();
      clearTimeout(timer);
      resolve(t);
    });
  });
}
