import { z } from "zod";
import { LIMITS, messageTypes, participantSchema } from "./resources";
import { clientMessageIdField, uuidField } from "./requests";

/**
 * WebSocket protocol v1 (contract §6). Frames are `{type, data, id?}` JSON text; a reply to a client frame with
 * `id` carries the same `id`. Shared by the Durable Objects, the SDK and the tests.
 */
export const PROTOCOL_VERSION = 1;

const frameId = z.string().max(100).optional();
// int() already stops at 2^53 - 1: a max() beside it refused a larger seq twice in one message.
const seq = z.number().int().min(0);
const empty = z.strictObject({}).optional().default({});

export const sendMessageData = z.strictObject({
  content: z.string().max(LIMITS.contentMaxRawUnits),
  clientMessageId: clientMessageIdField,
  type: z.enum(messageTypes).exclude(["system"]).optional(),
  replyToId: uuidField.nullable().optional(),
});

export const conversationClientFrame = z.discriminatedUnion("type", [
  z.strictObject({ type: z.literal("send_message"), data: sendMessageData, id: frameId }),
  z.strictObject({ type: z.literal("start_typing"), data: empty, id: frameId }),
  z.strictObject({ type: z.literal("stop_typing"), data: empty, id: frameId }),
  z.strictObject({ type: z.literal("mark_as_read"), data: z.strictObject({ seq }), id: frameId }),
  z.strictObject({ type: z.literal("mark_delivered"), data: z.strictObject({ seq }), id: frameId }),
  z.strictObject({ type: z.literal("resume"), data: z.strictObject({ afterSeq: seq }), id: frameId }),
  z.strictObject({ type: z.literal("heartbeat"), data: empty, id: frameId }),
]);
export type ConversationClientFrame = z.infer<typeof conversationClientFrame>;

export const userClientFrame = z.discriminatedUnion("type", [
  z.strictObject({ type: z.literal("heartbeat"), data: empty, id: frameId }),
  z.strictObject({ type: z.literal("set_presence"), data: z.strictObject({ status: z.enum(["online", "away"]) }), id: frameId }),
  z.strictObject({
    type: z.literal("get_presence"),
    data: z.strictObject({ userIds: z.array(uuidField).max(200) }),
    id: frameId,
  }),
  // A device that got a `notification` without the conversation open: the sender sees "delivered".
  z.strictObject({ type: z.literal("mark_delivered"), data: z.strictObject({ conversationId: uuidField, seq }), id: frameId }),
]);
export type UserClientFrame = z.infer<typeof userClientFrame>;

export type PresenceStatus = "online" | "away" | "offline";

/** Server → client frame names (data shapes live with their producers and in the SDK's typed events). */
export const conversationServerFrameTypes = [
  "ready",
  "new_message",
  "message_updated",
  "message_deleted",
  "typing_start",
  "typing_stop",
  "message_read",
  "message_delivered",
  "participant_joined",
  "participant_left",
  "participant_updated",
  "conversation_updated",
  "presence_update",
  "messages_archived",
  "message_ack",
  "resumed",
  "heartbeat_ack",
  "error",
] as const;

/**
 * `ready`, the conversation socket's first frame. A participant carries `profile` when the room had it, or got it
 * within its short wait (READY_PROFILE_WAIT_MS): fresh, a stale copy (`stale: true`) or a placeholder; otherwise none.
 */
export const readyFrameData = z.object({
  conversationId: z.string().uuid(),
  lastSeq: seq,
  participants: z.array(participantSchema),
  /** The other participants typing now; never the socket's own user (typing frames go to the others only). */
  typing: z.array(z.string().uuid()).describe("Other participants typing now; never the socket's own user"),
  you: z.object({ lastReadSeq: seq, lastDeliveredSeq: seq }),
  protocolVersion: z.literal(PROTOCOL_VERSION),
});
export type ReadyFrameData = z.infer<typeof readyFrameData>;

/** `participant_joined` / `participant_updated`: the participant as REST answers it, with `profile`. */
export const participantFrameData = z.object({ participant: participantSchema });
export type ParticipantFrameData = z.infer<typeof participantFrameData>;

export const userServerFrameTypes = [
  "connected",
  "notification",
  "unread_count",
  "conversation_created",
  "conversation_updated",
  "conversation_removed",
  "presence_update",
  "presence_state",
  "heartbeat_ack",
  "error",
] as const;

export type ErrorCode =
  | "invalid_json"
  | "invalid_frame"
  | "unknown_type"
  | "rate_limited"
  | "not_found"
  | "forbidden"
  | "conflict"
  | "bad_request"
  | "unavailable"
  | "internal";

/** The error frame's code for an HTTP-style status raised by shared logic. */
export const ERROR_CODE_BY_STATUS: Record<number, ErrorCode> = {
  400: "bad_request",
  403: "forbidden",
  404: "not_found",
  409: "conflict",
  429: "rate_limited",
  500: "internal",
  503: "unavailable",
};

/**
 * The code for any status. A status without its own code goes by its class: a server-side failure (502, 504, ...) is
 * `unavailable`, which clients retry. Every unlisted status used to be `bad_request`, and the SDK gave up for good
 * on a send that a passing 502 or 504 had refused.
 */
export function errorCodeFor(status: number): ErrorCode {
  return ERROR_CODE_BY_STATUS[status] ?? (status >= 500 ? "unavailable" : "bad_request");
}

export const CLOSE = {
  normal: 1000,
  policy: 1008,
  tooBig: 1009,
  unauthorized: 4401,
  forbidden: 4403,
} as const;

/** Serialises a server frame once; the string is what every socket receives. */
/**
 * Over LIMITS.frameMaxBytes on the wire (UTF-8 bytes, not UTF-16 units: "€" is one unit and three bytes). Encoded
 * only when the length could be over: a string of n units is at most 3n bytes.
 */
export function frameTooLarge(raw: string | ArrayBuffer): boolean {
  if (typeof raw !== "string") return raw.byteLength > LIMITS.frameMaxBytes;
  if (raw.length * 3 <= LIMITS.frameMaxBytes) return false;
  return raw.length > LIMITS.frameMaxBytes || new TextEncoder().encode(raw).length > LIMITS.frameMaxBytes;
}

/** A client frame's id as an error frame echoes it: a string, or a number a client sent against the contract. */
export type EchoedId = string | number;

export function encodeFrame(type: string, data: unknown, id?: EchoedId): string {
  return JSON.stringify(id === undefined ? { type, data } : { type, data, id });
}

export type ParsedFrame<T> = { ok: true; frame: T } | { ok: false; code: ErrorCode; message: string; id?: EchoedId };

/** Parses and validates a client frame: bad JSON, unknown types and bad data are errors, never exceptions. */
export function parseFrame<T extends { type: string }>(raw: string, schema: z.ZodType<T>, knownTypes: readonly string[]): ParsedFrame<T> {
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch {
    return { ok: false, code: "invalid_json", message: "Frame is not valid JSON" };
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    return { ok: false, code: "invalid_frame", message: "Frame must be an object {type, data, id?}" };
  }
  const obj = json as Record<string, unknown>;
  // A numeric id is refused (ids are strings) but echoed: without it a client that numbers its requests could not
  // tell which one the error answers.
  const id = (typeof obj.id === "string" && obj.id.length <= 100) || typeof obj.id === "number" ? obj.id : undefined;
  if (typeof obj.type !== "string" || !knownTypes.includes(obj.type)) {
    return { ok: false, code: "unknown_type", message: `Unknown frame type: ${typeof obj.type === "string" ? obj.type.slice(0, 50) : typeof obj.type}`, id };
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    const message = parsed.error.issues.map((i) => `${i.path.join(".") || "frame"}: ${i.message}`).join("; ");
    return { ok: false, code: "invalid_frame", message, id };
  }
  return { ok: true, frame: parsed.data };
}

export const conversationClientTypes = ["send_message", "start_typing", "stop_typing", "mark_as_read", "mark_delivered", "resume", "heartbeat"] as const;
export const userClientTypes = ["heartbeat", "set_presence", "get_presence", "mark_delivered"] as const;
