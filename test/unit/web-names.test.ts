import { describe, expect, it } from "vitest";
import type { Message, Profile } from "../../src/client";
import { placeholderProfile } from "../../src/profiles/placeholder";
import { Directory } from "../../web/src/format";

const ann = "a0000000-0000-4000-8000-000000000001";
const bob = "b0000000-0000-4000-8000-000000000002";
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

describe("the web app's names", () => {
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
});
