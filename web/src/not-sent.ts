import { clip } from "./format";
import { CONTENT_MAX_CHARS, ChatApiError, FRAME_MAX_BYTES, contentLength, sendFrameBytes, type ConversationSocket } from "../../src/client";

/**
 * Whether a message the server refused may get through if sent again: not when the server judged the message or the
 * sender (a 4xx other than 429: too long, empty, the conversation closed, no longer a member), since the same message
 * gets the same answer; yes when the refusal was about the moment (rate limited, a 5xx, no answer). A socket closed
 * for good fails its messages with a status of 0 and the close as the cause: the cause decides.
 */
export function mayRetry(error: ChatApiError): boolean {
  if (error.isClientError) return false;
  if (error.cause instanceof ChatApiError) return mayRetry(error.cause);
  return error.isRetryable || error.statusCode >= 500;
}

/**
 * What a screen reader is told when a message is refused while its conversation is open: the "Not sent" note sits
 * on the message below the live region, and nothing said that the message did not go.
 */
export function notSentAlert(content: string, error: ChatApiError): string {
  const text = content.replace(/\s+/g, " ").trim();
  const quoted = clip(text, 60);
  return `Message not sent: “${quoted}”. ${error.message.replace(/\.$/, "")}.${mayRetry(error) ? " Retry is offered." : ""}`;
}

/**
 * Hands a message to the SDK and says at once whether it took it: taken, it is in the outbox (undefined comes back);
 * refused on the spot (too large as a frame, too long, empty, the socket closed), it never reaches the outbox, gets
 * no send_failed, and only the returned promise says why. The composer cleared its text before that answer, and a
 * message refused that way was simply gone.
 */
export function sendOrRefusal(
  socket: Pick<ConversationSocket, "send" | "outbox">,
  content: string,
  clientMessageId: string,
  replyToId: string | null = null,
): Promise<ChatApiError | undefined> | undefined {
  const sending = socket.send(content, { clientMessageId, replyToId });
  if (socket.outbox().some((e) => e.clientMessageId === clientMessageId)) {
    // A refusal from here on is told as send_failed, on the message's own Sending… line.
    sending.catch(() => {});
    return undefined;
  }
  return sending.then(
    () => undefined,
    (err: unknown) => (err instanceof ChatApiError ? err : new ChatApiError({ statusCode: 0, message: String(err) })),
  );
}

/** The composer's note for a message the SDK refused at once: the text stays in the box to be shortened. */
export function refusalNote(error: ChatApiError): string {
  if (error.code === "too_large") {
    return "Not sent: the message is too large to send. Shorten it (pasted control characters take the most room).";
  }
  return `Not sent: ${error.message.replace(/^content: /, "")}`;
}

/** The note under the composer, and what it is about: the text's length, its size as a frame, or anything else. */
export interface ComposerNote {
  text: string;
  about: "length" | "size" | "other";
}

/** The note for a message the SDK refused at once. */
export function composerNote(error: ChatApiError): ComposerNote {
  return { text: refusalNote(error), about: error.code === "too_large" ? "size" : "other" };
}

/**
 * The length rule the server applies, counted as it counts: in characters, so an emoji is one. The textarea's
 * maxlength counted UTF-16 units, which cut a message of emoji at half the limit, silently, on paste.
 */
export function lengthProblem(text: string): string | undefined {
  const length = contentLength(text);
  return length > CONTENT_MAX_CHARS ? `Too long: ${length.toLocaleString("en-US")} characters, at most ${CONTENT_MAX_CHARS.toLocaleString("en-US")}.` : undefined;
}

/**
 * The note as the text is changed: about the length or the size, it stays (as it was: an alert whose text changed
 * at every keystroke would be read out at every keystroke) while the text is still over, and goes once it fits; any
 * other note goes at the first change. The too-large note went at the first keystroke, the text still too large to
 * send, and the next Send brought it back.
 */
export function noteAfterInput(note: ComposerNote | undefined, text: string, replyToId: string | null): ComposerNote | undefined {
  if (note?.about === "length" && lengthProblem(text)) return note;
  if (note?.about === "size" && sendFrameBytes(text, { replyToId }) > FRAME_MAX_BYTES) return note;
  return undefined;
}
