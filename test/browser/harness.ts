import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { chromium, type Browser, type BrowserContext, type Page } from "playwright-core";
import { expect } from "vitest";
import WebSocket from "ws";
import { ChatClient } from "../../src/client";

/**
 * Browser tests drive Debian's Chromium through playwright-core (never a downloaded browser) against the
 * `wrangler dev` that `npm test` starts; the web app is the static bundle wrangler serves at `/`.
 */
export const BASE = process.env.STACK_BASE_URL ?? "";
if (!BASE) throw new Error("Run browser tests with `npm test -- --project browser` (it starts the stack).");
export const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
export const hasChromium = existsSync(CHROMIUM);

// Flags from the platform notes: no sandbox (root in a container), nothing that phones home on a closed network.
const ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--disable-dev-shm-usage",
];

export async function launch(): Promise<Browser> {
  // launch() gives every run a fresh temporary profile (its own --user-data-dir).
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: ARGS, timeout: 60_000 });
}

export interface Person {
  kahaId: string;
  id: string;
  token: string;
  name: string;
  context: BrowserContext;
  page: Page;
  /** Dialogs (alert/confirm/prompt) the page opened: an injected script would show up here. */
  dialogs: string[];
  /** Uncaught page errors. */
  errors: string[];
}

let n = 0;
export const uniqueKahaId = (prefix: string) => `${prefix}-${process.pid}-${Date.now().toString(36)}-${n++}`;

export async function api<T = any>(method: string, p: string, token?: string, body?: unknown): Promise<T> {
  const res = await fetch(`${BASE}${p}`, {
    method,
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body !== undefined ? { "content-type": "application/json" } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${p} → ${res.status} ${text}`);
  return (text ? JSON.parse(text) : undefined) as T;
}

/** A demo user with a browser context of their own, signed in through the login form. */
export async function person(
  browser: Browser,
  prefix: string,
  options: { viewport?: { width: number; height: number }; idleAfterMs?: number; clockSkewMs?: number } = {},
): Promise<Person> {
  const kahaId = uniqueKahaId(prefix);
  const login = await api<{ access_token: string; user: { id: string } }>("POST", "/auth/dev-login", undefined, { kahaId });
  const me = await api<{ profile: { name: string } }>("GET", "/auth/me", login.access_token);
  const context = await browser.newContext({ viewport: options.viewport ?? { width: 1280, height: 800 }, locale: "en-US", timezoneId: "UTC" });
  // The app's idle time (web/src/attention.ts), shortened so a test can wait it out.
  if (options.idleAfterMs) await context.addInitScript((ms) => localStorage.setItem("edgechat.idleAfterMs", String(ms)), options.idleAfterMs);
  if (options.clockSkewMs) await context.addInitScript({ content: skewedClock(options.clockSkewMs) });
  const page = await context.newPage();
  const p: Person = { kahaId, id: login.user.id, token: login.access_token, name: me.profile.name, context, page, dialogs: [], errors: [] };
  page.on("dialog", (d) => {
    p.dialogs.push(`${d.type()}: ${d.message()}`);
    void d.dismiss().catch(() => {});
  });
  page.on("pageerror", (e) => p.errors.push(e.message));
  await signIn(p);
  return p;
}

/**
 * A page script that sets the browser's clock `ms` off (Date.now() and `new Date()`; timers run as usual), as on a
 * machine whose clock is wrong. A string: a function would be sent as its compiled text, helpers and all.
 */
function skewedClock(ms: number): string {
  return `(() => {
    const RealDate = Date;
    const skew = ${JSON.stringify(ms)};
    class SkewedDate extends RealDate {
      constructor(...args) {
        if (args.length === 0) super(RealDate.now() + skew);
        else super(...args);
      }
      static now() {
        return RealDate.now() + skew;
      }
    }
    globalThis.Date = SkewedDate;
  })();`;
}

export async function signIn(p: Person): Promise<void> {
  await p.page.goto(`${BASE}/`);
  await p.page.getByLabel("Demo user name").fill(p.kahaId);
  await p.page.getByRole("button", { name: "Sign in" }).click();
  await expect.poll(() => p.page.locator(".conn").textContent(), { timeout: 30_000 }).toBe("Online");
}

/** Opens "New conversation" and creates a direct conversation with `other`. */
export async function startDirect(p: Person, other: Person): Promise<string> {
  await p.page.getByRole("button", { name: "New conversation" }).click();
  const dialog = p.page.getByRole("dialog", { name: "New conversation" });
  await dialog.getByLabel("Person").fill(other.kahaId);
  await dialog.getByRole("button", { name: "Create" }).click();
  await expect.poll(() => p.page.locator("#conv-title").textContent(), { timeout: 30_000 }).toBe(other.name);
  return p.page.url().split("#/c/")[1];
}

export const composer = (page: Page) => page.getByLabel("Message", { exact: true });
export const log = (page: Page) => page.getByRole("log", { name: "Messages" });

/** Texts of the messages shown in the conversation log, in order. */
export function messageTexts(page: Page): Promise<string[]> {
  return log(page).locator("li .text").allTextContents();
}

export async function send(page: Page, text: string): Promise<void> {
  await composer(page).fill(text);
  await composer(page).press("Enter");
}

/** Waits until the page is live on the conversation socket (no reconnect banner, pending list empty). */
export async function settled(page: Page): Promise<void> {
  await expect.poll(() => page.locator(".pending-list li").count(), { timeout: 30_000 }).toBe(0);
}

export async function tempDir(): Promise<{ dir: string; remove(): Promise<void> }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "edge-chat-browser-"));
  return { dir, remove: () => rm(dir, { recursive: true, force: true }) };
}

/** Sends messages as `token`'s user through the SDK's socket (REST writes are rate limited; frames are not, at this pace). */
export async function seedMessages(token: string, conversationId: string, contents: string[]): Promise<void> {
  const chat = new ChatClient({ baseUrl: BASE, token, WebSocket });
  const room = chat.conversation(conversationId);
  try {
    for (const content of contents) await room.send(content);
  } finally {
    room.close();
  }
}
