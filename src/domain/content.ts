import { LIMITS } from "../protocol/resources";

/** `reason` follows the field name the caller puts before it ("content: must not be empty"). */
export type NormalizedContent = { ok: true; content: string } | { ok: false; reason: string };

// C0 and C1 controls except \t and \n; \r is dropped too (a CRLF becomes LF). Also strip lone surrogates,
// which PostgreSQL's UTF-8 text cannot store.
const CONTROL = /[\u0000-\u0008\u000B-\u001F\u007F-\u009F]/g;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

/** Contract §5: trimmed, Unicode NFC, controls other than \n and \t removed; 1..4000 characters after that. */
export function normalizeContent(raw: string): NormalizedContent {
  // Controls go before NFC: one between a letter and its accent ("e\u0000\u0301") would otherwise block the
  // composition and leave text that is not NFC once it is removed.
  const content = raw.replace(LONE_SURROGATE, "").replace(CONTROL, "").normalize("NFC").trim();
  if (content.length === 0) return { ok: false, reason: "must not be empty" };
  // Characters, as users count them: code points rather than UTF-16 units.
  if ([...content].length > LIMITS.contentMaxChars) {
    return { ok: false, reason: `must be at most ${LIMITS.contentMaxChars} characters` };
  }
  return { ok: true, content };
}
