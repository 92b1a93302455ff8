import { describe, expect, it } from "vitest";
import { ChatApiError } from "../../src/client";
import { errorFromFrame } from "../../src/client/errors";
import { mayRetry, notSentAlert } from "../../web/src/not-sent";

const closedBy = (cause: ChatApiError) => new ChatApiError({ statusCode: 0, message: `Not acknowledged before the socket closed: ${cause.message}`, code: "closed", cause });

describe("the web app's Not sent messages: Retry or Dismiss only", () => {
  it("offers Retry when the refusal was about the moment: rate limited, the service unavailable, no answer", () => {
    expect(mayRetry(errorFromFrame({ code: "rate_limited", message: "Too many frames" }))).toBe(true);
    expect(mayRetry(errorFromFrame({ code: "unavailable", message: "Database unavailable" }))).toBe(true);
    expect(mayRetry(errorFromFrame({ code: "internal", message: "Internal error" }))).toBe(true);
    expect(mayRetry(closedBy(new ChatApiError({ statusCode: 0, message: "Gave up after 5 attempts", code: "gave_up" })))).toBe(true);
    expect(mayRetry(closedBy(new ChatApiError({ statusCode: 503, message: "Service Unavailable" })))).toBe(true);
  });

  it("offers Dismiss only when the same message would be refused again: invalid, too long, closed, not a member", () => {
    expect(mayRetry(errorFromFrame({ code: "bad_request", message: "content: at most 4000 characters" }))).toBe(false);
    expect(mayRetry(errorFromFrame({ code: "conflict", message: "The conversation is closed" }))).toBe(false);
    expect(mayRetry(errorFromFrame({ code: "forbidden", message: "Not a participant" }))).toBe(false);
    expect(mayRetry(closedBy(new ChatApiError({ statusCode: 403, message: "No longer a participant", code: "forbidden" })))).toBe(false);
    expect(mayRetry(closedBy(new ChatApiError({ statusCode: 404, message: "Conversation not found", code: "forbidden" })))).toBe(false);
  });

  it("tells a screen reader which message was not sent, and why, when it happens while the conversation is open", () => {
    const closed = errorFromFrame({ code: "conflict", message: "The conversation is closed" });
    expect(notSentAlert("too  late\n", closed)).toBe("Message not sent: “too late”. The conversation is closed.");
    const limited = errorFromFrame({ code: "rate_limited", message: "Too many frames." });
    expect(notSentAlert("x".repeat(100), limited)).toBe(`Message not sent: “${"x".repeat(59)}…”. Too many frames. Retry is offered.`);
  });
});
