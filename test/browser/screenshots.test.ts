import { mkdir } from "node:fs/promises";
import path from "node:path";
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { api, BASE, composer, hasChromium, launch, log, messageTexts, person, seedMessages, tempDir, type Person } from "./harness";

/**
 * The main views at desktop and phone width. With UPDATE_SCREENSHOTS=1 the pictures are written to
 * docs/screenshots/ (README material); otherwise to a temporary directory, so an ordinary run checks the views
 * render (and fit a phone) without touching tracked files.
 */
const poll = { timeout: 30_000, interval: 100 };
const PHONE = { width: 390, height: 844 };

describe.skipIf(!hasChromium)("screenshots of the main views", () => {
  let browser: Browser;
  const people: Person[] = [];
  let out: string;
  let cleanup: (() => Promise<void>) | undefined;

  beforeAll(async () => {
    browser = await launch();
    if (process.env.UPDATE_SCREENSHOTS === "1") {
      out = path.resolve(__dirname, "../../docs/screenshots");
      await mkdir(out, { recursive: true });
    } else {
      const t = await tempDir();
      out = t.dir;
      cleanup = t.remove;
    }
  });

  afterAll(async () => {
    for (const p of people) await p.context.close().catch(() => {});
    await browser?.close();
    await cleanup?.();
  });

  it("login, conversation list, conversation view, phone width", async () => {
    // The login page.
    const visitor = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const loginPage = await visitor.newPage();
    await loginPage.goto(`${BASE}/`);
    await loginPage.getByLabel("Demo user name").fill("alice");
    await loginPage.screenshot({ path: path.join(out, "login.png") });
    await visitor.close();

    const alice = await person(browser, "alice");
    const bob = await person(browser, "bob");
    const carol = await person(browser, "carol");
    people.push(alice, bob, carol);

    // A group, a business chat and a direct chat with some history; Bob and Carol leave Alice unread messages.
    const group = await api<{ id: string }>("POST", "/conversations/group", alice.token, { participantIds: [bob.id, carol.id], name: "Weekend trip" });
    await seedMessages(alice.token, group.id, ["Who is bringing the tent?"]);
    await seedMessages(carol.token, group.id, ["I can bring mine, it sleeps three.", "Leaving Saturday at 8?"]);
    const business = await api<{ id: string }>("POST", "/conversations/business", alice.token, { businessId: "b1000000-0000-4000-8000-00000000000a" });
    await seedMessages(alice.token, business.id, ["Hi! Is my order #1042 ready for pickup?"]);
    const direct = await api<{ id: string }>("POST", "/conversations/direct", alice.token, { targetUserId: bob.id });
    await seedMessages(alice.token, direct.id, ["Hey Bob! Did you get the photos?"]);
    await seedMessages(bob.token, direct.id, ["Yes, they look great.", "The one at the lake is my favourite."]);
    await seedMessages(alice.token, direct.id, ["Same! Printing it for the fridge.", "<b>Markup</b> shows as text, by the way."]);

    // Conversation list (desktop): unread badges, previews, presence dots.
    await alice.page.reload();
    await expect.poll(() => alice.page.locator(".conv-list li").count(), poll).toBe(3);
    await expect.poll(() => alice.page.locator(".conv-list .badge").count(), poll).toBeGreaterThanOrEqual(1);
    await expect.poll(() => alice.page.locator(".conv-list .dot.online").count(), poll).toBeGreaterThanOrEqual(1);
    await alice.page.screenshot({ path: path.join(out, "conversation-list.png") });

    // Conversation view (desktop): Bob reads, then types.
    await alice.page.getByRole("link", { name: new RegExp(bob.name) }).click();
    await expect.poll(() => messageTexts(alice.page), poll).toHaveLength(5);
    await bob.page.goto(`${BASE}/#/c/${direct.id}`);
    await expect.poll(() => messageTexts(bob.page), poll).toHaveLength(5);
    await expect.poll(() => log(alice.page).locator(".seen-by").count(), poll).toBe(1);
    await composer(bob.page).pressSequentially("On my way", { delay: 30 });
    await expect.poll(() => alice.page.locator(".typing").textContent(), poll).toContain("typing");
    await composer(alice.page).fill("See you at 8!");
    await alice.page.screenshot({ path: path.join(out, "conversation.png") });

    // Phone width: one pane at a time, nothing overflows sideways.
    const phone = await browser.newContext({ viewport: PHONE, deviceScaleFactor: 2, isMobile: true, hasTouch: true });
    const page = await phone.newPage();
    await page.goto(`${BASE}/`);
    await page.getByLabel("Demo user name").fill(carol.kahaId);
    await page.getByRole("button", { name: "Sign in" }).click();
    await expect.poll(() => page.locator(".conv-list li").count(), poll).toBe(1);
    expect(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth)).toBe(true);
    expect(await page.locator(".pane").isVisible()).toBe(false);
    await page.screenshot({ path: path.join(out, "phone-list.png") });
    await page.getByRole("link", { name: /Weekend trip/ }).click();
    await expect.poll(() => messageTexts(page), poll).toHaveLength(3);
    expect(await page.locator(".sidebar").isVisible()).toBe(false);
    expect(await page.getByRole("link", { name: "Back to conversations" }).isVisible()).toBe(true);
    expect(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth)).toBe(true);
    await page.screenshot({ path: path.join(out, "phone-conversation.png") });
    await page.getByRole("link", { name: "Back to conversations" }).click();
    await expect.poll(() => page.locator(".sidebar").isVisible(), poll).toBe(true);
    await phone.close();
    expect([...alice.errors, ...bob.errors, ...carol.errors]).toEqual([]);
  });
});
