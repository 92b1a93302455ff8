import { describe, expect, it } from "vitest";
import { errorCodeFor } from "../../src/protocol/frames";

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
