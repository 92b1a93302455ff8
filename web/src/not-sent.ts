import { ChatApiError } from "../../src/client";

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
