import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { ChatClient } from "../../src/client";
import { nodePool } from "../../scripts/lib/migrate";
import { api, BASE, composer, hasChromium, launch, log, messageTexts, person, seedMessages, send, settled, startDirect, uniqueKahaId, type Person } from "./harness";

const poll = { timeout: 30_000, interval: 100 };

describe.skipIf(!hasChromium)("web app in Chromium", () => {
  let browser: Browser;
  const people: Person[] = [];

  beforeAll(async () => {
    browser = await launch();
  });

  afterAll(async () => {
    for (const p of people) await p.context.close().catch(() => {});
    await browser?.close();
  });

  /** A demo user with no browser (signed in through the API only). */
  async function headless(prefix: string): Promise<{ kahaId: string; id: string; token: string; name: string }> {
    const kahaId = uniqueKahaId(prefix);
    const login = await api<{ access_token: string; user: { id: string } }>("POST", "/auth/dev-login", undefined, { kahaId });
    const me = await api<{ profile: { name: string } }>("GET", "/auth/me", login.access_token);
    return { kahaId, id: login.user.id, token: login.access_token, name: me.profile.name };
  }

  async function pair(): Promise<[Person, Person]> {
    const a = await person(browser, "web-a");
    const b = await person(browser, "web-b");
    people.push(a, b);
    return [a, b];
  }

  it("two users chat in real time: list badge, typing indicator, seen-by and read ticks", async () => {
    const [alice, bob] = await pair();
    const conversationId = await startDirect(alice, bob);
    await expect.poll(() => alice.page.evaluate(() => document.activeElement?.id), poll).toBe("composer-input");

    await send(alice.page, "Hello Bob, are you there?");
    await expect.poll(() => messageTexts(alice.page), poll).toEqual(["Hello Bob, are you there?"]);
    await settled(alice.page);

    // Bob was not in the conversation view: it appears in his list with an unread badge and a preview.
    const row = bob.page.getByRole("link", { name: new RegExp(alice.name) });
    await expect.poll(() => row.textContent(), poll).toContain("Hello Bob, are you there?");
    await expect.poll(() => row.locator(".badge").textContent(), poll).toContain("1");
    // Presence dot: Alice is online.
    await expect.poll(() => row.locator(".dot").getAttribute("class"), poll).toContain("online");

    await row.click();
    await expect.poll(() => bob.page.url(), poll).toContain(conversationId);
    await expect.poll(() => messageTexts(bob.page), poll).toEqual(["Hello Bob, are you there?"]);
    await expect.poll(() => row.locator(".badge").count(), poll).toBe(0);

    // Alice sees that Bob read it: "Seen by" and the read ticks.
    await expect.poll(() => log(alice.page).locator(".seen-by").textContent(), poll).toBe(`Seen by ${bob.name}`);
    await expect.poll(() => log(alice.page).locator(".ticks").getAttribute("aria-label"), poll).toBe("Read");

    // Bob types: Alice sees the indicator; it goes when he sends.
    await composer(bob.page).pressSequentially("Yes, here", { delay: 40 });
    await expect.poll(() => alice.page.locator(".typing").textContent(), poll).toBe(`${bob.name} is typing…`);
    await composer(bob.page).press("Enter");
    await expect.poll(() => messageTexts(alice.page), poll).toEqual(["Hello Bob, are you there?", "Yes, here"]);
    // A screen reader hears what arrives, and not the history shown on opening (Bob's view): the list is no live region.
    await expect.poll(() => alice.page.locator(".arrivals").textContent(), poll).toBe(`You: Hello Bob, are you there?${bob.name}: Yes, here`);
    expect(await bob.page.locator(".arrivals").textContent()).toBe("You: Yes, here");
    await expect.poll(() => alice.page.locator(".typing").textContent(), poll).toBe("");
    await expect.poll(() => log(bob.page).locator(".seen-by").textContent(), poll).toBe(`Seen by ${alice.name}`);
    // The tab names the open conversation and counts what is unread elsewhere: it showed one or the other, whichever
    // was drawn last (the header's redraw on a mute or a presence change dropped the count).
    await expect.poll(() => bob.page.title(), poll).toBe(`${alice.name} · Edge Chat`);
    const carol = await headless("sdk-c");
    const other = await api<{ id: string }>("POST", "/conversations/direct", carol.token, { targetUserId: bob.id });
    await api("POST", `/conversations/${other.id}/messages`, carol.token, { content: "Elsewhere" });
    await expect.poll(() => bob.page.getByRole("link", { name: new RegExp(carol.name) }).locator(".badge").count(), poll).toBe(1);
    await expect.poll(() => bob.page.title(), poll).toBe(`(1) ${alice.name} · Edge Chat`);
    await bob.page.getByRole("button", { name: "Mute" }).click();
    await expect.poll(() => bob.page.getByRole("button", { name: "Muted" }).count(), poll).toBe(1);
    expect(await bob.page.title()).toBe(`(1) ${alice.name} · Edge Chat`);
    // What Bob was writing is still there when he comes back from another conversation: it was thrown away.
    await composer(bob.page).fill("half a thought");
    await bob.page.getByRole("link", { name: new RegExp(carol.name) }).click();
    await expect.poll(() => bob.page.locator("#conv-title").textContent(), poll).toBe(carol.name);
    expect(await composer(bob.page).inputValue()).toBe("");
    await row.click();
    await expect.poll(() => bob.page.locator("#conv-title").textContent(), poll).toBe(alice.name);
    expect(await composer(bob.page).inputValue()).toBe("half a thought");
    // More unread than a screen holds: Bob opens at the first of them, marked, not past them at the newest.
    const dave = await headless("sdk-d");
    const news = await api<{ id: string }>("POST", "/conversations/direct", dave.token, { targetUserId: bob.id });
    await seedMessages(dave.token, news.id, Array.from({ length: 30 }, (_, i) => `news ${i + 1}`));
    const daveRow = bob.page.getByRole("link", { name: new RegExp(dave.name) });
    await expect.poll(() => daveRow.locator(".badge").textContent(), poll).toContain("30");
    await daveRow.click();
    await expect.poll(() => log(bob.page).locator("li").count(), poll).toBe(30);
    const mark = log(bob.page).locator(".unread-divider");
    await expect.poll(() => mark.locator("xpath=..").locator(".text").textContent(), poll).toBe("news 1");
    expect(await mark.evaluate((el) => el.getBoundingClientRect().top >= el.closest(".scroller")!.getBoundingClientRect().top)).toBe(true);
    expect(await bob.page.locator(".jump").isVisible()).toBe(true);
    expect([...alice.errors, ...bob.errors]).toEqual([]);
  });

  it("renders a message with markup as text: no element is created and no dialog fires", async () => {
    const [alice, bob] = await pair();
    const conversationId = await startDirect(alice, bob);
    const evil = `<img src=x onerror=alert(1)>`;
    const more = `<script>alert("x")</script><b onclick="alert(2)">bold?</b> & "quotes"`;
    await send(alice.page, evil);
    await send(alice.page, more);
    await bob.page.goto(`${bob.page.url().split("#")[0]}#/c/${conversationId}`);
    await expect.poll(() => messageTexts(bob.page), poll).toEqual([evil, more]);
    await expect.poll(() => messageTexts(alice.page), poll).toEqual([evil, more]);
    for (const p of [alice, bob]) {
      expect(await log(p.page).getByText(evil, { exact: true }).isVisible()).toBe(true);
      expect(await p.page.locator(".messages img, .messages script, .messages b, .conv-list img, .conv-list b").count()).toBe(0);
    }
    // The conversation list preview is text too.
    await expect.poll(() => bob.page.getByRole("link", { name: new RegExp(alice.name) }).locator(".conv-preview").textContent(), poll).toContain("bold?");
    await bob.page.waitForTimeout(500);
    expect(alice.dialogs).toEqual([]);
    expect(bob.dialogs).toEqual([]);
    // Right-to-left text takes its own direction (it was laid out left to right, its "!" at the wrong end), in the
    // message and in the list's preview.
    const rtl = "مرحبا بالعالم!";
    await send(alice.page, rtl);
    await expect.poll(() => messageTexts(bob.page), poll).toEqual([evil, more, rtl]);
    const direction = (el: Element) => getComputedStyle(el).direction;
    expect(await log(bob.page).locator(".text").last().evaluate(direction)).toBe("rtl");
    expect(await log(bob.page).locator(".text").first().evaluate(direction)).toBe("ltr");
    const preview = alice.page.getByRole("link", { name: new RegExp(bob.name) }).locator(".conv-preview");
    await expect.poll(() => preview.textContent(), poll).toBe(`You: ${rtl}`);
    await bob.page.goto(`${bob.page.url().split("#")[0]}#/`);
    const bobPreview = bob.page.getByRole("link", { name: new RegExp(alice.name) }).locator(".conv-preview");
    await expect.poll(() => bobPreview.textContent(), poll).toBe(rtl);
    expect(await bobPreview.evaluate(direction)).toBe("rtl");
    expect([...alice.errors, ...bob.errors]).toEqual([]);
  });

  it("going offline and back resumes without gaps; what was written offline is sent exactly once", async () => {
    const [alice, bob] = await pair();
    const conversationId = await startDirect(alice, bob);
    await send(alice.page, "before");
    await bob.page.goto(`${bob.page.url().split("#")[0]}#/c/${conversationId}`);
    await expect.poll(() => messageTexts(bob.page), poll).toEqual(["before"]);

    await bob.context.setOffline(true);
    await expect.poll(() => bob.page.locator(".banner").textContent(), poll).toContain("offline");
    for (let i = 1; i <= 5; i++) await send(alice.page, `while away ${i}`);
    // A reply: its Sending… line says what it answers (it showed as a message on its own until stored).
    await log(bob.page).getByRole("button", { name: "Reply to message" }).click();
    await send(bob.page, "written offline");
    await expect.poll(() => bob.page.locator(".pending-list li").textContent(), poll).toContain("Sending…");
    expect(await bob.page.locator(".pending-list li .reply-quote").textContent()).toBe(`Reply to ${alice.name}: before`);
    await expect.poll(() => messageTexts(alice.page), poll).toHaveLength(6);
    expect(await messageTexts(bob.page)).toEqual(["before"]);

    await bob.context.setOffline(false);
    const expected = ["before", "while away 1", "while away 2", "while away 3", "while away 4", "while away 5", "written offline"];
    await expect.poll(() => messageTexts(bob.page), poll).toEqual(expected);
    await expect.poll(() => messageTexts(alice.page), poll).toEqual(expected);
    await settled(bob.page);
    await expect.poll(() => bob.page.locator(".banner").isVisible(), poll).toBe(false);
    const history = await api<{ messages: { seq: number; content: string }[] }>("GET", `/conversations/${conversationId}/messages`, alice.token);
    expect(history.messages.map((m) => m.content)).toEqual(expected);
    expect(history.messages.map((m) => m.seq)).toEqual([1, 2, 3, 4, 5, 6, 7]);
  });

  // The composer's maxlength counted UTF-16 units, so a paste of 3000 emoji was cut to 2000 without a word; and a
  // text the server refuses was cleared from the box, lost.
  it("counts a message's length as the server does: 3000 emoji go out whole; a text over the limit stays with a note", async () => {
    const [alice, bob] = await pair();
    const conversationId = await startDirect(alice, bob);
    const emoji = "😀".repeat(3000);
    await send(alice.page, emoji);
    await expect.poll(() => messageTexts(alice.page), poll).toEqual([emoji]);
    await settled(alice.page);

    // Within 4,000 characters but over the 64 KiB frame (a control character takes six bytes as JSON): the SDK refuses
    // it at once, and the box was cleared, the text lost.
    const note = alice.page.locator(".composer-error");
    const heavy = `a${"\u0001".repeat(11_000)}`;
    await send(alice.page, heavy);
    await expect.poll(() => note.textContent(), poll).toContain("too large to send");
    expect(await composer(alice.page).inputValue()).toBe(heavy);

    const tooLong = "a".repeat(4001);
    await send(alice.page, tooLong);
    await expect.poll(() => note.textContent(), poll).toBe("Too long: 4,001 characters, at most 4,000.");
    expect(await composer(alice.page).inputValue()).toBe(tooLong);
    // Shortened to the limit, it goes, and the note is gone.
    await composer(alice.page).press("Backspace");
    expect(await note.textContent()).toBe("");
    await composer(alice.page).press("Enter");
    await expect.poll(() => messageTexts(alice.page), poll).toEqual([emoji, "a".repeat(4000)]);
    await bob.page.goto(`${bob.page.url().split("#")[0]}#/c/${conversationId}`);
    await expect.poll(() => messageTexts(bob.page), poll).toEqual([emoji, "a".repeat(4000)]);
    expect([...alice.errors, ...bob.errors]).toEqual([]);
  });

  it("edit and delete show up live on the other side", async () => {
    const [alice, bob] = await pair();
    const conversationId = await startDirect(alice, bob);
    await send(alice.page, "frist draft");
    await send(alice.page, "to be removed");
    await bob.page.goto(`${bob.page.url().split("#")[0]}#/c/${conversationId}`);
    await expect.poll(() => messageTexts(bob.page), poll).toEqual(["frist draft", "to be removed"]);
    await settled(alice.page);

    const first = log(alice.page).locator("li").first();
    await first.getByRole("button", { name: "Edit message" }).click();
    const editor = first.getByRole("textbox", { name: "Edit message" });
    await expect.poll(() => alice.page.evaluate(() => document.activeElement?.tagName), poll).toBe("TEXTAREA");
    // Too long: said on Save, and gone once the text fits (it stayed until the next Save).
    await editor.fill("a".repeat(4001));
    await editor.press("Enter");
    const tooLong = first.locator(".edit-form .form-error");
    await expect.poll(() => tooLong.textContent(), poll).toBe("Too long: 4,001 characters, at most 4,000.");
    await editor.press("Backspace");
    expect(await tooLong.textContent()).toBe("");
    await editor.fill("first draft");
    await editor.press("Enter");
    await expect.poll(() => messageTexts(bob.page), poll).toEqual(["first draft", "to be removed"]);
    await expect.poll(() => log(bob.page).locator("li").first().locator(".edited").count(), poll).toBe(1);
    // Focus returns to the message's Edit button.
    await expect.poll(() => alice.page.evaluate(() => document.activeElement?.getAttribute("aria-label")), poll).toBe("Edit message");

    await log(alice.page).locator("li").nth(1).getByRole("button", { name: "Delete message" }).click();
    const confirm = alice.page.getByRole("dialog", { name: "Delete this message?" });
    await confirm.getByRole("button", { name: "Delete" }).click();
    await expect.poll(() => messageTexts(bob.page), poll).toEqual(["first draft", "This message was deleted"]);
    await expect.poll(() => messageTexts(alice.page), poll).toEqual(["first draft", "This message was deleted"]);
    // The conversation list beside it previews the last message: it kept showing the deleted text (until a reload).
    for (const [who, other] of [[bob, alice], [alice, bob]] as const) {
      const row = who.page.getByRole("link", { name: new RegExp(other.name) });
      await expect.poll(() => row.textContent(), poll).toContain("Message deleted");
      expect(await row.textContent()).not.toContain("to be removed");
    }

    // Deleted from Alice's other device while she edits it: the editor closed only on Cancel, and Save failed with a
    // conflict. It closes at once, the message shows as deleted and the banner says why.
    await first.getByRole("button", { name: "Edit message" }).click();
    await editor.fill("first draft, again");
    const page = await api<{ messages: { id: string; content: string }[] }>("GET", `/conversations/${conversationId}/messages`, alice.token);
    const firstId = page.messages.find((m) => m.content === "first draft")!.id;
    await api("DELETE", `/conversations/${conversationId}/messages/${firstId}`, alice.token);
    await expect.poll(() => editor.count(), poll).toBe(0);
    await expect.poll(() => messageTexts(alice.page), poll).toEqual(["This message was deleted", "This message was deleted"]);
    expect(await alice.page.locator(".banner").textContent()).toBe("The message you were editing was deleted.");
    expect(alice.dialogs).toEqual([]);
  });

  it("scroll-back loads older pages in order; search finds and jumps to an old message", async () => {
    const [alice, bob] = await pair();
    const conversation = await api<{ id: string }>("POST", "/conversations/direct", alice.token, { targetUserId: bob.id });
    const total = 130;
    await seedMessages(alice.token, conversation.id, Array.from({ length: total }, (_, i) => `line ${i + 1}${i + 1 === 7 ? " with the needle" : ""}`));
    await bob.page.goto(`${bob.page.url().split("#")[0]}#/c/${conversation.id}`);
    await expect.poll(() => log(bob.page).locator("li").count(), poll).toBe(50);
    expect((await messageTexts(bob.page)).at(-1)).toBe(`line ${total}`);

    // Scrolling to the top loads the previous pages, keeping order and never duplicating.
    for (let i = 0; i < 10 && (await log(bob.page).locator("li").count()) < total; i++) {
      await bob.page.locator(".scroller").evaluate((el) => el.scrollTo(0, 0));
      await bob.page.waitForTimeout(300);
    }
    await expect.poll(() => log(bob.page).locator("li").count(), poll).toBe(total);
    const texts = await messageTexts(bob.page);
    expect(texts).toEqual(Array.from({ length: total }, (_, i) => `line ${i + 1}${i + 1 === 7 ? " with the needle" : ""}`));
    await expect.poll(() => bob.page.locator(".history-start").isVisible(), poll).toBe(true);
    // Each older page went in at the top of the list, which was a live region: read out as 80 new messages.
    expect(await log(bob.page).getAttribute("aria-live")).toBe("off");
    expect(await bob.page.locator(".arrivals").textContent()).toBe("");

    // Search in a fresh view (only the newest page loaded): jumping loads back to the hit.
    await alice.page.goto(`${alice.page.url().split("#")[0]}#/c/${conversation.id}`);
    await expect.poll(() => log(alice.page).locator("li").count(), poll).toBe(50);
    await alice.page.getByLabel("Search messages").fill("needle");
    await alice.page.getByLabel("Search messages").press("Enter");
    const results = alice.page.getByRole("region", { name: /result/ });
    await expect.poll(() => results.getByRole("heading").textContent(), poll).toBe("1 result for “needle”");
    // The older pages cannot load: the jump stops at the first failed page (it asked for it 50 times in a row).
    let refused = 0;
    await alice.page.route(/\/messages\?.*before=/, (route) => {
      refused++;
      return route.abort();
    });
    await results.getByRole("button", { name: /needle/ }).click();
    await expect.poll(() => alice.page.locator(".banner").textContent(), poll).toContain("Could not load older messages");
    await alice.page.waitForTimeout(1500);
    // One page load: its request and the SDK's own two retries.
    expect(refused).toBeLessThanOrEqual(3);
    await alice.page.unroute(/\/messages\?.*before=/);
    await results.getByRole("button", { name: /needle/ }).click();
    await expect.poll(() => alice.page.evaluate(() => document.activeElement?.id), poll).toBe("msg-7");
    await alice.page.keyboard.press("Escape");
    await expect.poll(() => results.isVisible(), poll).toBe(false);

    // Reading far back, her own messages pulled the view down to the newest: one sent from her phone, and each
    // acknowledgement of those she had queued offline here. They wait below, behind "New messages".
    const scroller = alice.page.locator(".scroller");
    const fromBottom = () => scroller.evaluate((el) => el.scrollHeight - el.scrollTop - el.clientHeight);
    await api("POST", `/conversations/${conversation.id}/messages`, alice.token, { content: "from my phone" });
    await expect.poll(async () => (await messageTexts(alice.page)).at(-1), poll).toBe("from my phone");
    expect(await fromBottom()).toBeGreaterThan(1000);
    expect(await alice.page.locator(".jump").isVisible()).toBe(true);
    await alice.context.setOffline(true);
    await expect.poll(() => alice.page.locator(".banner").textContent(), poll).toContain("offline");
    await send(alice.page, "queued 1");
    await send(alice.page, "queued 2");
    await expect.poll(() => alice.page.locator(".pending-list li").count(), poll).toBe(2);
    await scroller.evaluate((el) => el.scrollTo(0, 0));
    await alice.context.setOffline(false);
    await expect.poll(async () => (await messageTexts(alice.page)).slice(-2), poll).toEqual(["queued 1", "queued 2"]);
    expect(await fromBottom()).toBeGreaterThan(1000);

    // Every line matches: the first page said "20 results" and the other 110 could not be reached.
    await alice.page.getByLabel("Search messages").fill("line");
    await alice.page.getByLabel("Search messages").press("Enter");
    await expect.poll(() => results.getByRole("heading").textContent(), poll).toBe("20+ results for “line”");
    for (let shown = 40; shown < total + 20; shown += 20) {
      await results.getByRole("button", { name: "More results" }).click();
      await expect.poll(() => results.locator("li").count(), poll).toBe(Math.min(shown, total));
    }
    await expect.poll(() => results.getByRole("heading").textContent(), poll).toBe(`${total} results for “line”`);
    expect(await results.getByRole("button", { name: "More results" }).count()).toBe(0);
    expect(await results.locator("li .text").first().textContent()).toBe(`line ${total}`);
    expect(await results.locator("li .text").last().textContent()).toBe("line 1");
  });

  it("an edit or delete of an old message not yet loaded shows in its place once that page loads, and no message goes missing", async () => {
    const alice = await person(browser, "web-a");
    people.push(alice);
    const bob = await headless("sdk-b");
    const conversation = await api<{ id: string }>("POST", "/conversations/direct", alice.token, { targetUserId: bob.id });
    const lines = Array.from({ length: 55 }, (_, i) => `old ${i + 1}`);
    await seedMessages(bob.token, conversation.id, lines);
    await alice.page.goto(`${alice.page.url().split("#")[0]}#/c/${conversation.id}`);
    await expect.poll(() => log(alice.page).locator("li").count(), poll).toBe(50);
    const oldest = await api<{ messages: { id: string }[] }>("GET", `/conversations/${conversation.id}/messages?after=0&limit=3`, bob.token);
    const path = (i: number) => `/conversations/${conversation.id}/messages/${oldest.messages[i].id}`;
    await api("PATCH", path(0), bob.token, { content: "old 1, edited" });
    await seedMessages(bob.token, conversation.id, ["after the edit"]);
    await expect.poll(async () => (await messageTexts(alice.page)).at(-1), poll).toBe("after the edit");
    expect(await messageTexts(alice.page)).toEqual([...lines.slice(5), "after the edit"]);
    // The older page is read, then a delete and an edit in it reach the app before the page does: the page, older
    // than both, brought the deleted message back and the edit's old text (until a reload).
    await alice.page.route(/\/messages\?.*before=/, async (route) => {
      const response = await route.fetch();
      await api("DELETE", path(1), bob.token);
      await api("PATCH", path(2), bob.token, { content: "old 3, edited late" });
      await seedMessages(bob.token, conversation.id, ["after the late changes"]);
      await expect.poll(async () => (await messageTexts(alice.page)).at(-1), poll).toBe("after the late changes");
      await route.fulfill({ response });
    });
    await alice.page.getByRole("button", { name: "Load older messages" }).click();
    await expect
      .poll(() => messageTexts(alice.page), poll)
      .toEqual(["old 1, edited", "This message was deleted", "old 3, edited late", ...lines.slice(3), "after the edit", "after the late changes"]);
  });

  it("scroll-back goes on into the archive: messages the retention job moved load, not 'the beginning of the conversation'", async () => {
    const alice = await person(browser, "web-a");
    people.push(alice);
    const bob = await headless("sdk-b");
    const conversation = await api<{ id: string }>("POST", "/conversations/direct", alice.token, { targetUserId: bob.id });
    // As the retention job leaves a conversation (src/db/queries/retention.ts), before its room first loads: seqs
    // 1-3 in the archive, 4-5 in history, the mark at 3.
    const db = nodePool(process.env.STACK_DATABASE_URL!, process.env.STACK_PG_BRIDGE!, 1);
    try {
      const rows = (table: string, from: number, to: number, extra = "") => `
        INSERT INTO ${table} (id, conversation_id, seq, sender_id, type, content, created_at${extra ? ", " + extra : ""})
        SELECT gen_random_uuid(), $1, g, $2, 'text', 'line ' || g, now() - interval '100 days' + g * interval '1 minute'${extra === "event_seq" ? ", g" : extra ? ", now()" : ""}
        FROM generate_series(${from}, ${to}) AS g`;
      await db.query(rows("message_archive", 1, 3, "archived_at"), [conversation.id, bob.id]);
      await db.query(rows("messages", 4, 5, "event_seq"), [conversation.id, bob.id]);
      await db.query("UPDATE conversations SET last_seq = 5, archived_up_to_seq = 3 WHERE id = $1", [conversation.id]);
    } finally {
      await db.end();
    }
    await alice.page.goto(`${alice.page.url().split("#")[0]}#/c/${conversation.id}`);
    await expect.poll(() => messageTexts(alice.page), poll).toEqual(["line 4", "line 5"]);
    // It said "This is the beginning of the conversation." above line 4, with no way to reach lines 1-3.
    expect(await alice.page.locator(".history-start").isVisible()).toBe(false);
    await alice.page.getByRole("button", { name: "Load older messages" }).click();
    await expect.poll(() => messageTexts(alice.page), poll).toEqual(["line 1", "line 2", "line 3", "line 4", "line 5"]);
    await expect.poll(() => alice.page.locator(".history-start").isVisible(), poll).toBe(true);
    expect(alice.errors).toEqual([]);
  });

  it("works from the keyboard alone, and the new-conversation dialog manages focus", async () => {
    const [alice, bob] = await pair();
    const page = alice.page;
    const newButton = page.getByRole("button", { name: "New conversation" });
    await newButton.focus();
    await page.keyboard.press("Enter");
    const dialog = page.getByRole("dialog", { name: "New conversation" });
    await expect.poll(() => page.evaluate(() => document.activeElement?.id), poll).toBe("nc-person");
    await page.keyboard.press("Escape");
    await expect.poll(() => dialog.count(), poll).toBe(0);
    await expect.poll(() => page.evaluate(() => document.activeElement?.getAttribute("aria-label")), poll).toBe("New conversation");

    await page.keyboard.press("Enter");
    await page.keyboard.type(bob.kahaId);
    await page.keyboard.press("Enter");
    await expect.poll(() => page.evaluate(() => document.activeElement?.id), poll).toBe("composer-input");
    await page.keyboard.type("typed with the keyboard");
    await page.keyboard.press("Enter");
    await expect.poll(() => messageTexts(page), poll).toEqual(["typed with the keyboard"]);
    // Labelled landmarks and controls are present.
    expect(await page.getByRole("navigation", { name: "Conversations" }).count()).toBe(1);
    expect(await page.getByRole("main").count()).toBe(1);
    expect(await page.getByRole("search").count()).toBe(1);
  });

  it("a message written offline survives leaving the conversation: sent once the network is back", async () => {
    const [alice, bob] = await pair();
    const conversationId = await startDirect(alice, bob);
    const carol = await headless("web-c");
    const other = await api<{ id: string }>("POST", "/conversations/direct", bob.token, { targetUserId: carol.id });
    await bob.page.goto(`${bob.page.url().split("#")[0]}#/c/${conversationId}`);
    await expect.poll(() => bob.page.locator("#conv-title").textContent(), poll).toBe(alice.name);
    const carolRow = bob.page.getByRole("link", { name: new RegExp(carol.name) });
    const aliceRow = bob.page.getByRole("link", { name: new RegExp(alice.name) });
    await expect.poll(() => carolRow.count(), poll).toBe(1);

    // Written offline, then Bob opens another conversation before the network is back.
    await bob.context.setOffline(true);
    await expect.poll(() => bob.page.locator(".banner").textContent(), poll).toContain("offline");
    await send(bob.page, "written offline, then left");
    await expect.poll(() => bob.page.locator(".pending-list li").textContent(), poll).toContain("Sending…");
    // Signing out would drop it: the app asks first (it signed out at once, and the message was lost without a word).
    await bob.page.getByRole("button", { name: "Sign out" }).click();
    const ask = bob.page.getByRole("dialog", { name: "Sign out with 1 unsent message?" });
    await expect.poll(() => ask.count(), poll).toBe(1);
    await ask.getByRole("button", { name: "Cancel" }).click();
    await expect.poll(() => ask.count(), poll).toBe(0);
    expect(await bob.page.locator(".pending-list li").textContent()).toContain("Sending…");
    // So would closing or reloading the tab: the browser asks too (the harness answers "stay").
    await bob.page.evaluate(() => void setTimeout(() => location.reload(), 0));
    await expect.poll(() => bob.dialogs, poll).toEqual(["beforeunload: "]);
    expect(await bob.page.locator(".pending-list li").textContent()).toContain("Sending…");
    await carolRow.click();
    await expect.poll(() => bob.page.url(), poll).toContain(other.id);
    await bob.context.setOffline(false);
    await expect.poll(() => messageTexts(alice.page), poll).toEqual(["written offline, then left"]);

    // Again, but Bob comes back to the conversation while still offline: the message is still on its way there.
    await bob.context.setOffline(true);
    await aliceRow.click();
    await expect.poll(() => bob.page.locator("#conv-title").textContent(), poll).toBe(alice.name);
    await expect.poll(() => bob.page.locator(".banner").textContent(), poll).toContain("offline");
    await send(bob.page, "second try");
    await carolRow.click();
    await expect.poll(() => bob.page.url(), poll).toContain(other.id);
    await aliceRow.click();
    await expect.poll(() => bob.page.locator(".pending-list li").textContent(), poll).toContain("second try");
    await bob.context.setOffline(false);
    const expected = ["written offline, then left", "second try"];
    await expect.poll(() => messageTexts(alice.page), poll).toEqual(expected);
    await expect.poll(() => messageTexts(bob.page), poll).toEqual(expected);
    await settled(bob.page);
    const history = await api<{ messages: { content: string }[] }>("GET", `/conversations/${conversationId}/messages`, alice.token);
    expect(history.messages.map((m) => m.content)).toEqual(expected);
    expect([...alice.errors, ...bob.errors]).toEqual([]);
  });

  it("keeps what was queued offline when the conversation is left again while its history loads", async () => {
    const alice = await person(browser, "web-a");
    people.push(alice);
    const bob = await headless("sdk-b");
    const conversation = await api<{ id: string }>("POST", "/conversations/direct", alice.token, { targetUserId: bob.id });
    const base = alice.page.url().split("#")[0];
    await alice.page.goto(`${base}#/c/${conversation.id}`);
    await expect.poll(() => alice.page.locator("#conv-title").textContent(), poll).toBe(bob.name);
    await alice.context.setOffline(true);
    await expect.poll(() => alice.page.locator(".banner").textContent(), poll).toContain("offline");
    await send(alice.page, "queued 1");
    await expect.poll(() => alice.page.locator(".pending-list li").textContent(), poll).toContain("Sending…");
    await alice.page.evaluate(() => (location.hash = "#/"));
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    await alice.page.route(`**/conversations/${conversation.id}/messages?*`, async (route) => (await held, route.abort().catch(() => {})));
    await alice.page.evaluate((id) => (location.hash = `#/c/${id}`), conversation.id);
    await expect.poll(() => alice.page.locator("#conv-title").textContent(), poll).toBe(bob.name);
    await send(alice.page, "queued 2");
    await alice.page.evaluate(() => (location.hash = "#/"));
    await alice.context.setOffline(false);
    release();
    await expect
      .poll(async () => (await api<{ messages: { content: string }[] }>("GET", `/conversations/${conversation.id}/messages`, bob.token)).messages.map((m) => m.content), poll)
      .toEqual(["queued 1", "queued 2"]);
    await alice.page.unroute(`**/conversations/${conversation.id}/messages?*`);
  });

  // The socket kept after the view went (to send what was still queued) took the refusal, and nothing kept it: the
  // message vanished, as if sent.
  it("shows a message refused after its conversation was left as Not sent on the next visit, until dismissed", async () => {
    const alice = await person(browser, "web-a");
    people.push(alice);
    const bob = await headless("sdk-b");
    const direct = await api<{ id: string }>("POST", "/conversations/direct", alice.token, { targetUserId: bob.id });
    const business = await api<{ id: string }>("POST", "/conversations/business", alice.token, { businessId: "b1000000-0000-4000-8000-00000000000b" });
    const base = alice.page.url().split("#")[0];
    const refusals: string[] = [];
    alice.page.on("websocket", (ws) => {
      if (!ws.url().includes(business.id)) return;
      ws.on("framereceived", ({ payload }) => {
        const frame = JSON.parse(String(payload)) as { type: string; data?: { message?: string } };
        if (frame.type === "error") refusals.push(frame.data?.message ?? "");
      });
    });
    await alice.page.goto(`${base}#/c/${business.id}`);
    await expect.poll(() => alice.page.locator("#conv-title").textContent(), poll).not.toBe("");
    await alice.context.setOffline(true);
    await expect.poll(() => alice.page.locator(".banner").textContent(), poll).toContain("offline");
    await send(alice.page, "too late");
    await expect.poll(() => alice.page.locator(".pending-list li").textContent(), poll).toContain("Sending…");
    await alice.page.goto(`${base}#/c/${direct.id}`);
    await expect.poll(() => alice.page.locator("#conv-title").textContent(), poll).toBe(bob.name);
    // Closed while Alice is offline and elsewhere: the queued message is refused once the kept socket is back.
    await api("POST", `/business/conversations/${business.id}/close`, alice.token, {});
    await alice.context.setOffline(false);
    await expect.poll(() => refusals, poll).toHaveLength(1);

    await alice.page.goto(`${base}#/c/${business.id}`);
    const failed = alice.page.locator(".pending-list li.failed");
    await expect.poll(() => failed.locator(".state").textContent(), poll).toBe(`Not sent: ${refusals[0]}`);
    expect(await failed.locator(".text").textContent()).toBe("too late");
    // Still there after another round trip; gone for good once dismissed.
    await alice.page.goto(`${base}#/c/${direct.id}`);
    await expect.poll(() => alice.page.locator("#conv-title").textContent(), poll).toBe(bob.name);
    await alice.page.goto(`${base}#/c/${business.id}`);
    await expect.poll(() => failed.count(), poll).toBe(1);
    await failed.getByRole("button", { name: "Dismiss" }).click();
    expect(await failed.count()).toBe(0);
    await alice.page.goto(`${base}#/c/${direct.id}`);
    await expect.poll(() => alice.page.locator("#conv-title").textContent(), poll).toBe(bob.name);
    await alice.page.goto(`${base}#/c/${business.id}`);
    await expect.poll(() => alice.page.locator("#conv-title").textContent(), poll).not.toBe(bob.name);
    await alice.page.waitForTimeout(500);
    expect(await alice.page.locator(".pending-list li").count()).toBe(0);
    expect(await messageTexts(alice.page)).not.toContain("too late");
    expect(alice.errors).toEqual([]);
  });

  it("shows Delivered when the other side's app got the message on its conversation list, without opening it", async () => {
    const [alice, bob] = await pair();
    await startDirect(alice, bob);
    await send(alice.page, "you have not opened this yet");
    // Bob's app is open on the list: the message reached his device (a notification), and that is all.
    const row = bob.page.getByRole("link", { name: new RegExp(alice.name) });
    await expect.poll(() => row.locator(".badge").textContent(), poll).toContain("1");
    const ticks = log(alice.page).locator(".ticks");
    await expect.poll(() => ticks.getAttribute("aria-label"), poll).toBe("Delivered");
    await alice.page.waitForTimeout(500);
    expect(await ticks.getAttribute("aria-label")).toBe("Delivered");
    expect(await log(alice.page).locator(".seen-by").count()).toBe(0);
  });

  // A visible page was taken for a reader: a desk left with the chat open marked each arriving message read (the
  // sender saw Read and "Seen by"), and those reads kept its user online.
  it("does not mark messages read while nobody is at the page, and does once someone is back", async () => {
    const alice = await person(browser, "web-a");
    const bob = await person(browser, "web-idle", { idleAfterMs: 2500 });
    people.push(alice, bob);
    const conversationId = await startDirect(alice, bob);
    await bob.page.goto(`${bob.page.url().split("#")[0]}#/c/${conversationId}`);
    await expect.poll(() => bob.page.locator("#conv-title").textContent(), poll).toBe(alice.name);
    // Bob leaves his desk: no input for longer than the idle time. His contacts see him away.
    const row = alice.page.getByRole("link", { name: new RegExp(bob.name) });
    await expect.poll(() => row.locator(".dot").getAttribute("class"), poll).toContain("away");

    await send(alice.page, "still there?");
    await expect.poll(() => messageTexts(bob.page), poll).toEqual(["still there?"]);
    const ticks = log(alice.page).locator(".ticks");
    await expect.poll(() => ticks.getAttribute("aria-label"), poll).toBe("Delivered");
    await alice.page.waitForTimeout(1000);
    expect(await ticks.getAttribute("aria-label")).toBe("Delivered");

    // Bob is back (he moves the mouse): the message on his screen is read now, and he is online again.
    await bob.page.mouse.move(200, 200);
    await bob.page.mouse.move(220, 240);
    await expect.poll(() => ticks.getAttribute("aria-label"), poll).toBe("Read");
    await expect.poll(() => log(alice.page).locator(".seen-by").textContent(), poll).toBe(`Seen by ${bob.name}`);
    await expect.poll(() => row.locator(".dot").getAttribute("class"), poll).toContain("online");
    expect([...alice.errors, ...bob.errors]).toEqual([]);
  });

  it("shows Delivered on a message the other side received but has not read", async () => {
    const alice = await person(browser, "web-a");
    people.push(alice);
    const bob = await headless("sdk-b");
    const conversation = await api<{ id: string }>("POST", "/conversations/direct", alice.token, { targetUserId: bob.id });
    // Bob's app is open elsewhere (the Node SDK): it confirms delivery of what arrives but never marks anything read.
    const room = new ChatClient({ baseUrl: BASE, token: bob.token, WebSocket }).conversation(conversation.id, { autoDeliver: true });
    try {
      const received: string[] = [];
      room.on("new_message", ({ message }) => received.push(message.content));
      await room.next("state", (s) => s.state === "open", 30_000);
      await alice.page.goto(`${alice.page.url().split("#")[0]}#/c/${conversation.id}`);
      await expect.poll(() => alice.page.locator("#conv-title").textContent(), poll).toBe(bob.name);
      await send(alice.page, "did this arrive?");
      await expect.poll(() => received, poll).toEqual(["did this arrive?"]);
      const ticks = log(alice.page).locator(".ticks");
      await expect.poll(() => ticks.getAttribute("aria-label"), poll).toBe("Delivered");
      // Delivered is not read: no "Seen by", and it stays Delivered.
      await alice.page.waitForTimeout(1000);
      expect(await ticks.getAttribute("aria-label")).toBe("Delivered");
      expect(await log(alice.page).locator(".seen-by").count()).toBe(0);
    } finally {
      room.close();
    }
  });

  it("keeps Read on my messages when a new member joins the group", async () => {
    const alice = await person(browser, "web-a");
    people.push(alice);
    const [bob, carol, dave] = await Promise.all([headless("sdk-b"), headless("sdk-c"), headless("sdk-d")]);
    const group = await api<{ id: string }>("POST", "/conversations/group", alice.token, { participantIds: [bob.id, carol.id], name: "Ticks" });
    // Her user socket will not hear that she left (below): the frame is dropped on its way.
    await userSocketWithout(alice, "conversation_removed");
    await alice.page.goto(`${alice.page.url().split("#")[0]}#/c/${group.id}`);
    await send(alice.page, "read me");
    await expect.poll(() => messageTexts(alice.page), poll).toEqual(["read me"]);
    await settled(alice.page);
    for (const p of [bob, carol]) await api("PUT", `/conversations/${group.id}/read`, p.token, {});
    const ticks = log(alice.page).locator(".ticks");
    await expect.poll(() => ticks.getAttribute("aria-label"), poll).toBe("Read");
    // Dave joins later (read up to now): what everyone had read stays read.
    await api("POST", `/conversations/${group.id}/participants`, alice.token, { userId: dave.id });
    await expect.poll(() => alice.page.locator(".conv-sub").textContent(), poll).toMatch(/^4 members/);
    expect(await ticks.getAttribute("aria-label")).toBe("Read");
    expect(await log(alice.page).locator(".seen-by").textContent()).toContain(bob.name);
    // She leaves on another device; the open view's socket is closed for good. What she then writes vanished from the
    // box without a word: it stays there, and the composer says why it cannot go.
    await api("DELETE", `/conversations/${group.id}/participants/${alice.id}`, alice.token);
    await expect.poll(() => alice.page.locator(".banner").textContent(), poll).toContain("Disconnected");
    await send(alice.page, "anyone still here?");
    await expect.poll(() => alice.page.locator(".composer-error").textContent(), poll).toBe("Not sent: No longer a participant");
    expect(await composer(alice.page).inputValue()).toBe("anyone still here?");
    expect(alice.errors).toEqual([]);
  });

  it("shows Delete on others' messages as soon as I am made admin, and hides it when that is taken back", async () => {
    const alice = await person(browser, "web-a");
    people.push(alice);
    const [bob, carol] = await Promise.all([headless("sdk-b"), headless("sdk-c")]);
    const group = await api<{ id: string }>("POST", "/conversations/group", bob.token, { participantIds: [alice.id, carol.id] });
    await seedMessages(bob.token, group.id, ["from bob"]);
    await alice.page.goto(`${alice.page.url().split("#")[0]}#/c/${group.id}`);
    await expect.poll(() => messageTexts(alice.page), poll).toEqual(["from bob"]);
    const del = log(alice.page).getByRole("button", { name: "Delete message" });
    expect(await del.count()).toBe(0);
    // Only Delete comes and goes: every message was drawn anew inside the live region, and a screen reader read the
    // whole history out again on each role change.
    const redrawn = () => log(alice.page).evaluate((list) => Number(list.dataset.redrawn ?? 0));
    await log(alice.page).evaluate((list) => {
      new MutationObserver((records) => {
        for (const r of records) list.dataset.redrawn = String(Number(list.dataset.redrawn ?? 0) + r.removedNodes.length);
      }).observe(list, { childList: true });
    });
    await api("PUT", `/conversations/${group.id}/participants/${alice.id}/role`, bob.token, { role: "admin" });
    await expect.poll(() => del.count(), poll).toBe(1);
    await api("PUT", `/conversations/${group.id}/participants/${alice.id}/role`, bob.token, { role: "member" });
    await expect.poll(() => del.count(), poll).toBe(0);
    expect(await redrawn()).toBe(0);
    // Removed while it is open: it vanished, and the pane said "No conversation selected" as if she had closed it.
    const title = await alice.page.locator("#conv-title").textContent();
    await api("DELETE", `/conversations/${group.id}/participants/${alice.id}`, bob.token);
    await expect.poll(() => alice.page.locator(".pane h2").textContent(), poll).toBe("You are no longer in this conversation");
    expect(await alice.page.locator(".pane p").textContent()).toBe(`You left or were removed from “${title}”.`);
    expect(alice.errors).toEqual([]);
  });

  it("asks once for a conversation the list lacks when a burst of its messages comes, and a removal meanwhile wins", async () => {
    const alice = await person(browser, "web-a");
    people.push(alice);
    const [bob, carol] = await Promise.all([headless("sdk-b"), headless("sdk-c")]);
    // Her user socket does not hear of the group (the frame is dropped on its way): its messages name a conversation
    // the list does not hold.
    await userSocketWithout(alice, "conversation_created");
    const group = await api<{ id: string }>("POST", "/conversations/group", bob.token, { participantIds: [alice.id, carol.id], name: "Burst" });
    const isGroup = (url: URL) => url.pathname === `/conversations/${group.id}`;
    let asked = 0;
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    await alice.page.route(isGroup, async (route) => {
      asked++;
      const response = await route.fetch();
      await held;
      await route.fulfill({ response }).catch(() => {});
    });
    for (const text of ["one", "two", "three"]) await api("POST", `/conversations/${group.id}/messages`, bob.token, { content: text });
    await expect.poll(() => asked, poll).toBe(1);
    await alice.page.waitForTimeout(500);
    // One request for the three notifications (it was one each).
    expect(asked).toBe(1);
    // Removed while that request is answered: its answer, read before the removal, put the group back on the list.
    await api("DELETE", `/conversations/${group.id}/participants/${alice.id}`, bob.token);
    await alice.page.waitForTimeout(500);
    const answered = alice.page.waitForResponse((r) => isGroup(new URL(r.url())));
    release();
    await answered;
    await alice.page.waitForTimeout(300);
    expect(await alice.page.getByRole("link", { name: /Burst/ }).count()).toBe(0);
    await alice.page.unroute(isGroup);
    expect(alice.errors).toEqual([]);
  });

  it("keeps the newer name, and keeps a group the user was removed from off the list, when an older read of it answers late", async () => {
    const alice = await person(browser, "web-a");
    people.push(alice);
    // The screen's conversation socket is live (its ready frame came) before the first join: a join it missed would
    // come with the ready frame's members, and no read would follow it.
    const live = new Promise<void>((resolve) =>
      alice.page.on("websocket", (ws) => ws.on("framereceived", (f) => String(f.payload).startsWith('{"type":"ready"') && resolve())),
    );
    const [bob, carol, dave, erin] = await Promise.all([headless("sdk-b"), headless("sdk-c"), headless("sdk-d"), headless("sdk-e")]);
    const group = await api<{ id: string }>("POST", "/conversations/group", bob.token, { participantIds: [alice.id, carol.id], name: "Old name" });
    await alice.page.goto(`${alice.page.url().split("#")[0]}#/c/${group.id}`);
    await expect.poll(() => alice.page.locator("#conv-title").textContent(), poll).toBe("Old name");
    await live;
    /** The next read of the group (the open screen's reload after a join): read at once, answered when `later` says. */
    const holdNextRead = async (later: () => Promise<unknown>) => {
      let read!: () => void;
      const wasRead = new Promise<void>((r) => (read = r));
      let answered!: Promise<void>;
      await alice.page.route(`**/conversations/${group.id}`, async (route) => {
        const response = await route.fetch();
        read();
        answered = later().then(() => route.fulfill({ response }));
      }, { times: 1 });
      return { wasRead, answered: () => answered };
    };
    const row = (name: string) => alice.page.getByRole("link", { name: new RegExp(name) });
    // A join makes the screen read the group; a rename lands before that read's answer.
    const renamed = await holdNextRead(() => expect.poll(() => row("New name").count(), poll).toBe(1));
    await api("POST", `/conversations/${group.id}/participants`, bob.token, { userId: dave.id });
    await renamed.wasRead;
    await api("PATCH", `/conversations/${group.id}`, bob.token, { name: "New name" });
    await renamed.answered();
    await expect.poll(() => alice.page.locator(".conv-sub").textContent(), poll).toMatch(/^4 members/);
    expect(await alice.page.locator("#conv-title").textContent()).toBe("New name");
    expect(await row("Old name").count()).toBe(0);
    // Removed before the answer of a read sent while she was a member: the group does not come back.
    const removed = await holdNextRead(() => expect.poll(() => row("New name").count(), poll).toBe(0));
    await api("POST", `/conversations/${group.id}/participants`, bob.token, { userId: erin.id });
    await removed.wasRead;
    await api("DELETE", `/conversations/${group.id}/participants/${alice.id}`, bob.token);
    await removed.answered();
    await alice.page.evaluate(() => new Promise((r) => setTimeout(r, 300)));
    expect(await row("New name").count()).toBe(0);
  });

  it("shows a message written while the history loads as Sending… until the server has it", async () => {
    const alice = await person(browser, "web-a");
    people.push(alice);
    const bob = await headless("sdk-b");
    const conversation = await api<{ id: string }>("POST", "/conversations/direct", alice.token, { targetUserId: bob.id });
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    await alice.page.route(`**/conversations/${conversation.id}/messages?*`, async (route) => (await held, route.continue()));
    await alice.page.goto(`${alice.page.url().split("#")[0]}#/c/${conversation.id}`);
    await expect.poll(() => alice.page.locator("#conv-title").textContent(), poll).toBe(bob.name);
    await send(alice.page, "written early");
    const pending = alice.page.locator(".pending-list li");
    await expect.poll(() => pending.textContent(), poll).toContain("Sending…");
    expect(await pending.textContent()).toContain("written early");
    release();
    await expect.poll(() => messageTexts(alice.page), poll).toEqual(["written early"]);
    await settled(alice.page);
    await alice.page.unroute(`**/conversations/${conversation.id}/messages?*`);
  });

  it("drops from the list, after a reconnect, a group the user was removed from while offline", async () => {
    const alice = await person(browser, "web-a");
    people.push(alice);
    const [bob, carol] = await Promise.all([headless("sdk-b"), headless("sdk-c")]);
    const group = await api<{ id: string }>("POST", "/conversations/group", bob.token, { participantIds: [alice.id, carol.id], name: "Gone while away" });
    const row = alice.page.getByRole("link", { name: /Gone while away/ });
    await expect.poll(() => row.count(), poll).toBe(1);
    await whileOffline(alice, () => api("DELETE", `/conversations/${group.id}/participants/${alice.id}`, bob.token));
    await expect.poll(() => row.count(), poll).toBe(0);
  });

  // The list's clean-up after a reconnect took the browser's clock for the server's: the times it compares are the
  // server's, and a machine's clock can be hours off.
  it("keeps a conversation that arrives while the list reloads after a reconnect, with the browser's clock hours ahead", async () => {
    const alice = await person(browser, "web-ahead", { clockSkewMs: 3 * 3600_000 });
    people.push(alice);
    const [bob, carol] = await Promise.all([headless("sdk-b"), headless("sdk-c")]);
    await api("POST", "/conversations/direct", alice.token, { targetUserId: carol.id });
    const carolRow = alice.page.getByRole("link", { name: new RegExp(carol.name) });
    await expect.poll(() => carolRow.count(), poll).toBe(1);
    await alice.context.setOffline(true);
    await expect.poll(() => alice.page.locator(".conn").textContent(), poll).not.toBe("Online");
    // The reload's answer is the server's list as it was asked for; it reaches the app only after the new conversation.
    let asked!: () => void;
    const reloading = new Promise<void>((r) => (asked = r));
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const isList = (url: URL) => url.pathname === "/conversations";
    await alice.page.route(isList, async (route) => {
      const response = await route.fetch();
      asked();
      await held;
      await route.fulfill({ response }).catch(() => {});
    });
    await alice.context.setOffline(false);
    await reloading;
    await api("POST", "/conversations/direct", bob.token, { targetUserId: alice.id });
    const bobRow = alice.page.getByRole("link", { name: new RegExp(bob.name) });
    await expect.poll(() => bobRow.count(), poll).toBe(1);
    const answered = alice.page.waitForResponse((r) => isList(new URL(r.url())));
    release();
    await answered;
    await alice.page.waitForTimeout(500);
    expect(await bobRow.count()).toBe(1);
    expect(await carolRow.count()).toBe(1);
    await alice.page.unroute(isList);
    expect(alice.errors).toEqual([]);
  });

  it("drops from the list, after a reconnect, a group the user was removed from while offline, with the browser's clock hours behind", async () => {
    const alice = await person(browser, "web-behind", { clockSkewMs: -3 * 3600_000 });
    people.push(alice);
    const [bob, carol] = await Promise.all([headless("sdk-b"), headless("sdk-c")]);
    await api("POST", "/conversations/direct", alice.token, { targetUserId: carol.id });
    const group = await api<{ id: string }>("POST", "/conversations/group", bob.token, { participantIds: [alice.id, carol.id], name: "Gone behind the clock" });
    const row = alice.page.getByRole("link", { name: /Gone behind the clock/ });
    const carolRow = alice.page.getByRole("link", { name: new RegExp(carol.name) });
    await expect.poll(() => row.count(), poll).toBe(1);
    await whileOffline(alice, () => api("DELETE", `/conversations/${group.id}/participants/${alice.id}`, bob.token));
    await expect.poll(() => row.count(), poll).toBe(0);
    expect(await carolRow.count()).toBe(1);
    // The list fails to load as the app starts (the network drops): it stayed empty, saying so, until a reload.
    const isList = (url: URL) => url.pathname === "/conversations";
    await alice.page.route(isList, (route) => route.abort());
    await alice.page.reload();
    await expect.poll(() => alice.page.locator(".list-status").textContent(), poll).toContain("Could not load conversations");
    await alice.page.unroute(isList);
    await expect.poll(() => carolRow.count(), poll).toBe(1);
    expect(await alice.page.locator(".list-status").textContent()).toBe("");
    expect(alice.errors).toEqual([]);
  });

  it("closes an open confirm dialog when a 401 signs the user out: the sign-in page is not left under it", async () => {
    const alice = await person(browser, "web-a");
    people.push(alice);
    const bob = await headless("sdk-b");
    const direct = await api<{ id: string }>("POST", "/conversations/direct", alice.token, { targetUserId: bob.id });
    await api("POST", `/conversations/${direct.id}/messages`, alice.token, { content: "delete me?" });
    await alice.page.goto(`${alice.page.url().split("#")[0]}#/c/${direct.id}`);
    await expect.poll(() => messageTexts(alice.page), poll).toEqual(["delete me?"]);
    await log(alice.page).locator("li").first().getByRole("button", { name: "Delete message" }).click();
    const confirm = alice.page.getByRole("dialog", { name: "Delete this message?" });
    await expect.poll(() => confirm.isVisible(), poll).toBe(true);
    // The token is refused from now on (expired, the server's secret changed): the list's reload after a reconnect
    // gets a 401, and the app goes back to sign-in.
    const isList = (url: URL) => url.pathname === "/conversations";
    await alice.page.route(isList, (route) => route.fulfill({ status: 401, contentType: "application/json", body: JSON.stringify({ statusCode: 401, error: "Unauthorized", message: "Token expired", requestId: "test" }) }));
    await alice.context.setOffline(true);
    await alice.context.setOffline(false);
    await expect.poll(() => alice.page.locator("#login-kaha").count(), poll).toBe(1);
    await expect.poll(() => alice.page.locator("dialog").count(), poll).toBe(0);
    // The sign-in form is usable: nothing modal is left over it.
    await alice.page.locator("#login-kaha").fill("someone");
    expect(await alice.page.locator("#login-kaha").inputValue()).toBe("someone");
    await alice.page.unroute(isList);
    // A link to a conversation opened while signed out leads to it once signed in (it went to the list).
    await alice.page.goto(`${BASE}/#/c/${direct.id}`);
    await alice.page.reload();
    await alice.page.locator("#login-kaha").fill(alice.kahaId);
    await alice.page.locator("#login-kaha").press("Enter");
    await expect.poll(() => messageTexts(alice.page), poll).toEqual(["delete me?"]);
    expect(alice.errors).toEqual([]);
  });

  it("says a business conversation closed while it is open is closed, and takes no more messages", async () => {
    const alice = await person(browser, "web-a");
    people.push(alice);
    const business = await api<{ id: string }>("POST", "/conversations/business", alice.token, { businessId: "b1000000-0000-4000-8000-00000000000c" });
    await alice.page.goto(`${alice.page.url().split("#")[0]}#/c/${business.id}`);
    const subtitle = alice.page.locator(".conv-sub");
    await expect.poll(() => subtitle.textContent(), poll).toContain("Business chat");
    expect(await composer(alice.page).isDisabled()).toBe(false);
    await settled(alice.page);
    await api("POST", `/business/conversations/${business.id}/close`, alice.token, {});
    await expect.poll(() => subtitle.textContent(), poll).toContain("Closed");
    expect(await composer(alice.page).isDisabled()).toBe(true);
    expect(await alice.page.getByRole("button", { name: "Send" }).isDisabled()).toBe(true);
    expect(await composer(alice.page).getAttribute("placeholder")).toBe("This conversation is closed");
    expect(alice.errors).toEqual([]);
  });

  it("tells a screen reader at once when a message is refused while its conversation is open, and shows it closed after the reconnect", async () => {
    const alice = await person(browser, "web-a");
    people.push(alice);
    const business = await api<{ id: string }>("POST", "/conversations/business", alice.token, { businessId: "b1000000-0000-4000-8000-00000000000c" });
    await alice.page.goto(`${alice.page.url().split("#")[0]}#/c/${business.id}`);
    await expect.poll(() => alice.page.locator(".conv-sub").textContent(), poll).toContain("Business chat");
    await settled(alice.page);
    await alice.context.setOffline(true);
    await expect.poll(() => alice.page.locator(".banner").textContent(), poll).toContain("offline");
    await send(alice.page, "too late");
    // Closed meanwhile: the queued message is refused once the socket is back, with the conversation on screen.
    await api("POST", `/business/conversations/${business.id}/close`, alice.token, {});
    await alice.context.setOffline(false);
    const failed = alice.page.locator(".pending-list li.failed .state");
    await expect.poll(() => failed.textContent(), poll).toMatch(/^Not sent: /);
    const reason = (await failed.textContent())!.slice("Not sent: ".length);
    const alert = alice.page.locator(".conversation [role=alert].not-sent-alert");
    expect(await alert.textContent()).toBe(`Message not sent: “too late”. ${reason.replace(/\.$/, "")}.`);
    // Closed while offline: the header says so once the app is back, and the composer takes no more.
    await expect.poll(() => alice.page.locator(".conv-sub").textContent(), poll).toContain("Closed");
    expect(await composer(alice.page).isDisabled()).toBe(true);
    expect(alice.errors).toEqual([]);
  });

  it("creates a group and a business conversation from the New conversation dialog", async () => {
    const [alice, bob] = await pair();
    const carol = await headless("web-c");
    const page = alice.page;
    const dialog = page.getByRole("dialog", { name: "New conversation" });

    await page.getByRole("button", { name: "New conversation" }).click();
    await dialog.getByRole("radio", { name: "Group" }).check();
    await dialog.getByLabel("Members").fill(`${bob.kahaId}, ${carol.kahaId}`);
    await dialog.getByLabel("Group name (optional)").fill("Weekend plans");
    await dialog.getByRole("button", { name: "Create" }).click();
    await expect.poll(() => page.locator("#conv-title").textContent(), poll).toBe("Weekend plans");
    await expect.poll(() => page.locator(".conv-sub").textContent(), poll).toMatch(/^3 members/);
    const groupId = page.url().split("#/c/")[1];
    const group = await api<{ type: string; participants: { userId: string }[] }>("GET", `/conversations/${groupId}`, alice.token);
    expect(group.type).toBe("group");
    expect(group.participants.map((p) => p.userId).sort()).toEqual([alice.id, bob.id, carol.id].sort());
    // Bob sees the new group in his list.
    await expect.poll(() => bob.page.getByRole("link", { name: /Weekend plans/ }).count(), poll).toBe(1);
    await send(page, "hi both");
    await expect.poll(() => messageTexts(page), poll).toEqual(["hi both"]);
    // Leaving it (the app had no way to): asked first, then gone from the list, and from the group on the server.
    await page.locator(".conv-head").getByRole("button", { name: "Leave group" }).click();
    await page.getByRole("dialog", { name: "Leave this group?" }).getByRole("button", { name: "Leave", exact: true }).click();
    await expect.poll(() => page.locator(".pane h2").textContent(), poll).toBe("You are no longer in this conversation");
    expect(await page.getByRole("link", { name: /Weekend plans/ }).count()).toBe(0);
    const left = await api<{ participants: { userId: string }[] }>("GET", `/conversations/${groupId}`, bob.token);
    expect(left.participants.map((p) => p.userId).sort()).toEqual([bob.id, carol.id].sort());

    await page.getByRole("button", { name: "New conversation" }).click();
    await dialog.getByRole("radio", { name: "Business" }).check();
    await dialog.getByRole("combobox", { name: "Business" }).selectOption({ label: "Other (enter its id)" });
    await dialog.getByLabel("Business id").fill("not-an-id");
    await dialog.getByRole("button", { name: "Create" }).click();
    const complaint = dialog.locator(".form-error");
    await expect.poll(() => complaint.textContent(), poll).toContain("A business id looks like");
    // It goes as the id is corrected (it stayed, saying the id was wrong, until Create was pressed again).
    await dialog.getByLabel("Business id").fill("b1000000-0000-4000-8000-00000000000b");
    await expect.poll(() => complaint.textContent(), poll).toBe("");
    await dialog.getByRole("combobox", { name: "Business" }).selectOption({ label: "Demo business B" });
    await dialog.getByRole("button", { name: "Create" }).click();
    await expect.poll(() => page.locator(".conv-sub").textContent(), poll).toContain("Business chat");
    const businessId = page.url().split("#/c/")[1];
    expect(businessId).not.toBe(groupId);
    const business = await api<{ type: string; business?: { name: string } | null; participants: { userId: string; role: string }[] }>("GET", `/conversations/${businessId}`, alice.token);
    expect(business.type).toBe("business");
    expect(business.participants).toContainEqual(expect.objectContaining({ userId: alice.id, role: "customer" }));
    const title = await page.locator("#conv-title").textContent();
    expect(title).toBe(business.business?.name?.trim() || "Business chat");
    expect(await page.getByRole("link", { name: new RegExp(title!) }).count()).toBeGreaterThan(0);
    expect(alice.dialogs).toEqual([]);
  });
});

/** Takes the person's browser offline, runs `work` (a change made elsewhere meanwhile), and waits until the app is back online. */
/** Reloads the page with its user socket's `type` frames dropped on their way, as a frame lost in transit. */
async function userSocketWithout(who: Awaited<ReturnType<typeof person>>, type: string): Promise<void> {
  await who.page.routeWebSocket(
    (url) => url.pathname === "/ws",
    (ws) => {
      const server = ws.connectToServer();
      server.onMessage((m) => !String(m).includes(`"${type}"`) && ws.send(m));
      ws.onMessage((m) => server.send(m));
    },
  );
  await who.page.reload();
  await expect.poll(() => who.page.locator(".conn").textContent(), poll).toBe("Online");
}

async function whileOffline(who: Awaited<ReturnType<typeof person>>, work: () => Promise<unknown>): Promise<void> {
  await who.context.setOffline(true);
  await expect.poll(() => who.page.locator(".conn").textContent(), poll).not.toBe("Online");
  await work();
  await who.context.setOffline(false);
  await expect.poll(() => who.page.locator(".conn").textContent(), poll).toBe("Online");
}
