import type { ChatRest } from "./rest";
import { RealtimeSocket, type Frame, type SocketOptions } from "./socket";
import type { PresenceUpdate, UserEvents } from "./types";

/**
 * The user's own socket: notifications of new messages in any conversation, unread counts, presence of contacts and
 * conversation list changes. Reconnects like the conversation socket; after a reconnect the server sends the
 * current unread counts again (events missed while away are not replayed: refresh lists on `state` → open with
 * `reconnected: true`).
 */
export class UserSocket extends RealtimeSocket<UserEvents> {
  constructor(rest: ChatRest, wsBase: string, options: SocketOptions = {}) {
    super(rest, wsBase, options);
  }

  /** `away` when the user is idle, `online` when back. */
  setPresence(status: "online" | "away"): void {
    this.sendFrame("set_presence", { status });
  }

  /** Current presence of users who share a conversation with you (others are left out). */
  async getPresence(userIds: string[]): Promise<PresenceUpdate[]> {
    if (userIds.length === 0) return [];
    const reply = await this.request("get_presence", { userIds: [...new Set(userIds)].slice(0, 200) }, "presence_state");
    return (reply.data?.presences ?? []) as PresenceUpdate[];
  }

  protected path(): string {
    return "/ws";
  }

  protected probe(): Promise<void> {
    return this.rest.me().then(() => undefined);
  }

  protected onFrame(frame: Frame): void {
    const d = frame.data;
    switch (frame.type) {
      case "connected":
        this.emit("connected", d);
        this.markOpen();
        return;
      case "notification":
      case "unread_count":
      case "conversation_created":
      case "conversation_updated":
      case "conversation_removed":
        this.emit(frame.type, d);
        return;
      case "presence_update":
        this.emit("presence", d);
        return;
      case "presence_state":
        for (const p of (d?.presences ?? []) as PresenceUpdate[]) this.emit("presence", p);
        return;
      default:
        return;
    }
  }
}
