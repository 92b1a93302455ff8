import { describe, expect, it, vi } from "vitest";
import type { Conversation, Message, Participant } from "../../src/client";
import { placeholderProfile } from "../../src/profiles/placeholder";
import { Directory, businessState, conversationTitle, initials, withNewerCopy, laterMessage, mergeConversation, messageTime, preview, shortTime, titleUnread } from "../../web/src/format";
import { replyQuote } from "../../web/src/reply";
import { arrivalText } from "../../web/src/announce";
import { notSentAlert } from "../../web/src/not-sent";
import { ChatApiError } from "../../src/client";
import { ListReloads, toDrop, type Listed } from "../../web/src/list-refresh";
import { ListPages, type CursorPage } from "../../web/src/list-pages";
import { messageBody, safeUrl, searchSnippet, textRuns } from "../../web/src/attachments";
import { searchMatches } from "../../src/domain/history";
import { searchExcerpt } from "../../web/src/excerpt";
import { DayChange } from "../../web/src/day-change";

const at = (minute: number) => `2026-01-01T00:${String(minute).padStart(2, "0")}:00.000Z`;
const conv = (id: string, minute: number): Listed => ({ id, lastActivity: at(minute) });
const lastPage = (...conversations: Listed[]) => ({ conversations, nextCursor: null });

describe("the web app's conversation list after a reconnect", () => {
  it("keeps an old group the user is added to while the list reloads, though the page read before the add omits it", () => {
    const reloads = new ListReloads();
    const reload = reloads.begin(at(30));
    // Added to a group whose last message is from minute 5: pushed as conversation_created during the request.
    reloads.arrive("old-group");
    const held = [conv("direct", 30), conv("old-group", 5)];
    expect(toDrop(held, lastPage(conv("direct", 30)), reload)).toEqual([]);
    reload.end();
  });

  it("still drops what the user was removed from while offline, and an arrival removed again during the reload", () => {
    const reloads = new ListReloads();
    const reload = reloads.begin(at(30));
    reloads.arrive("added-then-removed");
    reloads.remove("added-then-removed");
    const held = [conv("direct", 30), conv("gone-offline", 20), conv("added-then-removed", 5)];
    expect(toDrop(held, lastPage(conv("direct", 30)), reload).sort()).toEqual(["added-then-removed", "gone-offline"]);
    reload.end();
  });

  it("counts only arrivals during this reload: not before it began, not after it ended", () => {
    const reloads = new ListReloads();
    reloads.arrive("before");
    const first = reloads.begin(at(30));
    first.end();
    reloads.arrive("after-first");
    const second = reloads.begin(at(30));
    const held = [conv("before", 10), conv("after-first", 10)];
    expect(toDrop(held, lastPage(), first).sort()).toEqual(["after-first", "before"]);
    expect(toDrop(held, lastPage(), second).sort()).toEqual(["after-first", "before"]);
    // Two reloads at once (two quick reconnects): an arrival counts for each.
    const third = reloads.begin(at(30));
    reloads.arrive("during-both");
    expect(toDrop([conv("during-both", 1)], lastPage(), second)).toEqual([]);
    expect(toDrop([conv("during-both", 1)], lastPage(), third)).toEqual([]);
  });

  it("keeps what moved after the request was sent, and with more pages what is older than this page's oldest", () => {
    const reload = new ListReloads().begin(at(30));
    const page = { conversations: [conv("a", 30), conv("b", 20)], nextCursor: "next" };
    const held = [conv("a", 30), conv("moved", 31), conv("on-later-page", 10), conv("gone", 25)];
    expect(toDrop(held, page, reload)).toEqual(["gone"]);
  });
});

describe("the web app's conversation list beyond its first page", () => {
  // 250 conversations, newest first, served 100 at a time with the cursor the REST list returns.
  const all = Array.from({ length: 250 }, (_, i) => ({ id: `c${String(i).padStart(3, "0")}` }));
  const server = () => {
    const asked: (string | undefined)[] = [];
    const read = async (cursor?: string): Promise<CursorPage<{ id: string }>> => {
      asked.push(cursor);
      const from = cursor === undefined ? 0 : Number(cursor);
      const conversations = all.slice(from, from + 100);
      return { conversations, nextCursor: from + 100 < all.length ? String(from + 100) : null };
    };
    return { asked, read };
  };

  it("reaches the oldest conversations page by page, with the cursor each page returned", async () => {
    const { asked, read } = server();
    const held = new Set<string>();
    const pages = new ListPages<{ id: string }>();
    const first = await read();
    first.conversations.forEach((c) => held.add(c.id));
    pages.first(first);
    expect(pages.hasMore).toBe(true);
    // Scrolling to the end twice while the page is on its way reads it once.
    const [second, again] = await Promise.all([pages.next(read, (id) => held.has(id)), pages.next(read, (id) => held.has(id))]);
    expect(again).toBe(second);
    expect(second.map((c) => c.id)).toEqual(all.slice(100, 200).map((c) => c.id));
    second.forEach((c) => held.add(c.id));
    const third = await pages.next(read, (id) => held.has(id));
    third.forEach((c) => held.add(c.id));
    expect(held.size).toBe(250);
    expect(pages.hasMore).toBe(false);
    expect(await pages.next(read, (id) => held.has(id))).toEqual([]);
    expect(asked).toEqual([undefined, "100", "200"]);
  });

  it("after a reconnect's reload goes on past the pages it holds, and keeps out what was removed while a page was read", async () => {
    const { asked, read } = server();
    const held = new Set(all.slice(0, 200).map((c) => c.id));
    const pages = new ListPages<{ id: string }>();
    pages.first(await read());
    // The reload started over from the first page: the second brings nothing new, so the third is read at once.
    const removedWhileReading = all[230].id;
    const found = pages.next(read, (id) => held.has(id));
    pages.removed(removedWhileReading);
    const ids = (await found).map((c) => c.id);
    expect(ids).toContain(all[249].id);
    expect(ids).not.toContain(removedWhileReading);
    expect(asked).toEqual([undefined, "100", "200"]);
    expect(pages.hasMore).toBe(false);
  });
});

describe("the web app's conversation list reloaded after a reconnect, beyond its first page", () => {
  type Row = Listed & { name: string };
  // 150 conversations, newest first (c000 at minute 59 … c149), served 100 at a time.
  const rows = (): Row[] => Array.from({ length: 150 }, (_, i) => ({ id: `c${String(i).padStart(3, "0")}`, lastActivity: `2026-01-01T00:00:00.${String(999 - i).padStart(3, "0")}Z`, name: `group ${i}` }));
  const server = (data: Row[]) => {
    const asked: (string | undefined)[] = [];
    const read = async (cursor?: string): Promise<CursorPage<Row>> => {
      asked.push(cursor);
      const from = cursor === undefined ? 0 : data.findIndex((c) => c.id === cursor);
      const conversations = data.slice(from, from + 100);
      return { conversations, nextCursor: data[from + 100]?.id ?? null };
    };
    return { asked, read };
  };

  it("reads again every page the user had read, so a later page's rename or leave while offline shows", async () => {
    const before = rows();
    const pages = new ListPages<Row>();
    const online = server(before);
    const held = new Map<string, Row>();
    const first = await pages.reload(online.read);
    first.conversations.forEach((c) => held.set(c.id, c));
    (await pages.next(online.read, (id) => held.has(id))).forEach((c) => held.set(c.id, c));
    expect(held.size).toBe(150);
    // Offline: group 120 was renamed, and the user left group 130 (no push reached the app for either).
    const after = before.filter((c) => c.id !== "c130").map((c) => (c.id === "c120" ? { ...c, name: "Renamed" } : c));
    const reconnected = server(after);
    const reloads = new ListReloads();
    const reload = reloads.begin(before[0].lastActivity);
    const page = await pages.reload(reconnected.read);
    expect(reconnected.asked).toEqual([undefined, "c100"]);
    expect(page.conversations.find((c) => c.id === "c120")?.name).toBe("Renamed");
    // Only the first page was read: c130 was older than its oldest, so it stayed, and c120 kept its old name.
    expect(toDrop(held.values(), page, reload)).toEqual(["c130"]);
    reload.end();
    expect(pages.hasMore).toBe(false);
  });

  it("keeps out what is removed while the pages are read, and goes on from the last page read", async () => {
    const data = Array.from({ length: 250 }, (_, i) => ({ ...rows()[0], id: `c${String(i).padStart(3, "0")}` }));
    const { asked, read } = server(data);
    const pages = new ListPages<Row>();
    const held = new Set((await pages.reload(read)).conversations.map((c) => c.id));
    (await pages.next(read, (id) => held.has(id))).forEach((c) => held.add(c.id));
    const reloading = pages.reload(read);
    pages.removed("c150");
    const ids = (await reloading).conversations.map((c) => c.id);
    expect(ids).toHaveLength(199);
    expect(ids).not.toContain("c150");
    expect(pages.hasMore).toBe(true);
    expect((await pages.next(read, (id) => held.has(id))).map((c) => c.id)).toEqual(data.slice(200).map((c) => c.id));
    expect(asked).toEqual([undefined, "c100", undefined, "c100", "c200"]);
  });
});

describe("the list's preview of the last message", () => {
  const sent: Message = {
    id: "00000000-0000-4000-8000-000000000001",
    conversationId: "00000000-0000-4000-8000-000000000002",
    seq: 7,
    senderId: "00000000-0000-4000-8000-000000000003",
    clientMessageId: null,
    type: "text",
    content: "my password is hunter2",
    replyToId: null,
    createdAt: at(1),
    editedAt: null,
    deletedAt: null,
    status: "sent",
  };
  const deleted = { ...sent, content: "", deletedAt: at(2) };
  const edited = { ...sent, content: "my password is ********", editedAt: at(2) };

  it("does not show deleted text again when an older copy of the message comes after the delete", () => {
    // The open conversation's socket tells the delete at once; the user socket's notification of the message (sent
    // once it was stored) or a list read before the delete was stored can come after it.
    expect(preview(laterMessage(deleted, sent))).toBe("Message deleted");
    expect(preview(laterMessage(deleted, edited))).toBe("Message deleted");
    expect(preview(laterMessage(sent, deleted))).toBe("Message deleted");
  });

  it("shows an image or a file by its name, not its address, and follows only http(s) links", () => {
    const image = { ...sent, type: "image" as const, content: "https://cdn.example/photos/beach%20day.jpg" };
    const file = { ...sent, type: "file" as const, content: " https://files.example/q3/report.pdf?sig=1 " };
    expect(preview(image)).toBe("Image: beach day.jpg");
    expect(preview(file)).toBe("File: report.pdf");
    expect(messageBody(image)).toEqual({ kind: "image", url: "https://cdn.example/photos/beach%20day.jpg", name: "beach day.jpg" });
    expect(messageBody(file)).toEqual({ kind: "file", url: "https://files.example/q3/report.pdf?sig=1", name: "report.pdf" });
    // Never a link or a picture: script, data, other schemes, a relative path, credentials that disguise the host.
    for (const content of [
      "javascript:alert(1)",
      " JavaScript:alert(1)",
      "java\tscript:alert(1)",
      "data:image/svg+xml,<svg onload=alert(1)>",
      "data:text/html;base64,PHNjcmlwdD4=",
      "vbscript:msgbox",
      "//evil.example/x.png",
      "/api/x.png",
      "https://bank.example@evil.example/x.png",
      "https://ok.example/a.png javascript:alert(1)",
      "<img src=x onerror=alert(1)>",
    ]) {
      expect(messageBody({ ...image, content }).kind, content).toBe("bad-link");
      expect(messageBody({ ...file, content }).kind, content).toBe("bad-link");
      expect(safeUrl(content), content).toBeUndefined();
    }
    expect(preview({ ...image, content: "javascript:alert(1)" })).toBe("Image");
    // Text stays text, whatever it says; a deleted image is a deleted message.
    expect(messageBody({ ...sent, content: "https://x.example/a.png" })).toEqual({ kind: "text", text: "https://x.example/a.png" });
    expect(preview({ ...image, content: "", deletedAt: at(2) })).toBe("Message deleted");
  });

  it("gives a search result of an image or a file the name the conversation shows, never its address", () => {
    const image = { ...sent, type: "image" as const, content: "https://cdn.example/photos/beach%20day.jpg?token=s3cr3t" };
    const file = { ...sent, type: "file" as const, content: "https://files.example/q3/report.pdf" };
    // Found by its address (the search reads the content): the result said "https://cdn.example/photos/…?token=…".
    expect(searchSnippet(image)).toBe("Image: beach day.jpg");
    expect(searchSnippet(file)).toBe("File: report.pdf");
    expect(searchSnippet({ ...image, content: "javascript:alert(1)" })).toBe("Image");
    // What was searched for is still marked where the name has it.
    const snippet = searchSnippet(image);
    expect(searchMatches(snippet, "beach").map(([a, b]) => snippet.slice(a, b))).toEqual(["beach"]);
    // A text message keeps its own text, lines and all: its marks are counted on it.
    expect(searchSnippet({ ...sent, content: "see  https://x.example/a\nthen" })).toBe("see  https://x.example/a\nthen");
  });

  it("shows a long message's search result around what was found, not the whole message", () => {
    const marked = (e: { text: string; marks: [number, number][] }) => e.marks.map(([a, b]) => e.text.slice(a, b));
    // 4,000 characters with the match at 3,000: the result showed all of it, the match far below the panel's edge.
    const long = `${"a".repeat(2_999)} needle ${"😀".repeat(500)} needle ${"b".repeat(500)}`;
    const found = searchExcerpt(long, "needle");
    expect(found.text.length).toBeLessThanOrEqual(202);
    expect(found.text.startsWith(`…${"a".repeat(59)} needle `)).toBe(true);
    expect(found.text.endsWith("😀…")).toBe(true);
    expect(marked(found)).toEqual(["needle"]);
    // Never half an emoji at the cut.
    const odd = searchExcerpt(`${"a".repeat(101)}x${"😀".repeat(300)}`, "x");
    expect(odd.text).not.toMatch(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])/);
    expect(marked(odd)).toEqual(["x"]);
    // Near the end: the last 200 shown, not a short tail.
    const tail = searchExcerpt(`${"a".repeat(500)}end`, "end");
    expect(tail.text).toBe(`…${"a".repeat(197)}end`);
    expect(marked(tail)).toEqual(["end"]);
    // A short message whole, with every match.
    expect(searchExcerpt("café and Cafe", "cafe")).toEqual({ text: "café and Cafe", marks: [[0, 4], [9, 13]] });
  });

  it("shortens long text and makes initials without cutting a character in two", () => {
    const lone = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
    // 78 letters and emoji after: the cut fell inside the first emoji, and the preview ended in "\uD83D…" (shown as �).
    const emoji = { ...sent, content: `${"a".repeat(78)}${"😀".repeat(20)}` };
    expect(preview(emoji)).toBe(`${"a".repeat(78)}😀…`);
    const mixed = { ...sent, content: `${"a".repeat(78)}👍🏽🇫🇷 and more` };
    expect(preview(mixed)).toBe(`${"a".repeat(78)}👍🏽…`);
    const dir = { name: () => "Ann" };
    expect(replyQuote(mixed, "me", dir)).not.toMatch(lone);
    expect(replyQuote(mixed, "me", dir)).toContain("👍🏽…");
    const alert = notSentAlert(`${"b".repeat(58)}🇫🇷🇫🇷🇫🇷`, new ChatApiError({ statusCode: 409, message: "Closed" }));
    expect(alert).toBe(`Message not sent: “${"b".repeat(58)}🇫🇷…”. Closed.`);
    expect(arrivalText({ ...sent, content: `${"c".repeat(198)}😀😀😀` }, "me", dir)).toBe(`Ann: ${"c".repeat(198)}😀…`);
    // A name that starts with an emoji or a letter outside the BMP: its first unit alone was a broken character.
    expect(initials("😀 Ann")).toBe("😀A");
    expect(initials("𝒜da")).toBe("𝒜D");
    expect(initials("Émile Zola")).toBe("ÉZ");
  });

  it("makes the web addresses in a text message links, leaving the sentence's punctuation and anything not http(s) as text", () => {
    const links = (text: string) => textRuns(text).filter((r) => r.url).map((r) => r.url);
    expect(textRuns("see https://docs.example/a?b=1#c, then (https://en.example/wiki/Foo_(bar)) or https://x.example/end.")).toEqual([
      { text: "see " },
      { text: "https://docs.example/a?b=1#c", url: "https://docs.example/a?b=1#c" },
      { text: ", then (" },
      { text: "https://en.example/wiki/Foo_(bar)", url: "https://en.example/wiki/Foo_(bar)" },
      { text: ") or " },
      { text: "https://x.example/end", url: "https://x.example/end" },
      { text: "." },
    ]);
    expect(links("javascript:alert(1) data:text/html,x //evil.example https://u:p@evil.example/ www.example.com")).toEqual([]);
    expect(links('<a href="https://x.example/">')).toEqual(["https://x.example/"]);
    expect(textRuns("no links here")).toEqual([{ text: "no links here" }]);
    expect(textRuns("")).toEqual([{ text: "" }]);
  });

  const group = (): Conversation => ({
    id: sent.conversationId,
    type: "group",
    name: "Team",
    businessId: null,
    createdAt: at(0),
    lastActivity: at(1),
    lastSeq: 7,
    participants: [],
    lastMessage: sent,
    unreadCount: 0,
    isMuted: false,
    version: 3,
  });

  it("keeps its place in the list when a copy read before its newest message comes after that message", () => {
    // A notification of message 8 moved the conversation up; a reload or a fetch read before 8 was stored answers after.
    const base = group();
    const next = { ...sent, id: "00000000-0000-4000-8000-000000000004", seq: 8, createdAt: at(5) };
    const held = { ...base, lastActivity: at(5), lastSeq: 8, lastMessage: next, unreadCount: 1 };
    const merged = mergeConversation(held, { ...base, name: "Team (renamed)" });
    expect(merged).toMatchObject({ name: "Team (renamed)", lastActivity: at(5), lastSeq: 8, lastMessage: next });
    // A newer copy moves it on.
    const later = { ...base, lastActivity: at(9), lastSeq: 9, lastMessage: { ...next, seq: 9, createdAt: at(9) } };
    expect(mergeConversation(held, later)).toMatchObject({ lastActivity: at(9), lastSeq: 9 });
  });

  it("keeps the newer name and members when a copy of an older version comes after a change", () => {
    const member = { userId: "00000000-0000-4000-8000-0000000000a1", role: "member" as const, joinedAt: at(0), isMuted: false, lastReadSeq: 0, lastReadAt: null, lastDeliveredSeq: 0 };
    const renamed = { ...group(), name: "Team (renamed)", participants: [member], version: 5 };
    // A read answered after the rename's push: its older name and member list must not come back.
    const stale = { ...group(), name: "Team", participants: [], version: 4, lastActivity: at(8), lastSeq: 8 };
    expect(mergeConversation(renamed, stale)).toMatchObject({ name: "Team (renamed)", participants: [member], version: 5, lastSeq: 8 });
    // The same version (a mute, a preview) or a newer one is taken whole.
    expect(mergeConversation(renamed, { ...renamed, name: "Team 2", version: 6 })).toMatchObject({ name: "Team 2", version: 6 });
    expect(mergeConversation(renamed, { ...renamed, isMuted: true })).toMatchObject({ isMuted: true, name: "Team (renamed)" });
  });

  it("gives the open conversation's header a rename the list learned after a reconnect (the header kept the old name)", () => {
    const me = "00000000-0000-4000-8000-000000000009";
    const open = { ...group(), unreadCount: 3 };
    // Renamed while offline: the list's reload reads version 4; the open view had version 3 and no push came.
    const listed = { ...group(), name: "Team (renamed)", version: 4, unreadCount: 0, isMuted: true };
    const header = withNewerCopy(open, listed);
    expect(conversationTitle(header, me, new Directory())).toBe("Team (renamed)");
    // The view's own count and mute flag stay; an older or missing list copy changes nothing.
    expect(header).toMatchObject({ unreadCount: 3, isMuted: false, version: 4 });
    expect(withNewerCopy(listed, open)).toBe(listed);
    expect(withNewerCopy(open, undefined)).toBe(open);
  });

  it("keeps a business's name when a copy read while the profile service is down names it by its id", () => {
    const businessId = "b1000000-0000-4000-8000-00000000000a";
    const named = { ...group(), type: "business" as const, businessId, business: { id: businessId, name: "Cafe Uno", avatarUrl: null, kind: "business" as const } };
    const outage = { ...named, version: 4, business: placeholderProfile(businessId, "business") };
    expect(conversationTitle(mergeConversation(named, outage), "00000000-0000-4000-8000-000000000009", new Directory())).toBe("Cafe Uno");
    // A real new name is taken, and a placeholder is better than nothing.
    expect(mergeConversation(named, { ...outage, business: { ...named.business, name: "Cafe Due" } }).business?.name).toBe("Cafe Due");
    expect(mergeConversation({ ...named, business: undefined }, outage).business?.name).toBe("Business b1000000");
  });

  it("keeps an edit when the unedited copy comes after it, and takes a later edit or a newer message", () => {
    expect(laterMessage(edited, sent)).toBe(edited);
    const again = { ...sent, content: "edited twice", editedAt: at(3) };
    expect(laterMessage(edited, again)).toBe(again);
    expect(laterMessage(again, edited)).toBe(again);
    const next = { ...sent, id: "00000000-0000-4000-8000-000000000004", seq: 8 };
    expect(laterMessage(deleted, next)).toBe(next);
    expect(laterMessage(next, edited)).toBe(next);
  });
});

describe("the web app's header of a business conversation", () => {
  const member = (userId: string, role: Participant["role"], name: string): Participant => ({
    userId,
    role,
    joinedAt: at(0),
    isMuted: false,
    lastReadSeq: 0,
    lastReadAt: null,
    lastDeliveredSeq: 0,
    profile: { id: userId, name, avatarUrl: null, kind: "user" },
  });
  const dir = new Directory();
  const customer = member("c0000000-0000-4000-8000-000000000001", "customer", "Cora");
  const agent = member("a0000000-0000-4000-8000-000000000001", "agent", "Ann");
  for (const p of [customer, agent]) dir.set(p.userId, p.profile!);

  it("names the agent who answers, to the customer (not to the agent themselves)", () => {
    expect(businessState({ status: "open", participants: [customer, agent] }, customer.userId, dir)).toBe("Agent: Ann");
    expect(businessState({ status: "open", participants: [customer, agent] }, agent.userId, dir)).toBeUndefined();
    expect(businessState({ status: "open", participants: [customer] }, customer.userId, dir)).toBeUndefined();
  });

  it("says Closed once the conversation is closed", () => {
    expect(businessState({ status: "closed", participants: [customer, agent] }, customer.userId, dir)).toBe("Closed");
  });

  it("is titled, for the agent, by the customer it is with: every chat an agent answered was titled by the business", () => {
    const businessId = "b1000000-0000-4000-8000-00000000000a";
    const chat = (...participants: Participant[]): Conversation => ({
      id: "d0000000-0000-4000-8000-0000000000b1",
      type: "business",
      name: null,
      businessId,
      business: { id: businessId, name: "Cafe Uno", avatarUrl: null, kind: "business" },
      createdAt: at(0),
      lastActivity: at(1),
      lastSeq: 0,
      participants,
      unreadCount: 0,
      isMuted: false,
      version: 1,
    });
    const dana = member("c0000000-0000-4000-8000-000000000002", "customer", "Dana");
    dir.set(dana.userId, dana.profile!);
    expect(conversationTitle(chat(customer, agent), agent.userId, dir)).toBe("Cora · Cafe Uno");
    expect(conversationTitle(chat(dana, agent), agent.userId, dir)).toBe("Dana · Cafe Uno");
    // Its avatar's initials skip the separator ("C·" before).
    expect(initials(conversationTitle(chat(customer, agent), agent.userId, dir))).toBe("CC");
    expect(initials("— Ann")).toBe("AN");
    // The customer sees the business they wrote to.
    expect(conversationTitle(chat(customer, agent), customer.userId, dir)).toBe("Cafe Uno");
    expect(conversationTitle(chat(customer), customer.userId, dir)).toBe("Cafe Uno");
  });
});

describe("the web app's unread count in the tab's title", () => {
  const row = (id: string, unreadCount: number, isMuted = false) => ({ id, unreadCount, isMuted });

  it("counts what is unread elsewhere, not in the conversation being read", () => {
    expect(titleUnread([row("a", 2), row("b", 3)], "b")).toBe(2);
    expect(titleUnread([row("a", 2), row("b", 3)], undefined)).toBe(5);
  });

  it("leaves muted conversations out: a busy muted group kept the tab saying there was something to read", () => {
    expect(titleUnread([row("a", 2), row("muted", 40, true)], undefined)).toBe(2);
  });
});

describe("the web app's times", () => {
  // Local times, as the app shows them; the formats are the browser's (en-US here).
  const now = new Date(2026, 10, 29, 18, 0);
  const local = (y: number, month: number, day: number, hour: number, minute: number) => new Date(y, month - 1, day, hour, minute).toISOString();
  const fmt = (d: string, options: Intl.DateTimeFormatOptions) => new Intl.DateTimeFormat(undefined, options).format(new Date(d));

  it("shows a message's time of day in its bubble on every day, with the date before today and the year before this one", () => {
    const today = local(2026, 11, 29, 9, 5);
    const yesterday = local(2026, 11, 28, 15, 4);
    const lastYear = local(2025, 11, 28, 15, 4);
    expect(messageTime(today, now)).toBe(fmt(today, { hour: "numeric", minute: "2-digit" }));
    // It said "Nov 28" alone: when it was written could only be found by hovering.
    expect(messageTime(yesterday, now)).toContain(fmt(yesterday, { hour: "numeric", minute: "2-digit" }));
    expect(messageTime(yesterday, now)).toContain(fmt(yesterday, { month: "short", day: "numeric" }));
    expect(messageTime(yesterday, now)).not.toContain("2026");
    expect(messageTime(lastYear, now)).toContain("2025");
    expect(messageTime(lastYear, now)).toContain(fmt(lastYear, { hour: "numeric", minute: "2-digit" }));
    expect(messageTime("not a time", now)).toBe("");
  });

  it("gives the list's time the year when it is not this year's: a conversation quiet since last year looked this year's", () => {
    const yesterday = local(2026, 11, 28, 15, 4);
    const lastYear = local(2025, 11, 28, 15, 4);
    expect(shortTime(yesterday, now)).toBe(fmt(yesterday, { month: "short", day: "numeric" }));
    expect(shortTime(lastYear, now)).not.toBe(shortTime(yesterday, now));
    expect(shortTime(lastYear, now)).toContain("2025");
  });

  it("redraws the times at midnight from one timer, so last evening's messages get their date in a tab left open", () => {
    vi.useFakeTimers({ now: new Date(2026, 10, 28, 23, 58) });
    try {
      const written = new Date(2026, 10, 28, 23, 57).toISOString();
      const drawn: string[] = [];
      const days = new DayChange(() => drawn.push(messageTime(written)));
      days.start();
      expect(vi.getTimerCount()).toBe(1);
      vi.advanceTimersByTime(119_000);
      expect(drawn).toEqual([]);
      vi.advanceTimersByTime(2_000);
      expect(drawn).toHaveLength(1);
      expect(drawn[0]).toContain(fmt(written, { month: "short", day: "numeric" }));
      // The next midnight too, still one timer at a time.
      expect(vi.getTimerCount()).toBe(1);
      vi.advanceTimersByTime(24 * 3_600_000);
      expect(drawn).toHaveLength(2);
      // Asleep over midnight (the timer not run): looking again on waking redraws, once.
      vi.setSystemTime(new Date(2026, 11, 2, 8, 0));
      days.check();
      days.check();
      expect(drawn).toHaveLength(3);
      days.stop();
      expect(vi.getTimerCount()).toBe(0);
    } finally {
      vi.useRealTimers();
    }
  });
});
