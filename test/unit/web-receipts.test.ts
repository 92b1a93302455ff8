import { describe, expect, it } from "vitest";
import { seenByChanges, seenByLines } from "../../web/src/receipts";

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
