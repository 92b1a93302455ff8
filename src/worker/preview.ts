import type { Context } from "hono";
import { findListed } from "../db/queries/conversations";
import { toMessage } from "../db/mappers";
import type { Message } from "../protocol/resources";
import { listedView, sharedView } from "./conversation-view";
import type { AppEnv } from "./env";
import { tellUsers } from "./room-events";

/**
 * After an edit or delete: conversation lists preview the last message (from the list and from `notification`
 * frames), and nothing told the members' apps when that message changed. A list kept showing the old text, or the
 * deleted text, until it was loaded again. When the changed message is the conversation's last one, the members'
 * sessions get `conversation_updated` with it. After the response (one read, only the view for the last message),
 * and only once Postgres has the change: a view with the old text would undo a preview that already had the new one.
 */
export function tellPreviewChanged(c: Context<AppEnv>, conversationId: string, changed: Message): void {
  c.get("afterResponse")(async () => {
    const listed = await findListed(c.get("httpDb")(), conversationId, c.get("user").id);
    const latest = listed?.parts.latest ? toMessage(listed.parts.latest) : undefined;
    if (!listed || !latest || latest.id !== changed.id) return;
    if (latest.content !== changed.content || (latest.deletedAt === null) !== (changed.deletedAt === null)) return;
    const view = await listedView(c, listed);
    tellUsers(c, view.participants.map((p) => p.userId), { type: "conversation_updated", conversation: sharedView(view) });
  });
}
