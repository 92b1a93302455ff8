import type { Conversation, Message, MessageType, Participant } from "../protocol/resources";

/**
 * The ConversationRoom's RPC surface, called by the Worker. Every write that concerns one conversation's messages
 * goes through its room, which is the single writer (it assigns seq). Methods answer with RpcResult values;
 * the Worker unwraps them with callRoom (src/worker/rooms.ts).
 */
export interface Actor {
  id: string;
  kahaId: string;
  role?: string;
}

export interface SendInput {
  conversationId: string;
  actor: Actor;
  content: string;
  type?: Exclude<MessageType, "system">;
  clientMessageId?: string;
  replyToId?: string | null;
}

export interface SendResult {
  message: Message;
  /** false when a retry with the same clientMessageId returned the original message. */
  created: boolean;
}

export interface HistoryQuery {
  conversationId: string;
  actor: Actor;
  before?: number;
  after?: number;
  limit: number;
}

/** A public message as JSON text, with its sender's id for the Worker to attach the profile without parsing it. */
export interface SerializedMessage {
  json: string;
  senderId: string;
}

export interface HistoryPage {
  messages: SerializedMessage[];
  hasMore: boolean;
  lastSeq: number;
  /** History holds seqs from `archivedUpToSeq` + 1 (older ones are in the archive) to `lastSeq`. */
  archivedUpToSeq: number;
}

export interface SearchInput {
  conversationId: string;
  actor: Actor;
  /** Cleaned, non-empty text (the Worker validates it). */
  q: string;
  /** From the previous page's nextBeforeSeq. */
  beforeSeq?: number;
  limit: number;
}

export interface SearchPage {
  messages: Message[];
  /** Where the next page starts; absent on the last page. */
  nextBeforeSeq?: number;
}

export interface ReadResult {
  conversationId: string;
  lastReadSeq: number;
  lastReadAt: string | null;
  unreadCount: number;
}

/** A member's read and delivered marks as the room holds them (see ConversationRoom.readMarks). */
export interface RoomMarks {
  userId: string;
  lastReadSeq: number;
  lastReadAt: string | null;
  lastDeliveredSeq: number;
}

/**
 * Changes made by the Worker directly in Postgres (membership, names, mute) that the room must mirror and
 * broadcast. The room reloads its participant list from Postgres on `participants`, closes the sockets of
 * users who left (4403), and broadcasts participant_joined / participant_left / participant_updated.
 */
export type RoomEvent =
  | {
      kind: "participants";
      conversationId: string;
      joined?: Participant[];
      left?: string[];
      /**
       * When those in `left` left (ISO; Postgres's left_at). With it the room drops them before re-reading the list,
       * unless its copy has them joined again after that time (the re-add's notice came first).
       */
      leftAt?: string;
      updated?: Participant[];
      /**
       * Those in `joined` who were never in the conversation before. Their marks start at the room's newest seq as
       * the notice lands, when that is later than the seq the add asked the room for: a message sent between the
       * two was sent before they joined, and they had no frame of it.
       */
      newcomers?: string[];
    }
  | { kind: "conversation_updated"; conversationId: string; conversation: Conversation }
  | { kind: "conversation_removed"; conversationId: string };
