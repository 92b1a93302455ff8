/** Content rules the server applies (contract §5); checked early so obviously bad sends fail without a round trip. */
export const CONTENT_MAX_CHARS = 4000;

// The server's normalisation (src/domain/content.ts), repeated here: the SDK loads no server module at run time.
const CONTROL = /[\u0000-\u0008\u000B-\u001F\u007F-\u009F]/g;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

/**
 * Characters of `raw` as the server counts them: controls (also \r: CRLF becomes LF) and lone surrogates removed,
 * NFC, trimmed, code points rather than UTF-16 units.
 */
export function contentLength(raw: string): number {
  return [...raw.replace(LONE_SURROGATE, "").replace(CONTROL, "").normalize("NFC").trim()].length;
}
