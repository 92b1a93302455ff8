import { normalContent } from "../../src/client/content";

/**
 * Whether an edit changes nothing once the server has normalised it (trimmed, controls dropped, NFC): the server keeps
 * the message as it was, so Save closes the editor and sends nothing. Spaces added at either end went out as an
 * edit, and with the connection down Save failed ("Could not save") for a change that was none.
 */
export function editChangesNothing(edited: string, original: string): boolean {
  return normalContent(edited) === normalContent(original);
}
