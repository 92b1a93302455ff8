import type { Message } from "../protocol/resources";

export interface PageCursor {
  before?: number;
  after?: number;
  limit: number;
}

/**
 * Overlays the room's local rows (pending or just changed: the newest truth) on a page read from Postgres,
 * respecting the cursor: ascending seq, at most `limit`, nearest to the cursor (newest page when none).
 */
export function mergePage(
  pg: { messages: Message[]; hasMore: boolean },
  local: Message[],
  cursor: PageCursor,
): { messages: Message[]; hasMore: boolean } {
  if (local.length === 0) return pg;
  const bySeq = new Map<number, Message>();
  for (const m of pg.messages) bySeq.set(m.seq, m);
  for (const m of local) {
    if (cursor.after !== undefined && m.seq <= cursor.after) continue;
    if (cursor.before !== undefined && m.seq >= cursor.before) continue;
    bySeq.set(m.seq, m);
  }
  const all = [...bySeq.values()].sort((a, b) => a.seq - b.seq);
  const extra = all.length > cursor.limit;
  const messages = cursor.after !== undefined ? all.slice(0, cursor.limit) : all.slice(Math.max(0, all.length - cursor.limit));
  return { messages, hasMore: pg.hasMore || extra };
}

/**
 * The seqs a page covers, given that seq is dense from `first` (the oldest message not archived) to `lastSeq`, and
 * whether older (or newer, with `after`) messages remain. The room answers from its own rows when it holds every
 * seq of the span; an empty span (a cursor outside the range) needs no rows at all.
 */
export function pageSpan(cursor: PageCursor, first: number, lastSeq: number): { from: number; to: number; hasMore: boolean } {
  if (cursor.after !== undefined) {
    const from = Math.max(cursor.after + 1, first);
    const to = Math.min(lastSeq, from + cursor.limit - 1);
    return { from, to, hasMore: to < lastSeq };
  }
  const to = Math.min(lastSeq, (cursor.before ?? lastSeq + 1) - 1);
  const from = Math.max(first, to - cursor.limit + 1);
  return { from, to, hasMore: from > first };
}

/**
 * Search results read from Postgres, with the room's changes Postgres has not seen yet (`changed`: seqs pending
 * around the read; `local`: the room's copy). A message deleted meanwhile is dropped, so its old text is never
 * found; an edited one shows its new text, if that text may still match `q` (found by words the edit took out, it
 * was listed with a text that did not have them).
 */
export function overlayChanges(found: Message[], changed: Set<number>, local: (seq: number) => Message | undefined, q: string): Message[] {
  if (changed.size === 0) return found;
  const out: Message[] = [];
  for (const m of found) {
    const mine = changed.has(m.seq) ? local(m.seq) : undefined;
    if (!mine) out.push(m);
    else if (!mine.deletedAt && mayMatch(mine.content, q)) out.push(mine);
  }
  return out;
}

/**
 * A search page with the room's messages Postgres has not got yet (`waiting`: new messages, or changes whose new text
 * Postgres cannot match yet) that may match `q`, newest first, at most `limit`. Before, a message sent while the
 * write-through waited (a Postgres error, the outbox's backoff) could not be found in its own conversation, though
 * history showed it. Only seqs of this page's span are added (above the Postgres page's last row when it has more,
 * below the cursor): a later page adds the rest, so nothing is listed twice; a page cut at `limit` ends at its last row.
 */
export function withWaiting(
  page: { messages: Message[]; nextBeforeSeq?: number },
  waiting: Message[],
  q: string,
  span: { beforeSeq?: number; limit: number },
): { messages: Message[]; nextBeforeSeq?: number } {
  const listed = new Set(page.messages.map((m) => m.seq));
  const extra = waiting.filter(
    (m) =>
      !listed.has(m.seq) &&
      !m.deletedAt &&
      (span.beforeSeq === undefined || m.seq < span.beforeSeq) &&
      (page.nextBeforeSeq === undefined || m.seq > page.nextBeforeSeq) &&
      mayMatch(m.content, q),
  );
  if (extra.length === 0) return page;
  const all = [...page.messages, ...extra].sort((a, b) => b.seq - a.seq);
  if (all.length <= span.limit) return { messages: all, nextBeforeSeq: page.nextBeforeSeq };
  const kept = all.slice(0, span.limit);
  return { messages: kept, nextBeforeSeq: kept[kept.length - 1].seq };
}

// Letters PostgreSQL's unaccent rewrites that have no (compatibility) decomposition to strip marks from, lower case.
// Checked against Postgres for U+00C0–U+024F by test/e2e/schema.test.ts.
const UNDECOMPOSABLE = new Map(
  "æ:ae ð:d ø:o þ:th ß:ss đ:d ħ:h ı:i ĸ:q ŀ:l ł:l ŉ:'n ŋ:n œ:oe ŧ:t ƀ:b ɓ:b ƃ:b ƈ:c ɖ:d ɗ:d ƌ:d ɛ:e ƒ:f ɠ:g ƕ:hv ɩ:i ɨ:i ƙ:k ƚ:l ɲ:n ƞ:n ƣ:oi ƥ:p ƫ:t ƭ:t ʈ:t ʋ:v ƴ:y ƶ:z ǥ:g ȡ:d ȥ:z ȴ:l ȵ:n ȶ:t ȷ:j ȸ:db ȹ:qp ⱥ:a ȼ:c ⱦ:t ȿ:s ɀ:z ʉ:u ɇ:e ɉ:j ɍ:r ɏ:y"
    .split(" ")
    .map((pair) => [pair.slice(0, pair.indexOf(":")), pair.slice(pair.indexOf(":") + 1)] as const),
);
const UNDECOMPOSABLE_CHARS = new RegExp(`[${[...UNDECOMPOSABLE.keys()].join("")}]`, "gu");

/** Lower case without accents, as search compares (migration 0015's unaccent). */
export function foldForSearch(text: string): string {
  return text
    .toLowerCase()
    .replace(UNDECOMPOSABLE_CHARS, (c) => UNDECOMPOSABLE.get(c) ?? c)
    .normalize("NFKD")
    .replace(/\p{M}+/gu, "");
}

/**
 * Whether Postgres's search (every word of `q`, or `q` as a substring, both ignoring case and accents:
 * src/db/queries/search.ts) could find `content`. Looser than Postgres (a word may match inside a longer one), never
 * stricter: a text Postgres finds always passes, so only texts that lost what was searched for are dropped.
 */
export function mayMatch(content: string, q: string): boolean {
  const text = foldForSearch(content);
  const query = foldForSearch(q);
  if (text.includes(query)) return true;
  const words = query.split(/[^\p{L}\p{N}]+/u).filter((w) => w.length > 0);
  return words.length > 0 && words.every((w) => text.includes(w));
}

/** Grapheme clusters (an emoji with its modifiers, a letter with its marks), or code points where Intl has no segmenter. */
function characters(text: string): string[] {
  if (typeof Intl.Segmenter !== "function") return [...text];
  return Array.from(new Intl.Segmenter(undefined, { granularity: "grapheme" }).segment(text), (s) => s.segment);
}

/**
 * Where a search for `q` matched `text`, for the web app to mark: [start, end) offsets of `text` (UTF-16), in order,
 * not overlapping, each the longest of `q` or one of its words found there, compared as the search compares (case
 * and accents folded). Offsets are those of `text` itself and never inside a character: found in the lower-cased
 * text, they were off by one after an "İ" (two units in lower case) and cut emoji in half, and "cafe" marked
 * nothing in the "café" the search had found.
 */
export function searchMatches(text: string, q: string): [number, number][] {
  // Final sigma: one character of the text at a time has no word end to lower-case "Σ" to "ς" by.
  const fold = (t: string) => foldForSearch(t).replace(/ς/g, "σ");
  const query = fold(q);
  const wanted = [query, ...query.split(/[^\p{L}\p{N}\p{So}\p{Sk}]+/u)].filter((w, i, all) => w.length > 0 && all.indexOf(w) === i);
  if (wanted.length === 0) return [];
  // The folded text, and for each of its units the character of `text` it came from.
  let folded = "";
  const starts: number[] = [];
  const ends: number[] = [];
  let at = 0;
  for (const ch of characters(text)) {
    const f = fold(ch);
    folded += f;
    for (let k = 0; k < f.length; k++) {
      starts.push(at);
      ends.push(at + ch.length);
    }
    at += ch.length;
  }
  const out: [number, number][] = [];
  let i = 0;
  while (i < folded.length) {
    let best = -1;
    let len = 0;
    for (const w of wanted) {
      const found = folded.indexOf(w, i);
      if (found !== -1 && (best === -1 || found < best || (found === best && w.length > len))) {
        best = found;
        len = w.length;
      }
    }
    if (best === -1) break;
    const start = starts[best];
    const end = ends[best + len - 1];
    const last = out[out.length - 1];
    // Two matches in one character (a folded "ß" is "ss") share its range.
    if (last && start < last[1]) last[1] = Math.max(last[1], end);
    else out.push([start, end]);
    i = best + len;
  }
  return out;
}
