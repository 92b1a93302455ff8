import { describe, expect, it } from "vitest";
import { conversationClientFrame, conversationClientTypes, errorCodeFor, parseFrame, userClientFrame, userClientTypes } from "../../src/protocol/frames";

describe("error frame codes for a refused frame", () => {
  // The SDK retries `unavailable` and gives up on `bad_request`: a send refused by a passing 502 or 504 was dropped.
  it("calls a server-side failure without its own code unavailable (retry), never bad_request", () => {
    expect([502, 504, 507].map(errorCodeFor)).toEqual(["unavailable", "unavailable", "unavailable"]);
    expect(errorCodeFor(503)).toBe("unavailable");
    expect(errorCodeFor(500)).toBe("internal");
  });

  it("keeps each client error's own code, and bad_request for the rest", () => {
    expect([400, 403, 404, 409, 429].map(errorCodeFor)).toEqual(["bad_request", "forbidden", "not_found", "conflict", "rate_limited"]);
    expect([401, 413, 422].map(errorCodeFor)).toEqual(["bad_request", "bad_request", "bad_request"]);
  });
});

describe("error frame messages for an invalid frame", () => {
  // A seq past 2^53 was refused twice in one message: "Too big: expected int …; data.seq: Too big: expected number …".
  it("names a seq that is too large once", () => {
    const tooBig = "data.seq: Too big: expected int to be <=9007199254740991";
    const markRead = parseFrame(JSON.stringify({ type: "mark_as_read", data: { seq: 1e20 } }), conversationClientFrame, conversationClientTypes);
    expect(markRead).toMatchObject({ ok: false, code: "invalid_frame", message: tooBig });
    const delivered = parseFrame(
      JSON.stringify({ type: "mark_delivered", data: { conversationId: crypto.randomUUID(), seq: 2 ** 53 } }),
      userClientFrame,
      userClientTypes,
    );
    expect(delivered).toMatchObject({ ok: false, code: "invalid_frame", message: tooBig });
    expect(parseFrame(JSON.stringify({ type: "resume", data: { afterSeq: Number.MAX_SAFE_INTEGER } }), conversationClientFrame, conversationClientTypes).ok).toBe(true);
  });
});
