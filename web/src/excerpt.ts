import { searchMatches } from "../../src/domain/history";

/** A search result's text: at most about `max` units of the message, and where the search matched in it. */
export interface Excerpt {
  text: string;
  marks: [number, number][];
}

/** Offsets where a character (a grapheme: an emoji with its modifiers, a flag) begins, and the text's end. */
function boundaries(text: string): number[] {
  if (typeof Intl.Segmenter === "function") {
    return [...Array.from(new Intl.Segmenter(undefined, { granularity: "grapheme" }).segment(text), (s) => s.index), text.length];
  }
  const starts: number[] = [];
  let at = 0;
  for (const ch of text) {
    starts.push(at);
    at += ch.length;
  }
  return [...starts, text.length];
}

/** The last boundary at or before `at`. */
const snap = (bounds: readonly number[], at: number) => bounds.reduce((best, b) => (b <= at ? b : best), 0);

/**
 * The part of a message a search result shows: the whole of a short one; of a long one, `max` units from a little
 * before the first match, "…" at each end cut, never inside a character. A result showed the whole message, up to
 * 4,000 characters, and one long message filled the panel and pushed the other results out of sight, its match
 * somewhere in the middle.
 */
export function searchExcerpt(text: string, q: string, max = 200, lead = 60): Excerpt {
  const matches = searchMatches(text, q);
  if (text.length <= max) return { text, marks: matches };
  const bounds = boundaries(text);
  const first = matches[0]?.[0] ?? 0;
  const start = snap(bounds, Math.max(0, Math.min(first - lead, text.length - max)));
  const end = snap(bounds, start + max);
  const before = start > 0 ? "…" : "";
  const after = end < text.length ? "…" : "";
  const marks = matches
    .filter(([a, b]) => b > start && a < end)
    .map(([a, b]): [number, number] => [Math.max(a, start) - start + before.length, Math.min(b, end) - start + before.length]);
  return { text: `${before}${text.slice(start, end)}${after}`, marks };
}
