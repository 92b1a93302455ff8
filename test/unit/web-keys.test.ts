import { describe, expect, it } from "vitest";
import type { Message } from "../../src/client";
import { Drafts } from "../../web/src/drafts";
import { sendsOnEnter } from "../../web/src/keys";
import { oneAtATime } from "../../web/src/login";

const enter = { key: "Enter", shiftKey: false, isComposing: false, keyCode: 13 };

describe("the web app's Enter key in the composer and the message editor", () => {
  it("sends on Enter alone; Shift+Enter adds a line", () => {
    expect(sendsOnEnter(enter)).toBe(true);
    expect(sendsOnEnter({ ...enter, shiftKey: true })).toBe(false);
    expect(sendsOnEnter({ ...enter, key: "a", keyCode: 65 })).toBe(false);
  });

  it("does not send on the Enter that confirms an IME composition, in Chrome (isComposing) or Safari (keyCode 229 only)", () => {
    expect(sendsOnEnter({ ...enter, isComposing: true, keyCode: 229 })).toBe(false);
    // Safari: the keydown comes after compositionend, so isComposing is false already.
    expect(sendsOnEnter({ ...enter, isComposing: false, keyCode: 229 })).toBe(false);
  });
});

describe("the web app's composer drafts", () => {
  it("gives back what was written in a conversation when it is opened again, each conversation its own", () => {
    const drafts = new Drafts();
    drafts.keep("a", "half a thought,\nand a second line");
    drafts.keep("b", "for b");
    drafts.keep("c", "  \n ");
    expect(drafts.take("a")).toBe("half a thought,\nand a second line");
    expect(drafts.take("b")).toBe("for b");
    expect(drafts.take("c")).toBe("");
    // Taken into the box: sent or cleared there, it does not come back on the next visit.
    expect(drafts.take("a")).toBe("");
    drafts.keep("b", "again");
    drafts.keep("b", "");
    expect(drafts.take("b")).toBe("");
  });

  it("keeps the message a reply answers with the draft, and gives it back once", () => {
    const drafts = new Drafts();
    const answered = { id: "00000000-0000-4000-8000-000000000007", seq: 7, content: "lunch at noon?" } as Message;
    drafts.keep("a", "yes, see you");
    drafts.keepReply("a", answered);
    // Reply pressed and nothing written yet: still a reply when the user comes back.
    drafts.keep("b", "");
    drafts.keepReply("b", answered);
    expect(drafts.takeReply("c")).toBeUndefined();
    expect(drafts.take("a")).toBe("yes, see you");
    expect(drafts.takeReply("a")).toBe(answered);
    expect(drafts.takeReply("b")).toBe(answered);
    expect(drafts.takeReply("a")).toBeUndefined();
    // Cancelled (or sent) before leaving: nothing comes back.
    drafts.keepReply("a", answered);
    drafts.keepReply("a", undefined);
    expect(drafts.takeReply("a")).toBeUndefined();
  });

  it("keeps drafts, replies and edits across a reload of the tab, for the same user only, until sign-out", () => {
    const saved = new Map<string, string>();
    const store = { getItem: (k: string) => saved.get(k) ?? null, setItem: (k: string, v: string) => void saved.set(k, v), removeItem: (k: string) => void saved.delete(k) };
    const answered = { id: "00000000-0000-4000-8000-000000000007", seq: 7, content: "lunch at noon?" } as Message;
    const before = new Drafts(store, "drafts.ann");
    before.keep("a", "a long answer, half written");
    before.keepReply("a", answered);
    before.keepEdits("b", new Map([[3, "fixed"]]));
    // The page reloads: a new app, the same tab. What was written was gone.
    const after = new Drafts(store, "drafts.ann");
    expect(after.take("a")).toBe("a long answer, half written");
    expect(after.takeReply("a")).toEqual(answered);
    expect(after.takeEdits("b")).toEqual(new Map([[3, "fixed"]]));
    expect(new Drafts(store, "drafts.ann").take("a")).toBe("");
    // Another user signing in in this tab sees none of it; signing out forgets it.
    before.keep("c", "private");
    expect(new Drafts(store, "drafts.bob").take("c")).toBe("");
    before.clear();
    expect(new Drafts(store, "drafts.ann").take("c")).toBe("");
    // What cannot be read (another version's, a broken store) is no draft and no error.
    saved.set("drafts.ann", "{not json");
    expect(new Drafts(store, "drafts.ann").take("a")).toBe("");
    saved.set("drafts.ann", JSON.stringify({ texts: [["a", 5]], replies: "x" }));
    expect(new Drafts(store, "drafts.ann").take("a")).toBe("");
  });

  it("keeps an edit in progress when another conversation is opened, and gives it back once", () => {
    const drafts = new Drafts();
    drafts.keepEdits("a", new Map([[7, "fixed the typo, half"]]));
    drafts.keep("a", "and the composer's own draft");
    expect(drafts.takeEdits("b")).toEqual(new Map());
    expect(drafts.takeEdits("a")).toEqual(new Map([[7, "fixed the typo, half"]]));
    // Its own from the composer's: one does not cost the other.
    expect(drafts.take("a")).toBe("and the composer's own draft");
    expect(drafts.takeEdits("a")).toEqual(new Map());
    // Left again with no editor open: nothing comes back.
    drafts.keepEdits("a", new Map([[7, "x"]]));
    drafts.keepEdits("a", new Map());
    expect(drafts.takeEdits("a").size).toBe(0);
  });
});

describe("the web app's sign-in page", () => {
  it("signs in once when a demo user is pressed twice (a double click), and again only after that sign-in ended", async () => {
    const started: string[] = [];
    let answer!: () => void;
    const signIn = oneAtATime(async (kahaId: string) => {
      started.push(kahaId);
      await new Promise<void>((resolve) => (answer = resolve));
    });
    const first = signIn("alice");
    const second = signIn("alice");
    void signIn("bob");
    // Each press started a sign-in, and each that succeeded started an app: two ran at once.
    expect(started).toEqual(["alice"]);
    expect(second).toBe(first);
    answer();
    await first;
    void signIn("bob");
    expect(started).toEqual(["alice", "bob"]);
    answer();
  });
});
