import { LIMITS } from "../protocol/limits";

/** Content rules the server applies (contract §5); checked early so obviously bad sends fail without a round trip. */
export const CONTENT_MAX_CHARS = LIMITS.contentMaxChars;

/**
 * Content as written (UTF-16 units, spaces and control characters included) the server takes at most: text well
 * under CONTENT_MAX_CHARS after the trim can be over it (a paste that ends in thousands of blank lines).
 */
export const CONTENT_MAX_RAW_UNITS = LIMITS.contentMaxRawUnits;

/** The server closes a socket (1009) that sends a frame over this many UTF-8 bytes. */
export const FRAME_MAX_BYTES = LIMITS.frameMaxBytes;

// The server's normalisation (src/domain/content.ts), repeated here: the SDK loads no server module at run time.
const CONTROL = /[\u0000-\u0008\u000B-\u001F\u007F-\u009F]/g;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

/**
 * Characters of `raw` as the server counts them: controls (also \r: CRLF becomes LF) and lone surrogates removed,
 * NFC, trimmed, code points rather than UTF-16 units.
 */
export function contentLength(raw: string): number {
  return [...normalContent(raw)].length;
}

/** `raw` as the server stores it (and compares it: a reused clientMessageId must carry the same message). */
export function normalContent(raw: string): string {
  return raw.replace(LONE_SURROGATE, "").replace(CONTROL, "").normalize("NFC").trim();
}

/** A frame's size on the wire: UTF-8 bytes, not UTF-16 units (a control character is 6 bytes as JSON, "€" 3). */
export function frameBytes(frame: string): number {
  return new TextEncoder().encode(frame).length;
}
