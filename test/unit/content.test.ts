import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { normalizeContent } from "../../src/domain/content";

describe("content normalisation (contract §5)", () => {
  it("trims, applies NFC and strips control characters except newline and tab", () => {
    expect(normalizeContent("  hi\u0000 there\u0007 \n\tok  ")).toEqual({ ok: true, content: "hi there \n\tok" });
    expect(normalizeContent("e\u0301")).toEqual({ ok: true, content: "\u00e9" });
    // A control between a letter and its accent is removed before composing, so the result is still NFC.
    expect(normalizeContent("e\u0000\u0301")).toEqual({ ok: true, content: "\u00e9" });
  });

  it("always answers NFC text, also when controls sit between letters and combining marks", () => {
    const pieces = fc.constantFrom("e", "a", "o", " ", "\u0301", "\u0308", "\u0327", "\u0000", "\u0007", "\u001f", "\u007f");
    fc.assert(
      fc.property(fc.array(pieces, { maxLength: 40 }), (parts) => {
        const once = normalizeContent(parts.join(""));
        if (!once.ok) return;
        expect(once.content).toBe(once.content.normalize("NFC"));
        expect(normalizeContent(once.content)).toEqual(once);
      }),
      { seed: 7, numRuns: 500 },
    );
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
        expect(once.content).toBe(once.content.normalize("NFC"));
      }),
      { seed: 42, numRuns: 500 },
    );
  });
});
