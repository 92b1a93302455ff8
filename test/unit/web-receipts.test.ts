import { describe, expect, it } from "vitest";
import { firstUnread, seenByChanges, seenByLines } from "../../web/src/receipts";

const me = "me";
const messages = [
  { seq: 1, senderId: me },
  { seq: 2, senderId: "bob" },
  { seq: 3, senderId: me },
];

describe("the web app's Seen by lines under messages", () => {
  it("puts each reader under the newest message they read that they did not write", () => {
    const lines = seenByLines(messages, [
      { id: "bob", name: "Bob", read: 3 },
      { id: "cat", name: "Cat", read: 3 },
      { id: "dan", name: "Dan", read: 2 },
      { id: "eve", name: "Eve", read: 0 },
    ]);
    expect([...lines]).toEqual([
      [3, "Seen by Bob, Cat"],
      [2, "Seen by Dan"],
    ]);
    // Bob read only up to his own message: his line goes under mine before it.
    expect([...seenByLines(messages, [{ id: "bob", name: "Bob", read: 2 }])]).toEqual([[1, "Seen by Bob"]]);
  });

  it("leaves the lines on screen alone when nothing moved: the live region announced every one again after each message", () => {
    const shown = new Map([[3, "Seen by Bob"]]);
    // A new message from Bob, a delivery receipt: Bob's line stays where it is.
    expect(seenByChanges(shown, new Map([[3, "Seen by Bob"]]))).toEqual({ remove: [], add: [] });
  });

  it("moves only the line that changed", () => {
    const shown = new Map([
      [2, "Seen by Dan"],
      [3, "Seen by Bob"],
    ]);
    const wanted = new Map([
      [3, "Seen by Bob, Dan"],
    ]);
    expect(seenByChanges(shown, wanted)).toEqual({ remove: [2, 3], add: [[3, "Seen by Bob, Dan"]] });
    expect(seenByChanges(new Map([[2, "Seen by Dan"]]), new Map([[2, "Seen by Dan"], [4, "Seen by Bob"]]))).toEqual({ remove: [], add: [[4, "Seen by Bob"]] });
  });
});

describe("the web app's New messages mark on opening a conversation", () => {
  const page = [
    { seq: 1, senderId: "bob", deletedAt: null },
    { seq: 2, senderId: me, deletedAt: null },
    { seq: 3, senderId: "bob", deletedAt: null },
    { seq: 4, senderId: "bob", deletedAt: "2026-01-01T00:00:00.000Z" },
    { seq: 5, senderId: "ann", deletedAt: null },
  ];

  it("marks the first of the unread messages, counted as the server counts them (others', not deleted)", () => {
    expect(firstUnread(page, 2, me, false)).toBe(3);
    expect(firstUnread(page, 1, me, false)).toBe(5);
    expect(firstUnread(page, 3, me, true)).toBe(1);
  });

  it("marks nothing when nothing is unread, and leaves it when the unread begin on an older page", () => {
    expect(firstUnread(page, 0, me, false)).toBeUndefined();
    expect(firstUnread(page, 4, me, true)).toBeUndefined();
    // The whole history is here: more unread than messages (one deleted meanwhile) starts at the first.
    expect(firstUnread(page, 4, me, false)).toBe(1);
  });
});
