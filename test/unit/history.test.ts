import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { overlayChanges, pageSpan, searchMatches, withWaiting, type PageCursor } from "../../src/domain/history";
import type { Message } from "../../src/protocol/resources";

/** The page Postgres would answer over the dense seqs first..last: the reference the room's shortcut must match. */
function reference(cursor: PageCursor, first: number, last: number): { seqs: number[]; hasMore: boolean } {
  const all = Array.from({ length: Math.max(0, last - first + 1) }, (_, i) => first + i);
  if (cursor.after !== undefined) {
    const rows = all.filter((s) => s > cursor.after!);
    return { seqs: rows.slice(0, cursor.limit), hasMore: rows.length > cursor.limit };
  }
  const rows = all.filter((s) => cursor.before === undefined || s < cursor.before);
  return { seqs: rows.slice(Math.max(0, rows.length - cursor.limit)), hasMore: rows.length > cursor.limit };
}

const seqsOf = (span: { from: number; to: number }) => Array.from({ length: Math.max(0, span.to - span.from + 1) }, (_, i) => span.from + i);

describe("pageSpan", () => {
  it("names the newest page, older and newer pages, and empty spans outside the range", () => {
    expect(pageSpan({ limit: 50 }, 1, 120)).toEqual({ from: 71, to: 120, hasMore: true });
    expect(pageSpan({ before: 71, limit: 50 }, 1, 120)).toEqual({ from: 21, to: 70, hasMore: true });
    expect(pageSpan({ before: 21, limit: 50 }, 1, 120)).toEqual({ from: 1, to: 20, hasMore: false });
    expect(pageSpan({ after: 100, limit: 50 }, 1, 120)).toEqual({ from: 101, to: 120, hasMore: false });
    expect(pageSpan({ before: 1, limit: 50 }, 1, 120)).toMatchObject({ hasMore: false });
    expect(seqsOf(pageSpan({ after: 500, limit: 50 }, 1, 120))).toEqual([]);
    // Archived seqs are gone: the oldest page starts after them.
    expect(pageSpan({ before: 40, limit: 50 }, 31, 120)).toEqual({ from: 31, to: 39, hasMore: false });
    expect(pageSpan({ after: 0, limit: 5 }, 31, 120)).toEqual({ from: 31, to: 35, hasMore: true });
  });

  it("matches the Postgres page for every cursor (property-based)", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 60 }),
        fc.integer({ min: 0, max: 80 }),
        fc.integer({ min: 1, max: 20 }),
        fc.option(fc.integer({ min: 0, max: 100 }), { nil: undefined }),
        fc.boolean(),
        (first, count, limit, at, after) => {
          const last = first + count - 1;
          const cursor: PageCursor = at === undefined ? { limit } : after ? { after: at, limit } : { before: at, limit };
          const span = pageSpan(cursor, first, last);
          expect({ seqs: seqsOf(span), hasMore: span.hasMore }).toEqual(reference(cursor, first, last));
        },
      ),
      { seed: 11, numRuns: 2000 },
    );
  });
});

/** A text message of seq `seq` in one conversation, as the room and Postgres serve it. */
const textMessage = (seq: number, content: string, deletedAt: string | null = null): Message => ({
  id: `00000000-0000-4000-8000-${String(seq).padStart(12, "0")}`,
  conversationId: "00000000-0000-4000-8000-000000000000",
  seq,
  senderId: "00000000-0000-4000-8000-000000000001",
  clientMessageId: null,
  type: "text",
  content,
  replyToId: null,
  createdAt: "2026-11-27T00:00:00.000Z",
  editedAt: null,
  deletedAt,
  status: "sent",
});

describe("overlayChanges", () => {
  const message = textMessage;

  it("drops what the room deleted, shows what it edited, and keeps the rest in order", () => {
    const found = [message(9, "secret words"), message(7, "old words"), message(4, "untouched words")];
    const room = new Map([
      [9, message(9, "", "2026-11-27T00:01:00.000Z")],
      [7, { ...message(7, "new words"), status: "pending" as const }],
    ]);
    const out = overlayChanges(found, new Set([9, 7, 2]), (seq) => room.get(seq), "words");
    expect(out.map((m) => [m.seq, m.content])).toEqual([
      [7, "new words"],
      [4, "untouched words"],
    ]);
  });

  it("drops an edited message whose new text lost what was searched for", () => {
    const found = [message(7, "meet at the harbour"), message(4, "harbour view")];
    const room = new Map([[7, message(7, "meet at the Station")]]);
    expect(overlayChanges(found, new Set([7]), (seq) => room.get(seq), "harbour").map((m) => m.seq)).toEqual([4]);
    // Every word, in any order and case, or the query as a substring: as Postgres would find the new text.
    for (const q of ["station MEET", "t the st", "meet-at"]) {
      expect(overlayChanges(found, new Set([7]), (seq) => room.get(seq), q).map((m) => m.content)).toContain("meet at the Station");
    }
    expect(overlayChanges(found, new Set([7]), (seq) => room.get(seq), "?!").map((m) => m.seq)).toEqual([4]);
    // Without accents on either side, as Postgres's unaccent compares (migration 0015).
    const accented = new Map([[7, message(7, "Déjà vu at the Straße café")]]);
    for (const q of ["deja VU", "strasse cafe", "à the", "DÉJÀ"]) {
      expect(overlayChanges(found, new Set([7]), (seq) => accented.get(seq), q).map((m) => m.seq), q).toEqual([7, 4]);
    }
  });

  it("keeps Postgres's row when the room no longer holds the changed one", () => {
    const found = [message(3, "as committed")];
    expect(overlayChanges(found, new Set([3]), () => undefined, "committed")).toEqual(found);
    expect(overlayChanges(found, new Set(), () => message(3, "", "x"), "committed")).toBe(found);
  });
});

describe("withWaiting", () => {
  const message = (seq: number): Message => textMessage(seq, `match ${seq}`);

  it("pages through Postgres's matches and the room's waiting ones, newest first, each once (property-based)", () => {
    fc.assert(
      fc.property(fc.uniqueArray(fc.integer({ min: 1, max: 60 }), { maxLength: 30 }), fc.integer({ min: 1, max: 30 }), fc.integer({ min: 1, max: 7 }), (seqs, split, limit) => {
        const committed = seqs.slice(0, split).sort((a, b) => b - a);
        const waiting = seqs.slice(split).map((seq) => ({ ...message(seq), status: "pending" as const }));
        const got: number[] = [];
        let beforeSeq: number | undefined;
        for (let pages = 0; pages < 100; pages++) {
          // As searchConversation answers: limit + 1 rows read, the cursor at the last one returned.
          const rows = committed.filter((s) => beforeSeq === undefined || s < beforeSeq).slice(0, limit + 1);
          const shown = rows.slice(0, limit).map(message);
          const page = withWaiting({ messages: shown, nextBeforeSeq: rows.length > limit ? shown[shown.length - 1].seq : undefined }, waiting, "match", { beforeSeq, limit });
          expect(page.messages.length).toBeLessThanOrEqual(limit);
          got.push(...page.messages.map((m) => m.seq));
          if (page.nextBeforeSeq === undefined) break;
          beforeSeq = page.nextBeforeSeq;
        }
        expect(got).toEqual([...seqs].sort((a, b) => b - a));
      }),
      { seed: 11, numRuns: 300 },
    );
  });
});

describe("searchMatches", () => {
  const marked = (text: string, q: string) => searchMatches(text, q).map(([s, e]) => text.slice(s, e));

  it("marks what the search matched, ignoring case and accents as the search does", () => {
    expect(marked("See you at the Harbour, see", "see harbour")).toEqual(["See", "Harbour", "see"]);
    // Found by the server (accents folded), but nothing was marked.
    expect(marked("Meet at the café", "cafe")).toEqual(["café"]);
    expect(marked("Meet at the cafe", "CAFÉ")).toEqual(["cafe"]);
    expect(marked("Die Straße", "strasse")).toEqual(["Straße"]);
    expect(marked("ΝΕΟΣ ΔΡΟΜΟΣ", "δρόμος")).toEqual(["ΔΡΟΜΟΣ"]);
  });

  it("never cuts a character: offsets stay right after letters whose lower case is longer, emoji stay whole", () => {
    // "İ" lower-cases to two UTF-16 units: every later mark was one to the right ("arty" for "party").
    expect(marked("İstanbul 🎉 party", "party")).toEqual(["party"]);
    // ... and cut the emoji's surrogate pair in two.
    expect(marked("İ🎉", "🎉")).toEqual(["🎉"]);
    expect(marked("thumbs 👍🏽 up", "👍")).toEqual(["👍🏽"]);
    fc.assert(
      fc.property(fc.string({ unit: "grapheme", maxLength: 30 }), fc.string({ unit: "grapheme", minLength: 1, maxLength: 4 }), (text, q) => {
        let at = 0;
        for (const [s, e] of searchMatches(text, q)) {
          expect(s).toBeGreaterThanOrEqual(at);
          expect(e).toBeGreaterThan(s);
          expect(e).toBeLessThanOrEqual(text.length);
          // Never between the two halves of a surrogate pair.
          for (const cut of [s, e]) expect(/[\udc00-\udfff]/.test(text.charAt(cut)) && /[\ud800-\udbff]/.test(text.charAt(cut - 1))).toBe(false);
          at = e;
        }
      }),
      { seed: 5, numRuns: 300 },
    );
  });
});
