import { describe, expect, it } from "vitest";
import { env, runInDurableObject } from "cloudflare:test";
import type { TestUser } from "./helpers";
import { direct, send, users } from "./conversation-helpers";
import { openSocket, waitFor } from "./sockets";

const connectUser = (user: TestUser) => openSocket("/ws", user);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** What the user's session has recorded of this conversation's badge; undefined when it never heard of it. */
function sessionBadge(user: TestUser, conversationId: string): Promise<number | undefined> {
  const stub = env.USER_SESSION.get(env.USER_SESSION.idFromName(user.id));
  return runInDurableObject(stub, async (_instance, state) => state.storage.kv.get<Record<string, number>>("badges")?.[conversationId]);
}

describe("new-message notifications follow reachability", () => {
  it("leaves an offline member's session asleep, gives the right badge on connect, then notifies live", async () => {
    const [a, b] = await users(2, "reach");
    const id = await direct(a, b);
    await send(id, a, "while b is away");
    await send(id, a, "still away");
    // Notifications go out after the commit, in a task of their own: give them time to arrive if they were sent.
    await sleep(300);
    expect(await sessionBadge(b, id)).toBeUndefined();

    const phone = await connectUser(b);
    const badge = await waitFor(() => phone.frames.find((f) => f.type === "unread_count" && f.data.conversationId === id), "badge on connect");
    expect(badge.data.unreadCount).toBe(2);

    const third = await send(id, a, "now b is here");
    const note = await waitFor(() => phone.frames.find((f) => f.type === "notification"), "live notification");
    expect(note.data).toMatchObject({ conversationId: id, message: { id: third.id, seq: 3 } });
    const live = await waitFor(
      () => phone.frames.find((f) => f.type === "unread_count" && f.data.conversationId === id && f.data.unreadCount === 3),
      "badge after the live message",
    );
    expect(live.data.totalUnread).toBe(3);

    // Offline again (after the session's grace period): the room stops waking the session.
    phone.ws.close(1000, "done");
    await sleep(4500);
    await send(id, a, "b left again");
    await sleep(300);
    expect(await sessionBadge(b, id)).toBe(3);
  });

  it("notifies a member who came online before the room first loaded (the room reads Postgres)", async () => {
    const [a, b] = await users(2, "reach");
    const phone = await connectUser(b);
    await waitFor(() => phone.frames.find((f) => f.type === "connected"), "connected");
    // The conversation, and so its room, is created after b came online: the room reads b's state from Postgres.
    const id = await direct(a, b);
    await send(id, a, "hello");
    const note = await waitFor(() => phone.frames.find((f) => f.type === "notification"), "notification");
    expect(note.data.conversationId).toBe(id);
    phone.ws.close(1000, "done");
  });
});
