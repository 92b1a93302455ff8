import type { Message } from "../../src/client";
import { clip, type Directory } from "./format";
import { messageSummary } from "./attachments";

/** Announcements kept in the region: what is removed is never read, and a burst leaves no long list behind. */
export const ARRIVALS_KEPT = 5;

/**
 * What a screen reader is told of a message that just arrived (someone's live message, or one of mine now stored):
 * who, then the text, shortened. The messages list itself is no live region: a page of history inserted at its top
 * on scroll-back (or the first page, on opening) was read out as if fifty new messages had come.
 */
export function arrivalText(m: Pick<Message, "senderId" | "type" | "content" | "deletedAt">, me: string, dir: Pick<Directory, "name">): string {
  const who = m.senderId === me ? "You" : dir.name(m.senderId);
  if (m.deletedAt) return `${who}: message deleted`;
  // An image or a file by its name: its address read out letter by letter said nothing.
  const text = messageSummary(m);
  return `${who}: ${clip(text, 200)}`;
}
