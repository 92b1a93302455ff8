/**
 * Public types of the SDK. Resource shapes and REST results are inferred from the zod schemas the server validates and
 * documents with (src/protocol): type-only imports, so no schema code ends up in the bundle.
 */
import type { Conversation, Message, Participant, Profile } from "../protocol/resources";
import type { PresenceStatus } from "../protocol/frames";

export type { Conversation, ConversationType, GroupRole, Message, MessageType, Participant, Profile, Role } from "../protocol/resources";
export type { PresenceStatus };
export type {
  AgentAvailability,
  BusinessAdmin,
  BusinessAgent,
  BusinessAgents,
  BusinessAssignment,
  BusinessClosed,
  BusinessConversation,
  BusinessHoursStatus,
  BusinessPlacement,
  BusinessQueue,
  BusinessQueueEntry,
  BusinessStats,
  SavedBusinessHours,
} from "../protocol/business";
export type {
  ArchivePage,
  ConversationPage,
  DependencyCheck,
  DevLoginResult,
  Health,
  HealthDetailed,
  InvalidateResult,
  MarkAllReadResult,
  Me,
  MessagePage,
  MuteResult,
  NumberedConversationPage,
  ReadReceipt,
  ReadReceipts,
  ReadResult,
  SearchResult,
  Ticket,
  UnreadCounts,
  UnreadResult,
} from "../protocol/responses";
export type {
  AuditChainBreak,
  AuditEntry,
  AuditPage,
  AuditVerifyReport,
  JobReport,
  JobRun,
  JobRuns,
  RetentionSettings,
} from "../protocol/operations";
export type { AgentInput, BusinessHours, CreateBusinessInput, CreateGroupInput, DayHours, SendMessageInput, Weekday } from "../protocol/requests";

// ── Realtime ───────────────────────────────────────────────────────────────────────────────────────────────

/**
 * - `idle`: not started; `connecting`: opening a socket (first time or after a drop);
 * - `open`: live (for a conversation: ready and caught up); `reconnecting`: waiting before the next attempt;
 * - `offline`: the browser reports no network (retries resume when it is back);
 * - `closed`: closed by the app or for good (removed from the conversation, credentials refused).
 */
export type ConnectionState = "idle" | "connecting" | "open" | "reconnecting" | "offline" | "closed";

export interface StateChange {
  state: ConnectionState;
  previous: ConnectionState;
  /** Consecutive failed attempts so far. */
  attempt: number;
  /** When state is `reconnecting`: the wait before the next attempt (ms). */
  delayMs?: number;
  /** When state is `closed`: why (close code and reason, or the error that made it final). */
  reason?: string;
  /** When state is `open`: true when this is a reconnection (not the first open). */
  reconnected?: boolean;
}

export interface PresenceUpdate {
  userId: string;
  status: PresenceStatus;
  lastSeen: string | null;
}

export interface ReadyData {
  conversationId: string;
  lastSeq: number;
  /**
   * Each with `profile` (name, avatar; `stale: true` when served from cache while the profile service fails) when
   * the server had it in time; a participant without one can be looked up over REST or shown by id.
   */
  participants: Participant[];
  typing: string[];
  you: { lastReadSeq: number; lastDeliveredSeq?: number };
}

export interface TypingEvent {
  conversationId: string;
  userId: string;
  isTyping: boolean;
  profile?: Profile;
  /** The other participants typing now (the server never tells a user of their own typing). */
  typing: string[];
}

export type ReceiptEvent =
  | { kind: "read"; conversationId: string; userId: string; seq: number; at: string }
  | { kind: "delivered"; conversationId: string; userId: string; seq: number };

export interface ConversationEvents {
  ready: ReadyData;
  /** Once per seq, in seq order. `own`: sent by this user (any device). */
  new_message: { message: Message; own: boolean };
  message_updated: { message: Message };
  message_deleted: { messageId: string; seq: number };
  typing: TypingEvent;
  receipt: ReceiptEvent;
  presence: PresenceUpdate;
  participant_joined: { participant: Participant };
  participant_left: { userId: string };
  participant_updated: { participant: Participant };
  conversation_updated: { conversation: Conversation };
  /** A message of the outbox was stored by the server. */
  message_ack: { clientMessageId: string; message: Message };
  /** A message was refused for good (4xx, or failed by the server on three sends) and left the outbox. */
  send_failed: { clientMessageId: string; error: import("./errors").ChatApiError };
  /** The outbox changed (added, acknowledged, failed): the current unacknowledged messages. */
  outbox: { pending: readonly import("./outbox").OutboxEntry[] };
  /** Messages up to upToSeq moved to the archive (read them with GET /conversations/:id/archive). */
  messages_archived: { conversationId: string; upToSeq: number };
  /** A replay after a reconnect finished. */
  resumed: { fromSeq: number; toSeq: number };
  state: StateChange;
  /** An error frame that answered no request of ours, or a connection problem. */
  error: import("./errors").ChatApiError;
}

export interface UserEvents {
  connected: { userId: string; timestamp: string };
  notification: { conversationId: string; message: Message; muted?: boolean };
  unread_count: { conversationId: string; unreadCount: number; totalUnread: number };
  presence: PresenceUpdate;
  conversation_created: { conversation: Conversation };
  conversation_updated: { conversation: Conversation };
  conversation_removed: { conversationId: string };
  state: StateChange;
  error: import("./errors").ChatApiError;
}

/** The parts of a WebSocket the SDK uses: the browser's, `ws` in Node and undici's all fit. */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  // Event parameters are `any` so that every implementation's own event classes fit.
  /* eslint-disable @typescript-eslint/no-explicit-any */
  onopen: ((event: any) => void) | null;
  /** `event.data` is a string for text frames. */
  onmessage: ((event: any) => void) | null;
  /** `event.code`, `event.reason`. */
  onclose: ((event: any) => void) | null;
  onerror: ((event: any) => void) | null;
  /* eslint-enable @typescript-eslint/no-explicit-any */
}

/**
 * A WebSocket constructor. In header mode the SDK calls `new WebSocket(url, { headers })` (the `ws` package and
 * undici accept this); in ticket mode `new WebSocket(url)`.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type WebSocketConstructor = new (url: string, ...rest: any[]) => WebSocketLike;
