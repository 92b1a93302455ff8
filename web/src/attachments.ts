import type { Message } from "../../src/client";

/**
 * What a message's bubble shows. An image or a file message showed its content (a URL) as text. Its link is used only
 * when it is an absolute http(s) URL: anything else (javascript:, data:, a relative path) is shown as text, never as
 * a link or a picture.
 */
export type MessageBody =
  | { kind: "text"; text: string }
  | { kind: "deleted" }
  | { kind: "image"; url: string; name: string }
  | { kind: "file"; url: string; name: string }
  | { kind: "bad-link"; label: string; text: string };

/** The content as a link the app may follow or load: an absolute http(s) URL without credentials, or nothing. */
export function safeUrl(content: string): string | undefined {
  const text = content.trim();
  // Checked on the text first: the URL parser drops tabs and newlines inside "java\tscript:" and similar.
  if (!/^https?:\/\/[^\s]+$/i.test(text)) return undefined;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return undefined;
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") return undefined;
  // "https://bank.example@evil.example/" reads as the bank's and goes elsewhere.
  if (url.username || url.password) return undefined;
  return url.href;
}

/** The name a link's file goes by: its path's last part, else its host. */
export function fileName(url: string): string {
  const u = new URL(url);
  const last = u.pathname.split("/").filter(Boolean).at(-1);
  if (!last) return u.hostname;
  try {
    return decodeURIComponent(last);
  } catch {
    return last;
  }
}

export function messageBody(m: Pick<Message, "type" | "content" | "deletedAt">): MessageBody {
  if (m.deletedAt) return { kind: "deleted" };
  if (m.type !== "image" && m.type !== "file") return { kind: "text", text: m.content };
  const url = safeUrl(m.content);
  const label = m.type === "image" ? "Image" : "File";
  if (!url) return { kind: "bad-link", label: `${label} (link not shown: not a web address)`, text: m.content };
  return { kind: m.type, url, name: fileName(url) };
}

/** A message in one line (the list's preview, what a screen reader is told): an image or file by name, not its URL. */
export function messageSummary(m: Pick<Message, "type" | "content" | "deletedAt">): string {
  const body = messageBody(m);
  switch (body.kind) {
    case "deleted":
      return "Message deleted";
    case "image":
      return `Image: ${body.name}`;
    case "file":
      return `File: ${body.name}`;
    case "bad-link":
      return m.type === "image" ? "Image" : "File";
    default:
      return body.text.replace(/\s+/g, " ").trim();
  }
}

/**
 * What a search result shows of a message: a text message's own text (the search's marks are counted on it), an
 * image or a file as the conversation names it. Results showed an image's or a file's address, tokens and all.
 */
export function searchSnippet(m: Pick<Message, "type" | "content" | "deletedAt">): string {
  return m.type === "text" && !m.deletedAt ? m.content : messageSummary(m);
}

/** A run of a text message: plain text, or a web address to show as a link. */
export interface TextRun {
  text: string;
  url?: string;
}

const URL_IN_TEXT = /\bhttps?:\/\/[^\s<>"]+/gi;

/**
 * A text message cut into plain runs and links: web addresses in a message were plain text, to be copied by hand.
 * Only what safeUrl accepts is a link; the punctuation that ends a sentence ("see https://x.example/a.") stays text,
 * and so does a closing bracket the address did not open ("(https://x.example/a)").
 */
export function textRuns(text: string): TextRun[] {
  const runs: TextRun[] = [];
  let at = 0;
  for (const match of text.matchAll(URL_IN_TEXT)) {
    let candidate = match[0];
    for (;;) {
      const last = candidate.at(-1) ?? "";
      const unopened = last === ")" && count(candidate, "(") < count(candidate, ")");
      if (!/[.,;:!?'\]}*]/.test(last) && !unopened) break;
      candidate = candidate.slice(0, -1);
    }
    const url = safeUrl(candidate);
    if (!url) continue;
    const start = match.index;
    if (start > at) runs.push({ text: text.slice(at, start) });
    runs.push({ text: candidate, url });
    at = start + candidate.length;
  }
  if (at < text.length || runs.length === 0) runs.push({ text: text.slice(at) });
  return runs;
}

const count = (s: string, c: string) => s.split(c).length - 1;
