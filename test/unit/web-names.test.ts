import { describe, expect, it } from "vitest";
import type { Conversation, Message, Profile } from "../../src/client";
import { placeholderProfile } from "../../src/profiles/placeholder";
import { Directory, typingText } from "../../web/src/format";
import { arrivalText } from "../../web/src/announce";
import { replyQuote } from "../../web/src/reply";
import { memberLines } from "../../web/src/members";
import { groupOthers, memberEntries } from "../../web/src/group-members";
import { dialogError, errorAfterEdit } from "../../web/src/new-conversation-error";
import { ChatApiError } from "../../src/client";

const ann = "a0000000-0000-4000-8000-000000000001";
const bob = "b0000000-0000-4000-8000-000000000002";
const agent = "c0000000-0000-4000-8000-000000000003";
const real = (id: string, name: string): Profile => ({ id, name, avatarUrl: null, kind: "user" });
const message = (seq: number, sender: Profile): Message => ({
  id: `00000000-0000-4000-8000-${String(seq).padStart(12, "0")}`,
  conversationId: "d0000000-0000-4000-8000-000000000000",
  seq,
  senderId: sender.id,
  clientMessageId: null,
  type: "text",
  content: `message ${seq}`,
  replyToId: null,
  createdAt: "2026-01-01T00:00:00.000Z",
  editedAt: null,
  deletedAt: null,
  status: "sent",
  sender,
});
const group = (...profiles: Profile[]): Conversation => ({
  id: "d0000000-0000-4000-8000-000000000000",
  type: "group",
  name: null,
  businessId: null,
  createdAt: "2026-01-01T00:00:00.000Z",
  lastActivity: "2026-01-01T00:00:00.000Z",
  lastSeq: 0,
  version: 1,
  participants: profiles.map((profile) => ({ userId: profile.id, role: "member", joinedAt: "2026-01-01T00:00:00.000Z", isMuted: false, lastReadSeq: 0, lastReadAt: null, lastDeliveredSeq: 0, profile })),
  unreadCount: 0,
  isMuted: false,
});

describe("the web app's names", () => {
  it("lists a group's members by name, me first, with their role and whether they are online", () => {
    const dir = new Directory();
    dir.set(bob, real(bob, "Bob Roe"));
    dir.set(ann, real(ann, "Ann Lee"));
    dir.set(agent, real(agent, "Aaron Agent"));
    const online = new Set([bob]);
    const lines = memberLines(
      [
        { userId: bob, role: "member" },
        { userId: agent, role: "admin" },
        { userId: ann, role: "member" },
      ],
      ann,
      dir,
      (u) => (online.has(u) ? "online" : "offline"),
    );
    expect(lines).toEqual(["Ann Lee (you)", "Aaron Agent · admin · Offline", "Bob Roe · Online"]);
  });

  it("keeps a known real name when a message comes with the sender's placeholder (the profile service down)", () => {
    const dir = new Directory();
    dir.set(ann, real(ann, "Ann Lee"));
    dir.learnMessage(message(1, placeholderProfile(ann, "user", "ann-kaha")));
    expect(dir.name(ann)).toBe("Ann Lee");
    // A placeholder is still better than nothing, and the real name replaces it once it comes.
    dir.learnMessage(message(2, placeholderProfile(bob, "user", "bob-kaha")));
    expect(dir.name(bob)).toBe("bob-kaha");
    dir.learnMessage(message(3, real(bob, "Bob Roe")));
    expect(dir.name(bob)).toBe("Bob Roe");
    // A rename is a real profile, avatar or not: it shows.
    dir.learnMessage(message(4, real(ann, "Ann Roe")));
    expect(dir.name(ann)).toBe("Ann Roe");
  });

  it("says whose name changed, so the bubbles already drawn show one name per person", () => {
    const dir = new Directory();
    const changes: string[][] = [];
    dir.onNames((changed) => changes.push([...changed]));
    dir.learnMessage(message(1, real(ann, "Ann Lee")));
    dir.learnMessage(message(2, real(ann, "Ann Lee")));
    dir.learn(group(real(ann, "Ann Roe"), real(bob, "Bob Roe")));
    dir.learnMessage(message(3, placeholderProfile(ann, "user", "ann-kaha")));
    expect(changes).toEqual([[ann], [ann, bob]]);
    expect(dir.name(ann)).toBe("Ann Roe");
  });

  it("names a typer from typing_start's profile: an agent just assigned is in no list or message yet", () => {
    const dir = new Directory();
    const changes: string[][] = [];
    dir.onNames((changed) => changes.push([...changed]));
    expect(typingText([agent], dir)).toBe("User c0000000 is typing…");
    dir.learnTyping({ userId: agent, isTyping: true, profile: real(agent, "Ann from Support") });
    // Told, so a line drawn before the name was known is drawn again.
    expect(changes).toEqual([[agent]]);
    expect(typingText([agent], dir)).toBe("Ann from Support is typing…");
    expect(typingText([agent, ann], dir)).toBe("Ann from Support and User a0000000 are typing…");
    expect(typingText([agent, ann, bob], dir)).toBe("Several people are typing…");
    expect(typingText([], dir)).toBe("");
  });

  it("names the signed-in user in the top bar as everywhere else: a rename learned from a message shows there too", () => {
    const dir = new Directory();
    const changes: string[][] = [];
    dir.onNames((changed) => changes.push([...changed]));
    // Before /auth/me answers, and while only a placeholder is known: the kahaId alone, not "ann-kaha (ann-kaha)".
    expect(dir.accountLabel(ann, "ann-kaha")).toBe("ann-kaha");
    dir.learnMessage(message(1, placeholderProfile(ann, "user", "ann-kaha")));
    expect(dir.accountLabel(ann, "ann-kaha")).toBe("ann-kaha");
    dir.set(ann, real(ann, "Ann Lee"));
    expect(dir.accountLabel(ann, "ann-kaha")).toBe("Ann Lee (ann-kaha)");
    // Renamed on another device: her next message carries the new name, and the top bar is told to redraw.
    dir.learnMessage(message(2, real(ann, "Ann Roe")));
    expect(changes.at(-1)).toEqual([ann]);
    expect(dir.accountLabel(ann, "ann-kaha")).toBe("Ann Roe (ann-kaha)");
    expect(dir.name(ann)).toBe("Ann Roe");
  });

  it("announces a message that just arrived by its sender's name as known now, and mine as You", () => {
    const dir = new Directory();
    dir.learnMessage(message(1, real(bob, "Bob Roe")));
    expect(arrivalText(message(1, real(bob, "Bob Roe")), ann, dir)).toBe("Bob Roe: message 1");
    expect(arrivalText({ ...message(2, real(ann, "Ann Lee")), content: "  two\n lines " }, ann, dir)).toBe("You: two lines");
    expect(arrivalText({ ...message(3, real(bob, "Bob Roe")), content: "x".repeat(300) }, ann, dir)).toBe(`Bob Roe: ${"x".repeat(199)}…`);
    expect(arrivalText({ ...message(4, real(bob, "Bob Roe")), content: "", deletedAt: "2026-01-01T00:01:00.000Z" }, ann, dir)).toBe("Bob Roe: message deleted");
    // An image or a file by its name: its address read out letter by letter said nothing.
    expect(arrivalText({ ...message(5, real(bob, "Bob Roe")), type: "image", content: "https://cdn.example/p/cat.png" }, ann, dir)).toBe("Bob Roe: Image: cat.png");
  });

  it("says above a reply what it answers: who, and the start of what they wrote, by the names known now", () => {
    const dir = new Directory();
    dir.set(bob, real(bob, "Bob Roe"));
    const answered = { ...message(1, real(bob, "Bob Roe")), content: "Lunch at noon?\nOr later" };
    expect(replyQuote(answered, ann, dir)).toBe("Reply to Bob Roe: Lunch at noon? Or later");
    expect(replyQuote({ ...answered, senderId: ann }, ann, dir)).toBe("Reply to you: Lunch at noon? Or later");
    expect(replyQuote({ ...answered, content: "y".repeat(200) }, ann, dir)).toBe(`Reply to Bob Roe: ${"y".repeat(79)}…`);
    expect(replyQuote({ ...answered, type: "image", content: "https://cdn.example/p/cat.png" }, ann, dir)).toBe("Reply to Bob Roe: Image: cat.png");
    expect(replyQuote({ ...answered, content: "", deletedAt: "2026-01-01T00:01:00.000Z" }, ann, dir)).toBe("Reply to Bob Roe: message deleted");
    // Not loaded here (an older page) and not fetched yet.
    expect(replyQuote(undefined, ann, dir)).toBe("Reply to an earlier message");
    // Above the composer while writing a reply.
    expect(replyQuote(answered, ann, dir, "Replying to")).toBe("Replying to Bob Roe: Lunch at noon? Or later");
    dir.set(bob, real(bob, "Robert Roe"));
    expect(replyQuote(answered, ann, dir)).toBe("Reply to Robert Roe: Lunch at noon? Or later");
  });
});

describe("the web app's New conversation dialog, for a group", () => {
  const carol = "c0000000-0000-4000-8000-00000000000c";
  const ids = (n: number) => Array.from({ length: n }, (_, i) => `e0000000-0000-4000-8000-${String(i).padStart(12, "0")}`);

  it("counts each other person once, as the server does: a repeated name or your own does not count", () => {
    expect(memberEntries(" bob, carol ,, bob,")).toEqual(["bob", "carol"]);
    // "bob, bob" (or bob by name and by id) is one person: it passed as two, and the server refused the group.
    expect(groupOthers([bob, bob.toUpperCase()], ann)).toEqual({ error: "A group needs 2 to 7 people besides you; that is 1 person, counting each person once and not you." });
    expect(groupOthers([ann, bob], ann)).toEqual({ error: "A group needs 2 to 7 people besides you; that is 1 person, counting each person once and not you." });
    expect(groupOthers([bob], ann)).toEqual({ error: "A group needs 2 to 7 people besides you; that is 1 person." });
    expect(groupOthers([bob, ann, carol, bob], ann)).toEqual({ ids: [bob, carol] });
    // Seven others and yourself: eight names, a valid group (it was refused before asking).
    expect(groupOthers([...ids(7), ann], ann)).toEqual({ ids: ids(7) });
    expect(groupOthers(ids(8), ann)).toEqual({ error: "A group needs 2 to 7 people besides you; that is 8 people." });
  });
});

describe("the New conversation dialog's error", () => {
  it("goes once the field it complained about is changed, and stays while another one is", () => {
    const direct = dialogError("direct", new Error("Enter the person to chat with."));
    expect(direct.text).toBe("Enter the person to chat with.");
    expect(errorAfterEdit(direct, "person")).toBeUndefined();

    const count = dialogError("group", new Error("A group needs 2 to 7 people besides you; that is 1 person."));
    expect(errorAfterEdit(count, "name")).toBe(count);
    expect(errorAfterEdit(count, "members")).toBeUndefined();

    const refused = dialogError("group", new ChatApiError({ statusCode: 400, message: "Unknown participant", code: "bad_request" }));
    expect(refused.text).toBe("Could not create it: Unknown participant");
    expect(errorAfterEdit(refused, "name")).toBeUndefined();

    const business = dialogError("business", new Error("A business id looks like 8-4-4-4-12 hexadecimal digits."));
    expect(errorAfterEdit(business, "person")).toBe(business);
    expect(errorAfterEdit(business, "business")).toBeUndefined();
    expect(errorAfterEdit(undefined, "business")).toBeUndefined();
  });
});
