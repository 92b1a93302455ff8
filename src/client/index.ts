/**
 * edge-chat SDK: typed REST calls and self-healing realtime sockets for the chat API (contract v1).
 * Runs in browsers and in Node ≥ 20 (pass the `ws` package as the `WebSocket` option there). No Node-only APIs.
 */
export { ChatClient, type ChatClientOptions } from "./client";
export { ChatRest, type RestOptions, type TokenSource } from "./rest";
export { ChatApiError } from "./errors";
export { ConversationSocket, CONTENT_MAX_CHARS, sendFrameBytes, type ConversationSocketOptions, type SendOptions } from "./conversation";
export { contentLength, FRAME_MAX_BYTES } from "./content";
export { UserSocket, type UserSocketOptions } from "./user";
export { RealtimeSocket, type SocketOptions, type Frame } from "./socket";
export { Backoff, backoffDelay, DEFAULT_BACKOFF, type BackoffOptions } from "./backoff";
export { Outbox, type OutboxEntry } from "./outbox";
export { SeqBuffer, VersionSet } from "./seq";
export { TypingThrottle, type TypingOptions, type Clock } from "./typing";
export { Emitter, type Listener } from "./emitter";
export { randomId } from "./ids";
export type * from "./types";
