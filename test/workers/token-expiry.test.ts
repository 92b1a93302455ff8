import { describe, expect, it } from "vitest";
import { env, runInDurableObject, SELF } from "cloudflare:test";
import { signDevToken } from "../../src/lib/jwt";
import type { TestUser } from "./helpers";
import { direct, users } from "./conversation-helpers";
import { openSocket } from "./sockets";
import { api } from "./helpers";

/** The same user with a token that expires within two seconds. */
const shortLived = async (user: TestUser): Promise<TestUser> => ({ ...user, token: await signDevToken(user, env.JWT_SECRET, 2) });

const closed = (ws: WebSocket) =>
  new Promise<{ code: number; reason: string }>((resolve) => ws.addEventListener("close", (e) => resolve({ code: e.code, reason: e.reason })));

/**
 * A client that never reads its socket, so it never answers the server's close: the socket stays CLOSING on the
 * server side until the runtime gives up on it (a phone that lost its network looks the same).
 */
async function silentSocket(path: string, user: TestUser): Promise<void> {
  const res = await SELF.fetch(new Request(`http://chat.test${path}`, { headers: { Upgrade: "websocket", authorization: `Bearer ${user.token}` } }));
  expect(res.status).toBe(101);
}

const room = (id: string) => env.CONVERSATION_ROOM.get(env.CONVERSATION_ROOM.idFromName(id));
const session = (userId: string) => env.USER_SESSION.get(env.USER_SESSION.idFromName(userId));
const alarmIn = (stub: DurableObjectStub) => runInDurableObject(stub, async (_i, state) => {
  const at = await state.storage.getAlarm();
  return at === null ? null : at - Date.now();
});

describe("sockets whose token expires", () => {
  it("are closed with 4401 on the conversation socket and on the user socket", async () => {
    const [alice, bob] = await users(2, "tok-exp");
    const id = await direct(alice, bob);
    const brief = await shortLived(alice);
    const conv = await openSocket(`/conversations/${id}/ws`, brief);
    const user = await openSocket("/ws", brief);
    const [convClosed, userClosed] = await Promise.all([closed(conv.ws), closed(user.ws)]);
    expect(convClosed).toEqual({ code: 4401, reason: "Token expired" });
    expect(userClosed).toEqual({ code: 4401, reason: "Token expired" });
  });

  // Each socket closed but not yet gone re-armed the object's alarm 10 ms ahead, and every run closed it again:
  // the object ran a hundred times a second, for as long as the runtime kept the socket.
  it("do not keep the objects waking while the client leaves the close unanswered", async () => {
    const [alice, bob] = await users(2, "tok-silent");
    const id = await direct(alice, bob);
    const brief = await shortLived(alice);
    await silentSocket(`/conversations/${id}/ws`, brief);
    await silentSocket("/ws", brief);
    // Past the expiry and the first alarm runs that close the sockets.
    await new Promise((r) => setTimeout(r, 2500));
    for (const stub of [room(id), session(alice.id)]) {
      const samples: (number | null)[] = [];
      for (let i = 0; i < 5; i++) {
        samples.push(await alarmIn(stub));
        await new Promise((r) => setTimeout(r, 50));
      }
      // Nothing left to time in the room; the session waits out the offline grace (3 s), not 10 ms.
      for (const s of samples) expect(s === null || s > 200, `alarm in ${s} ms`).toBe(true);
    }
  });
});

describe("upgrades refused for too many sockets", () => {
  it("answer 429 with Retry-After (contract §1), on the conversation socket and on the user socket", async () => {
    const [alice, bob] = await users(2, "sock-cap");
    const id = await direct(alice, bob);
    const upgrade = (path: string) =>
      SELF.fetch(new Request(`http://chat.test${path}`, { headers: { Upgrade: "websocket", authorization: `Bearer ${alice.token}` } }));
    const opened: WebSocket[] = [];
    // The room's cap is 10 sockets per user and conversation; the session's 20 per user.
    for (const [path, cap] of [[`/conversations/${id}/ws`, 10], ["/ws", 20]] as const) {
      const results = await Promise.all(Array.from({ length: cap }, () => upgrade(path)));
      for (const res of results) {
        expect(res.status).toBe(101);
        res.webSocket!.accept();
        opened.push(res.webSocket!);
      }
      const refused = await upgrade(path);
      expect(refused.status, path).toBe(429);
      expect(refused.headers.get("retry-after"), path).toMatch(/^[1-9]\d*$/);
      await refused.body?.cancel();
    }
    for (const ws of opened) ws.close(1000);
  });

  // A refused upgrade opened nothing, yet it spent the ticket: the retry the 429 asks for needed a new ticket, whose
  // issue is charged to the upgrade budget.
  it("keep the ticket usable for the retry; a ticket whose upgrade succeeded still opens nothing more", async () => {
    const [alice, bob] = await users(2, "sock-ticket");
    const id = await direct(alice, bob);
    const upgrade = (path: string, auth: { token: string } | { ticket: string }) =>
      SELF.fetch(
        new Request(`http://chat.test${path}${"ticket" in auth ? `?ticket=${auth.ticket}` : ""}`, {
          headers: { Upgrade: "websocket", ...("token" in auth ? { authorization: `Bearer ${auth.token}` } : {}) },
        }),
      );
    const opened: WebSocket[] = [];
    const accept = (res: Response) => {
      res.webSocket!.accept();
      opened.push(res.webSocket!);
    };
    try {
      for (const res of await Promise.all(Array.from({ length: 10 }, () => upgrade(`/conversations/${id}/ws`, alice)))) {
        expect(res.status).toBe(101);
        accept(res);
      }
      const { ticket } = (await api("POST", "/realtime/tickets", { token: alice.token })).body as { ticket: string };
      const refused = await upgrade(`/conversations/${id}/ws`, { ticket });
      expect(refused.status).toBe(429);
      expect(refused.headers.get("retry-after")).toMatch(/^[1-9]\d*$/);
      await refused.body?.cancel();
      // The retry with the same ticket (here on the user socket, which has room) opens.
      const retried = await upgrade("/ws", { ticket });
      expect(retried.status).toBe(101);
      accept(retried);
      const replayed = await upgrade("/ws", { ticket });
      expect(replayed.status).toBe(401);
      await replayed.body?.cancel();
    } finally {
      for (const ws of opened) ws.close(1000);
    }
  });
});

describe("sockets the server closed and the client never answered", () => {
  it("no longer count against the socket cap: a user whose connections timed out can connect again", async () => {
    const [alice, bob] = await users(2, "sock-gone");
    const id = await direct(alice, bob);
    // A phone that lost its network: the upgrades succeeded, then nothing reads the client's end.
    const upgrade = (path: string) =>
      SELF.fetch(new Request(`http://chat.test${path}`, { headers: { Upgrade: "websocket", authorization: `Bearer ${alice.token}` } }));
    for (const [path, cap, stub] of [
      [`/conversations/${id}/ws`, 10, room(id)],
      ["/ws", 20, session(alice.id)],
    ] as const) {
      for (const res of await Promise.all(Array.from({ length: cap }, () => upgrade(path)))) expect(res.status).toBe(101);
      // The object closes them (a heartbeat timeout, a token's expiry); the close is never answered, so they stay
      // CLOSING until the runtime gives up on them.
      const states = await runInDurableObject(stub, async (_i, state) => {
        for (const ws of state.getWebSockets()) ws.close(1001, "Heartbeat timeout");
        return state.getWebSockets().map((ws) => ws.readyState);
      });
      expect(states.length, path).toBe(cap);
      const back = await upgrade(path);
      expect(back.status, path).toBe(101);
      back.webSocket!.accept();
      back.webSocket!.close(1000);
    }
  });
});

describe("conversation sockets whose client left without a close", () => {
  it("are closed at the cap once silent past the heartbeat timeout: a phone that changed networks ten times can open the conversation again", async () => {
    const [alice, bob] = await users(2, "sock-silent");
    const id = await direct(alice, bob);
    const upgrade = () =>
      SELF.fetch(new Request(`http://chat.test/conversations/${id}/ws`, { headers: { Upgrade: "websocket", authorization: `Bearer ${alice.token}` } }));
    const left: { ws: WebSocket; closed: Promise<{ code: number; reason: string }> }[] = [];
    for (const res of await Promise.all(Array.from({ length: 10 }, () => upgrade()))) {
      expect(res.status).toBe(101);
      res.webSocket!.accept();
      left.push({ ws: res.webSocket!, closed: closed(res.webSocket!) });
    }
    // Ten sockets the runtime still holds open (nothing is written to a quiet conversation, so nothing fails), none
    // heard from for over a minute: their clients went away with the network. The room used to refuse every
    // reconnect with 429 until the runtime gave up on them.
    await runInDurableObject(room(id), async (_i, state) => {
      for (const ws of state.getWebSockets(alice.id)) {
        ws.serializeAttachment({ ...(ws.deserializeAttachment() as object), connectedAt: Date.now() - 61_000 });
      }
    });
    const back = await upgrade();
    expect(back.status).toBe(101);
    back.webSocket!.accept();
    for (const { closed: c } of left) expect(await c).toMatchObject({ code: 1001 });
    // A socket heard from within the timeout (a heartbeat) keeps its slot: the cap still refuses a reconnect loop.
    const live: WebSocket[] = [back.webSocket!];
    for (const res of await Promise.all(Array.from({ length: 9 }, () => upgrade()))) {
      expect(res.status).toBe(101);
      res.webSocket!.accept();
      live.push(res.webSocket!);
    }
    await runInDurableObject(room(id), async (_i, state) => {
      for (const ws of state.getWebSockets(alice.id)) {
        ws.serializeAttachment({ ...(ws.deserializeAttachment() as object), connectedAt: Date.now() - 61_000, heardAt: Date.now() });
      }
    });
    const refused = await upgrade();
    expect(refused.status).toBe(429);
    await refused.body?.cancel();
    for (const ws of live) ws.close(1000);
  });
});
