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
