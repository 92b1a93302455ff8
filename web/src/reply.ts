import type { Message } from "../../src/client";
import { messageSummary } from "./attachments";
import { clip, type Directory } from "./format";

/**
 * The line above a reply, saying what it answers: who and the start of what they wrote. A reply (from another
 * client: the SDK sends replyToId) showed as a message on its own, its context lost. Undefined while the message
 * answered is not known yet (not loaded, being fetched).
 */
export function replyQuote(
  target: Pick<Message, "senderId" | "type" | "content" | "deletedAt"> | undefined,
  me: string,
  dir: Pick<Directory, "name">,
  lead = "Reply to",
): string {
  if (!target) return `${lead} an earlier message`;
  const who = target.senderId === me ? "you" : dir.name(target.senderId);
  if (target.deletedAt) return `${lead} ${who}: message deleted`;
  const text = messageSummary(target);
  return `${lead} ${who}: ${clip(text, 80)}`;
}
