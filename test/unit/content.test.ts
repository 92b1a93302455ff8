import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { normalizeContent } from "../../src/domain/content";

describe("content normalisation (contract §5)", () => {
  it("trims, applies NFC and strips control characters except newline and tab", () => {
    expect(normalizeContent("  hi\u0000 there\u0007 \n\tok  ")).toEqual({ ok: true, content: "hi there \n\tok" });
    expect(normalizeContent("e\u0301")).toEqual({ ok: true, content: "\u00e9" });
  });

  it("rejects empty and over-long content", () => {
    expect(normalizeContent(" \u0000\u0001 ").ok).toBe(false);
    expect(normalizeContent("a".repeat(4000)).ok).toBe(true);
    expect(normalizeContent("a".repeat(4001)).ok).toBe(false);
    // 4000 emoji are 8000 UTF-16 units but 4000 characters.
    expect(normalizeContent("😀".repeat(4000)).ok).toBe(true);
  });

  it("is idempotent and never leaves controls, for any input", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary", maxLength: 300 }), (raw) => {
        const once = normalizeContent(raw);
        if (!once.ok) return;
        expect(normalizeContent(once.content)).toEqual(once);
        expect(once.content).not.toMatch(/[\u0000-\u0008\u000B-\u001F\u007F]/);
      }),
      { seed: 42, numRuns: 500 },
    );
  });
});
