import { ConversationSocket, type ConversationSocketOptions } from "./conversation";
import { userIdFromToken } from "./ids";
import { ChatRest, type RestOptions } from "./rest";
import type { SocketOptions } from "./socket";
import { UserSocket, type UserSocketOptions } from "./user";
import type { DevLoginResult } from "./types";

export interface ChatClientOptions extends RestOptions, SocketOptions {
  /** The current user's id. Default: the `id` claim of the token. */
  userId?: string;
}

/**
 * The SDK's entry point: every REST route of the contract as a typed method, and factories for the realtime sockets.
 *
 * ```ts
 * const chat = new ChatClient({ baseUrl: "https://chat.example.com", token });            // browser
 * const chat = new ChatClient({ baseUrl, token, WebSocket: (await import("ws")).default }); // Node 20
 * const room = chat.conversation(id);
 * room.on("new_message", ({ message }) => render(message));
 * await room.send("hello");
 * ```
 */
export class ChatClient extends ChatRest {
  private readonly options: ChatClientOptions;

  constructor(options: ChatClientOptions) {
    super(options);
    this.options = options;
  }

  /** A token for a demo user (local development servers only). */
  static devLogin(baseUrl: string, kahaId: string, name?: string, fetchImpl?: typeof fetch): Promise<DevLoginResult> {
    return new ChatRest({ baseUrl, fetch: fetchImpl }).devLogin(kahaId, name);
  }

  /** The current user's id (from the option or the token), when known. */
  async userId(): Promise<string | undefined> {
    if (this.options.userId) return this.options.userId.toLowerCase();
    const token = await this.token();
    return token ? userIdFromToken(token) : undefined;
  }

  /** Opens (and keeps open) the socket of one conversation. */
  conversation(conversationId: string, options: ConversationSocketOptions = {}): ConversationSocket {
    const socket = new ConversationSocket(this, this.wsBase(), conversationId, () => this.userId(), { ...this.socketDefaults(), ...options });
    return socket.connect();
  }

  /** Opens (and keeps open) the user's socket: notifications, unread counts, presence. */
  user(options: UserSocketOptions = {}): UserSocket {
    return new UserSocket(this, this.wsBase(), { ...this.socketDefaults(), ...options }).connect();
  }

  private socketDefaults(): SocketOptions {
    const o = this.options;
    return {
      WebSocket: o.WebSocket,
      auth: o.auth,
      backoff: o.backoff,
      heartbeatIntervalMs: o.heartbeatIntervalMs,
      heartbeatTimeoutMs: o.heartbeatTimeoutMs,
      connectTimeoutMs: o.connectTimeoutMs,
      watchNetwork: o.watchNetwork,
      maxAttempts: o.maxAttempts,
    };
  }

  private wsBase(): string {
    const base = this.baseUrl || (globalThis as { location?: { origin?: string } }).location?.origin || "";
    return base.replace(/^http/i, "ws");
  }
}
