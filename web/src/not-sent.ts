import { ChatApiError, type ConversationSocket } from "../../src/client";

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
  const quoted = text.length > 60 ? `${text.slice(0, 59)}…` : text;
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
